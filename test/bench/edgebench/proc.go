package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"mindie.io/deployer/test/bench/results"
)

// procStatus reads VmRSS and VmHWM (KiB) of a process from
// /proc/<pid>/status.
func procStatus(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = f.Close() }()
	return parseStatus(f)
}

// parseStatus reads VmRSS and VmHWM (KiB) from the text of a
// /proc/<pid>/status.
func parseStatus(r io.Reader) (rss, hwm int64, err error) {
	sc := bufio.NewScanner(r)
	seen := 0
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %q: %w", k, v, err)
		}
		if k == "VmRSS" {
			rss = n
		} else {
			hwm = n
		}
		seen++
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if seen < 2 {
		return 0, 0, fmt.Errorf("no VmRSS and VmHWM (a kernel thread, or a process that exited)")
	}
	return rss, hwm, nil
}

// cpuTicks is utime+stime of a process, in clock ticks, from
// /proc/<pid>/stat.
func cpuTicks(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatTicks(string(data))
}

// parseStatTicks is utime+stime of the text of a /proc/<pid>/stat.
func parseStatTicks(s string) (int64, error) {
	// The command may hold spaces and parentheses: fields count from
	// the last ')'. After "pid (comm) ", state is field 0, utime 11,
	// stime 12.
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0, fmt.Errorf("stat %q: no command field", s)
	}
	fields := strings.Fields(s[i+2:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command, want at least 13", len(fields))
	}
	u, err := strconv.ParseInt(fields[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat utime %q: %w", fields[11], err)
	}
	st, err := strconv.ParseInt(fields[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat stime %q: %w", fields[12], err)
	}
	return u + st, nil
}

// readPid reads the pid in a pid file.
func readPid(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: %q is not a pid", path, strings.TrimSpace(string(data)))
	}
	return pid, nil
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

// memSample is one VmRSS of the process, when it was read.
type memSample struct {
	at     time.Time
	rssKiB int64
}

// memory samples a process's VmRSS every interval, from start until ctx
// ends, and answers the peak over any stretch of the run.
type memory struct {
	pid     int
	mu      sync.Mutex
	samples []memSample
	err     error
}

// sampleMemory starts sampling pid; the first sample is taken before it
// returns, so that a wrong pid fails at once.
func sampleMemory(ctx context.Context, pid int, every time.Duration) (*memory, error) {
	m := &memory{pid: pid}
	if err := m.sample(); err != nil {
		return nil, fmt.Errorf("mindie-apiserver (pid %d): %w", pid, err)
	}
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = m.sample()
			}
		}
	}()
	return m, nil
}

func (m *memory) sample() error {
	rss, _, err := procStatus(m.pid)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		// The process is gone: every later figure would be wrong.
		if m.err == nil {
			m.err = err
		}
		return err
	}
	m.samples = append(m.samples, memSample{at: time.Now(), rssKiB: rss})
	return nil
}

// failed is the first error of a sample: the process went away.
func (m *memory) failed() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return fmt.Errorf("mindie-apiserver (pid %d) could not be sampled: %w", m.pid, m.err)
	}
	return nil
}

// window returns the samples taken from t0 to t1 (t1 zero: until now).
func (m *memory) window(t0, t1 time.Time) []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int64
	for _, s := range m.samples {
		if !s.at.Before(t0) && (t1.IsZero() || !s.at.After(t1)) {
			out = append(out, s.rssKiB)
		}
	}
	return out
}

// peakMiB is the highest VmRSS from t0 to t1, 0 if none was taken.
func (m *memory) peakMiB(t0, t1 time.Time) float64 {
	var peak int64
	for _, v := range m.window(t0, t1) {
		peak = max(peak, v)
	}
	return mib(peak)
}

// medianMiB is the median VmRSS from t0 to t1, 0 if none was taken.
func (m *memory) medianMiB(t0, t1 time.Time) float64 {
	var xs []float64
	for _, v := range m.window(t0, t1) {
		xs = append(xs, mib(v))
	}
	return results.Median(xs)
}

// lastMiB is the latest VmRSS.
func (m *memory) lastMiB() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.samples) == 0 {
		return 0
	}
	return mib(m.samples[len(m.samples)-1].rssKiB)
}

// count is how many samples were taken.
func (m *memory) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.samples)
}

// readCmdline reads a process's arguments from /proc/<pid>/cmdline, the
// program's name left out.
func readCmdline(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
	if len(args) == 0 || args[0] == "" {
		return nil, fmt.Errorf("pid %d: an empty command line", pid)
	}
	return args[1:], nil
}
