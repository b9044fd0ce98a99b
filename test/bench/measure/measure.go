// Package measure holds what the benchmark programs routerbench and
// pdbench share: the statistics of their figures (nearest-rank
// percentiles, rounding, milliseconds), the machine they ran on, their
// progress log, the sampling of their instances while a trace runs, the
// JSON requests their clients send and the words of their generated
// prompts.
package measure

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Percentile returns the q-quantile (0 < q ≤ 1) of xs by the nearest-rank
// method: the smallest value with at least q of the values at or below it.
// It returns 0 for no values, and leaves xs as it is.
func Percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// Round rounds v to the given number of decimals, so that a results file
// does not pretend to a precision the measurement lacks.
func Round(v float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(v*p) / p
}

// Ms converts a duration to milliseconds.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// CPUModel is the model name of /proc/cpuinfo, or "unknown".
func CPUModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if name, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
		}
	}
	return "unknown"
}

// Logger returns the printf of a benchmark's progress: each line goes to
// standard error, led by name and the seconds since began.
func Logger(name string, began time.Time) func(format string, args ...any) {
	return func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s %6.1fs: %s\n", name, time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
}

// Sample calls f at once and then every interval, in a goroutine of its
// own, until it finds ctx ended; the channel it returns is closed after
// the last call, so that what f recorded can be read then.
func Sample(ctx context.Context, interval time.Duration, f func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			f()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return done
}

// PostJSON posts body to url with the Content-Type application/json and
// returns the response, whose body the caller closes.
func PostJSON(ctx context.Context, client *http.Client, url string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return client.Do(req)
}

// syllables make the words of Words: every word is two of them, letters
// only, so that the simulator's tokenizer counts one token per word.
var syllables = func() []string {
	var out []string
	for _, c := range "bdfgklmnprstvz" {
		for _, v := range "aeiou" {
			out = append(out, string(c)+string(v))
		}
	}
	return out // 70 syllables, 4,900 words
}()

// Words returns n random words separated by spaces: n tokens of the MindIE
// Server simulator's tokenizer. It draws two numbers from rng a word, so
// the same rng state gives the same words on every machine.
func Words(rng *rand.Rand, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(syllables[rng.IntN(len(syllables))])
		b.WriteString(syllables[rng.IntN(len(syllables))])
	}
	return b.String()
}

// PortsCommand is the "ports" command of the benchmarks that bring up a
// local cluster of their own: it prints -n distinct free ports of
// 127.0.0.1, holding every socket open until all are picked.
func PortsCommand(args []string) error {
	fs := flag.NewFlagSet("ports", flag.ExitOnError)
	n := fs.Int("n", 4, "how many ports")
	_ = fs.Parse(args)
	var out []string
	for i := 0; i < *n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer func() { _ = l.Close() }()
		out = append(out, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	fmt.Println(strings.Join(out, " "))
	return nil
}

// Main is the main function of the benchmarks that hack/*-bench.sh run on
// a local cluster of their own: `NAME ports -n N` prints free loopback
// ports (PortsCommand), `NAME run [flags]` calls run with the flags. It
// exits 2 on a wrong command line and 1 when the command fails.
func Main(name string, run func(args []string) error) {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "-help" || os.Args[1] == "--help" {
		fmt.Fprintf(os.Stderr, "usage: %s ports|run [flags]; %s <command> -h lists a command's flags\n", name, name)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "ports":
		err = PortsCommand(args)
	case "run":
		err = run(args)
	default:
		err = fmt.Errorf("unknown command %q: want ports or run", cmd)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}
