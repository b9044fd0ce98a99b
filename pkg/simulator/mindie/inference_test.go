package mindie

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type chatCompletion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Delta struct {
			Role    *string `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		Text         string  `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *openAIUsage `json:"usage"`
}

var conversation = []map[string]string{
	{"role": "system", "content": "You are a helpful assistant."},
	{"role": "user", "content": "Explain prefix caching in one paragraph, please."},
}

func TestChatCompletion(t *testing.T) {
	h := newHarness(t, testConfig())
	r := h.post("/v1/chat/completions", chatBody(t, conversation, map[string]any{"max_tokens": 40}))
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	c := decode[chatCompletion](t, r)
	if !strings.HasPrefix(c.ID, "chatcmpl-") || c.Object != "chat.completion" || c.Model != DefaultModelID || c.Created != h.clock.Now().Unix() {
		t.Errorf("unexpected envelope: %+v", c)
	}
	if len(c.Choices) != 1 {
		t.Fatalf("want one choice, got %d", len(c.Choices))
	}
	ch := c.Choices[0]
	if ch.Message.Role != "assistant" || ch.Message.Content == "" || ch.FinishReason == nil {
		t.Fatalf("unexpected choice: %+v", ch)
	}
	promptTokens := len(Tokenize("system: You are a helpful assistant.\nuser: Explain prefix caching in one paragraph, please.\n"))
	completionTokens := len(Tokenize(ch.Message.Content))
	want := openAIUsage{PromptTokens: promptTokens, CompletionTokens: completionTokens, TotalTokens: promptTokens + completionTokens}
	if diff := cmp.Diff(&want, c.Usage); diff != "" {
		t.Errorf("usage (-want +got):\n%s", diff)
	}
	if completionTokens > 40 || (*ch.FinishReason == "length") != (completionTokens == 40) {
		t.Errorf("%d tokens with finish_reason %q and max_tokens 40", completionTokens, *ch.FinishReason)
	}
	if strings.HasPrefix(ch.Message.Content, " ") {
		t.Errorf("a chat answer should not start with a space: %q", ch.Message.Content)
	}
}

// streamChat parses a streamed chat completion and returns its content,
// its finish reason and its usage.
func streamChat(t *testing.T, r response) (string, string, *openAIUsage) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q, want text/event-stream", ct)
	}
	events := sseData(t, r.body)
	if len(events) < 3 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("stream should have a role chunk, content chunks and [DONE]: %q", events)
	}
	var content strings.Builder
	var finish string
	var usage *openAIUsage
	for i, ev := range events[:len(events)-1] {
		var c chatCompletion
		if err := json.Unmarshal([]byte(ev), &c); err != nil {
			t.Fatalf("event %d %q: %v", i, ev, err)
		}
		if c.Object != "chat.completion.chunk" || !strings.HasPrefix(c.ID, "chatcmpl-") {
			t.Errorf("event %d: unexpected envelope %q", i, ev)
		}
		if c.Usage != nil {
			usage = c.Usage
			if len(c.Choices) != 0 {
				t.Errorf("the usage chunk should have no choices: %q", ev)
			}
			continue
		}
		d := c.Choices[0].Delta
		if i == 0 {
			if d.Role == nil || *d.Role != "assistant" {
				t.Errorf("the first chunk should carry the role: %q", ev)
			}
			continue
		}
		if finish != "" {
			t.Errorf("content after the finish reason: %q", ev)
		}
		if d.Content == nil {
			t.Fatalf("event %d has no content: %q", i, ev)
		}
		content.WriteString(*d.Content)
		if fr := c.Choices[0].FinishReason; fr != nil {
			finish = *fr
		}
	}
	return content.String(), finish, usage
}

func TestChatCompletionStreamReassemblesThePlainAnswer(t *testing.T) {
	for _, maxTokens := range []int{1, 5, 500} {
		h := newHarness(t, testConfig())
		plain := decode[chatCompletion](t, h.post("/v1/chat/completions", chatBody(t, conversation, map[string]any{"max_tokens": maxTokens})))
		streamed, finish, usage := streamChat(t, h.post("/v1/chat/completions", chatBody(t, conversation, map[string]any{
			"max_tokens": maxTokens, "stream": true, "stream_options": map[string]any{"include_usage": true},
		})))
		if streamed != plain.Choices[0].Message.Content {
			t.Errorf("max_tokens %d: streamed %q, plain %q", maxTokens, streamed, plain.Choices[0].Message.Content)
		}
		if finish != *plain.Choices[0].FinishReason {
			t.Errorf("max_tokens %d: streamed finish %q, plain %q", maxTokens, finish, *plain.Choices[0].FinishReason)
		}
		if usage == nil || usage.CompletionTokens != plain.Usage.CompletionTokens || usage.PromptTokens != plain.Usage.PromptTokens {
			t.Errorf("max_tokens %d: streamed usage %+v, plain %+v", maxTokens, usage, plain.Usage)
		}
	}
	// Without include_usage there is no usage chunk.
	h := newHarness(t, testConfig())
	if _, _, usage := streamChat(t, h.post("/v1/chat/completions", chatBody(t, conversation, map[string]any{"stream": true, "max_tokens": 3}))); usage != nil {
		t.Errorf("usage sent without stream_options.include_usage: %+v", usage)
	}
}

func TestChatCompletionStreamsOneChunkPerTokenAsDecoded(t *testing.T) {
	h := newHarness(t, testConfig())
	r := h.post("/v1/chat/completions", chatBody(t, conversation, map[string]any{"stream": true, "max_tokens": 7}))
	events := sseData(t, r.body)
	// role chunk + 7 token chunks + [DONE]
	if len(events) != 9 {
		t.Fatalf("want 9 events, got %d: %q", len(events), events)
	}
	sleeps := h.clock.takeSleeps()
	if len(sleeps) != 7 { // the prefill (the first token), then a decode step per token
		t.Errorf("want 1 prefill and 6 decode sleeps, got %v", sleeps)
	}
}

func TestChatCompletionValidation(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInputLength = 30
	cfg.MaxTotalTokens = 64
	long := []map[string]string{{"role": "user", "content": words(0, 40)}}
	cases := []struct {
		name   string
		body   string
		status int
		want   string
	}{
		{"empty body", "", 400, "the request body is empty"},
		{"invalid JSON", `{"messages": [`, 400, "invalid JSON"},
		{"not an object", `"hello"`, 400, "expected a JSON object"},
		{"trailing data", `{"messages": [{"role": "user", "content": "hi"}]} {}`, 400, "data after its JSON object"},
		{"missing messages", `{"model": "llama3-8b-sim"}`, 400, "messages is required"},
		{"empty messages", `{"messages": []}`, 400, "messages is required"},
		{"messages not an array", `{"messages": "hi"}`, 400, "messages: expected an array, got a JSON string"},
		{"missing role", `{"messages": [{"content": "hi"}]}`, 400, "messages[0].role is required"},
		{"bad role", `{"messages": [{"role": "robot", "content": "hi"}]}`, 400, `messages[0].role "robot" is not one of`},
		{"missing content", `{"messages": [{"role": "user"}]}`, 400, "messages[0].content: is required"},
		{"content a number", `{"messages": [{"role": "user", "content": 5}]}`, 400, "messages[0].content: must be a string or an array"},
		{"image part", `{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}`, 400, "only text parts"},
		{"max_tokens zero", chatBody(t, conversation, map[string]any{"max_tokens": 0}), 400, "max_tokens must be at least 1, got 0"},
		{"max_tokens negative", chatBody(t, conversation, map[string]any{"max_tokens": -3}), 400, "max_tokens must be at least 1, got -3"},
		{"max_completion_tokens zero", chatBody(t, conversation, map[string]any{"max_completion_tokens": 0}), 400, "max_completion_tokens must be at least 1"},
		{"max_tokens a string", chatBody(t, conversation, map[string]any{"max_tokens": "ten"}), 400, "max_tokens: expected an integer, got a JSON string"},
		{"max_tokens a fraction", chatBody(t, conversation, map[string]any{"max_tokens": 2.5}), 400, "max_tokens: expected an integer"},
		{"n two", chatBody(t, conversation, map[string]any{"n": 2}), 400, "n must be 1"},
		{"prompt too long", chatBody(t, long, nil), 400, "this model accepts at most 30 input tokens"},
		{"unknown model", `{"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}`, 404, `the model "gpt-4" does not exist`},
	}
	h := newHarness(t, cfg)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.post("/v1/chat/completions", tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			var e struct {
				Error struct {
					Message string `json:"message"`
					Type    string `json:"type"`
					Code    int    `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(r.body, &e); err != nil {
				t.Fatalf("error body %q is not JSON: %v", r.body, err)
			}
			if !strings.Contains(e.Error.Message, tc.want) {
				t.Errorf("message %q does not contain %q", e.Error.Message, tc.want)
			}
			if e.Error.Code != tc.status || e.Error.Type == "" {
				t.Errorf("error %+v should carry its type and code", e.Error)
			}
		})
	}
	st := h.srv.Stats()
	if st.RequestsReceived != uint64(len(cases)) || st.RequestsFailed != uint64(len(cases)) || st.RequestsSucceeded != 0 {
		t.Errorf("every invalid request should count as received and failed: %+v", st)
	}
	if sleeps := h.clock.takeSleeps(); len(sleeps) != 0 {
		t.Errorf("invalid requests should not be run, slept %v", sleeps)
	}
}

func TestChatContentParts(t *testing.T) {
	h := newHarness(t, testConfig())
	parts := `{"messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]}], "max_tokens": 3}`
	plain := `{"messages": [{"role": "user", "content": "Hello\nthere"}], "max_tokens": 3}`
	a := decode[chatCompletion](t, h.post("/v1/chat/completions", parts))
	b := decode[chatCompletion](t, h.post("/v1/chat/completions", plain))
	if a.Choices[0].Message.Content != b.Choices[0].Message.Content || a.Usage.PromptTokens != b.Usage.PromptTokens {
		t.Errorf("text parts should be joined like lines: %+v vs %+v", a, b)
	}
	// An assistant message without content (tool calls) is accepted.
	r := h.post("/v1/chat/completions", `{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": null}, {"role": "user", "content": "again"}], "max_tokens": 2}`)
	if r.status != http.StatusOK {
		t.Errorf("status %d: %s", r.status, r.body)
	}
}

func TestMaxTokensIsClampedToTheModelLimits(t *testing.T) {
	cfg := testConfig()
	cfg.MaxOutputLength = 5
	cfg.MaxInputLength = 20
	cfg.MaxTotalTokens = 24
	h := newHarness(t, cfg)
	c := decode[chatCompletion](t, h.post("/v1/completions", jsonBody(t, map[string]any{"prompt": words(0, 10), "max_tokens": 1000})))
	if c.Usage.CompletionTokens != 5 || *c.Choices[0].FinishReason != "length" {
		t.Errorf("max_tokens should be clamped to MaxOutputLength 5: %+v", c.Usage)
	}
	c = decode[chatCompletion](t, h.post("/v1/completions", jsonBody(t, map[string]any{"prompt": words(0, 20), "max_tokens": 1000})))
	if c.Usage.CompletionTokens != 4 {
		t.Errorf("prompt 20 + output may not exceed MaxTotalTokens 24: got %d completion tokens", c.Usage.CompletionTokens)
	}
}

func TestCompletions(t *testing.T) {
	h := newHarness(t, testConfig())
	r := h.post("/v1/completions", `{"model": "llama3-8b-sim", "prompt": "The cluster runs", "max_tokens": 12}`)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	c := decode[chatCompletion](t, r)
	if !strings.HasPrefix(c.ID, "cmpl-") || c.Object != "text_completion" || len(c.Choices) != 1 {
		t.Fatalf("unexpected completion %s", r.body)
	}
	text := c.Choices[0].Text
	if !strings.HasPrefix(text, " ") {
		t.Errorf("a completion continues its prompt and starts with a space: %q", text)
	}
	if got := len(Tokenize(text)); got != c.Usage.CompletionTokens || c.Usage.PromptTokens != 3 || c.Usage.TotalTokens != 3+got {
		t.Errorf("usage %+v for %d generated tokens", c.Usage, got)
	}

	// Streaming reassembles the same text.
	s := h.post("/v1/completions", `{"prompt": "The cluster runs", "max_tokens": 12, "stream": true}`)
	events := sseData(t, s.body)
	if events[len(events)-1] != "[DONE]" {
		t.Fatalf("no [DONE]: %q", events)
	}
	var streamed strings.Builder
	var finish string
	for _, ev := range events[:len(events)-1] {
		chunk := decode[chatCompletion](t, response{body: []byte(ev)})
		if chunk.Object != "text_completion" {
			t.Errorf("chunk object %q", chunk.Object)
		}
		streamed.WriteString(chunk.Choices[0].Text)
		if fr := chunk.Choices[0].FinishReason; fr != nil {
			finish = *fr
		}
	}
	if streamed.String() != text || finish != *c.Choices[0].FinishReason {
		t.Errorf("streamed %q (%s), plain %q (%s)", streamed.String(), finish, text, *c.Choices[0].FinishReason)
	}

	// A one-element prompt array is the same prompt; max_tokens defaults to 16.
	arr := decode[chatCompletion](t, h.post("/v1/completions", `{"prompt": ["The cluster runs"], "max_tokens": 12}`))
	if arr.Choices[0].Text != text {
		t.Errorf("prompt array answered %q, string %q", arr.Choices[0].Text, text)
	}
	def := decode[chatCompletion](t, h.post("/v1/completions", `{"prompt": "`+words(0, 3)+`"}`))
	if def.Usage.CompletionTokens > 16 {
		t.Errorf("default max_tokens should be 16, got %d tokens", def.Usage.CompletionTokens)
	}
}

func TestCompletionsValidation(t *testing.T) {
	h := newHarness(t, testConfig())
	cases := map[string]struct{ body, want string }{
		"missing prompt":    {`{"max_tokens": 3}`, "prompt is required"},
		"empty prompt":      {`{"prompt": "   "}`, "the prompt is empty"},
		"two prompts":       {`{"prompt": ["a", "b"]}`, "one prompt per request, got 2"},
		"token ids":         {`{"prompt": [1, 2, 3]}`, "prompt must be a string"},
		"max_tokens zero":   {`{"prompt": "hi", "max_tokens": 0}`, "max_tokens must be at least 1, got 0"},
		"max_tokens string": {`{"prompt": "hi", "max_tokens": "3"}`, "max_tokens: expected an integer"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r := h.post("/v1/completions", tc.body)
			if r.status != http.StatusBadRequest || !bytes.Contains(r.body, []byte(tc.want)) {
				t.Errorf("status %d body %s, want 400 with %q", r.status, r.body, tc.want)
			}
		})
	}
}

func TestAnswersAreDeterministic(t *testing.T) {
	body := chatBody(t, conversation, map[string]any{"max_tokens": 60})
	a := newHarness(t, testConfig()).post("/v1/chat/completions", body)
	// A different server, a different time, a warm cache: the same answer.
	hb := newHarness(t, testConfig())
	hb.clock.Advance(12345 * 1e9)
	hb.post("/v1/chat/completions", body)
	b := hb.post("/v1/chat/completions", body)
	ca, cb := decode[chatCompletion](t, a), decode[chatCompletion](t, b)
	if ca.Choices[0].Message.Content != cb.Choices[0].Message.Content {
		t.Errorf("same request, different answers:\n%q\n%q", ca.Choices[0].Message.Content, cb.Choices[0].Message.Content)
	}
	other := decode[chatCompletion](t, hb.post("/v1/chat/completions", chatBody(t, []map[string]string{{"role": "user", "content": "Something else"}}, map[string]any{"max_tokens": 60})))
	if other.Choices[0].Message.Content == ca.Choices[0].Message.Content {
		t.Error("different prompts gave the same answer")
	}
	short := decode[chatCompletion](t, hb.post("/v1/chat/completions", chatBody(t, conversation, map[string]any{"max_tokens": 3})))
	if !strings.HasPrefix(ca.Choices[0].Message.Content, short.Choices[0].Message.Content) {
		t.Errorf("a shorter max_tokens should give a prefix: %q vs %q", short.Choices[0].Message.Content, ca.Choices[0].Message.Content)
	}
}

func TestFinishReasonStopAndLength(t *testing.T) {
	h := newHarness(t, testConfig())
	full := decode[chatCompletion](t, h.post("/v1/completions", `{"prompt": "ping", "max_tokens": 500}`))
	if *full.Choices[0].FinishReason != "stop" || !strings.HasSuffix(full.Choices[0].Text, ".") {
		t.Errorf("with room to spare the answer should stop by itself with a full stop: %+v", full.Choices[0])
	}
	n := full.Usage.CompletionTokens
	cut := decode[chatCompletion](t, h.post("/v1/completions", jsonBody(t, map[string]any{"prompt": "ping", "max_tokens": n - 1})))
	if *cut.Choices[0].FinishReason != "length" || cut.Usage.CompletionTokens != n-1 {
		t.Errorf("max_tokens %d: %+v %+v", n-1, cut.Choices[0], cut.Usage)
	}
}

type tgiAnswer struct {
	GeneratedText string `json:"generated_text"`
	Details       *struct {
		FinishReason    string     `json:"finish_reason"`
		GeneratedTokens int        `json:"generated_tokens"`
		Tokens          []tgiToken `json:"tokens"`
	} `json:"details"`
}

type tgiEvent struct {
	Index         int       `json:"index"`
	Token         tgiToken  `json:"token"`
	GeneratedText *string   `json:"generated_text"`
	Details       *struct { // only on the last event
		FinishReason    string `json:"finish_reason"`
		GeneratedTokens int    `json:"generated_tokens"`
	} `json:"details"`
}

// tgiStreamText checks a TGI stream and returns its generated text and its
// finish reason.
func tgiStreamText(t *testing.T, r response) (string, string) {
	t.Helper()
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q: %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	events := sseData(t, r.body)
	var text strings.Builder
	for i, raw := range events {
		ev := decode[tgiEvent](t, response{body: []byte(raw)})
		if ev.Index != i+1 {
			t.Errorf("event %d has index %d", i, ev.Index)
		}
		text.WriteString(ev.Token.Text)
		last := i == len(events)-1
		if (ev.GeneratedText != nil) != last || (ev.Details != nil) != last {
			t.Fatalf("only the last event carries generated_text and details: %q", raw)
		}
		if last {
			if *ev.GeneratedText != text.String() || ev.Details.GeneratedTokens != len(events) {
				t.Errorf("last event %q does not sum up the stream %q", raw, text.String())
			}
			return text.String(), ev.Details.FinishReason
		}
	}
	t.Fatal("empty stream")
	return "", ""
}

func TestTGIGenerate(t *testing.T) {
	h := newHarness(t, testConfig())
	r := h.post("/generate", `{"inputs": "My name is Olivier and I", "parameters": {"max_new_tokens": 10, "details": true}}`)
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	a := decode[tgiAnswer](t, r)
	if a.Details == nil || a.Details.GeneratedTokens != len(Tokenize(a.GeneratedText)) || len(a.Details.Tokens) != a.Details.GeneratedTokens {
		t.Fatalf("details do not match the text: %s", r.body)
	}
	if a.Details.FinishReason != "length" && a.Details.FinishReason != "eos_token" {
		t.Errorf("finish_reason %q is not TGI's", a.Details.FinishReason)
	}
	var joined strings.Builder
	for _, tok := range a.Details.Tokens {
		joined.WriteString(tok.Text)
	}
	if joined.String() != a.GeneratedText {
		t.Errorf("details tokens %q do not spell the text %q", joined.String(), a.GeneratedText)
	}

	full := decode[tgiAnswer](t, h.post("/generate", `{"inputs": "My name is Olivier and I", "parameters": {"max_new_tokens": 10, "return_full_text": true}}`))
	if full.GeneratedText != "My name is Olivier and I"+a.GeneratedText || full.Details != nil {
		t.Errorf("return_full_text: %q", full.GeneratedText)
	}

	streamed, finish := tgiStreamText(t, h.post("/generate_stream", `{"inputs": "My name is Olivier and I", "parameters": {"max_new_tokens": 10}}`))
	if streamed != a.GeneratedText || finish != a.Details.FinishReason {
		t.Errorf("generate_stream %q (%s), generate %q (%s)", streamed, finish, a.GeneratedText, a.Details.FinishReason)
	}

	def := decode[tgiAnswer](t, h.post("/generate", `{"inputs": "`+words(0, 2)+`"}`))
	if n := len(Tokenize(def.GeneratedText)); n > defaultNewTokens {
		t.Errorf("default max_new_tokens is %d, generated %d", defaultNewTokens, n)
	}
	for _, path := range []string{"/generate", "/generate_stream", "/infer"} {
		r := h.post(path, `{"parameters": {"max_new_tokens": 3}}`)
		var e struct{ Error, ErrorType string }
		if err := json.Unmarshal(r.body, &e); r.status != http.StatusBadRequest || err != nil || !strings.Contains(e.Error, "inputs is required") {
			t.Errorf("%s without inputs: %d %s", path, r.status, r.body)
		}
		r = h.post(path, `{"inputs": "x", "parameters": {"max_new_tokens": 0}}`)
		if r.status != http.StatusBadRequest || !bytes.Contains(r.body, []byte("parameters.max_new_tokens must be at least 1")) {
			t.Errorf("%s with max_new_tokens 0: %d %s", path, r.status, r.body)
		}
	}
}

func TestVLLMGenerate(t *testing.T) {
	h := newHarness(t, testConfig())
	r := h.post("/generate", `{"prompt": "San Francisco is a", "max_tokens": 6}`)
	var v struct{ Text []string }
	if err := json.Unmarshal(r.body, &v); r.status != http.StatusOK || err != nil || len(v.Text) != 1 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if !strings.HasPrefix(v.Text[0], "San Francisco is a ") || len(Tokenize(v.Text[0])) != 4+6 {
		t.Errorf("vLLM returns the prompt and 6 tokens, got %q", v.Text[0])
	}
	s := h.post("/generate", `{"prompt": "San Francisco is a", "max_tokens": 6, "stream": true}`)
	chunks := bytes.Split(bytes.TrimSuffix(s.body, []byte{0}), []byte{0})
	if len(chunks) != 6 {
		t.Fatalf("want 6 NUL-separated chunks, got %d: %q", len(chunks), s.body)
	}
	var last struct{ Text []string }
	if err := json.Unmarshal(chunks[5], &last); err != nil || last.Text[0] != v.Text[0] {
		t.Errorf("the last chunk %q should hold the whole text %q", chunks[5], v.Text[0])
	}
}

func TestInfer(t *testing.T) {
	h := newHarness(t, testConfig())
	plain := decode[tgiAnswer](t, h.post("/infer", `{"inputs": "What is MindIE?", "stream": false, "parameters": {"max_new_tokens": 9}}`))
	tgi := decode[tgiAnswer](t, h.post("/generate", `{"inputs": "What is MindIE?", "parameters": {"max_new_tokens": 9}}`))
	if plain.GeneratedText == "" || plain.GeneratedText != tgi.GeneratedText {
		t.Errorf("/infer %q, /generate %q", plain.GeneratedText, tgi.GeneratedText)
	}
	streamed, _ := tgiStreamText(t, h.post("/infer", `{"inputs": "What is MindIE?", "stream": true, "parameters": {"max_new_tokens": 9}}`))
	if streamed != plain.GeneratedText {
		t.Errorf("streamed /infer %q, plain %q", streamed, plain.GeneratedText)
	}
}

func TestTritonGenerate(t *testing.T) {
	h := newHarness(t, testConfig())
	r := h.post("/v2/models/llama3-8b-sim/generate", `{"text_input": "Hello NPU", "parameters": {"max_tokens": 5}}`)
	var v struct {
		ModelName    string `json:"model_name"`
		ModelVersion string `json:"model_version"`
		TextOutput   string `json:"text_output"`
	}
	if err := json.Unmarshal(r.body, &v); r.status != http.StatusOK || err != nil {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if v.ModelName != DefaultModelID || v.ModelVersion == "" || len(Tokenize(v.TextOutput)) != 5 {
		t.Errorf("unexpected answer %s", r.body)
	}
	s := h.post("/v2/models/llama3-8b-sim/generate_stream", `{"text_input": "Hello NPU", "parameters": {"max_tokens": 5}}`)
	var streamed strings.Builder
	for _, ev := range sseData(t, s.body) {
		var c struct {
			TextOutput string `json:"text_output"`
		}
		if err := json.Unmarshal([]byte(ev), &c); err != nil {
			t.Fatal(err)
		}
		streamed.WriteString(c.TextOutput)
	}
	if streamed.String() != v.TextOutput {
		t.Errorf("streamed %q, plain %q", streamed.String(), v.TextOutput)
	}
	if r := h.post("/v2/models/other/generate", `{"text_input": "x"}`); r.status != http.StatusNotFound {
		t.Errorf("unknown model: status %d", r.status)
	}
	if r := h.post("/v2/models/llama3-8b-sim/generate", `{"parameters": {}}`); r.status != http.StatusBadRequest || !bytes.Contains(r.body, []byte("text_input is required")) {
		t.Errorf("missing text_input: %d %s", r.status, r.body)
	}
}

func TestModels(t *testing.T) {
	h := newHarness(t, testConfig())
	r := h.getInference("/v1/models")
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID          string `json:"id"`
			Object      string `json:"object"`
			OwnedBy     string `json:"owned_by"`
			MaxModelLen int    `json:"max_model_len"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &list); r.status != http.StatusOK || err != nil {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if list.Object != "list" || len(list.Data) != 1 || list.Data[0].ID != DefaultModelID || list.Data[0].Object != "model" || list.Data[0].MaxModelLen != DefaultMaxTotalTokens {
		t.Errorf("unexpected model list %s", r.body)
	}
	if r := h.getInference("/v1/models/" + DefaultModelID); r.status != http.StatusOK {
		t.Errorf("GET /v1/models/<id>: %d", r.status)
	}
	if r := h.getInference("/v1/models/unknown"); r.status != http.StatusNotFound {
		t.Errorf("GET /v1/models/unknown: %d", r.status)
	}
	if r := h.getInference("/v1/chat/completions"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET on a POST endpoint: %d", r.status)
	}
}

func TestTokenizer(t *testing.T) {
	h := newHarness(t, testConfig())
	r := h.post("/v1/tokenizer", `{"inputs": "Hello, world!"}`)
	if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"token_number":4}` {
		t.Errorf("status %d: %s", r.status, r.body)
	}
	if r := h.post("/v1/tokenizer", `{}`); r.status != http.StatusBadRequest {
		t.Errorf("missing inputs: %d", r.status)
	}
	if h.srv.Stats().RequestsReceived != 0 {
		t.Error("tokenizer calls are not generation requests")
	}
}

func TestPrometheusMetrics(t *testing.T) {
	h := newHarness(t, testConfig())
	prompt := words(0, 10) // 3 blocks of 4
	h.post("/v1/completions", jsonBody(t, map[string]any{"prompt": prompt, "max_tokens": 3}))
	h.post("/v1/completions", jsonBody(t, map[string]any{"prompt": prompt, "max_tokens": 3}))
	h.post("/v1/completions", `{"prompt": ""}`)
	r := h.getInference("/metrics")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("status %d Content-Type %q", r.status, r.header.Get("Content-Type"))
	}
	lines := strings.Split(string(r.body), "\n")
	for _, want := range []string{
		`mindie_simulator_info{model_name="llama3-8b-sim",version="0.1.0-simulator"} 1`,
		`request_received_total{model_name="llama3-8b-sim"} 3`,
		`request_success_total{model_name="llama3-8b-sim"} 2`,
		`request_failed_total{model_name="llama3-8b-sim"} 1`,
		`prompt_tokens_total{model_name="llama3-8b-sim"} 20`,
		`generation_tokens_total{model_name="llama3-8b-sim"} 6`,
		`prefix_cache_hits_total{model_name="llama3-8b-sim"} 3`,
		`prefix_cache_misses_total{model_name="llama3-8b-sim"} 3`,
		`npu_prefix_cache_hit_rate{model_name="llama3-8b-sim"} 0.5`,
		`num_requests_running{model_name="llama3-8b-sim"} 0`,
		`num_requests_waiting{model_name="llama3-8b-sim"} 0`,
		`npu_cache_usage_perc{model_name="llama3-8b-sim"} 0`,
		`# TYPE request_received_total counter`,
		`# TYPE num_requests_running gauge`,
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("/metrics lacks the line %q:\n%s", want, r.body)
		}
	}
	for _, l := range lines {
		if l != "" && !strings.HasPrefix(l, "# ") && len(strings.Fields(l)) != 2 {
			t.Errorf("malformed sample line %q", l)
		}
	}
}

func TestInferenceRequestsAreLogged(t *testing.T) {
	h := newHarness(t, testConfig())
	h.post("/v1/completions", `{"prompt": "hi", "max_tokens": 1}`)
	h.post("/v1/completions", `{"prompt": ""}`)
	log := h.log.String()
	for _, want := range []string{
		"mindie-simulator: starting MindIE Server SIMULATOR 0.1.0-simulator",
		"mindie-simulator: model llama3-8b-sim loaded",
		"mindie-simulator: inference POST /v1/completions 200",
		"mindie-simulator: inference POST /v1/completions 400",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}
