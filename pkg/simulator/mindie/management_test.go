package mindie

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestReadinessFollowsTheLoadTime(t *testing.T) {
	cfg := testConfig()
	cfg.LoadTime = 0 // the default, 5s
	h := newHarness(t, cfg)

	if r := h.getMgmt("/v2/health/live"); r.status != http.StatusServiceUnavailable || len(r.body) != 0 {
		t.Errorf("live while loading: %d %q, want 503 and no body", r.status, r.body)
	}
	if r := h.getMgmt("/v2/health/ready"); r.status != http.StatusServiceUnavailable {
		t.Errorf("ready while loading: %d, want 503", r.status)
	}
	if r := h.getMgmt("/health"); r.status != http.StatusServiceUnavailable || string(r.body) != "unhealthy" {
		t.Errorf("/health while loading: %d %q", r.status, r.body)
	}
	if r := h.getMgmt("/health/timed-5"); r.status != http.StatusServiceUnavailable || string(r.body) != "unhealthy" {
		t.Errorf("timed health while loading: %d %q", r.status, r.body)
	}
	r := h.post("/v1/chat/completions", chatBody(t, conversation, nil))
	if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "still loading") || r.header.Get("Retry-After") == "" {
		t.Errorf("inference while loading: %d %s, want 503 'still loading' with Retry-After", r.status, r.body)
	}
	if st := h.srv.State(); st != StateLoading || h.srv.Ready() {
		t.Errorf("State %q Ready %t while loading", st, h.srv.Ready())
	}
	if strings.Contains(h.log.String(), "loaded") {
		t.Error("logged 'loaded' before the load time")
	}

	h.clock.Advance(DefaultLoadTime - time.Millisecond)
	if r := h.getMgmt("/v2/health/ready"); r.status != http.StatusServiceUnavailable {
		t.Errorf("ready 1ms before the load time: %d", r.status)
	}
	h.clock.Advance(time.Millisecond)
	if r := h.getMgmt("/v2/health/ready"); r.status != http.StatusOK || len(r.body) != 0 {
		t.Errorf("ready after the load time: %d %q", r.status, r.body)
	}
	if r := h.getMgmt("/health"); r.status != http.StatusOK || string(r.body) != "healthy" {
		t.Errorf("/health after the load time: %d %q", r.status, r.body)
	}
	if r := h.post("/v1/chat/completions", chatBody(t, conversation, map[string]any{"max_tokens": 2})); r.status != http.StatusOK {
		t.Errorf("inference after the load time: %d %s", r.status, r.body)
	}
	if st := h.srv.State(); st != StateReady {
		t.Errorf("State %q after loading", st)
	}
	if !strings.Contains(h.log.String(), "model llama3-8b-sim loaded (simulated, 5s): ready") {
		t.Errorf("the log should say when the model is loaded:\n%s", h.log)
	}
}

func TestTimedHealth(t *testing.T) {
	h := newHarness(t, testConfig())
	r := h.getMgmt("/health/timed-3")
	if r.status != http.StatusOK || string(r.body) != "healthy" {
		t.Fatalf("timed health: %d %q", r.status, r.body)
	}
	// The tiny inference: 4 prompt tokens and one generated token.
	if sleeps := h.clock.takeSleeps(); !cmp.Equal(sleeps, []time.Duration{4*time.Millisecond + time.Second}) {
		t.Errorf("timed health slept %v, want [1.004s]", sleeps)
	}

	// Slowed down 3x the inference takes 3.012s: over a 3s budget, under 4s.
	h.srv.SetSlowdown(3)
	r = h.getMgmt("/health/timed-3")
	if r.status != http.StatusInternalServerError || string(r.body) != "timeout" {
		t.Errorf("slowed timed health: %d %q, want 500 timeout", r.status, r.body)
	}
	if sleeps := h.clock.takeSleeps(); !cmp.Equal(sleeps, []time.Duration{3 * time.Second}) {
		t.Errorf("a timed-out check should use its whole budget, slept %v", sleeps)
	}
	if r := h.getMgmt("/health/timed-4"); r.status != http.StatusOK {
		t.Errorf("slowed timed health with a larger budget: %d %q", r.status, r.body)
	}

	for _, bad := range []string{"/health/timed-0", "/health/timed-x", "/health/timed--2"} {
		if r := h.getMgmt(bad); r.status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, r.status)
		}
	}
	if r := h.getMgmt("/health/other"); r.status != http.StatusNotFound {
		t.Errorf("/health/other: %d, want 404", r.status)
	}
	if st := h.srv.Stats(); st.RequestsReceived != 0 || st.PromptTokens != 0 {
		t.Errorf("health checks are not counted as requests: %+v", st)
	}
}

func TestTimedHealthWhileHungTimesOut(t *testing.T) {
	h := newHarness(t, testConfig())
	h.srv.SetHung(true)
	r := h.getMgmt("/health/timed-7")
	if r.status != http.StatusInternalServerError || string(r.body) != "timeout" {
		t.Errorf("hung timed health: %d %q, want 500 timeout", r.status, r.body)
	}
	if sleeps := h.clock.takeSleeps(); !cmp.Equal(sleeps, []time.Duration{7 * time.Second}) {
		t.Errorf("hung timed health should wait out its 7s, slept %v", sleeps)
	}
}

func TestTimedHealthRecoversWhenTheHangClearsInTime(t *testing.T) {
	h := newHarness(t, testConfig())
	h.clock.setBlocking(true)
	h.srv.SetHung(true)
	done := h.async(t.Context(), http.MethodGet, h.mgmt.URL+"/health/timed-10", "")
	waitUntil(t, "the check waits out the hang", func() bool { return h.srv.hungWaiters.Load() == 1 && h.clock.sleepers() == 1 })
	h.clock.Advance(4 * time.Second) // 4 of the 10s spent hung
	h.srv.SetHung(false)
	// Its second sleep, the inference, is blocked; the first, the budget, is gone.
	waitUntil(t, "the check runs its inference", func() bool { return h.clock.recorded() == 2 && h.clock.sleepers() == 1 })
	h.clock.Advance(2 * time.Second)
	r := receive(t, done)
	if r.err != nil || r.resp.status != http.StatusOK || string(r.resp.body) != "healthy" {
		t.Errorf("after the hang cleared: %+v", r)
	}
}

type infoBody struct {
	MaxBatchTotalTokens   int         `json:"max_batch_total_tokens"`
	MaxConcurrentRequests int         `json:"max_concurrent_requests"`
	MaxBestOf             int         `json:"max_best_of"`
	MaxInputLength        int         `json:"max_input_length"`
	Version               string      `json:"version"`
	Models                []infoModel `json:"models"`
}

type infoModel struct {
	ModelID          string  `json:"model_id"`
	ModelDType       string  `json:"model_dtype"`
	ModelDeviceType  string  `json:"model_device_type"`
	ModelPipelineTag string  `json:"model_pipeline_tag"`
	MaxTotalTokens   int     `json:"max_total_tokens"`
	ModelSHA         *string `json:"model_sha"`
}

func TestInfo(t *testing.T) {
	cfg := testConfig()
	cfg.ModelID = "qwen2.5-7b"
	cfg.Version = "2.1.RC1"
	h := newHarness(t, cfg)
	r := h.getMgmt("/info")
	if r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	got := decode[infoBody](t, r)
	want := infoBody{
		MaxBatchTotalTokens: DefaultMaxBatchTotalTokens, MaxConcurrentRequests: DefaultMaxConcurrentRequests,
		MaxBestOf: 1, MaxInputLength: DefaultMaxInputLength, Version: "2.1.RC1-simulator",
		Models: []infoModel{{
			ModelID: "qwen2.5-7b", ModelDType: "float16", ModelDeviceType: "npu",
			ModelPipelineTag: "text-generation", MaxTotalTokens: DefaultMaxTotalTokens,
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/info (-want +got):\n%s", diff)
	}
	raw := decode[map[string]any](t, r)
	for _, key := range []string{"docker_label", "sha", "max_stop_sequences", "max_waiting_tokens", "validation_workers", "waiting_served_ratio"} {
		if v, ok := raw[key]; !ok || v != nil {
			t.Errorf("/info[%q] = %v (present %t), want null", key, v, ok)
		}
	}
	if m := raw["models"].([]any)[0].(map[string]any); m["model_sha"] != nil {
		t.Errorf("model_sha = %v, want null", m["model_sha"])
	}
}

func TestStaticConfig(t *testing.T) {
	h := newHarness(t, testConfig())
	got := decode[map[string]any](t, h.getMgmt("/v1/config"))
	want := map[string]any{
		"modelName": DefaultModelID, "maxSeqLen": float64(DefaultMaxTotalTokens), "maxOutputLen": float64(DefaultMaxOutputLength),
		"cacheBlockSize": float64(4), "worldSize": float64(1), "npuMemSize": float64(-1), "cpuMemSize": float64(0),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/v1/config (-want +got):\n%s", diff)
	}
}

func getStatus(t *testing.T, h *harness, path string) statusBody {
	t.Helper()
	r := h.getMgmt(path)
	if r.status != http.StatusOK {
		t.Fatalf("%s: %d", path, r.status)
	}
	raw := decode[map[string]map[string]any](t, r)
	for _, section := range []string{"service", "resource", "linkStatus"} {
		if _, ok := raw[section]; !ok {
			t.Errorf("%s lacks %q: %s", path, section, r.body)
		}
	}
	return decode[statusBody](t, r)
}

func TestStatusIdle(t *testing.T) {
	cfg := testConfig()
	cfg.TotalSlots = 8
	cfg.MaxConcurrentRequests = 16
	cfg.CacheBlocks = 100
	h := newHarness(t, cfg)
	var want statusBody
	want.Service.RoleStatus, want.Service.CurrentRole = "RoleUnknown", "none"
	r := &want.Resource
	r.AvailSlotsNum, r.TotalSlotsNum, r.TotalAvailNpuSlotsNum = 8, 8, 8
	r.AvailBlockNum, r.TotalBlockNum, r.FreeNpuBlockNums, r.TotalNpuBlockNums = 100, 100, 100, 100
	r.TotalAvailNpuBlockNum, r.MaxAvailNpuBlockNum = 100, 100
	want.LinkStatus.Peers = []PeerStatus{}
	for _, path := range []string{"/v1/status", "/v2/status"} {
		if diff := cmp.Diff(want, getStatus(t, h, path)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", path, diff)
		}
	}
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// waitReachable waits until the server has reached the peer with that id
// (its link is then ok once LinkTime has passed).
func waitReachable(t *testing.T, srv *Server, id uint64) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("peer %d answers", id), func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for _, l := range srv.links {
			if l.id == id {
				return l.reachable
			}
		}
		return false
	})
}

func TestRoleAssignment(t *testing.T) {
	h := newHarness(t, testConfig()) // RoleSwitchTime 2s, LinkTime 1s (the defaults)
	self := h.mgmt.Listener.Addr().(*net.TCPAddr).Port
	body := fmt.Sprintf(`{"local": {"id": 3, "server_ip": "127.0.0.1", "device": []},
	          "peers": [{"id": 1, "server_ip": "127.0.0.1", "mgmt_port": "%d", "device": []}, {"id": 2, "server_ip": "127.0.0.1", "mgmt_port": %d}]}`,
		self, closedPort(t))
	r := h.do(http.MethodPost, h.mgmt.URL+"/v1/role/decode", body)
	if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"result":"ok"}` {
		t.Fatalf("POST /v1/role/decode: %d %s", r.status, r.body)
	}
	status := func(path string) (string, string, []PeerStatus) {
		st := getStatus(t, h, path)
		return st.Service.RoleStatus, st.Service.CurrentRole, st.LinkStatus.Peers
	}
	check := func(when, wantStatus, wantRole string, wantPeers []PeerStatus) {
		t.Helper()
		gotStatus, gotRole, gotPeers := status("/v1/status")
		if gotStatus != wantStatus || gotRole != wantRole || !cmp.Equal(gotPeers, wantPeers) {
			t.Errorf("%s: %s %s %+v, want %s %s %+v", when, gotStatus, gotRole, gotPeers, wantStatus, wantRole, wantPeers)
		}
	}
	check("right after the POST", "RoleSwitching", "decode", []PeerStatus{{1, "linking"}, {2, "linking"}})
	waitReachable(t, h.srv, 1)
	check("reachable, before LinkTime", "RoleSwitching", "decode", []PeerStatus{{1, "linking"}, {2, "linking"}})
	h.clock.Advance(time.Second)
	check("after LinkTime", "RoleSwitching", "decode", []PeerStatus{{1, "ok"}, {2, "linking"}})
	h.clock.Advance(time.Second)
	check("after RoleSwitchTime", "RoleReady", "decode", []PeerStatus{{1, "ok"}, {2, "linking"}})
	h.clock.Advance(LinkFailTimeout)
	check("an unreachable peer after LinkFailTimeout", "RoleReady", "decode", []PeerStatus{{1, "ok"}, {2, "failed"}})

	// The same role again updates the peers without switching: 1 keeps its
	// link, 2 is gone, 4 (this server too) starts linking.
	body = fmt.Sprintf(`{"local": {"id": 3}, "peers": [{"id": 4, "server_ip": "127.0.0.1", "mgmt_port": %d}, {"id": 1, "server_ip": "127.0.0.1", "mgmt_port": "%d"}]}`, self, self)
	if r := h.do(http.MethodPost, h.mgmt.URL+"/v1/role/decode", body); r.status != http.StatusOK {
		t.Fatalf("re-POST: %d %s", r.status, r.body)
	}
	check("re-POST of the same role", "RoleReady", "decode", []PeerStatus{{4, "linking"}, {1, "ok"}})
	waitReachable(t, h.srv, 4)
	h.clock.Advance(time.Second)
	check("the new peer after LinkTime", "RoleReady", "decode", []PeerStatus{{4, "ok"}, {1, "ok"}})

	// v2: local is an array, a peer may be an array of servers; a peer
	// without server_ip cannot link. A new role switches and relinks.
	if r := h.do(http.MethodPost, h.mgmt.URL+"/v2/role/prefill",
		fmt.Sprintf(`{"local": [{"id": 9}], "peers": [[{"id": 7, "server_ip": "127.0.0.1", "mgmt_port": %d}], [{"id": 8}]]}`, self)); r.status != http.StatusOK {
		t.Errorf("POST /v2/role/prefill: %d %s", r.status, r.body)
	}
	if st, role, peers := status("/v2/status"); st != "RoleSwitching" || role != "prefill" || !cmp.Equal(peers, []PeerStatus{{7, "linking"}, {8, "linking"}}) {
		t.Errorf("after the v2 role: %s %s %+v", st, role, peers)
	}
	waitReachable(t, h.srv, 7)
	h.clock.Advance(LinkFailTimeout)
	check("v2 peers", "RoleReady", "prefill", []PeerStatus{{7, "ok"}, {8, "failed"}})
	h.srv.mu.Lock()
	local := h.srv.localID
	h.srv.mu.Unlock()
	if local == nil || *local != 9 {
		t.Errorf("local id %v, want 9", local)
	}

	if r := h.do(http.MethodPost, h.mgmt.URL+"/v1/role/flex", ""); r.status != http.StatusOK || h.srv.Stats().Role != RoleFlex {
		t.Errorf("POST /v1/role/flex without a body: %d %s", r.status, r.body)
	}
	check("flex without peers", "RoleSwitching", "flex", []PeerStatus{})
	for _, tc := range []struct{ path, body string }{
		{"/v1/role/decode", `{"peers": [`},
		{"/v1/role/decode", `{"peers": [{"server_ip": "127.0.0.1"}]}`},
		{"/v1/role/decode", `{"peers": [{"id": 1, "mgmt_port": "port"}]}`},
		{"/v1/role/decode", `{"peers": [{"id": 1, "mgmt_port": 70000}]}`},
		{"/v1/role/decode", `{"peers": [{"id": -1}]}`},
	} {
		if r := h.do(http.MethodPost, h.mgmt.URL+tc.path, tc.body); r.status != http.StatusBadRequest {
			t.Errorf("invalid body %s: %d %s", tc.body, r.status, r.body)
		}
	}
	if r := h.do(http.MethodPost, h.mgmt.URL+"/v1/role/master", ""); r.status != http.StatusNotFound {
		t.Errorf("unknown role: %d", r.status)
	}
	if err := h.srv.SetRole("boss"); err == nil {
		t.Error("SetRole accepted an unknown role")
	}
	if !strings.Contains(h.log.String(), "role set to decode") {
		t.Errorf("role changes should be logged:\n%s", h.log)
	}
}

// TestRoleAssignmentV2 posts roles in the shape MindIE's Controller uses
// in multi-node mode: local is the instance's servers, each peer the
// servers of one instance, every server naming its instance through
// dp_inst_list (dp_inst_id = id*DPInstanceIDs + index). A peer of several
// servers is one link, dialled on its first server; /v2/status reports it
// by instance id, as /v1/status does.
func TestRoleAssignmentV2(t *testing.T) {
	h := newHarness(t, testConfig())
	self := h.mgmt.Listener.Addr().(*net.TCPAddr).Port
	server := func(ip string, dp int, port int) string {
		mgmt := ""
		if port != 0 {
			mgmt = fmt.Sprintf(`"mgmt_port": "%d", `, port)
		}
		return fmt.Sprintf(`{"server_ip": %q, "host_ip": "10.0.0.1", %s"dp_inst_list": [{"dp_inst_id": %d,
		  "device": [{"device_id": "0", "device_ip": "127.254.0.0", "device_logical_id": "0", "rank_id": "0"}]}]}`, ip, mgmt, dp)
	}
	// This server is instance 2 on two servers; prefill 0 runs on two
	// servers (the first answers), prefill 1 on one that does not answer.
	body := fmt.Sprintf(`{"local": [%s, %s], "peers": [[%s, %s], [%s]]}`,
		server("127.0.0.1", 2*DPInstanceIDs, 0), server("127.0.0.3", 2*DPInstanceIDs, 0),
		server("127.0.0.1", 0, self), server("127.0.0.4", 0, closedPort(t)),
		server("127.0.0.1", 1*DPInstanceIDs, closedPort(t)))
	if r := h.do(http.MethodPost, h.mgmt.URL+"/v2/role/decode", body); r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"result":"ok"}` {
		t.Fatalf("POST /v2/role/decode: %d %s", r.status, r.body)
	}
	check := func(when, wantStatus string, wantPeers []PeerStatus) {
		t.Helper()
		st := getStatus(t, h, "/v2/status")
		if st.Service.RoleStatus != wantStatus || st.Service.CurrentRole != "decode" || !cmp.Equal(st.LinkStatus.Peers, wantPeers) {
			t.Errorf("%s: %s %s %+v, want %s decode %+v", when, st.Service.RoleStatus, st.Service.CurrentRole, st.LinkStatus.Peers, wantStatus, wantPeers)
		}
	}
	check("right after the POST", "RoleSwitching", []PeerStatus{{0, "linking"}, {1, "linking"}})
	waitReachable(t, h.srv, 0)
	h.clock.Advance(2 * time.Second)
	check("after RoleSwitchTime", "RoleReady", []PeerStatus{{0, "ok"}, {1, "linking"}})
	h.srv.mu.Lock()
	local := h.srv.localID
	h.srv.mu.Unlock()
	if local == nil || *local != 2 {
		t.Errorf("local id %v, want 2 (from dp_inst_id %d)", local, 2*DPInstanceIDs)
	}

	// The same role again with fewer peers updates them.
	body = fmt.Sprintf(`{"local": [%s], "peers": [[%s]]}`, server("127.0.0.1", 2*DPInstanceIDs, 0), server("127.0.0.1", 0, self))
	if r := h.do(http.MethodPost, h.mgmt.URL+"/v2/role/decode", body); r.status != http.StatusOK {
		t.Fatalf("re-POST: %d %s", r.status, r.body)
	}
	check("re-POST", "RoleReady", []PeerStatus{{0, "ok"}})

	for _, tc := range []struct{ body, want string }{
		{fmt.Sprintf(`{"local": [], "peers": [[%s, %s]]}`, server("127.0.0.1", 0, 0), server("127.0.0.2", DPInstanceIDs, 0)),
			"peers[0][1]: names instance 1, but peers[0][0] names 0"},
		{`{"local": [], "peers": [[{"server_ip": "127.0.0.1", "dp_inst_list": []}]]}`, "peers[0]: id (or dp_inst_list[0].dp_inst_id) is required"},
		{`{"local": [], "peers": [[{"server_ip": "127.0.0.1", "dp_inst_list": [{"dp_inst_id": "x"}]}]]}`, "peers[0]"},
	} {
		if r := h.do(http.MethodPost, h.mgmt.URL+"/v2/role/decode", tc.body); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), tc.want) {
			t.Errorf("body %s: %d %s, want 400 with %q", tc.body, r.status, r.body, tc.want)
		}
	}
}

func TestPeerElsewhereIsNeverDialled(t *testing.T) {
	h := newHarness(t, testConfig())
	if r := h.do(http.MethodPost, h.mgmt.URL+"/v1/role/prefill", `{"peers": [{"id": 5, "server_ip": "peer.invalid"}]}`); r.status != http.StatusOK {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	waitUntil(t, "the refusal is logged", func() bool { return strings.Contains(h.log.String(), "peer 5: not dialling") })
	h.clock.Advance(LinkFailTimeout)
	if st := h.srv.Stats(); !cmp.Equal(st.Peers, []PeerStatus{{5, "failed"}}) || st.RoleStatus != "RoleReady" {
		t.Errorf("%s %+v, want RoleReady and peer 5 failed", st.RoleStatus, st.Peers)
	}
}

func TestMetricsJSON(t *testing.T) {
	h := newHarness(t, testConfig())
	h.post("/v1/completions", `{"prompt": "one two three", "max_tokens": 3}`)
	r := h.getMgmt("/metrics-json")
	var got struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric []map[string]string `json:"metric"`
			Value  string              `json:"value"`
		} `json:"result"`
	}
	if err := json.Unmarshal(r.body, &got); r.status != http.StatusOK || err != nil {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	values := map[string]string{}
	for _, s := range got.Result {
		if len(s.Metric) != 1 || s.Metric[0]["job"] != "node" || s.Metric[0]["instance"] == "" {
			t.Errorf("bad metric labels %+v", s.Metric)
			continue
		}
		values[s.Metric[0]["__name__"]] = s.Value
	}
	// TTFT: the 3ms prefill, which produces the first token; TBT: 1s steps.
	want := map[string]string{"TTFT": "3", "TBT": "1000", "waitingInferRequestNum": "0", "processingInferRequestNum": "0",
		"remainBlocks": strconv.Itoa(h.srv.Config().CacheBlocks), "pdPrefillRequests": "0", "pdDecodeRequests": "0", "pdDecodeTokens": "0"}
	if got.ResultType != "vector" || !cmp.Equal(values, want) {
		t.Errorf("/metrics-json %s, want %v", r.body, want)
	}
}

func TestManagementRequestsAreLogged(t *testing.T) {
	h := newHarness(t, testConfig())
	h.getMgmt("/v2/health/live")
	h.getMgmt("/info")
	for _, want := range []string{"management GET /v2/health/live 200", "management GET /info 200"} {
		if !strings.Contains(h.log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, h.log)
		}
	}
}
