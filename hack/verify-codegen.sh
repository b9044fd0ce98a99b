#!/usr/bin/env bash
# Fails when a generated file differs from what hack/update-codegen.sh makes
# of the current sources. It regenerates in a copy of the tree.
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Copy the tracked and untracked-but-not-ignored files only.
(cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$TMP")
(cd "$TMP" && hack/update-codegen.sh >/dev/null)

status=0
for dir in apis pkg/generated hack/api-rule-violations.list; do
  if ! diff -Naupr "$ROOT/$dir" "$TMP/$dir"; then
    status=1
  fi
done
if [ "$status" -ne 0 ]; then
  echo "Generated code is out of date: run 'make generate' (hack/update-codegen.sh)." >&2
  exit 1
fi
echo "Generated code is up to date."
