package mindie

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// maxBodyBytes bounds request bodies (MindIE accepts up to 4 MB of prompt).
const maxBodyBytes = 8 << 20

// decodeJSON reads r's body into v. Unknown fields are ignored; an empty
// body, invalid JSON, a value of the wrong type or trailing data are
// validation errors that say what is wrong.
func decodeJSON(r *http.Request, v any) *apiError {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("the request body is empty; expected a JSON object")
	}
	return unmarshalBody(body, v)
}

// readBody reads a request body of at most maxBodyBytes.
func readBody(r *http.Request) ([]byte, *apiError) {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, &apiError{status: http.StatusRequestEntityTooLarge, kind: kindValidation,
				msg: fmt.Sprintf("the request body is larger than %d bytes", tooLarge.Limit)}
		}
		return nil, badRequest("reading the request body: %v", err)
	}
	return body, nil
}

// unmarshalBody decodes one JSON value from body into v.
func unmarshalBody(body []byte, v any) *apiError {
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return badRequest("the request body is not valid: %s", describeJSONError(body, err))
	}
	if dec.More() {
		return badRequest("the request body has data after its JSON object")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := jsonLine(v)
	if err != nil {
		http.Error(w, "encoding the response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, text)
}

// errorStyle is how an API family formats its errors.
type errorStyle int

const (
	// openAIErrors: {"error":{"message","type","param","code"}}.
	openAIErrors errorStyle = iota
	// plainErrors (TGI, vLLM, Triton, MindIE): {"error","error_type"}.
	plainErrors
)

func (k errorKind) openAIType() string {
	switch k {
	case kindValidation:
		return "invalid_request_error"
	case kindNotFound:
		return "not_found_error"
	case kindOverloaded:
		return "overloaded_error"
	case kindEngine:
		return "server_error"
	}
	return "service_unavailable_error"
}

func errorBody(style errorStyle, e *apiError) any {
	if style == openAIErrors {
		return map[string]any{"error": map[string]any{
			"message": e.msg, "type": e.kind.openAIType(), "param": nil, "code": e.status,
		}}
	}
	return map[string]any{"error": e.msg, "error_type": string(e.kind)}
}

func writeAPIError(w http.ResponseWriter, style errorStyle, e *apiError) {
	if e.status == http.StatusServiceUnavailable || e.status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.status, errorBody(style, e))
}

// answerFailure answers a failed generation request. A crash or shutdown
// drops the connection, as a dead process would; a client that went away
// gets nothing.
func answerFailure(w http.ResponseWriter, style errorStyle, err error) {
	var apiErr *apiError
	switch {
	case errors.As(err, &apiErr):
		writeAPIError(w, style, apiErr)
	case errors.Is(err, ErrCrashed), errors.Is(err, errClosing):
		panic(http.ErrAbortHandler)
	case errors.Is(err, errClientGone):
	default:
		writeAPIError(w, style, &apiError{status: http.StatusInternalServerError, kind: kindUnavailable, msg: err.Error()})
	}
}

// sseWriter writes a server-sent event stream, flushing every event. It
// sends its headers with the first event, so that failures before any
// token can still be answered with a status code.
type sseWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func newSSEWriter(w http.ResponseWriter) *sseWriter {
	return &sseWriter{w: w, rc: http.NewResponseController(w)}
}

func (s *sseWriter) start() {
	if s.started {
		return
	}
	s.started = true
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	s.w.WriteHeader(http.StatusOK)
}

// data sends one "data: <payload>" event; payload is JSON-encoded unless it
// is a string.
func (s *sseWriter) data(payload any) error {
	s.start()
	buf, err := sseEvent(payload)
	if err != nil {
		return err
	}
	if _, err := s.w.Write(buf); err != nil {
		return err
	}
	return s.flush()
}

func (s *sseWriter) flush() error {
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// fail ends a stream with an error: as a status code if nothing was sent
// yet, else as a last event.
func (s *sseWriter) fail(style errorStyle, err error) {
	var apiErr *apiError
	if !s.started || !errors.As(err, &apiErr) {
		answerFailure(s.w, style, err)
		return
	}
	s.data(errorBody(style, apiErr))
}

// statusRecorder remembers the status a handler answered, for the log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's Flusher.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// instrument wraps a port's handler: it drops connections once the server
// has crashed, blocks requests while the server is hung (unless hangExempt
// says the handler deals with the hang itself), and logs one line per
// request.
func (s *Server) instrument(port string, h http.Handler, hangExempt func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.clock.Now()
		target := r.Method + " " + r.URL.RequestURI()
		select {
		case <-s.crashed:
			s.logf("%s %s: connection dropped (crashed)", port, target)
			panic(http.ErrAbortHandler)
		default:
		}
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				s.logf("%s %s: connection dropped after %s (%v)", port, target, s.clock.Now().Sub(start), dropReason(s))
				panic(p)
			}
			if rec.status == 0 && r.Context().Err() != nil {
				s.logf("%s %s: client gone after %s", port, target, s.clock.Now().Sub(start))
				return
			}
			s.logf("%s %s %d %s", port, target, max(rec.status, http.StatusOK), s.clock.Now().Sub(start))
		}()
		if hangExempt == nil || !hangExempt(r) {
			if err := s.waitWhileHung(r.Context(), nil); err != nil {
				if errors.Is(err, ErrCrashed) || errors.Is(err, errClosing) {
					panic(http.ErrAbortHandler)
				}
				return // the client gave up while the server was hung
			}
		}
		h.ServeHTTP(rec, r)
	})
}

func dropReason(s *Server) string {
	select {
	case <-s.crashed:
		return "crashed"
	case <-s.closing:
		return "shutting down"
	default:
		return "aborted"
	}
}
