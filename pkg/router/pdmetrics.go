package router

import (
	"github.com/prometheus/client_golang/prometheus"
)

// pdMetrics are the Prefill/Decode series.
type pdMetrics struct {
	requests   *prometheus.CounterVec // outcome
	reconnects *prometheus.CounterVec // instance, reason
	firstData  prometheus.Histogram
	recomputes prometheus.Counter
	dropped    *prometheus.CounterVec // reason
}

// decodeBuckets cover a decode instance's first data after the prefill's
// answer: the KV transfer and a decode step (milliseconds) to a queue.
var decodeBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

func newPDMetrics(reg *prometheus.Registry, r *Router) *pdMetrics {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: metricsNamespace, Name: name, Help: help}
	}
	m := &pdMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts(opts("pd_requests_total",
			"Prefill/Decode requests by outcome: ok, no_pair, prefill_error, bad_prefill, decode_error, retries_exhausted, timeout, client_gone, lost.")),
			[]string{"outcome"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts(opts("pd_dresult_reconnects_total",
			"/dresult streams of decode instances lost or not opened, by instance and reason (connect, status, close, drop, protocol); each is followed by a reconnection.")),
			[]string{"instance", "reason"}),
		firstData: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: metricsNamespace,
			Name:    "pd_decode_first_data_seconds",
			Help:    "Time from a prefill instance's answer to the decode instance's first data (0 when it came first).",
			Buckets: decodeBuckets}),
		recomputes: prometheus.NewCounter(prometheus.CounterOpts(opts("pd_recomputes_total",
			"retry: messages (recompute) from decode instances."))),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts(opts("pd_dresult_dropped_messages_total",
			"/dresult messages dropped: for no request of this router (unknown_request: it ended, or another replica's), before any reqId (no_request), unknown keyword (unknown_keyword).")),
			[]string{"reason"}),
	}
	reg.MustRegister(m.requests, m.reconnects, m.firstData, m.recomputes, m.dropped, &pdCollector{r: r})
	return m
}

var (
	pdActiveDesc = prometheus.NewDesc(metricsNamespace+"_pd_active",
		"1 while this router replica serves Prefill/Decode requests (holds the lease, or has none to hold); reported while the instances have roles.", nil, nil)
	pdConnectedDesc = prometheus.NewDesc(metricsNamespace+"_pd_dresult_connected",
		"1 while the router holds the decode instance's /dresult stream.", []string{"instance"}, nil)
	pdDecodingDesc = prometheus.NewDesc(metricsNamespace+"_pd_decoding_requests",
		"Requests waiting for their decode instance's messages.", nil, nil)
)

// pdCollector reports the PD state at scrape time.
type pdCollector struct{ r *Router }

func (c *pdCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pdActiveDesc
	ch <- pdConnectedDesc
	ch <- pdDecodingDesc
}

func (c *pdCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.pd.present {
		return
	}
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	ch <- prometheus.MustNewConstMetric(pdActiveDesc, prometheus.GaugeValue, flag(r.pd.active))
	for _, b := range r.order {
		if b.inst.Role == RoleDecode {
			ch <- prometheus.MustNewConstMetric(pdConnectedDesc, prometheus.GaugeValue, flag(b.pd.connected), b.inst.Name)
		}
	}
	r.pd.mu.Lock()
	n := len(r.pd.reqs)
	r.pd.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(pdDecodingDesc, prometheus.GaugeValue, float64(n))
}
