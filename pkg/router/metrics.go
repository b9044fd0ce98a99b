package router

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metricsNamespace prefixes every series of the router.
const metricsNamespace = "mindie_router"

// latencyBuckets cover a cached short answer (milliseconds) to a long
// generation behind a queue (the default timeout, 600 s).
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// metrics are the router's own series, in a registry of its own so that
// several routers live in one process (tests).
type metrics struct {
	registry *prometheus.Registry

	requests             *prometheus.CounterVec   // route, instance, code
	timeToFirstByte      *prometheus.HistogramVec // route, instance
	duration             *prometheus.HistogramVec // route, instance
	retries              *prometheus.CounterVec   // route, reason
	decisions            *prometheus.CounterVec   // algorithm, reason
	breakerTrips         *prometheus.CounterVec   // instance
	affinityLookups      *prometheus.CounterVec   // result
	affinityPromptBlocks prometheus.Counter
	affinityHitBlocks    prometheus.Counter
	pd                   *pdMetrics // Prefill/Decode's (pd.go)
}

func newMetrics(r *Router) *metrics {
	m := &metrics{registry: prometheus.NewRegistry()}
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: metricsNamespace, Name: name, Help: help}
	}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts(opts("requests_total",
		"Requests answered, by route, the instance that served them (empty when none did) and HTTP code.")),
		[]string{"route", "instance", "code"})
	m.timeToFirstByte = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: metricsNamespace,
		Name: "time_to_first_byte_seconds", Help: "Time from a request's arrival to the first byte of its answer sent to the client.",
		Buckets: latencyBuckets}, []string{"route", "instance"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: metricsNamespace,
		Name: "request_duration_seconds", Help: "Time from a request's arrival to the end of its answer.",
		Buckets: latencyBuckets}, []string{"route", "instance"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts(opts("retries_total",
		"Requests sent again to another instance after a failure before the first byte, by the failure.")),
		[]string{"route", "reason"})
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts(opts("decisions_total",
		"Instance choices, by algorithm and the rule that decided.")),
		[]string{"algorithm", "reason"})
	m.breakerTrips = prometheus.NewCounterVec(prometheus.CounterOpts(opts("circuit_breaker_trips_total",
		"Times an instance was taken out of routing for a back-off after failing repeatedly.")),
		[]string{"instance"})
	m.affinityLookups = prometheus.NewCounterVec(prometheus.CounterOpts(opts("affinity_lookups_total",
		"cache_affinity chats by outcome: hit (sent where its prefix is), miss (no instance has it), rehomed (its instance was saturated or gone), balanced (low reuse: load decided).")),
		[]string{"result"})
	m.affinityPromptBlocks = prometheus.NewCounter(prometheus.CounterOpts(opts("affinity_prompt_blocks_total",
		"cache_affinity: prefix blocks of the chats routed.")))
	m.affinityHitBlocks = prometheus.NewCounter(prometheus.CounterOpts(opts("affinity_expected_hit_blocks_total",
		"cache_affinity: prefix blocks expected in the chosen instance's cache (its share of affinity_prompt_blocks_total is the expected hit rate).")))
	m.registry.MustRegister(m.requests, m.timeToFirstByte, m.duration, m.retries, m.decisions,
		m.breakerTrips, m.affinityLookups, m.affinityPromptBlocks, m.affinityHitBlocks, &stateCollector{r: r})
	m.pd = newPDMetrics(m.registry, r)
	return m
}

// stateCollector reports the router's state as it is at scrape time.
type stateCollector struct{ r *Router }

var (
	inflightDesc = prometheus.NewDesc(metricsNamespace+"_instance_inflight_requests",
		"Requests in flight per instance, by the router's count.", []string{"instance"}, nil)
	pendingPrefillDesc = prometheus.NewDesc(metricsNamespace+"_instance_pending_prefill_tokens",
		"Estimated prompt tokens sent to an instance and not yet answered with a first byte.", []string{"instance"}, nil)
	routableDesc = prometheus.NewDesc(metricsNamespace+"_instance_routable",
		"1 when the instance may get new requests (ready, not draining, status read, breaker closed).", []string{"instance"}, nil)
	saturatedDesc = prometheus.NewDesc(metricsNamespace+"_instance_saturated",
		"1 when the instance's free slots or KV blocks are at or below the thresholds.", []string{"instance"}, nil)
	freeSlotsDesc = prometheus.NewDesc(metricsNamespace+"_instance_free_slots",
		"Free slots in the instance's last /v1/status.", []string{"instance"}, nil)
	freeBlocksDesc = prometheus.NewDesc(metricsNamespace+"_instance_free_kv_blocks",
		"Free KV blocks in the instance's last /v1/status.", []string{"instance"}, nil)
	inflightTotalDesc = prometheus.NewDesc(metricsNamespace+"_inflight_requests",
		"Requests in flight in the router.", nil, nil)
	indexBlocksDesc = prometheus.NewDesc(metricsNamespace+"_affinity_index_blocks",
		"cache_affinity: prefix blocks in the index.", nil, nil)
	indexCapacityDesc = prometheus.NewDesc(metricsNamespace+"_affinity_index_capacity_blocks",
		"cache_affinity: the index's bound in blocks.", nil, nil)
	hitRateDesc = prometheus.NewDesc(metricsNamespace+"_affinity_window_hit_ratio",
		"cache_affinity: share of prompt blocks found in the index over the recent chats.", nil, nil)
	lowReuseDesc = prometheus.NewDesc(metricsNamespace+"_affinity_low_reuse",
		"cache_affinity: 1 while the recent hit rate is below the minimum and chats are balanced on load.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{inflightDesc, pendingPrefillDesc, routableDesc, saturatedDesc,
		freeSlotsDesc, freeBlocksDesc, inflightTotalDesc, indexBlocksDesc, indexCapacityDesc, hitRateDesc, lowReuseDesc} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, b := range r.order {
		name := b.inst.Name
		gauge(inflightDesc, float64(b.inflight), name)
		gauge(pendingPrefillDesc, float64(b.pendingPrefill), name)
		gauge(routableDesc, flag(r.routableNowLocked(b, now)), name)
		gauge(saturatedDesc, flag(b.saturated(r.cfg.SlotsThreshold, r.cfg.BlocksThreshold)), name)
		if b.statusOK {
			gauge(freeSlotsDesc, float64(b.status.AvailSlots), name)
			gauge(freeBlocksDesc, float64(b.status.AvailBlocks), name)
		}
	}
	gauge(inflightTotalDesc, float64(r.inflight))
	if r.cfg.Algorithm == CacheAffinity {
		gauge(indexBlocksDesc, float64(r.index.len()))
		gauge(indexCapacityDesc, float64(r.index.capacity))
		gauge(hitRateDesc, r.index.hitRate())
		gauge(lowReuseDesc, flag(r.index.lowReuse(r.cfg.AffinityMinHitRate)))
	}
}
