package mindie

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// healthPromptTokens is the size of the timed health check's tiny inference:
// this many prompt tokens and one generated token.
const healthPromptTokens = 4

// ManagementHandler returns the handler of the management port.
func (s *Server) ManagementHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/health/live", s.handleLive)
	mux.HandleFunc("GET /v2/health/ready", s.handleReady)
	mux.HandleFunc("GET /health", s.handleHealth)
	mux.HandleFunc("GET /health/{check}", s.handleTimedHealth)
	mux.HandleFunc("GET /info", s.handleInfo)
	mux.HandleFunc("GET /v1/config", s.handleStaticConfig)
	mux.HandleFunc("GET /v1/status", s.handleStatus)
	mux.HandleFunc("GET /v2/status", s.handleStatus)
	mux.HandleFunc("POST /v1/role/{role}", s.handleRole)
	mux.HandleFunc("POST /v2/role/{role}", s.handleRole)
	mux.HandleFunc("GET /stopService", s.handleStopService)
	mux.HandleFunc("GET /metrics-json", s.handleMetricsJSON)
	return s.instrument("management", mux, func(r *http.Request) bool {
		return strings.HasPrefix(r.URL.Path, "/health/timed-")
	})
}

// live: the process runs (and, being past the hang check, is not hung).
func (s *Server) handleLive(w http.ResponseWriter, _ *http.Request) {
	if s.NPUFailed() {
		// The NPU under the backend is gone: MindIE's health checker
		// reports the service unhealthy (SetNPUFailed).
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	switch s.State() {
	case StateStopped, StateLoading:
		// MindIE Server's endpoints answer "live" only once the backend is
		// initialised, which is why the original deployer gave the startup
		// probe on /v2/health/live the whole load budget (init_delay).
		w.WriteHeader(http.StatusServiceUnavailable)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	if s.Ready() {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	if s.Ready() {
		writeText(w, http.StatusOK, "healthy")
		return
	}
	writeText(w, http.StatusServiceUnavailable, "unhealthy")
}

// handleTimedHealth serves /health/timed-<N>: a tiny inference that must
// finish within N seconds (by the server's clock). 200 "healthy" when it
// does, 503 "unhealthy" when the server is not ready, 500 "timeout" when it
// would take longer (slowed down) or cannot run at all (hung). The check
// takes no slot and is not counted as a request.
func (s *Server) handleTimedHealth(w http.ResponseWriter, r *http.Request) {
	check := r.PathValue("check")
	secondsText, ok := strings.CutPrefix(check, "timed-")
	if !ok {
		http.NotFound(w, r)
		return
	}
	seconds, err := strconv.Atoi(secondsText)
	if err != nil || seconds < 1 {
		writeText(w, http.StatusBadRequest, "bad health check "+strconv.Quote(check)+": expected timed-<N> with N a whole number of seconds, at least 1")
		return
	}
	budget := time.Duration(seconds) * time.Second
	start := s.clock.Now()
	switch err := s.waitOutHang(r.Context(), budget); {
	case errors.Is(err, errHealthTimeout):
		writeText(w, http.StatusInternalServerError, "timeout")
		return
	case errors.Is(err, ErrCrashed), errors.Is(err, errClosing):
		panic(http.ErrAbortHandler)
	case err != nil:
		return // the prober gave up
	}
	if !s.Ready() {
		writeText(w, http.StatusServiceUnavailable, "unhealthy")
		return
	}

	remaining := budget - s.clock.Now().Sub(start)
	cost := s.scale(healthPromptTokens*s.prefillPerToken + s.decodePerToken)
	if cost > remaining {
		if s.clock.Sleep(r.Context(), remaining) != nil {
			return
		}
		writeText(w, http.StatusInternalServerError, "timeout")
		return
	}
	if s.clock.Sleep(r.Context(), cost) != nil {
		return
	}
	if !s.Ready() { // stopped or crashed meanwhile
		writeText(w, http.StatusServiceUnavailable, "unhealthy")
		return
	}
	writeText(w, http.StatusOK, "healthy")
}

// waitOutHang waits, if the server is hung, for the hang to clear, for at
// most budget by the server's clock (then errHealthTimeout).
func (s *Server) waitOutHang(ctx context.Context, budget time.Duration) error {
	s.mu.Lock()
	hung := s.hung
	s.mu.Unlock()
	if !hung {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	expired := make(chan struct{})
	go func() {
		if s.clock.Sleep(ctx, budget) == nil {
			close(expired)
		}
	}()
	return s.waitWhileHung(ctx, expired)
}

// handleInfo serves TGI-style /info, with MindIE's models list; keys the
// simulator has no value for are null, as MindIE's are.
func (s *Server) handleInfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"docker_label":            nil,
		"max_batch_total_tokens":  s.cfg.MaxBatchTotalTokens,
		"max_best_of":             1,
		"max_concurrent_requests": s.cfg.MaxConcurrentRequests,
		"max_input_length":        s.cfg.MaxInputLength,
		"max_stop_sequences":      nil,
		"max_waiting_tokens":      nil,
		"sha":                     nil,
		"validation_workers":      nil,
		"version":                 s.cfg.Version,
		"waiting_served_ratio":    nil,
		"models": []map[string]any{{
			"model_id":           s.cfg.ModelID,
			"model_dtype":        s.cfg.ModelDType,
			"model_device_type":  "npu",
			"model_pipeline_tag": "text-generation",
			"max_total_tokens":   s.cfg.MaxTotalTokens,
			"model_sha":          nil,
		}},
	})
}

// handleStaticConfig serves /v1/config, the static instance information
// MindIE's controller reads before adding an instance.
func (s *Server) handleStaticConfig(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"modelName":      s.cfg.ModelID,
		"maxSeqLen":      s.cfg.MaxTotalTokens,
		"maxOutputLen":   s.cfg.MaxOutputLength,
		"cacheBlockSize": s.cfg.BlockSize,
		"worldSize":      s.cfg.WorldSize,
		"npuMemSize":     -1,
		"cpuMemSize":     0,
	})
}

// statusBody is /v1/status and /v2/status in the shape MindIE's controller
// parses, plus totalSlotsNum and totalBlockNum.
type statusBody struct {
	Service struct {
		RoleStatus  string `json:"roleStatus"`
		CurrentRole string `json:"currentRole"`
	} `json:"service"`
	Resource struct {
		AvailSlotsNum         int `json:"availSlotsNum"`
		AvailBlockNum         int `json:"availBlockNum"`
		TotalSlotsNum         int `json:"totalSlotsNum"`
		TotalBlockNum         int `json:"totalBlockNum"`
		WaitingRequestNum     int `json:"waitingRequestNum"`
		RunningRequestNum     int `json:"runningRequestNum"`
		SwappedRequestNum     int `json:"swappedRequestNum"`
		FreeNpuBlockNums      int `json:"freeNpuBlockNums"`
		FreeCPUBlockNums      int `json:"freeCpuBlockNums"`
		TotalNpuBlockNums     int `json:"totalNpuBlockNums"`
		TotalCPUBlockNums     int `json:"totalCpuBlockNums"`
		TotalAvailNpuSlotsNum int `json:"totalAvailNpuSlotsNum"`
		TotalAvailNpuBlockNum int `json:"totalAvailNpuBlockNum"`
		MaxAvailNpuBlockNum   int `json:"maxAvailNpuBlockNum"`
	} `json:"resource"`
	LinkStatus struct {
		Peers []PeerStatus `json:"peers"`
	} `json:"linkStatus"`
}

func (s *Server) handleStatus(w http.ResponseWriter, _ *http.Request) {
	st := s.Stats()
	var b statusBody
	b.Service.CurrentRole = st.Role.statusName()
	b.Service.RoleStatus = st.RoleStatus
	r := &b.Resource
	r.AvailSlotsNum, r.TotalSlotsNum = st.FreeSlots, st.TotalSlots
	r.AvailBlockNum, r.TotalBlockNum = st.FreeBlocks, st.TotalBlocks
	r.WaitingRequestNum, r.RunningRequestNum = st.Waiting, st.Running
	r.FreeNpuBlockNums, r.TotalNpuBlockNums = st.FreeBlocks, st.TotalBlocks
	r.TotalAvailNpuSlotsNum, r.TotalAvailNpuBlockNum, r.MaxAvailNpuBlockNum = st.FreeSlots, st.FreeBlocks, st.FreeBlocks
	b.LinkStatus.Peers = st.Peers
	writeJSON(w, http.StatusOK, b)
}

// handleRole serves POST /v{1,2}/role/<role> (see applyRole). The body,
// MindIE's controller's {"local":{...},"peers":[...]} (v2: local is the
// array of this instance's servers, and each peer the array of one
// instance's servers, which name their instance by dp_inst_list instead of
// id; see parseRoleBody), is optional; each peer needs an id, and is
// dialled on its (first server's) server_ip and mgmt_port (default: this
// server's management port) to bring its KV link up.
func (s *Server) handleRole(w http.ResponseWriter, r *http.Request) {
	role := Role(r.PathValue("role"))
	if role == RoleNone || !role.valid() {
		writeAPIError(w, plainErrors, &apiError{status: http.StatusNotFound, kind: kindNotFound,
			msg: "unknown role " + strconv.Quote(string(role)) + ": expected prefill, decode or flex"})
		return
	}
	raw, apiErr := readBody(r)
	if apiErr != nil {
		writeAPIError(w, plainErrors, apiErr)
		return
	}
	local, peers, apiErr := parseRoleBody(raw)
	if apiErr != nil {
		writeAPIError(w, plainErrors, apiErr)
		return
	}
	if err := s.applyRole(role, local, peers); err != nil {
		writeAPIError(w, plainErrors, badRequest("%v", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"result": "ok"})
}

// handleStopService serves GET /stopService[?mode=Force]: it answers once
// the service has stopped.
func (s *Server) handleStopService(w http.ResponseWriter, r *http.Request) {
	mode := r.URL.Query().Get("mode")
	var force bool
	switch strings.ToLower(mode) {
	case "", "graceful":
	case "force":
		force = true
	default:
		writeAPIError(w, plainErrors, badRequest("unknown stop mode %q: expected Force or nothing", mode))
		return
	}
	aborted, err := s.stop(r.Context(), force)
	switch {
	case errors.Is(err, ErrCrashed):
		panic(http.ErrAbortHandler)
	case err != nil:
		return // the caller gave up before the service had drained
	}
	modeName := "graceful"
	if force {
		modeName = "force"
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "stopped", "mode": modeName, "aborted_requests": aborted})
}

// handleMetricsJSON serves /metrics-json in MindIE's format: moving
// averages of TTFT and TBT in milliseconds, waiting and running requests,
// and free NPU blocks, every value a string.
func (s *Server) handleMetricsJSON(w http.ResponseWriter, r *http.Request) {
	st := s.Stats()
	ttft, tbt := s.latency.averages()
	type labels struct {
		Name     string `json:"__name__"`
		Job      string `json:"job"`
		Instance string `json:"instance"`
	}
	type sample struct {
		Metric []labels `json:"metric"`
		Value  string   `json:"value"`
	}
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	values := []struct{ name, value string }{
		{"TTFT", ms(ttft)},
		{"TBT", ms(tbt)},
		{"waitingInferRequestNum", strconv.Itoa(st.Waiting)},
		{"processingInferRequestNum", strconv.Itoa(st.Running)},
		{"remainBlocks", strconv.Itoa(st.FreeBlocks)},
		// The simulator's PD counters.
		{"pdPrefillRequests", strconv.FormatUint(st.PDPrefillRequests, 10)},
		{"pdDecodeRequests", strconv.FormatUint(st.PDDecodeRequests, 10)},
		{"pdDecodeTokens", strconv.FormatUint(st.PDDecodeTokens, 10)},
	}
	result := make([]sample, 0, len(values))
	for _, v := range values {
		result = append(result, sample{Metric: []labels{{Name: v.name, Job: "node", Instance: r.Host}}, Value: v.value})
	}
	writeJSON(w, http.StatusOK, map[string]any{"resultType": "vector", "result": result})
}
