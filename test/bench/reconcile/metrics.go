package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"mindie.io/deployer/test/bench/results"
)

// metricsScraper reads a Prometheus text endpoint with the client
// certificate of cfg, trusting the CA in caFile: "name{labels}" -> value.
func metricsScraper(cfg *rest.Config, url, caFile string) func(context.Context) (map[string]float64, error) {
	return func(ctx context.Context) (map[string]float64, error) {
		c := rest.CopyConfig(cfg)
		c.CAData, c.CAFile, c.ServerName = nil, caFile, ""
		hc, err := rest.HTTPClientFor(c)
		if err != nil {
			return nil, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer func() { _ = resp.Body.Close() }()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		out := map[string]float64{}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			i := strings.LastIndexByte(line, ' ')
			if i < 0 {
				continue
			}
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				out[line[:i]] = v
			}
		}
		return out, sc.Err()
	}
}

// newQueueStats is what the controller's work queue ("inferserver") did
// between two scrapes of its metrics.
func newQueueStats(m0, m1 map[string]float64, elapsed time.Duration) *results.Queue {
	d := func(key string) float64 {
		k := key + `{name="inferserver"}`
		return m1[k] - m0[k]
	}
	return &results.Queue{
		Adds:           d("workqueue_adds_total"),
		Syncs:          d("workqueue_work_duration_seconds_count"),
		Retries:        d("workqueue_retries_total"),
		WorkSeconds:    d("workqueue_work_duration_seconds_sum"),
		QueueSeconds:   d("workqueue_queue_duration_seconds_sum"),
		ElapsedSeconds: elapsed.Seconds(),
	}
}
