package chat

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/options/fake"
)

const chatPath = "/apis/infer.mindie.io/v1alpha1/namespaces/default/inferservers/llama/proxy/v1/chat/completions"

func withModel(id string) func(*v1alpha1.InferServer) {
	return func(s *v1alpha1.InferServer) {
		s.Status.Model = &v1alpha1.ModelInfo{Models: []v1alpha1.ModelEntry{{ID: id}}}
	}
}

// fakeModel answers chat completions with "answer N to: <last message>",
// streamed as two chunks when asked.
func fakeModel(t *testing.T) func(*http.Request) *http.Response {
	n := 0
	return func(r *http.Request) *http.Response {
		switch {
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/proxy/v1/models"):
			return fake.JSONResponse(200, map[string]any{"object": "list", "data": []any{map[string]any{"id": "from-models", "object": "model"}}})
		case r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/proxy/v1/chat/completions"):
			return fake.StatusResponse(404, metav1.StatusReasonNotFound, "unexpected "+r.Method+" "+r.URL.Path)
		}
		var req chatRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("chat request body: %v", err)
		}
		n++
		answer := []string{"answer ", strings.ToUpper(req.Messages[len(req.Messages)-1].Content[:1])}
		if !req.Stream {
			return fake.JSONResponse(200, map[string]any{"object": "chat.completion", "choices": []any{map[string]any{
				"index": 0, "message": map[string]any{"role": "assistant", "content": strings.Join(answer, "")}, "finish_reason": "stop"}}})
		}
		var b strings.Builder
		b.WriteString(`data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n")
		for i, a := range answer {
			finish := "null"
			if i == len(answer)-1 {
				finish = `"stop"`
			}
			b.WriteString(`data: {"choices":[{"index":0,"delta":{"content":` + string(mustJSON(t, a)) + `},"finish_reason":` + finish + `}]}` + "\n\n")
		}
		b.WriteString("data: [DONE]\n\n")
		return fake.TextResponse(200, "text/event-stream", b.String())
	}
}

func chatRequests(t *testing.T, f *fake.Options) []chatRequest {
	t.Helper()
	var out []chatRequest
	for _, r := range f.Recorded() {
		if r.Method != http.MethodPost {
			continue
		}
		if r.Path != chatPath || r.ContentType != "application/json" {
			t.Errorf("chat request %s %s (content type %q), want POST %s", r.Method, r.Path, r.ContentType, chatPath)
		}
		var req chatRequest
		if err := json.Unmarshal(r.Body, &req); err != nil {
			t.Fatalf("chat request body %s: %v", r.Body, err)
		}
		out = append(out, req)
	}
	return out
}

func TestChatOneShot(t *testing.T) {
	f := fake.New(t, NewCmdChat, fake.InferServer("default", "llama", withModel("llama3-8b")))
	f.SetHandler(fakeModel(t))
	out := f.MustRun(t, "", "chat", "llama", "-m", "hello", "--max-tokens=16", "--temperature=0", "--system", "be brief")
	if out != "answer H\n" {
		t.Errorf("stdout %q", out)
	}
	reqs := chatRequests(t, f)
	if len(reqs) != 1 {
		t.Fatalf("%d chat requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Model != "llama3-8b" || r.Stream || r.MaxTokens == nil || *r.MaxTokens != 16 || r.Temperature == nil || *r.Temperature != 0 {
		t.Errorf("request %+v, want model llama3-8b from the status, no stream, max_tokens 16, temperature 0", r)
	}
	if len(r.Messages) != 2 || r.Messages[0] != (chatMessage{"system", "be brief"}) || r.Messages[1] != (chatMessage{"user", "hello"}) {
		t.Errorf("messages %+v", r.Messages)
	}
	// Without the flags, neither max_tokens nor temperature is sent.
	f.MustRun(t, "", "chat", "llama", "-m", "again", "--model", "other")
	body := string(f.Recorded()[len(f.Recorded())-1].Body)
	if strings.Contains(body, "max_tokens") || strings.Contains(body, "temperature") || !strings.Contains(body, `"model":"other"`) {
		t.Errorf("request body %s", body)
	}
}

func TestChatStream(t *testing.T) {
	f := fake.New(t, NewCmdChat, fake.InferServer("default", "llama", withModel("llama3-8b")))
	f.SetHandler(fakeModel(t))
	out := f.MustRun(t, "", "chat", "llama", "-m", "hello", "--stream")
	if out != "answer H\n" {
		t.Errorf("stdout %q", out)
	}
	if reqs := chatRequests(t, f); len(reqs) != 1 || !reqs[0].Stream {
		t.Errorf("requests %+v, want one with stream true", reqs)
	}
	if a := f.Recorded()[0].Accept; !strings.Contains(a, "text/event-stream") {
		t.Errorf("Accept %q", a)
	}
}

func TestChatStreamErrors(t *testing.T) {
	f := fake.New(t, NewCmdChat, fake.InferServer("default", "llama", withModel("m")))
	f.SetHandler(func(*http.Request) *http.Response {
		return fake.TextResponse(200, "text/event-stream", `data: {"choices":[{"delta":{"content":"par"}}]}`+"\n\n"+`data: {"error":{"message":"engine crashed","type":"service_unavailable_error"}}`+"\n\n")
	})
	r := f.FailRun(t, "", []string{"chat", "llama", "-m", "x", "--stream"}, "the model server failed while answering: engine crashed (service_unavailable_error)")
	if r.Stdout != "par\n" {
		t.Errorf("stdout %q", r.Stdout)
	}
	f.SetHandler(func(*http.Request) *http.Response {
		return fake.TextResponse(200, "text/event-stream", `data: {"choices":[{"delta":{"content":"cut"}}]}`+"\n\n")
	})
	f.FailRun(t, "", []string{"chat", "llama", "-m", "x", "--stream"}, `the answer stream of InferServer "llama" ended before data: [DONE]`)
}

func TestChatDefaultModelFromModelsEndpoint(t *testing.T) {
	f := fake.New(t, NewCmdChat, fake.InferServer("default", "llama"))
	f.SetHandler(fakeModel(t))
	f.MustRun(t, "", "chat", "llama", "-m", "hi")
	reqs := f.Recorded()
	if len(reqs) != 2 || reqs[0].Method != http.MethodGet || reqs[0].Path != "/apis/infer.mindie.io/v1alpha1/namespaces/default/inferservers/llama/proxy/v1/models" {
		t.Fatalf("requests %+v, want GET .../proxy/v1/models first", reqs)
	}
	if c := chatRequests(t, f); c[0].Model != "from-models" {
		t.Errorf("model %q, want from-models", c[0].Model)
	}
}

func TestChatConversation(t *testing.T) {
	f := fake.New(t, NewCmdChat, fake.InferServer("default", "llama", withModel("m")))
	f.SetHandler(fakeModel(t))
	out := f.MustRun(t, "first\n\nsecond\n/exit\nnever sent\n", "chat", "llama", "--stream")
	if out != "answer F\nanswer S\n" {
		t.Errorf("stdout %q", out)
	}
	reqs := chatRequests(t, f)
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	want := []chatMessage{{"user", "first"}, {"assistant", "answer F"}, {"user", "second"}}
	if got := reqs[1].Messages; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("second request's messages %+v, want the history %+v", got, want)
	}
	// End of input ends it too.
	if out := f.MustRun(t, "one", "chat", "llama"); out != "answer O\n" {
		t.Errorf("stdout %q", out)
	}
}

func TestChatServerErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp func() *http.Response
		want []string
	}{
		{"forbidden", func() *http.Response {
			return fake.StatusResponse(403, metav1.StatusReasonForbidden, `inferservers.infer.mindie.io "llama" is forbidden: User "tenant-a-viewer" cannot create resource "inferservers/proxy" in API group "infer.mindie.io" in the namespace "default"`)
		}, []string{`User "tenant-a-viewer" cannot create resource "inferservers/proxy"`, `needs the "create" verb on inferservers/proxy`}},
		{"no ready instance", func() *http.Response {
			return fake.StatusResponse(503, metav1.StatusReasonServiceUnavailable, `inferserver "llama" has no ready instance (0 of 2 ready)`)
		}, []string{`InferServer "llama" cannot answer now (503 Service Unavailable): inferserver "llama" has no ready instance (0 of 2 ready)`}},
		{"openai error", func() *http.Response {
			return fake.JSONResponse(400, map[string]any{"error": map[string]any{"message": "max_tokens must be at most 4096", "type": "invalid_request_error"}})
		}, []string{`InferServer "llama" refused POST /v1/chat/completions: 400 Bad Request: max_tokens must be at most 4096 (invalid_request_error)`}},
		{"text error", func() *http.Response { return fake.TextResponse(502, "text/plain", "upstream\nreset") },
			[]string{`502 Bad Gateway: upstream reset`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fake.New(t, NewCmdChat, fake.InferServer("default", "llama", withModel("m")))
			f.SetHandler(func(*http.Request) *http.Response { return tc.resp() })
			for _, args := range [][]string{{"chat", "llama", "-m", "x"}, {"chat", "llama", "-m", "x", "--stream"}} {
				r := f.FailRun(t, "", args, tc.want...)
				if strings.Count(r.Stderr, "\n") != 1 {
					t.Errorf("want one error line:\n%s", r.Stderr)
				}
			}
		})
	}
	f := fake.New(t, NewCmdChat)
	f.FailRun(t, "", []string{"chat", "nope", "-m", "x"}, `inferservers.infer.mindie.io "nope" not found`)
}

// mustJSON is v as JSON.
func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
