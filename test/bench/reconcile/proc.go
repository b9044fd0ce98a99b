package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"mindie.io/deployer/pkg/cmd/controller"
	"mindie.io/deployer/pkg/cmd/server"
	"mindie.io/deployer/pkg/controller/manager"
	"mindie.io/deployer/test/bench/results"
)

// readPids reads the pid files of a directory: name -> pid.
func readPids(dir string) (map[string]int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			out[e.Name()] = pid
		}
	}
	return out, nil
}

// cpuTicks is utime+stime of a process.
func cpuTicks(pid int) (int64, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0, false
	}
	// After "pid (comm) ": state is field 0, utime 11, stime 12.
	fields := strings.Fields(s[i+2:])
	if len(fields) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(fields[11], 10, 64)
	st, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return u + st, true
}

// cpuMeter measures the CPU time of the cluster's processes over a phase.
type cpuMeter struct {
	pids  map[string]int
	start map[string]int64
	tck   float64
}

func startCPU(pids map[string]int, clkTck int) *cpuMeter {
	m := &cpuMeter{pids: pids, start: map[string]int64{}, tck: float64(clkTck)}
	for name, pid := range pids {
		if t, ok := cpuTicks(pid); ok {
			m.start[name] = t
		}
	}
	return m
}

func (m *cpuMeter) stop() map[string]float64 {
	out := map[string]float64{}
	for name, t0 := range m.start {
		if t, ok := cpuTicks(m.pids[name]); ok {
			out[name] = float64(t-t0) / m.tck
		}
	}
	return out
}

// memStatus reads VmRSS and VmHWM (KiB) of a process.
func memStatus(pid int) (rss, hwm int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm, nil
}

// memSampler samples a process's VmRSS every interval and keeps the peak.
type memSampler struct {
	mu        sync.Mutex
	peak, cur int64
	n         int
	stopCh    chan struct{}
	done      chan struct{}
}

func sampleMemory(pid int, every time.Duration) *memSampler {
	s := &memSampler{stopCh: make(chan struct{}), done: make(chan struct{})}
	tick := func() {
		rss, _, err := memStatus(pid)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.cur, s.n = rss, s.n+1
		s.peak = max(s.peak, rss)
		s.mu.Unlock()
	}
	tick()
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stopCh:
				tick()
				return
			case <-t.C:
				tick()
			}
		}
	}()
	return s
}

func (s *memSampler) stop() (peak, last int64, n int) {
	close(s.stopCh)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.cur, s.n
}

// quietWindow is how long the cluster's CPU is measured at a time while
// waiting for it to fall quiet.
const quietWindow = 2 * time.Second

// waitQuiet waits, before the phase named before, until the cluster's
// processes together used at most f.quietCores over a quietWindow, or
// f.quietTimeout has passed. It always measures one window.
func waitQuiet(ctx context.Context, pids map[string]int, f runFlags, before string) results.QuietWait {
	start := time.Now()
	w := results.QuietWait{Before: before}
	for {
		m := startCPU(pids, f.clkTck)
		sleep(ctx, quietWindow)
		var all float64
		for _, v := range m.stop() {
			all += v
		}
		w.Cores = round(all/quietWindow.Seconds(), 2)
		w.Seconds = round(time.Since(start).Seconds(), 1)
		if w.Cores <= f.quietCores {
			w.Quiet = true
			break
		}
		if time.Since(start) >= f.quietTimeout || ctx.Err() != nil {
			break
		}
	}
	if w.Quiet {
		if w.Seconds > 2*quietWindow.Seconds() {
			logf("before %s: the cluster fell quiet (%.2f cores) after %.0fs", before, w.Cores, w.Seconds)
		}
	} else {
		logf("before %s: the cluster still used %.2f cores after %.0fs; going on", before, w.Cores, w.Seconds)
	}
	return w
}

// controllerSettings reads the command line of mindie-apiserver or
// mindie-controller (pid) with its own flags and defaults: the controller's
// settings it runs with, and its arguments.
func controllerSettings(pid int) (*results.ControllerSettings, []string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, nil, err
	}
	args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
	c, err := settingsFromArgs(args)
	return c, args, err
}

// settingsFromArgs reads the arguments of mindie-apiserver or
// mindie-controller (its name first, which says which) with its own flags
// and defaults.
func settingsFromArgs(args []string) (*results.ControllerSettings, error) {
	var (
		fs   *pflag.FlagSet
		cfg  *manager.Config
		name = mindieAPIServer
	)
	if len(args) > 0 && filepath.Base(args[0]) == mindieController {
		o := controller.NewOptions(io.Discard, io.Discard)
		fs, cfg, name = controller.NewCommand(context.Background(), o).Flags(), &o.Controllers, mindieController
	} else {
		o := server.NewOptions(io.Discard, io.Discard)
		cmd := &cobra.Command{}
		o.AddFlags(cmd)
		fs, cfg = cmd.Flags(), &o.Controllers
	}
	// Flags other parts of the binary add (logging) are not the point here.
	fs.ParseErrorsAllowlist.UnknownFlags = true
	if len(args) > 0 {
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%s's command line %q: %w", name, args, err)
	}
	return &results.ControllerSettings{Workers: cfg.Workers, KubeAPIQPS: float64(cfg.KubeAPIQPS), KubeAPIBurst: cfg.KubeAPIBurst}, nil
}

// checkFlags reports, as an error, a flag of want (as a command line
// would have them, space-separated) that args lack: the flags meant for
// mindie-apiserver did not reach it.
func checkFlags(args []string, want string) error {
	for _, w := range strings.Fields(want) {
		if !slices.Contains(args, w) {
			return fmt.Errorf("mindie-apiserver runs without %s (its command line: %s): was it started with MINDIE_APISERVER_FLAGS?", w, strings.Join(args, " "))
		}
	}
	return nil
}
