// Command scalecheck turns what hack/scale-check.sh measured into the
// scale check's results (JSON, results.ScaleCheck), from which
// test/bench/report renders docs/scale-check.md. The script does the
// measuring in bash and keeps, in its work directory:
//
//   - run.tsv: the run's parameters, machine and outcome, one "key<TAB>value"
//     a line (keys below);
//   - samples.tsv: epoch, process, pid, VmRSS KiB, utime+stime ticks;
//   - marks.tsv: phase name ("pods-start" at the apply, "pods-end" at the
//     end of the wait), epoch;
//   - progress.tsv: a header, then seconds after the apply, Ready nodes,
//     pods created, pods Ready;
//   - pods.txt: phase, node and Ready condition of every pod at the end;
//   - logs/ascend-sim.log: the simulator's log.
//
// Run from the repository's root after a run, it writes the results again:
//
//	go run ./test/bench/scalecheck -work _output/scale-check -results docs/bench/scale-check.json
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"mindie.io/deployer/test/bench/results"
)

func main() {
	work := flag.String("work", "_output/scale-check", "the work directory hack/scale-check.sh measured into")
	out := flag.String("results", "docs/bench/scale-check.json", "where the results (JSON) go")
	flag.Parse()
	s, err := load(*work)
	if err == nil {
		err = s.Save(*out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scalecheck:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "scalecheck: wrote %s\n", *out)
}

// Keys of run.tsv. hack/scale-check.sh writes every one; the ones marked
// "may be empty" are empty when that did not happen.
const (
	keyDate            = "date"                  // RFC 3339, UTC: the end of the wait for the pods
	keyCPU             = "cpu-model"             // model name of /proc/cpuinfo
	keyCPUs            = "cpus"                  // nproc
	keyMemTotal        = "mem-total-kib"         // MemTotal of /proc/meminfo
	keyClkTck          = "clk-tck"               // getconf CLK_TCK: ticks per second of samples.tsv
	keyComponents      = "components"            // the processes sampled, space-separated, in the documents' order
	keyNodes           = "nodes"                 // simulated nodes
	keyDeployments     = "deployments"           // Deployments created
	keyReplicas        = "replicas"              // replicas of each
	keyNodeTimeout     = "node-timeout"          // seconds to wait for every node
	keyReadyTimeout    = "ready-timeout"         // seconds to wait for every pod
	keySampleEvery     = "sample-every"          // seconds between samples
	keyPollEvery       = "poll-every"            // seconds between polls of the progress
	keyLocalUpTimeouts = "localup-node-timeouts" // nodes hack/local-up.sh gave up waiting for
	keyNodesSeconds    = "nodes-seconds"         // seconds after local-up until every node was Ready; may be empty
	keyMaxReadyNodes   = "max-ready-nodes"       // most nodes Ready at one poll
	keyFinalNodes      = "final-nodes"           // nodes Ready at the end
	keyAllReady        = "all-ready-seconds"     // seconds after the apply until every pod was Ready; may be empty
	keyFinalReady      = "final-ready"           // pods Ready at the end
)

// Marks of marks.tsv.
const (
	markApply = "pods-start"
	markEnd   = "pods-end"
)

// load reads a work directory into results.
func load(dir string) (*results.ScaleCheck, error) {
	params, err := readFile(filepath.Join(dir, "run.tsv"), readParams)
	if err != nil {
		return nil, err
	}
	s, clkTck, components, err := fromParams(params)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "run.tsv"), err)
	}
	marks, err := readFile(filepath.Join(dir, "marks.tsv"), readMarks)
	if err != nil {
		return nil, err
	}
	applyAt, ok := marks[markApply]
	if !ok {
		applyAt = math.Inf(-1)
	}
	endAt, ok := marks[markEnd]
	if !ok {
		endAt = math.Inf(1)
	}
	s.Processes, err = readFile(filepath.Join(dir, "samples.tsv"), func(r io.Reader) ([]results.ProcessUsage, error) {
		return aggregateSamples(r, components, clkTck, applyAt, endAt)
	})
	if err != nil {
		return nil, err
	}
	if s.Progress, err = readFile(filepath.Join(dir, "progress.tsv"), readProgress); err != nil {
		return nil, err
	}
	// A missing pods.txt or log is a run that could not list the pods or
	// whose simulator logged nothing: counted as none.
	states, err := readFile(filepath.Join(dir, "pods.txt"), readPodStates)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	s.Pods.States, s.Pods.Unscheduled = states.states, states.unscheduled
	if s.Pods.States == nil {
		s.Pods.States = map[string]int{}
	}
	s.Simulator, err = readFile(filepath.Join(dir, "logs", "ascend-sim.log"), readSimulatorLog)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return s, nil
}

// readFile opens path and reads it with read, naming the file in errors.
func readFile[T any](path string, read func(io.Reader) (T, error)) (T, error) {
	f, err := os.Open(path)
	if err != nil {
		var zero T
		return zero, err
	}
	defer func() { _ = f.Close() }()
	v, err := read(f)
	if err != nil {
		return v, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// readParams reads "key<TAB>value" lines.
func readParams(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	err := eachLine(r, func(n int, line string) error {
		k, v, ok := strings.Cut(line, "\t")
		if !ok {
			return fmt.Errorf("line %d: %q is not key<TAB>value", n, line)
		}
		out[k] = v
		return nil
	})
	return out, err
}

// params reads typed values from run.tsv's keys, keeping the first error.
type params struct {
	m   map[string]string
	err error
}

func (p *params) str(key string) string {
	v, ok := p.m[key]
	if !ok && p.err == nil {
		p.err = fmt.Errorf("no %s", key)
	}
	return v
}

func (p *params) int(key string) int {
	v := p.str(key)
	n, err := strconv.Atoi(v)
	if err != nil && p.err == nil {
		p.err = fmt.Errorf("%s: %q is not an integer", key, v)
	}
	return n
}

func (p *params) float(key string) float64 {
	v := p.str(key)
	f, err := strconv.ParseFloat(v, 64)
	if err != nil && p.err == nil {
		p.err = fmt.Errorf("%s: %q is not a number", key, v)
	}
	return f
}

// optional is a number, or nil when the value is empty.
func (p *params) optional(key string) *float64 {
	if p.str(key) == "" {
		return nil
	}
	f := p.float(key)
	return &f
}

// fromParams starts the results from run.tsv; it also returns the clock
// ticks per second of the samples and the processes sampled, in order.
func fromParams(m map[string]string) (*results.ScaleCheck, float64, []string, error) {
	p := &params{m: m}
	s := &results.ScaleCheck{
		Version: results.ScaleCheckVersion,
		Run: results.ScaleRun{
			Date: p.str(keyDate), CPU: p.str(keyCPU), CPUs: p.int(keyCPUs), MemTotalKiB: int64(p.int(keyMemTotal)),
			Nodes: p.int(keyNodes), Deployments: p.int(keyDeployments), Replicas: p.int(keyReplicas),
			NodeTimeoutSeconds: p.float(keyNodeTimeout), ReadyTimeoutSeconds: p.float(keyReadyTimeout),
			SampleEverySeconds: p.float(keySampleEvery), PollEverySeconds: p.float(keyPollEvery),
		},
		Nodes: results.ScaleNodes{
			LocalUpTimeouts: p.int(keyLocalUpTimeouts), AllReadySeconds: p.optional(keyNodesSeconds),
			MaxReady: p.int(keyMaxReadyNodes), ReadyAtEnd: p.int(keyFinalNodes),
		},
		Pods: results.ScalePods{AllReadySeconds: p.optional(keyAllReady), ReadyAtEnd: p.int(keyFinalReady)},
	}
	clkTck := p.float(keyClkTck)
	components := strings.Fields(p.str(keyComponents))
	if p.err == nil {
		if _, err := time.Parse(time.RFC3339, s.Run.Date); err != nil {
			p.err = fmt.Errorf("%s: %q is not RFC 3339", keyDate, s.Run.Date)
		} else if clkTck <= 0 {
			p.err = fmt.Errorf("%s: %v is not a positive number", keyClkTck, clkTck)
		} else if len(components) == 0 {
			p.err = fmt.Errorf("%s: empty", keyComponents)
		}
	}
	return s, clkTck, components, p.err
}

// readMarks reads "name<TAB>epoch" lines; a later mark of a name wins.
func readMarks(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	err := eachLine(r, func(n int, line string) error {
		f := strings.Split(line, "\t")
		if len(f) != 2 {
			return fmt.Errorf("line %d: %q is not name<TAB>epoch", n, line)
		}
		t, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return fmt.Errorf("line %d: epoch %q: %w", n, f[1], err)
		}
		out[f[0]] = t
		return nil
	})
	return out, err
}

// aggregateSamples reads samples.tsv (epoch, process, pid, VmRSS KiB,
// utime+stime ticks) into the usage of each process of components, in
// their order, leaving out those never sampled. applyAt and endAt are the
// epochs of the apply and of the end of the wait.
func aggregateSamples(r io.Reader, components []string, clkTck, applyAt, endAt float64) ([]results.ProcessUsage, error) {
	type acc struct {
		u          results.ProcessUsage
		last, base int64 // ticks of the last sample and of the last before the apply
	}
	byName := map[string]*acc{}
	err := eachLine(r, func(n int, line string) error {
		f := strings.Split(line, "\t")
		if len(f) != 5 {
			return fmt.Errorf("line %d: %q: want epoch, process, pid, VmRSS KiB, ticks", n, line)
		}
		t, err1 := strconv.ParseFloat(f[0], 64)
		rss, err2 := strconv.ParseInt(f[3], 10, 64)
		ticks, err3 := strconv.ParseInt(f[4], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		a := byName[f[1]]
		if a == nil {
			a = &acc{u: results.ProcessUsage{Name: f[1]}}
			byName[f[1]] = a
		}
		a.u.Samples++
		a.u.PeakRSSKiB = max(a.u.PeakRSSKiB, rss)
		a.last = ticks
		if t <= applyAt {
			a.base, a.u.ApplyRSSKiB = ticks, rss
		}
		if t <= endAt {
			a.u.EndRSSKiB = rss
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []results.ProcessUsage
	for _, name := range components {
		a := byName[name]
		if a == nil {
			continue
		}
		a.u.CPUSeconds = float64(a.last) / clkTck
		a.u.ApplyToEndCPUSeconds = float64(a.last-a.base) / clkTck
		out = append(out, a.u)
	}
	return out, nil
}

// readProgress reads progress.tsv: a header, then seconds after the apply,
// Ready nodes, pods created, pods Ready.
func readProgress(r io.Reader) ([]results.PodProgress, error) {
	var out []results.PodProgress
	err := eachLine(r, func(n int, line string) error {
		if n == 1 {
			return nil
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			return fmt.Errorf("line %d: %q: want seconds, Ready nodes, pods created, pods Ready", n, line)
		}
		t, err := strconv.ParseFloat(f[0], 64)
		var c [3]int
		for i := range c {
			var e error
			c[i], e = strconv.Atoi(f[i+1])
			err = errors.Join(err, e)
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, results.PodProgress{T: t, ReadyNodes: c[0], Created: c[1], Ready: c[2]})
		return nil
	})
	return out, err
}

type podStates struct {
	states      map[string]int
	unscheduled int
}

// readPodStates reads pods.txt (phase, node and Ready condition of each
// pod, as kubectl's custom columns print them, "<none>" for none) into
// counts by "<phase> Ready=<condition>" and the pods with no node.
func readPodStates(r io.Reader) (podStates, error) {
	ps := podStates{states: map[string]int{}}
	err := eachLine(r, func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) == 0 {
			return nil
		}
		if len(f) != 3 {
			return fmt.Errorf("line %d: %q: want phase, node, Ready condition", n, line)
		}
		ps.states[f[0]+" Ready="+f[2]]++
		if f[1] == "<none>" {
			ps.unscheduled++
		}
		return nil
	})
	return ps, err
}

// Lines of ascend-sim's log (pkg/simulator/kubelet) and of client-go in it.
var (
	logStarted = ": started on node "
	logReady   = ": ready=true"
	// A failed or retried API call: a pod worker's retry, a node's
	// heartbeat or lease, a pod's status write.
	logFailed = []string{"will retry", "heartbeat:", "renew lease:", "status:"}
	// client-go logs a request its client-side rate limiter (QPS 5, burst
	// 10 unless the client sets them) held back over a second:
	// "Waited before sending request" delay="1.5s" reason="client-side throttling, ..."
	logThrottled = "client-side throttling"
	logDelay     = regexp.MustCompile(`delay="([^"]*)"`)
	// A status write that gave up waiting for that limiter.
	logLost = "rate limiter Wait returned an error"
)

// readSimulatorLog counts what ascend-sim logged.
func readSimulatorLog(r io.Reader) (results.SimulatorLog, error) {
	var l results.SimulatorLog
	err := eachLine(r, func(_ int, line string) error {
		if strings.Contains(line, logStarted) {
			l.Started++
		}
		if strings.Contains(line, logReady) {
			l.ContainersReady++
		}
		for _, s := range logFailed {
			if strings.Contains(line, s) {
				l.FailedCalls++
				break
			}
		}
		if strings.Contains(line, logLost) {
			l.LostStatusWrites++
		}
		if strings.Contains(line, logThrottled) {
			l.Throttled++
			if m := logDelay.FindAllStringSubmatch(line, -1); m != nil {
				if d, err := time.ParseDuration(m[len(m)-1][1]); err == nil {
					l.MaxThrottleSeconds = max(l.MaxThrottleSeconds, d.Seconds())
				}
			}
		}
		return nil
	})
	return l, err
}

// eachLine calls fn with every line of r and its number, from 1.
func eachLine(r io.Reader, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	for n := 1; sc.Scan(); n++ {
		if err := fn(n, sc.Text()); err != nil {
			return err
		}
	}
	return sc.Err()
}
