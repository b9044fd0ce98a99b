package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mindie.io/deployer/test/bench/results"
)

// sampleCRD is a run where InferServer creates and lists faster than the
// CRD (met), reads one object slower through the aggregator (GET p50 3 ms
// against 2 ms: missed), and the direct and admin GETs show where the
// difference goes.
func sampleCRD() *results.CRD {
	m := func(op, api, path, user string, size int, variant string, perSecond, p50, p99, seconds float64, cpu map[string]float64) results.CRDMeasurement {
		enc := ""
		if op == results.OpList {
			enc = results.EncodingJSON
		}
		return results.CRDMeasurement{Op: op, API: api, Path: path, User: user, Size: size, Variant: variant, Encoding: enc,
			Requests: 500, PerSecond: perSecond, P50Ms: p50, P99Ms: p99, MaxMs: p99 * 2, Seconds: seconds, CPUMs: cpu, Bytes: 1000}
	}
	const crd, is, kube, agg, direct, tenant, admin = results.APICRD, results.APIInferServer, results.PathKube, results.PathAggregator,
		results.PathDirect, results.UserTenant, results.UserAdmin
	cpu := func(k, m, e float64) map[string]float64 {
		return map[string]float64{"kube-apiserver": k, "mindie-apiserver": m, "etcd": e}
	}
	r := &results.CRD{
		Version: results.CRDVersion,
		Run:     results.RouterRun{Date: "2026-01-02T03:04:05Z", Command: "hack/crd-bench.sh", Go: "go1.26 linux/amd64", CPU: "Test CPU", CPUs: 2, WallSeconds: 200},
		Goals:   results.CRDGoals{MaxCreateRatio: 1.2, MaxGetRatio: 1.2, MaxListRatio: 1.5, Why: "WHY-THESE-GOALS"},
		Setup: results.CRDSetup{
			Group: "infer.mindie.io", CRDGroup: "infer.crdbench.mindie.io", Objects: 1000, Large: 10000, Clients: 20, Gets: 500, ListRepeats: 5,
			Watchers: 10, WatchObjects: 500, Tenant: "tenant-a-editor", ObjectBytes: map[string]int{crd: 3000, is: 2900},
			CRDBytes: 72000, CRDSchema: "SCHEMA-TEXT", Server: "spec:\n  replicas: 2",
			Encodings: []results.CRDEncoding{
				{API: crd, MediaType: "application/vnd.kubernetes.protobuf", Status: 406, ContentType: "application/json"},
				{API: is, MediaType: "application/cbor", Status: 406, ContentType: "application/json"},
			},
			Processes: []string{"kube-apiserver", "mindie-apiserver", "etcd"},
		},
		Measurements: []results.CRDMeasurement{
			m(results.OpCreate, crd, kube, tenant, 1000, "", 100, 150, 900, 10, cpu(4, 0, 0.4)),
			m(results.OpCreate, is, agg, tenant, 1000, "", 300, 50, 300, 3.3, cpu(0.7, 1.4, 0.3)),
			m(results.OpCreate, is, direct, tenant, 1000, "", 400, 40, 150, 2.5, cpu(0.1, 1.4, 0.3)),
			m(results.OpGet, crd, kube, tenant, 500, "", 0, 2, 10, 1, cpu(1.7, 0, 0.4)),
			m(results.OpGet, is, agg, tenant, 500, "", 0, 3, 12, 1.5, cpu(1.1, 1.1, 0.4)),
			m(results.OpGet, is, direct, tenant, 500, "", 0, 1.5, 6, 0.8, cpu(0, 1, 0.4)),
			m(results.OpGet, crd, kube, admin, 500, "", 0, 2, 9, 1, cpu(1.7, 0, 0.4)),
			m(results.OpGet, is, agg, admin, 500, "", 0, 2.9, 11, 1.5, cpu(1.1, 1.1, 0.4)),
			m(results.OpGet, is, direct, admin, 500, "", 0, 1.4, 6, 0.8, cpu(0, 1, 0.4)),
			m(results.OpList, crd, kube, tenant, 1000, "", 0, 100, 120, 0.5, cpu(118, 0, 2)),
			m(results.OpList, is, agg, tenant, 1000, "", 0, 30, 40, 0.15, cpu(2, 24, 0)),
			m(results.OpList, is, direct, tenant, 1000, "", 0, 25, 30, 0.12, cpu(0, 20, 0)),
			m(results.OpList, crd, kube, tenant, 1000, "rv=0", 0, 99, 110, 0.5, nil),
			m(results.OpList, is, agg, tenant, 1000, "rv=0", 0, 29, 35, 0.15, nil),
			watchRestarted(m(results.OpWatch, crd, kube, tenant, 500, "", 90, 280, 1500, 5.6, nil)),
			m(results.OpWatch, is, agg, tenant, 500, "", 150, 160, 340, 3.3, nil),
		},
	}
	r.Derive()
	return r
}

func watchRestarted(m results.CRDMeasurement) results.CRDMeasurement {
	m.Restarts = 3
	return m
}

func TestRenderCRD(t *testing.T) {
	doc := renderCRD(sampleCRD())
	for _, want := range []string{
		"\n## InferServer API against a CRD\n",
		"(`inferservers.infer.crdbench.mindie.io`)",
		"- Command: `hack/crd-bench.sh`",
		// The ratios with their goals, the direct figures beside them.
		"| create: time per create at full concurrency | 300/s | 100/s | 0.33× | ≤ 1.2×: met | 400/s | 0.25× |",
		"| GET p50 | 3.00 ms | 2.00 ms | 1.50× | ≤ 1.2×: **missed** by 0.30× | 1.50 ms | 0.75× |",
		"| LIST of 1000 | 30.0 ms | 100 ms | 0.30× | ≤ 1.5×: met | 25.0 ms | 0.25× |",
		"| LIST of 10000 | — | — | — | ≤ 1.5×: not measured | — | — |",
		"| watch: all 10 watchers saw 500 creates | 3.30 s | 5.60 s | 0.59× | no goal |",
		"Goals: WHY-THESE-GOALS",
		// The reading, from the figures.
		"Sent to mindie-apiserver's own port it took 1.50 ms, less than the CRD's",
		"so the whole gap, and more, is kube-apiserver's hop: 1.50 ms.",
		"In CPU a proxied GET cost kube-apiserver 1.10 ms and mindie-apiserver 1.10 ms; a whole CRD GET cost kube-apiserver 1.70 ms.",
		"As system:masters, whom neither server's authorizer asks anyone about, the GETs took 2.90 ms and 2.00 ms (1.45×).",
		"the tenant's GET took 1.50 ms, system:masters' 1.40 ms.",
		"20 clients created 300 InferServers a second through the aggregator and 100 of the CRD (0.33× the time per create), and 400 a second sent to mindie-apiserver directly",
		"A LIST of 1000 objects took 30.0 ms for InferServers and 100 ms for the CRD (0.30×",
		"and with resourceVersion=0 29.0 ms and 99.0 ms",
		"10 watchers saw all 500 creates 3.30 s after the first was sent for InferServers and 5.60 s for the CRD",
		"The server ended 3 of the CRD's watch streams before they had seen every object",
		"*What remains.* GET p50 was missed",
		// Encodings, measurements, the CRD.
		"- the CRD, a LIST accepting only `application/vnd.kubernetes.protobuf`: answered 406 with application/json",
		"Neither API offers protobuf or CBOR here",
		"| get | InferServer, direct | admin | 500 | — | 500 | 0 | 0.80 s | 0.0 | 1.40 ms | 6.00 ms | 12.0 ms | 1000 B | 0.00 / 1.00 / 0.40 |",
		"| list | CRD | tenant | 1000 | rv=0 |",
		"70.3 KiB as YAML: SCHEMA-TEXT.",
		"    spec:\n      replicas: 2\n",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the section lacks %q", want)
		}
	}
	if strings.Contains(doc, " \n") {
		t.Error("a line ends in a space")
	}
	if t.Failed() {
		t.Log(doc)
	}
}

func TestRenderCRDAllMet(t *testing.T) {
	r := sampleCRD()
	for i := range r.Measurements {
		if m := &r.Measurements[i]; m.Op == results.OpGet && m.API == results.APIInferServer && m.Path == results.PathAggregator {
			m.P50Ms, m.P99Ms = 2.1, 10
		}
	}
	r.Setup.Large = 0
	r.Derive()
	doc := renderCRD(r)
	if !strings.Contains(doc, "Every goal was met.") || strings.Contains(doc, "**missed**") || strings.Contains(doc, "LIST of 10000") {
		t.Errorf("every goal met:\n%s", doc)
	}
}

func TestRunRendersCRDSection(t *testing.T) {
	dir := t.TempDir()
	apiserver := filepath.Join(dir, "apiserver.txt")
	if err := os.WriteFile(apiserver, []byte("date: 2026-01-02 03:04 UTC\nBenchmarkCreateInferServer-2 100 852000 ns/op\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "benchmarks.md")
	// No crd.json beside apiserver.txt: the section says it has not run.
	if err := run(paths{apiserverIn: apiserver, benchmarksOut: out}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(out)
	if !strings.Contains(string(data), "\n## InferServer API against a CRD\n") || !strings.Contains(string(data), "CRD_BENCH=0") {
		t.Fatalf("without results:\n%s", data)
	}
	if err := sampleCRD().Save(filepath.Join(dir, "crd.json")); err != nil {
		t.Fatal(err)
	}
	if err := run(paths{apiserverIn: apiserver, benchmarksOut: out}); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(out)
	if !strings.Contains(string(data), "### Where the aggregated path's time goes") {
		t.Fatalf("with results:\n%s", data)
	}
}
