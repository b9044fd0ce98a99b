package mindie

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// handleMetrics serves GET /metrics in the Prometheus text format, with
// MindIE's metric names (labelled model_name) where MindIE has one, plus the
// prefix cache's hit and miss counters and a mindie_simulator_info gauge
// that says what is answering.
func (s *Server) handleMetrics(w http.ResponseWriter, _ *http.Request) {
	st := s.Stats()
	labels := fmt.Sprintf(`{model_name=%s}`, quoteLabel(s.cfg.ModelID))
	var b strings.Builder
	metric := func(name, kind, help string, value string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s%s %s\n", name, help, name, kind, name, labels, value)
	}
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	i := func(v int) string { return strconv.Itoa(v) }
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

	fmt.Fprintf(&b, "# HELP mindie_simulator_info Always 1: this endpoint is served by the MindIE Server simulator, not by MindIE.\n"+
		"# TYPE mindie_simulator_info gauge\nmindie_simulator_info{model_name=%s,version=%s} 1\n",
		quoteLabel(s.cfg.ModelID), quoteLabel(s.cfg.Version))
	metric("request_received_total", "counter", "Number of requests received so far.", u(st.RequestsReceived))
	metric("request_success_total", "counter", "Number of requests proceed successfully so far.", u(st.RequestsSucceeded))
	metric("request_failed_total", "counter", "Number of requests failed so far.", u(st.RequestsFailed))
	metric("num_requests_running", "gauge", "Number of requests currently running on NPU.", i(st.Running))
	metric("num_requests_waiting", "gauge", "Number of requests waiting to be processed.", i(st.Waiting))
	metric("num_requests_swapped", "gauge", "Number of requests swapped to CPU.", "0")
	metric("num_preemptions_total", "counter", "Cumulative number of preemptions (requests sent back to the queue, KV cache full).", u(st.Preemptions))
	metric("prompt_tokens_total", "counter", "Number of prefill tokens processed.", u(st.PromptTokens))
	metric("generation_tokens_total", "counter", "Number of generation tokens processed.", u(st.GenerationTokens))
	metric("prefix_cache_hits_total", "counter", "Prompt blocks found in the prefix cache.", u(st.PrefixCacheHits))
	metric("prefix_cache_misses_total", "counter", "Prompt blocks not found in the prefix cache.", u(st.PrefixCacheMisses))
	metric("pd_prefill_requests_total", "counter", "PD requests prefilled and answered with a prefill reply (prefill instance).", u(st.PDPrefillRequests))
	metric("pd_decode_requests_total", "counter", "Requests handed over by prefill instances and accepted (decode instance).", u(st.PDDecodeRequests))
	metric("pd_decode_generation_tokens_total", "counter", "Tokens generated for handed-over requests (decode instance).", u(st.PDDecodeTokens))
	var hitRate float64
	if lookups := st.PrefixCacheHits + st.PrefixCacheMisses; lookups > 0 {
		hitRate = float64(st.PrefixCacheHits) / float64(lookups)
	}
	metric("npu_prefix_cache_hit_rate", "gauge", "NPU prefix cache block hit rate.", f(hitRate))
	metric("npu_cache_usage_perc", "gauge", "NPU KV-cache usage. 1 means 100 percent usage.",
		f(float64(st.TotalBlocks-st.FreeBlocks)/float64(st.TotalBlocks)))
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(b.String()))
}

// quoteLabel quotes a Prometheus label value.
func quoteLabel(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(v) + `"`
}
