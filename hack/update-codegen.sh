#!/usr/bin/env bash
# Regenerates every generated file of the module with k8s.io/code-generator's
# kube_codegen.sh, at the version pinned in go.mod. Never edit the output.
set -o errexit -o nounset -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)

cd "$ROOT"
# On a fresh machine the module cache is empty and 'go list -m' prints no
# directory for a module it has not downloaded: fetch both first.
go mod download k8s.io/code-generator k8s.io/api
CODEGEN_PKG=$(go list -m -f '{{.Dir}}' k8s.io/code-generator)
source "${CODEGEN_PKG}/kube_codegen.sh"

MODULE=mindie.io/deployer
BOILERPLATE="$ROOT/hack/boilerplate.go.txt"

# The core/v1 types the API uses have apply configurations in client-go. The
# members of VolumeSource are listed because InferVolume embeds it inline.
VOLUME_SOURCES=$(awk '/^type VolumeSource struct/,/^}/' "$(go list -m -f '{{.Dir}}' k8s.io/api)/core/v1/types.go" |
  sed -nE 's/^[[:space:]]+[A-Z][A-Za-z]+ \*([A-Za-z]+) .*/\1/p')
CORE_APPLYCONFIGS=$(printf 'k8s.io/api/core/v1.%s:k8s.io/client-go/applyconfigurations/core/v1,' \
  Affinity EnvVar LocalObjectReference ResourceRequirements Toleration Volume VolumeMount VolumeSource $VOLUME_SOURCES)
CORE_APPLYCONFIGS=${CORE_APPLYCONFIGS%,}

kube::codegen::gen_helpers --boilerplate "$BOILERPLATE" "$ROOT/apis"

kube::codegen::gen_openapi \
  --output-dir "$ROOT/pkg/generated/openapi" \
  --output-pkg "$MODULE/pkg/generated/openapi" \
  --output-model-name-file zz_generated.model_name.go \
  --extra-pkgs k8s.io/api/core/v1 \
  --extra-pkgs k8s.io/api/autoscaling/v1 \
  --extra-pkgs k8s.io/apimachinery/pkg/util/intstr \
  --extra-pkgs k8s.io/apimachinery/pkg/api/resource \
  --report-filename "$ROOT/hack/api-rule-violations.list" \
  --update-report \
  --boilerplate "$BOILERPLATE" \
  "$ROOT/apis"

kube::codegen::gen_client \
  --with-watch \
  --with-applyconfig \
  --applyconfig-externals "$CORE_APPLYCONFIGS" \
  --applyconfig-openapi-schema <(go run "$MODULE/pkg/generated/openapi/cmd/models-schema") \
  --output-dir "$ROOT/pkg/generated" \
  --output-pkg "$MODULE/pkg/generated" \
  --boilerplate "$BOILERPLATE" \
  "$ROOT/apis"
