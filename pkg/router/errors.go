package router

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// errorStyle is how an API family shapes its errors.
type errorStyle int

const (
	// openAIErrors (/v1/...): {"error":{"message","type","param","code"}}.
	openAIErrors errorStyle = iota
	// plainErrors (TGI, vLLM, Triton, MindIE, the router's own routes):
	// {"error","error_type"}, as MindIE Server and the simulator answer.
	plainErrors
)

// routerError is an answer the router gives itself, not an instance.
type routerError struct {
	status int
	// kind is the OpenAI error type (and error_type of plain errors).
	kind string
	msg  string
	// retryAfter, if set, is sent as Retry-After.
	retryAfter time.Duration
}

func (e *routerError) Error() string { return e.msg }

// Error kinds, the OpenAI "type".
const (
	kindInvalidRequest = "invalid_request_error"
	kindAuthentication = "authentication_error"
	kindPermission     = "permission_error"
	kindNotFound       = "not_found_error"
	kindRateLimit      = "rate_limit_error"
	kindUnavailable    = "service_unavailable_error"
	kindTimeout        = "timeout_error"
	kindUpstream       = "upstream_error"
)

// writeError answers e in the route's style.
func writeError(w http.ResponseWriter, style errorStyle, e *routerError) {
	var body any
	if style == openAIErrors {
		body = map[string]any{"error": map[string]any{
			"message": e.msg, "type": e.kind, "param": nil, "code": e.status,
		}}
	} else {
		body = map[string]any{"error": e.msg, "error_type": e.kind}
	}
	data, _ := json.Marshal(body)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(data)+1))
	if e.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((e.retryAfter+time.Second-1)/time.Second)))
	}
	w.WriteHeader(e.status)
	w.Write(append(data, '\n'))
}

// sseError is the last event of a stream cut by the router: an OpenAI
// error object, as vLLM ends a stream that fails.
func sseError(style errorStyle, e *routerError) []byte {
	var body any
	if style == openAIErrors {
		body = map[string]any{"error": map[string]any{"message": e.msg, "type": e.kind, "param": nil, "code": e.status}}
	} else {
		body = map[string]any{"error": e.msg, "error_type": e.kind}
	}
	data, _ := json.Marshal(body)
	return append(append([]byte("data: "), data...), "\n\n"...)
}
