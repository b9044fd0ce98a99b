// Command report renders every benchmark document from the results of the
// last run, which hack/bench.sh and hack/reconcile-bench.sh keep in
// docs/bench/:
//
//   - apiserver.txt, the output of `go test -bench -benchmem` of test/bench,
//     after the configuration lines hack/bench.sh puts before it (date,
//     go-version, cpu-model, command);
//   - reconcile.json, the reconcile benchmark's results (test/bench/results).
//
// It writes docs/benchmarks.md (the benchmarks' ratios to their baselines
// and goals, and the reconcile benchmark's summary) and
// docs/reconcile-bench.md. Every figure is read as a ratio to a baseline
// measured in the same run, with its goal beside it. Run from the
// repository's root, with no flags, it renders both documents again:
//
//	go run ./test/bench/report
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"mindie.io/deployer/test/bench/results"
)

func main() {
	var apiserverIn, reconcileIn, benchmarksOut, reconcileOut string
	flag.StringVar(&apiserverIn, "apiserver", "docs/bench/apiserver.txt", "output of the benchmarks of test/bench (go test -bench -benchmem)")
	flag.StringVar(&reconcileIn, "reconcile", "docs/bench/reconcile.json", "the reconcile benchmark's results; empty: none")
	flag.StringVar(&benchmarksOut, "benchmarks-out", "docs/benchmarks.md", "where the benchmarks' document goes; empty: not written")
	flag.StringVar(&reconcileOut, "reconcile-out", "docs/reconcile-bench.md", "where the reconcile benchmark's document goes; empty: not written")
	flag.Parse()
	if err := run(apiserverIn, reconcileIn, benchmarksOut, reconcileOut); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(apiserverIn, reconcileIn, benchmarksOut, reconcileOut string) error {
	var rc *results.Reconcile
	if reconcileIn != "" {
		var err error
		if rc, err = results.LoadReconcile(reconcileIn, false); err != nil {
			return err
		}
		if len(rc.Sizes) == 0 {
			return fmt.Errorf("%s: no measurements", reconcileIn)
		}
	}
	if benchmarksOut != "" {
		data, err := os.ReadFile(apiserverIn)
		if err != nil {
			return err
		}
		r, err := parse(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("%s: %w", apiserverIn, err)
		}
		var doc bytes.Buffer
		if err := renderBenchmarks(&doc, r, rc); err != nil {
			return err
		}
		if err := write(benchmarksOut, doc.Bytes()); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "report: wrote %s\n", benchmarksOut)
	}
	if rc != nil && reconcileOut != "" {
		if err := write(reconcileOut, []byte(renderReconcile(rc))); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "report: wrote %s\n", reconcileOut)
	}
	return nil
}

// write writes a document through a temporary file, so that a failed
// write leaves the last one whole.
func write(path string, data []byte) error {
	if err := os.WriteFile(path+".tmp", data, 0o644); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
