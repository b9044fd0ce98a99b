package kubelet

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Pod fault actions of SetPodFault.
const (
	PodFaultHang   = "hang"
	PodFaultUnhang = "unhang"
	PodFaultCrash  = "crash"
	PodFaultSlow   = "slow"
	// The decode faults of a Prefill/Decode decode instance.
	PodFaultDecodeError     = "decode-error"     // the next count requests end with error:
	PodFaultDecodeRecompute = "decode-recompute" // the next count requests ask for recompute (retry:)
	PodFaultDropDResult     = "drop-dresult"     // the /dresult connection breaks without close:
)

// FaultInjectable is implemented by workloads that support pod fault
// injection (MindIEWorkload does).
type FaultInjectable interface {
	SetHung(hung bool)
	Crash()
	SetSlowdown(factor float64)
}

func (w *mindieWorkload) SetHung(hung bool)          { w.srv.SetHung(hung) }
func (w *mindieWorkload) Crash()                     { w.srv.Crash() }
func (w *mindieWorkload) SetSlowdown(factor float64) { w.srv.SetSlowdown(factor) }

// DecodeFaultInjectable is implemented by workloads that can play a
// faulty Prefill/Decode decode instance (MindIEWorkload does).
type DecodeFaultInjectable interface {
	FailNextDecode(n int)
	RecomputeNextDecode(n int)
	DropDResult() bool
}

func (w *mindieWorkload) FailNextDecode(n int)      { w.srv.FailNextDecode(n) }
func (w *mindieWorkload) RecomputeNextDecode(n int) { w.srv.RecomputeNextDecode(n) }
func (w *mindieWorkload) DropDResult() bool         { return w.srv.DropDResult() }

// FieldError is an error about one field of a fault request.
type FieldError struct {
	Field   string
	Message string
	// NotFound marks errors naming something that does not exist.
	NotFound bool
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// SetPodFault injects a fault into the running workloads of every
// container of pod namespace/name: hang (requests block; liveness probes
// fail and the container is killed, exit code 137), unhang, crash (the
// workload exits, exit code 1), slow (every modelled duration is
// multiplied by factor; 1 resets it). A killed or crashed container is
// restarted or terminated as the pod's restartPolicy says.
func (s *Simulator) SetPodFault(namespace, name, action string, factor float64) error {
	switch action {
	case PodFaultHang, PodFaultUnhang, PodFaultCrash:
	case PodFaultSlow:
		if !(factor > 0) {
			return &FieldError{Field: "factor", Message: fmt.Sprintf("must be a positive number for action slow, got %g", factor)}
		}
	case PodFaultDecodeError, PodFaultDecodeRecompute, PodFaultDropDResult:
		return s.setDecodeFault(namespace, name, action, int(factor))
	default:
		return &FieldError{Field: "action", Message: fmt.Sprintf("unknown action %q: want hang, unhang, crash, slow, %s, %s or %s",
			action, PodFaultDecodeError, PodFaultDecodeRecompute, PodFaultDropDResult)}
	}
	if namespace == "" {
		namespace = "default"
	}
	if name == "" {
		return &FieldError{Field: "name", Message: "required"}
	}
	s.mu.Lock()
	ps := s.pods[namespace+"/"+name]
	var targets []FaultInjectable
	var logs []*containerLog
	if ps != nil {
		for _, cs := range ps.containers {
			if f, ok := cs.workload.(FaultInjectable); ok && cs.running {
				targets = append(targets, f)
				logs = append(logs, cs.log)
			}
		}
	}
	s.mu.Unlock()
	if ps == nil {
		return &FieldError{Field: "name", Message: fmt.Sprintf("pod %s/%s is not running on a simulated node", namespace, name), NotFound: true}
	}
	if len(targets) == 0 {
		return &FieldError{Field: "name", Message: fmt.Sprintf("pod %s/%s has no running container that supports fault injection", namespace, name)}
	}
	s.logf("pod %s/%s: %s fault (factor %g) on %d container(s) (fault injection)", namespace, name, action, factor, len(targets))
	for i, f := range targets {
		if logs[i] != nil {
			logs[i].printf("fault injection: %s", action)
		}
		switch action {
		case PodFaultHang:
			f.SetHung(true)
		case PodFaultUnhang:
			f.SetHung(false)
		case PodFaultCrash:
			f.Crash()
		case PodFaultSlow:
			f.SetSlowdown(factor)
		}
	}
	return nil
}

// setDecodeFault plays a faulty decode instance in pod namespace/name:
// count requests end with error: or ask for recompute, or the /dresult
// connection breaks.
func (s *Simulator) setDecodeFault(namespace, name, action string, count int) error {
	if action != PodFaultDropDResult && count < 1 {
		return &FieldError{Field: "factor", Message: fmt.Sprintf("must be the number of requests (at least 1) for action %s, got %d", action, count)}
	}
	if namespace == "" {
		namespace = "default"
	}
	s.mu.Lock()
	ps := s.pods[namespace+"/"+name]
	var targets []DecodeFaultInjectable
	if ps != nil {
		for _, cs := range ps.containers {
			if f, ok := cs.workload.(DecodeFaultInjectable); ok && cs.running {
				targets = append(targets, f)
			}
		}
	}
	s.mu.Unlock()
	if ps == nil {
		return &FieldError{Field: "name", Message: fmt.Sprintf("pod %s/%s is not running on a simulated node", namespace, name), NotFound: true}
	}
	if len(targets) == 0 {
		return &FieldError{Field: "name", Message: fmt.Sprintf("pod %s/%s has no running MindIE Server container", namespace, name)}
	}
	s.logf("pod %s/%s: %s fault (%d requests) (fault injection)", namespace, name, action, count)
	for _, f := range targets {
		switch action {
		case PodFaultDecodeError:
			f.FailNextDecode(count)
		case PodFaultDecodeRecompute:
			f.RecomputeNextDecode(count)
		case PodFaultDropDResult:
			f.DropDResult()
		}
	}
	return nil
}

// NPUFaultRequest is the body of POST /faults/npu.
type NPUFaultRequest struct {
	Node  string `json:"node"`
	Chip  *int   `json:"chip"`
	Level string `json:"level"` // one of NPUFaultLevels; "" clears the fault
}

// PodFaultRequest is the body of POST /faults/pod.
type PodFaultRequest struct {
	Namespace string  `json:"namespace"`
	Name      string  `json:"name"`
	Action    string  `json:"action"`
	Factor    float64 `json:"factor,omitempty"`
}

// NodeFaultRequest is the body of POST /faults/node.
type NodeFaultRequest struct {
	Node string `json:"node"`
	Down *bool  `json:"down"`
}

// PullFaultRequest is the body of POST /faults/pull.
type PullFaultRequest struct {
	Node string `json:"node"`
	Fail *bool  `json:"fail"`
}

// SetNodePullFailure makes every image pull on node fail (fail=true, as
// a node that cannot reach its registry: its containers wait,
// ErrImagePull then ImagePullBackOff) or succeed again (false; a waiting
// container is pulled again after its back-off). Containers already
// created are not touched.
func (s *Simulator) SetNodePullFailure(node string, fail bool) error {
	if err := s.checkNode(node); err != nil {
		return err
	}
	s.mu.Lock()
	s.nodes[node].pullFails = fail
	s.mu.Unlock()
	s.logf("node %s: image pulls %s (fault injection)", node, map[bool]string{true: "FAIL", false: "succeed again"}[fail])
	return nil
}

// ControlError is the JSON body of a failed control request.
type ControlError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// ControlHandler returns the fault-injection control API:
//
//	POST /faults/npu  {"node": N, "chip": 3, "level": "SeparateNPU"}  ("" clears)
//	POST /faults/pod  {"namespace": NS, "name": P, "action": "hang|unhang|crash|slow", "factor": 4}
//	                  (decode-error|decode-recompute with "factor": the number of requests; drop-dresult)
//	POST /faults/node {"node": N, "down": true}
//	POST /faults/pull {"node": N, "fail": true}
//	GET  /nodes       the simulated nodes' names
//
// /faults/npu takes a level of NPUFaultLevels and hurts the pod holding
// the chip as SetNPUFault says (nothing; its running requests fail; its
// servers crash; its servers fail requests and health checks while it
// holds the chip); /faults/node takes the node down or back as
// SetNodeDown says (its servers killed, nothing written until it is
// back); /faults/pull makes every image pull on the node fail or succeed
// again (SetNodePullFailure). Success is 200 {"ok": true}; errors are JSON ControlErrors naming
// the bad field.
func (s *Simulator) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /faults/npu", func(w http.ResponseWriter, r *http.Request) {
		var req NPUFaultRequest
		if !decode(w, r, &req) {
			return
		}
		if err := s.checkNode(req.Node); err != nil {
			writeErr(w, err)
			return
		}
		if req.Chip == nil {
			writeErr(w, &FieldError{Field: "chip", Message: "required"})
			return
		}
		if n := len(s.nodes[req.Node].chips); n == 0 { // the node set and chip counts never change
			writeErr(w, &FieldError{Field: "chip", Message: fmt.Sprintf("node %s has no NPUs", req.Node)})
			return
		} else if *req.Chip < 0 || *req.Chip >= n {
			writeErr(w, &FieldError{Field: "chip", Message: fmt.Sprintf("chip %d out of range 0..%d", *req.Chip, n-1)})
			return
		}
		if req.Level != "" && !slices.Contains(NPUFaultLevels, req.Level) {
			writeErr(w, &FieldError{Field: "level", Message: fmt.Sprintf("unknown fault level %q: want one of %s or \"\" to clear", req.Level, strings.Join(NPUFaultLevels, ", "))})
			return
		}
		writeResult(w, s.SetNPUFault(req.Node, *req.Chip, req.Level))
	})
	mux.HandleFunc("POST /faults/pod", func(w http.ResponseWriter, r *http.Request) {
		var req PodFaultRequest
		if !decode(w, r, &req) {
			return
		}
		writeResult(w, s.SetPodFault(req.Namespace, req.Name, req.Action, req.Factor))
	})
	mux.HandleFunc("POST /faults/node", func(w http.ResponseWriter, r *http.Request) {
		var req NodeFaultRequest
		if !decode(w, r, &req) {
			return
		}
		if err := s.checkNode(req.Node); err != nil {
			writeErr(w, err)
			return
		}
		if req.Down == nil {
			writeErr(w, &FieldError{Field: "down", Message: "required (true or false)"})
			return
		}
		writeResult(w, s.SetNodeDown(req.Node, *req.Down))
	})
	mux.HandleFunc("POST /faults/pull", func(w http.ResponseWriter, r *http.Request) {
		var req PullFaultRequest
		if !decode(w, r, &req) {
			return
		}
		if req.Fail == nil {
			writeErr(w, &FieldError{Field: "fail", Message: "required (true or false)"})
			return
		}
		writeResult(w, s.SetNodePullFailure(req.Node, *req.Fail))
	})
	mux.HandleFunc("GET /nodes", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.NodeNames())
	})
	return mux
}

func (s *Simulator) checkNode(name string) error {
	if name == "" {
		return &FieldError{Field: "node", Message: "required"}
	}
	if _, ok := s.nodes[name]; !ok { // the node set never changes
		return &FieldError{Field: "node", Message: fmt.Sprintf("no simulated node %q (have %s)", name, strings.Join(s.nodeNames, ", ")), NotFound: true}
	}
	return nil
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		field := ""
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field = te.Field
		} else if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			field = strings.Trim(f, `"`)
		}
		writeJSON(w, http.StatusBadRequest, ControlError{Error: "invalid request body: " + err.Error(), Field: field})
		return false
	}
	return true
}

func writeErr(w http.ResponseWriter, err error) {
	var fe *FieldError
	if errors.As(err, &fe) {
		code := http.StatusBadRequest
		if fe.NotFound {
			code = http.StatusNotFound
		}
		writeJSON(w, code, ControlError{Error: fe.Error(), Field: fe.Field})
		return
	}
	writeJSON(w, http.StatusInternalServerError, ControlError{Error: err.Error()})
}

func writeResult(w http.ResponseWriter, err error) {
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
