// Command report renders every benchmark document from the results of the
// last run, which hack/bench.sh, hack/reconcile-bench.sh and
// hack/scale-check.sh keep in docs/bench/:
//
//   - apiserver.txt, the output of `go test -bench -benchmem` of test/bench,
//     after the configuration lines hack/bench.sh puts before it (date,
//     go-version, cpu-model, command);
//   - reconcile.json, the reconcile benchmark's results (test/bench/results);
//   - scale-check.json, the scale check's results (test/bench/results);
//   - router.json, the router benchmark's results (test/bench/results),
//     rendered as the "Router" section of docs/benchmarks.md;
//   - pd.json, the Prefill/Decode benchmark's results (test/bench/results),
//     rendered as the "Prefill/Decode" section of docs/benchmarks.md (which
//     says it has not run when the file is missing);
//   - faults.json, the fault-recovery benchmark's results (test/bench/results),
//     rendered as the "Fault recovery" section of docs/benchmarks.md (which
//     says it has not run when the file is missing);
//   - edge.json, the EdgeDeployment benchmark's results (test/bench/results),
//     rendered as the "EdgeDeployment at 1,000 nodes" section of
//     docs/benchmarks.md (which says it has not run when the file is
//     missing);
//   - plugin.json, the plugin benchmark's results (test/bench/results),
//     rendered as the "Plugin at scale" section of docs/benchmarks.md (which
//     says it has not run when the file is missing);
//   - crd.json, the comparison of the InferServer API with a CRD
//     (test/bench/results), rendered as the "InferServer API against a CRD"
//     section of docs/benchmarks.md (which says it has not run when the
//     file is missing);
//   - ha.json, the failover benchmark's results (test/bench/results),
//     rendered as the "Two replicas, one killed" section of
//     docs/benchmarks.md (which says it has no results when the file is
//     missing).
//
// It writes docs/benchmarks.md (the benchmarks' ratios to their baselines
// and goals, and the reconcile benchmark's summary),
// docs/reconcile-bench.md and docs/scale-check.md. Every figure of the
// benchmarks is read as a ratio to a baseline measured in the same run,
// with its goal beside it. Run from the repository's root, with no flags,
// it renders all three documents again:
//
//	go run ./test/bench/report
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"mindie.io/deployer/test/bench/results"
)

// paths are what the renderer reads and writes; an empty one is not read
// or not written.
type paths struct {
	apiserverIn, reconcileIn, scaleCheckIn     string
	routerIn, pdIn, faultsIn, edgeIn, pluginIn string
	crdIn, haIn                                string
	benchmarksOut, reconcileOut, scaleCheckOut string
}

func main() {
	var ps paths
	flag.StringVar(&ps.apiserverIn, "apiserver", "docs/bench/apiserver.txt", "output of the benchmarks of test/bench (go test -bench -benchmem)")
	flag.StringVar(&ps.reconcileIn, "reconcile", "docs/bench/reconcile.json", "the reconcile benchmark's results; empty: none")
	flag.StringVar(&ps.scaleCheckIn, "scale-check", "docs/bench/scale-check.json", "the scale check's results; empty: none")
	flag.StringVar(&ps.routerIn, "router", "", "the router benchmark's results (default: router.json beside -apiserver); missing: no Router section")
	flag.StringVar(&ps.pdIn, "pd", "", "the Prefill/Decode benchmark's results (default: pd.json beside -apiserver); missing: a section saying it has not run")
	flag.StringVar(&ps.faultsIn, "faults", "", "the fault-recovery benchmark's results (default: faults.json beside -apiserver); missing: a section saying it has not run")
	flag.StringVar(&ps.edgeIn, "edge", "", "the EdgeDeployment benchmark's results (default: edge.json beside -apiserver); missing: a section saying it has not run")
	flag.StringVar(&ps.pluginIn, "plugin", "", "the plugin benchmark's results (default: plugin.json beside -apiserver); missing: a section saying it has not run")
	flag.StringVar(&ps.crdIn, "crd", "", "the CRD comparison's results (default: crd.json beside -apiserver); missing: a section saying it has not run")
	flag.StringVar(&ps.haIn, "ha", "", "the failover benchmark's results (default: ha.json beside -apiserver); missing: a section saying it awaits its first run")
	flag.StringVar(&ps.benchmarksOut, "benchmarks-out", "docs/benchmarks.md", "where the benchmarks' document goes; empty: not written")
	flag.StringVar(&ps.reconcileOut, "reconcile-out", "docs/reconcile-bench.md", "where the reconcile benchmark's document goes; empty: not written")
	flag.StringVar(&ps.scaleCheckOut, "scale-check-out", "docs/scale-check.md", "where the scale check's document goes; empty: not written")
	flag.Parse()
	if err := run(ps); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(ps paths) error {
	var rc *results.Reconcile
	if ps.reconcileIn != "" {
		var err error
		if rc, err = results.LoadReconcile(ps.reconcileIn, false); err != nil {
			return err
		}
		if len(rc.Sizes) == 0 {
			return fmt.Errorf("%s: no measurements", ps.reconcileIn)
		}
	}
	var sc *results.ScaleCheck
	if ps.scaleCheckIn != "" && ps.scaleCheckOut != "" {
		var err error
		if sc, err = results.LoadScaleCheck(ps.scaleCheckIn); err != nil {
			return err
		}
	}
	if ps.benchmarksOut != "" {
		data, err := os.ReadFile(ps.apiserverIn)
		if err != nil {
			return err
		}
		r, err := parse(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("%s: %w", ps.apiserverIn, err)
		}
		var doc bytes.Buffer
		if err := renderBenchmarks(&doc, r, rc); err != nil {
			return err
		}
		routerIn := ps.routerIn
		if routerIn == "" {
			routerIn = filepath.Join(filepath.Dir(ps.apiserverIn), "router.json")
		}
		rt, err := results.LoadRouter(routerIn)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(os.Stderr, "report: no %s: no Router section\n", routerIn)
		case err != nil:
			return err
		default:
			doc.WriteString(renderRouter(rt))
		}
		pdIn := ps.pdIn
		if pdIn == "" {
			pdIn = filepath.Join(filepath.Dir(ps.apiserverIn), "pd.json")
		}
		pd, err := results.LoadPD(pdIn)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(os.Stderr, "report: no %s: the Prefill/Decode section says it has not run\n", pdIn)
			doc.WriteString(renderPDNotRun())
		case err != nil:
			return err
		default:
			doc.WriteString(renderPD(pd))
		}
		faultsIn := ps.faultsIn
		if faultsIn == "" {
			faultsIn = filepath.Join(filepath.Dir(ps.apiserverIn), "faults.json")
		}
		fr, err := results.LoadFaults(faultsIn)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(os.Stderr, "report: no %s: the Fault recovery section says it has not run\n", faultsIn)
			doc.WriteString(renderFaultsNotRun())
		case err != nil:
			return err
		default:
			doc.WriteString(renderFaults(fr))
		}
		edgeIn := ps.edgeIn
		if edgeIn == "" {
			edgeIn = filepath.Join(filepath.Dir(ps.apiserverIn), "edge.json")
		}
		ed, err := results.LoadEdge(edgeIn)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(os.Stderr, "report: no %s: the EdgeDeployment section says it has not run\n", edgeIn)
			doc.WriteString(renderEdgeNotRun())
		case err != nil:
			return err
		default:
			doc.WriteString(renderEdge(ed))
		}
		crdIn := ps.crdIn
		if crdIn == "" {
			crdIn = filepath.Join(filepath.Dir(ps.apiserverIn), "crd.json")
		}
		cr, err := results.LoadCRD(crdIn)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(os.Stderr, "report: no %s: the section on the CRD says it has not run\n", crdIn)
			doc.WriteString(renderCRDNotRun())
		case err != nil:
			return err
		default:
			doc.WriteString(renderCRD(cr))
		}
		pluginIn := ps.pluginIn
		if pluginIn == "" {
			pluginIn = filepath.Join(filepath.Dir(ps.apiserverIn), "plugin.json")
		}
		pl, err := results.LoadPlugin(pluginIn)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(os.Stderr, "report: no %s: the Plugin at scale section says it has not run\n", pluginIn)
			doc.WriteString(renderPluginNotRun())
		case err != nil:
			return err
		default:
			doc.WriteString(renderPlugin(pl))
		}
		haIn := ps.haIn
		if haIn == "" {
			haIn = filepath.Join(filepath.Dir(ps.apiserverIn), "ha.json")
		}
		ha, err := results.LoadHA(haIn)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(os.Stderr, "report: no %s: the section on two replicas says it awaits its first run\n", haIn)
			doc.WriteString(renderHANotRun())
		case err != nil:
			return err
		default:
			doc.WriteString(renderHA(ha))
		}
		if err := write(ps.benchmarksOut, doc.Bytes()); err != nil {
			return err
		}
	}
	if rc != nil && ps.reconcileOut != "" {
		if err := write(ps.reconcileOut, []byte(renderReconcile(rc))); err != nil {
			return err
		}
	}
	if sc != nil {
		if err := write(ps.scaleCheckOut, []byte(renderScaleCheck(sc))); err != nil {
			return err
		}
	}
	return nil
}

// write writes a document through a temporary file, so that a failed
// write leaves the last one whole.
func write(path string, data []byte) error {
	if err := os.WriteFile(path+".tmp", data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "report: wrote %s\n", path)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
