package main

import (
	"strings"
	"testing"
)

// sample is `go test -bench -benchmem -count 3` output after the lines
// hack/bench.sh puts before it, with the noise a real run has: a log line,
// a benchmark without -benchmem columns, one missing a baseline, and the
// trailer.
const sample = `date: 2026-01-02 03:04 UTC
go-version: go version go1.26.8 linux/amd64
cpu-model: AMD EPYC
command: go test ./test/bench/ -run '^$' -bench '.' -benchmem -count 3 -benchtime 2s
goos: linux
goarch: amd64
pkg: mindie.io/deployer/test/bench
cpu: Oxide Virtual Turin-like Processor             
BenchmarkCreateInferServer-2         	    1012	   1000000 ns/op	  273510 B/op	    2686 allocs/op
BenchmarkCreateInferServer-2         	    1100	   1200000 ns/op	  273000 B/op	    2680 allocs/op
BenchmarkCreateInferServer-2         	     900	   1100000 ns/op	  274000 B/op	    2690 allocs/op
BenchmarkBaselineEtcdPut-2           	    6105	    200000 ns/op	   62193 B/op	     262 allocs/op
BenchmarkBaselineEtcdPut-2           	    6105	    250000 ns/op	   62000 B/op	     260 allocs/op
BenchmarkBaselineEtcdPut-2           	    6105	    150000 ns/op	   62100 B/op	     264 allocs/op
BenchmarkGetInferServer-2            	    1455	    802149 ns/op	  111442 B/op	    1101 allocs/op
{"level":"error","msg":"setting up serving from embedded etcd failed."}
BenchmarkValidateInferServer-2       	   90601	     16000 ns/op	    4096 B/op	      81 allocs/op
BenchmarkValidateInferServer-2       	   90601	     18000 ns/op	    4096 B/op	      81 allocs/op
BenchmarkBaselineJSONDecode-2        	   42525	     32000 ns/op
BenchmarkBaselineJSONDecode-2        	   42525	     30000 ns/op
PASS
ok  	mindie.io/deployer/test/bench	14.346s
`

func TestParse(t *testing.T) {
	r, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	wantOrder := []string{"CreateInferServer", "BaselineEtcdPut", "GetInferServer", "ValidateInferServer", "BaselineJSONDecode"}
	if strings.Join(r.order, ",") != strings.Join(wantOrder, ",") {
		t.Fatalf("order: got %v, want %v", r.order, wantOrder)
	}
	for key, want := range map[string]string{
		"cpu":      "Oxide Virtual Turin-like Processor",
		"pkg":      "mindie.io/deployer/test/bench",
		keyDate:    "2026-01-02 03:04 UTC",
		keyGo:      "go version go1.26.8 linux/amd64",
		keyCPU:     "AMD EPYC",
		keyCommand: "go test ./test/bench/ -run '^$' -bench '.' -benchmem -count 3 -benchtime 2s",
	} {
		if got := r.header[key]; got != want {
			t.Errorf("header %s: got %q, want %q", key, got, want)
		}
	}
	if got := r.procs(); got != "2" {
		t.Fatalf("procs: got %q", got)
	}
	for _, c := range []struct {
		name, unit string
		want       float64
		ok         bool
	}{
		{"CreateInferServer", "ns/op", 1100000, true},
		{"CreateInferServer", "allocs/op", 2686, true},
		{"BaselineEtcdPut", "B/op", 62100, true},
		{"ValidateInferServer", "ns/op", 17000, true}, // even count: mean of the middle two
		{"BaselineJSONDecode", "B/op", 0, false},
		{"ListInferServers", "ns/op", 0, false},
	} {
		got, ok := r.median(c.name, c.unit)
		if got != c.want || ok != c.ok {
			t.Errorf("median %s %s: got %v %v, want %v %v", c.name, c.unit, got, ok, c.want, c.ok)
		}
	}
}

func TestParseRejectsEmptyInput(t *testing.T) {
	if _, err := parse(strings.NewReader("PASS\nok x 1s\n")); err == nil {
		t.Fatal("want an error for input without benchmark results")
	}
}

func TestRenderBenchmarks(t *testing.T) {
	r, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := renderBenchmarks(&out, r, nil); err != nil {
		t.Fatal(err)
	}
	md := out.String()
	wantAll(t, "output", md,
		"- Date: 2026-01-02 03:04 UTC\n",
		"- Go: go version go1.26.8 linux/amd64\n",
		"[scale-check.md](scale-check.md)",
		"- CPU: AMD EPYC (Go reports \"Oxide Virtual Turin-like Processor\")\n",
		"- GOMAXPROCS: 2\n",
		"- Command: `go test ./test/bench/ -run '^$' -bench '.' -benchmem -count 3 -benchtime 2s`\n",
		"| Measured | Baseline | time/op | baseline | ratio | goal | B/op | baseline | ratio | allocs/op | baseline | ratio |\n"+
			"|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
		// 1.1 ms / 200 µs, 267 KiB / 60.6 KiB (273510 / 62100 B), 2686 / 262 allocs.
		"| CreateInferServer | BaselineEtcdPut | 1.10 ms | 200 µs | 5.50× | ≤ 8×: met | 267 KiB | 60.6 KiB | 4.40× | 2686 | 262 | 10.25× |\n",
		// No baseline measured: dashes, not a division by nothing.
		"| GetInferServer | BaselineEtcdGet | 802 µs | — | — | ≤ 10×: not measured |",
		"| ListInferServers | BaselineEtcdRangePrefix | — | — | — | ≤ 12×: not measured |",
		"| ValidateInferServer | BaselineJSONDecode | 17.0 µs | 31.0 µs | 0.55× | ≤ 1×: met | 4.00 KiB | — | — |",
		"- **CreateInferServer / BaselineEtcdPut = 5.50×** (goal ≤ 8×: met).",
		"| CreateInferServer | 3 | 1.10 ms | 1.00 ms – 1.20 ms | 267 KiB | 2686 |\n",
		"| BaselineJSONDecode | 2 | 31.0 µs | 30.0 µs – 32.0 µs | — | — |\n",
	)
	if strings.Contains(md, "## Reconcile benchmark") {
		t.Errorf("a section of the reconcile benchmark without its results:\n%s", md)
	}
}

// A ratio above its goal is marked missed, in the table and in the text.
func TestRenderBenchmarksMissedGoal(t *testing.T) {
	slow := strings.ReplaceAll(sample, "   1000000 ns/op", "   9000000 ns/op")
	r, err := parse(strings.NewReader(slow))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := renderBenchmarks(&out, r, nil); err != nil {
		t.Fatal(err)
	}
	md := out.String()
	// Median of 9 ms, 1.2 ms and 1.1 ms over 200 µs.
	wantAll(t, "output", md,
		"| CreateInferServer | BaselineEtcdPut | 1.20 ms | 200 µs | 6.00× | ≤ 8×: met |",
	)
	slower := strings.NewReplacer("   1000000 ns/op", "   9000000 ns/op", "   1200000 ns/op", "   2000000 ns/op").Replace(sample)
	if r, err = parse(strings.NewReader(slower)); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := renderBenchmarks(&out, r, nil); err != nil {
		t.Fatal(err)
	}
	md = out.String()
	// Median of 9 ms, 2 ms and 1.1 ms over 200 µs: 10×, above 8×.
	wantAll(t, "output", md,
		"| CreateInferServer | BaselineEtcdPut | 2.00 ms | 200 µs | 10.00× | ≤ 8×: **missed** |",
		"- **CreateInferServer / BaselineEtcdPut = 10.00×** (goal ≤ 8×: **missed**).",
	)
}

// With the reconcile benchmark's results, docs/benchmarks.md ends with its
// summary, the same table docs/reconcile-bench.md shows.
func TestRenderBenchmarksWithReconcile(t *testing.T) {
	r, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	rc := loadSample(t)
	var out strings.Builder
	if err := renderBenchmarks(&out, r, rc); err != nil {
		t.Fatal(err)
	}
	md := out.String()
	_, section, ok := strings.Cut(md, "\n## Reconcile benchmark\n\n")
	if !ok {
		t.Fatalf("no section of the reconcile benchmark:\n%s", md)
	}
	if !strings.Contains(section, "[reconcile-bench.md](reconcile-bench.md)") {
		t.Errorf("the section does not link docs/reconcile-bench.md:\n%s", section)
	}
	if summary := reconcileSummary(rc); !strings.HasSuffix(section, summary) {
		t.Errorf("the section does not end with the summary table.\nsection:\n%s\nsummary:\n%s", section, summary)
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{formatNs(999), "999 ns"},
		{formatNs(1500), "1.50 µs"},
		{formatNs(138610799), "139 ms"},
		{formatNs(2.5e9), "2.50 s"},
		{formatBytes(512), "512 B"},
		{formatBytes(22299573), "21.3 MiB"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
