package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"mindie.io/deployer/test/bench/results"
)

// The API servers whose /metrics are read, and mindie-controller (the
// controllers in a process of their own, whose work queue is read there),
// by the names of their pid files.
const (
	kubeAPIServer    = "kube-apiserver"
	mindieAPIServer  = "mindie-apiserver"
	mindieController = "mindie-controller"
)

// The metrics read: the controller's work queue (mindie-apiserver's) and
// the requests each API server served, with their time. Nothing else of
// the kube-apiserver's large /metrics is kept.
var metricPrefixes = []string{"workqueue_", "apiserver_request_total{", "apiserver_request_duration_seconds_sum{"}

// scraper reads one /metrics endpoint: "name{labels}" -> value.
type scraper func(context.Context) (map[string]float64, error)

// metricsScraper reads a Prometheus text endpoint with the client
// certificate of cfg, trusting the CA in caFile (cfg's CA when empty), and
// keeps the series of metricPrefixes.
func metricsScraper(cfg *rest.Config, url, caFile string) scraper {
	return func(ctx context.Context) (map[string]float64, error) {
		c := rest.CopyConfig(cfg)
		if caFile != "" {
			c.CAData, c.CAFile, c.ServerName = nil, caFile, ""
		}
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
			if !slices.ContainsFunc(metricPrefixes, func(p string) bool { return strings.HasPrefix(line, p) }) {
				continue
			}
			i := strings.LastIndexByte(line, ' ')
			if i < 0 {
				continue
			}
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				out[line[:i]] += v
			}
		}
		return out, sc.Err()
	}
}

// newQueueStats is what the controller's work queue ("inferserver") did
// between two scrapes of mindie-apiserver's metrics.
func newQueueStats(m0, m1 map[string]float64, elapsed time.Duration) *results.Queue {
	if m0 == nil || m1 == nil {
		return nil
	}
	d := func(key string) float64 {
		k := key + `{name="inferserver"}`
		return m1[k] - m0[k]
	}
	return &results.Queue{
		Adds:           d("workqueue_adds_total"),
		Syncs:          d("workqueue_work_duration_seconds_count"),
		Requeues:       d("workqueue_retries_total"),
		WorkSeconds:    d("workqueue_work_duration_seconds_sum"),
		QueueSeconds:   d("workqueue_queue_duration_seconds_sum"),
		ElapsedSeconds: elapsed.Seconds(),
	}
}

// writeVerbs are the verbs of apiserver_request_total that write.
var writeVerbs = []string{"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"}

// writeRequests is the writes each API server served between two scrapes
// (server -> metrics), by verb and resource, most first.
func writeRequests(m0, m1 map[string]map[string]float64) []results.Requests {
	type key struct{ server, verb, resource string }
	sums := map[key]*results.Requests{}
	for server, after := range m1 {
		before := m0[server]
		for series, v := range after {
			name, labels := parseSeries(series)
			if !slices.Contains(writeVerbs, labels["verb"]) {
				continue
			}
			res := labels["resource"]
			if g := labels["group"]; g != "" {
				res = g + "/" + res
			}
			if sub := labels["subresource"]; sub != "" {
				res += "/" + sub
			}
			k := key{server, labels["verb"], res}
			if sums[k] == nil {
				sums[k] = &results.Requests{Server: server, Verb: k.verb, Resource: res}
			}
			switch name {
			case "apiserver_request_total":
				sums[k].Count += v - before[series]
			case "apiserver_request_duration_seconds_sum":
				sums[k].Seconds += v - before[series]
			}
		}
	}
	var out []results.Requests
	for _, r := range sums {
		if r.Count >= 1 {
			out = append(out, *r)
		}
	}
	slices.SortFunc(out, func(a, b results.Requests) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Server+a.Verb+a.Resource, b.Server+b.Verb+b.Resource)
	})
	return out
}

// parseSeries splits `name{a="x",b="y"}` into its name and labels. Label
// values of the metrics read have no escaped quotes.
func parseSeries(series string) (string, map[string]string) {
	name, rest, ok := strings.Cut(series, "{")
	if !ok {
		return series, nil
	}
	labels := map[string]string{}
	rest = strings.TrimSuffix(rest, "}")
	for rest != "" {
		k, after, ok := strings.Cut(rest, `="`)
		if !ok {
			break
		}
		v, tail, _ := strings.Cut(after, `"`)
		labels[k] = v
		rest = strings.TrimPrefix(tail, ",")
	}
	return name, labels
}
