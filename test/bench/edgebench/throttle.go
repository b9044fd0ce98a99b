package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"mindie.io/deployer/test/bench/measure"
	"mindie.io/deployer/test/bench/results"
)

// throttledComponents are the processes of the cluster whose API clients
// are rate limited on their side, in the order the results list them:
// ascend-sim (every simulated kubelet through one client),
// kube-scheduler (the bindings), kube-controller-manager and
// mindie-apiserver (the EdgeDeployment controller). Their logs are
// <name>.log in the cluster's log directory.
var throttledComponents = []string{results.EdgeSimulator, "kube-scheduler", "kube-controller-manager", "mindie-apiserver"}

// throttleLine is client-go's line for a request its rate limiter held
// back over a second: at most one every 10 s at the default verbosity.
var throttleLine = regexp.MustCompile(`^[IWE](\d{4} \d{2}:\d{2}:\d{2}\.\d+)\s+\d+ \S+\] "Waited before sending request".* delay="([^"]+)"`)

// throttling reads the throttling lines of one component's log written
// from t0 to t1: how many, and their waits' median and maximum.
func throttling(r io.Reader, component string, t0, t1 time.Time) (results.EdgeThrottling, error) {
	out := results.EdgeThrottling{Component: component}
	var waits []float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		m := throttleLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		// klog writes the local time without the year: the run's year.
		at, err := time.ParseInLocation("0102 15:04:05.000000", m[1], t0.Location())
		if err != nil {
			continue
		}
		at = at.AddDate(t0.Year(), 0, 0)
		if at.Before(t0) || at.After(t1) {
			continue
		}
		d, err := time.ParseDuration(m[2])
		if err != nil {
			return out, fmt.Errorf("%s: delay %q: %w", component, m[2], err)
		}
		waits = append(waits, d.Seconds())
		out.MaxWaitSeconds = max(out.MaxWaitSeconds, measure.Round(d.Seconds(), 2))
	}
	out.Lines = len(waits)
	out.MedianWaitSeconds = measure.Round(results.Median(waits), 2)
	return out, sc.Err()
}

// readThrottling reads the throttling of every throttled component whose
// log is in dir; a missing log is skipped.
func readThrottling(dir string, t0, t1 time.Time) ([]results.EdgeThrottling, error) {
	var out []results.EdgeThrottling
	for _, c := range throttledComponents {
		f, err := os.Open(filepath.Join(dir, c+".log"))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return out, err
		}
		t, err := throttling(f, c, t0, t1)
		_ = f.Close()
		if err != nil {
			return out, err
		}
		out = append(out, t)
	}
	return out, nil
}
