package main

// This file reads the output of `go test -bench -benchmem` of test/bench and
// renders docs/benchmarks.md: the median of each benchmark over its runs,
// each measured benchmark as a ratio of the baseline it was measured beside
// with its goal, and the summary of the reconcile benchmark.

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"mindie.io/deployer/test/bench/results"
)

// pair is a measured benchmark, the baseline it is read against, the
// goal for their time/op ratio, and what their ratio says.
type pair struct {
	measured, baseline string
	// goal is the highest time/op ratio that meets the goal: a ceiling a
	// little above what two shared cores measured, so that a regression
	// shows as a missed goal.
	goal    float64
	meaning string
}

var pairs = []pair{
	{"CreateInferServer", "BaselineEtcdPut", 8,
		"What a create through the API costs over the etcd write under it: HTTP/2 and TLS on loopback, " +
			"JSON decoding, defaulting, managed fields, validation, the transaction that checks the name is free, " +
			"and the watch cache and informer that see every new object. Both sides write with GOMAXPROCS × 4 goroutines, " +
			"the baseline the very value the server stored for the same object, so etcd batches its fsyncs alike on both; " +
			"their time/op is wall-clock time per write with all goroutines busy (the inverse of throughput), not the latency of one write."},
	{"GetInferServer", "BaselineEtcdGet", 10,
		"What a read of one object through the API costs over the linearizable etcd read that serves it " +
			"(a Get without resourceVersion goes to etcd, not to the watch cache): HTTP and TLS at both ends, " +
			"decoding the stored JSON, conversion to and from the internal version, encoding the answer and decoding it in the client. " +
			"Both sides read one at a time, so time/op is the latency of one read."},
	{"ListInferServers", "BaselineEtcdRangePrefix", 12,
		"What listing a namespace of 1000 InferServers costs over one range read of the same 1000 stored values. " +
			"The server answers a list without resourceVersion from its watch cache, after checking with etcd that the cache is current, " +
			"so the ratio is mostly the price of encoding 1000 objects as JSON, sending them over TLS and decoding them into typed objects " +
			"in the client, where the baseline moves the same stored bytes as opaque values."},
	{"ValidateInferServer", "BaselineJSONDecode", 1,
		"What validating an object costs next to decoding its JSON, a step every write takes anyway. " +
			"Both run in memory on the same defaulted object; below 1, validating costs less than decoding."},
}

// bench is the results of one benchmark over its runs.
type bench struct {
	name  string
	procs string
	// units maps a unit (ns/op, B/op, allocs/op) to its value in each run.
	units map[string][]float64
}

// report is everything parsed from one `go test -bench` output.
type report struct {
	// header holds the configuration lines ("key: value"): those go test
	// writes (goos, goarch, pkg, cpu) and those hack/bench.sh puts before
	// them (see the keys below).
	header  map[string]string
	order   []string
	benches map[string]*bench
}

// The configuration lines hack/bench.sh writes before go test's output, so
// that the saved output says how and where it ran.
const (
	keyDate    = "date"       // when the benchmarks ran
	keyGo      = "go-version" // output of `go version`
	keyCPU     = "cpu-model"  // the model name of /proc/cpuinfo
	keyCommand = "command"    // the command that ran the benchmarks
	keyNote    = "note"       // anything a reader of the numbers should know
)

var (
	procsSuffix = regexp.MustCompile(`-(\d+)$`)
	// configLine is a configuration line of the Go benchmark format: a key
	// of lower-case letters, digits and dashes, a colon, a space, a value.
	configLine = regexp.MustCompile(`^([a-z][a-z0-9-]*): (.*)$`)
)

func parse(r io.Reader) (*report, error) {
	rep := &report{header: map[string]string{}, benches: map[string]*bench{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if m := configLine.FindStringSubmatch(line); m != nil {
			rep.header[m[1]] = strings.TrimSpace(m[2])
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(fields[1]); err != nil {
			continue // not a result line, e.g. "BenchmarkX-2  --- FAIL"
		}
		name, procs := strings.TrimPrefix(fields[0], "Benchmark"), ""
		if m := procsSuffix.FindStringSubmatch(name); m != nil {
			name, procs = strings.TrimSuffix(name, m[0]), m[1]
		}
		b := rep.benches[name]
		if b == nil {
			b = &bench{name: name, procs: procs, units: map[string][]float64{}}
			rep.benches[name] = b
			rep.order = append(rep.order, name)
		}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("%q: value %q: %w", line, fields[i], err)
			}
			b.units[fields[i+1]] = append(b.units[fields[i+1]], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rep.order) == 0 {
		return nil, fmt.Errorf("no benchmark results in the input")
	}
	return rep, nil
}

// median of the values, and whether there are any.
func median(xs []float64) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

func (r *report) median(name, unit string) (float64, bool) {
	b := r.benches[name]
	if b == nil {
		return 0, false
	}
	return median(b.units[unit])
}

var columns = []struct {
	unit, title string
	format      func(float64) string
}{
	{"ns/op", "time/op", formatNs},
	{"B/op", "B/op", formatBytes},
	{"allocs/op", "allocs/op", formatCount},
}

// renderBenchmarks writes docs/benchmarks.md: the benchmarks of r and, when
// rc is not nil, the summary of the reconcile benchmark.
func renderBenchmarks(w io.Writer, r *report, rc *results.Reconcile) error {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	p("# Benchmarks\n\n")
	p("Generated by `test/bench/report` (run by `hack/bench.sh`, `make bench`) from the last run's results in `docs/bench/`; do not edit by hand. " +
		"Each measured benchmark is read as a ratio of a baseline measured in the same run, on the same machine, so the ratios carry over between machines better than the absolute numbers, " +
		"and each ratio is held to a goal. Values are medians over the runs; the benchmarks' output is in `docs/bench/apiserver.txt`.\n\n")
	p("The scale check (simulated nodes and pods on one machine: time to Ready, memory and CPU of each process) is in [scale-check.md](scale-check.md), rendered by the same program from `docs/bench/scale-check.json`, the results of `hack/scale-check.sh`.\n\n")
	p("- Date: %s\n", orDash(r.header[keyDate]))
	p("- Go: %s\n", orDash(r.header[keyGo]))
	cpu := r.header[keyCPU]
	p("- CPU: %s", orDash(cpu))
	if c := r.header["cpu"]; c != "" && c != cpu {
		p(" (Go reports %q)", c)
	}
	p("\n")
	if procs := r.procs(); procs != "" {
		p("- GOMAXPROCS: %s\n", procs)
	}
	if c := r.header[keyCommand]; c != "" {
		p("- Command: `%s`\n", c)
	}
	if n := r.header[keyNote]; n != "" {
		p("- Note: %s\n", n)
	}

	p("\n## Ratios\n\n")
	p("| Measured | Baseline |")
	for i, c := range columns {
		p(" %s | baseline | ratio |", c.title)
		if i == 0 {
			p(" goal |")
		}
	}
	p("\n|---|---|")
	for i := range columns {
		p("--:|--:|--:|")
		if i == 0 {
			p("--:|")
		}
	}
	p("\n")
	for _, pr := range pairs {
		p("| %s | %s |", pr.measured, pr.baseline)
		for i, c := range columns {
			mv, mok := r.median(pr.measured, c.unit)
			bv, bok := r.median(pr.baseline, c.unit)
			p(" %s | %s | %s |", value(mv, mok, c.format), value(bv, bok, c.format), ratio(mv, mok, bv, bok))
			if i == 0 {
				p(" %s |", goal(pr.goal, mv, mok, bv, bok))
			}
		}
		p("\n")
	}
	p("\n*Goal* is the ceiling on the time/op ratio beside it (set in `test/bench/report`, beside what each ratio means), and whether this run kept under it.\n")

	p("\n## What the ratios mean\n\n")
	for _, pr := range pairs {
		mv, mok := r.median(pr.measured, "ns/op")
		bv, bok := r.median(pr.baseline, "ns/op")
		p("- **%s / %s = %s** (goal %s). %s\n", pr.measured, pr.baseline, ratio(mv, mok, bv, bok), goal(pr.goal, mv, mok, bv, bok), pr.meaning)
	}
	p("\nThe server, the etcd member it stores into and the clients run in one process, so the B/op and allocs/op of the first three pairs count the allocations of all of them, on both sides of each ratio. " +
		"A ratio of 3× means the measured operation costs three times its baseline, the baseline included; compare ratios between runs, not absolute times between machines.\n")

	p("\n## All results\n\n")
	p("| Benchmark | runs | time/op | min–max time/op | B/op | allocs/op |\n|---|--:|--:|--:|--:|--:|\n")
	for _, name := range r.order {
		b := r.benches[name]
		ns := b.units["ns/op"]
		spread := "—"
		if len(ns) > 0 {
			spread = formatNs(slices.Min(ns)) + " – " + formatNs(slices.Max(ns))
		}
		p("| %s | %d | %s | %s | %s | %s |\n", name, len(ns),
			cell(ns, formatNs), spread, cell(b.units["B/op"], formatBytes), cell(b.units["allocs/op"], formatCount))
	}
	if rc != nil && len(rc.Sizes) > 0 {
		p("\n## Reconcile benchmark\n\n")
		p("N InferServers created at once on a local cluster: the time until every one has its children and its status observed, " +
			"against a baseline written in the same run (below), and mindie-apiserver's memory. " +
			"Method, per-server times, CPU per process and what the server logged are in [reconcile-bench.md](reconcile-bench.md), " +
			"rendered from `docs/bench/reconcile.json`, which `hack/reconcile-bench.sh` writes.\n\n")
		p("%s", reconcileSummary(rc))
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// procs is the GOMAXPROCS the benchmarks ran with, as their names say.
func (r *report) procs() string {
	var all []string
	for _, name := range r.order {
		if p := r.benches[name].procs; p != "" && !slices.Contains(all, p) {
			all = append(all, p)
		}
	}
	return strings.Join(all, ", ")
}

func value(v float64, ok bool, format func(float64) string) string {
	if !ok {
		return "—"
	}
	return format(v)
}

// cell is the median of the values, formatted.
func cell(xs []float64, format func(float64) string) string {
	v, ok := median(xs)
	return value(v, ok, format)
}

func ratio(m float64, mok bool, b float64, bok bool) string {
	if !mok || !bok || b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", m/b)
}

// goal is the goal for the ratio m/b and whether the ratio meets it.
func goal(ceiling, m float64, mok bool, b float64, bok bool) string {
	if ceiling == 0 {
		return "—"
	}
	if !mok || !bok || b == 0 {
		return fmt.Sprintf("≤ %g×: not measured", ceiling)
	}
	return fmt.Sprintf("≤ %g×: %s", ceiling, metOrMissed(m/b <= ceiling))
}

// formatNs writes nanoseconds with three significant digits in a fitting unit.
func formatNs(ns float64) string {
	switch {
	case ns >= 1e9:
		return sig3(ns/1e9) + " s"
	case ns >= 1e6:
		return sig3(ns/1e6) + " ms"
	case ns >= 1e3:
		return sig3(ns/1e3) + " µs"
	}
	return sig3(ns) + " ns"
}

func formatBytes(b float64) string {
	switch {
	case b >= 1<<20:
		return sig3(b/(1<<20)) + " MiB"
	case b >= 1<<10:
		return sig3(b/(1<<10)) + " KiB"
	}
	return strconv.FormatFloat(b, 'f', 0, 64) + " B"
}

func formatCount(n float64) string { return strconv.FormatFloat(n, 'f', 0, 64) }

func sig3(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
