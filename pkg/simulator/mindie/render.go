package mindie

import (
	"encoding/json"
	"strings"
)

// The APIs an answer can be written in (answerFormat.API).
const (
	apiChat        = "chat"        // OpenAI /v1/chat/completions
	apiCompletions = "completions" // OpenAI /v1/completions
	apiTGI         = "tgi"         // TGI /generate, /generate_stream and MindIE's /infer
	apiVLLM        = "vllm"        // vLLM /generate (not streamed: see vllmGenerate)
	apiTriton      = "triton"      // Triton /v2/models/<model>/generate[_stream]
)

// answerFormat is how a generation request's answer is written: its API,
// whether it is streamed, and the parts of the request that show in the
// answer. Every answer is rendered from it, so that a decode instance,
// which receives it with a handed-off request, writes the rest of the
// answer exactly as a single instance would have written it.
type answerFormat struct {
	API     string `json:"api"`
	Stream  bool   `json:"stream"`
	ID      string `json:"id,omitempty"`      // OpenAI's response id
	Created int64  `json:"created,omitempty"` // OpenAI's created, Unix seconds
	Model   string `json:"model"`             // the served model's name
	// OpenAI stream_options.include_usage.
	IncludeUsage bool `json:"includeUsage,omitempty"`
	// TGI's inputs (echoed with return_full_text) or vLLM's prompt (always
	// echoed).
	Input          string `json:"input,omitempty"`
	ReturnFullText bool   `json:"returnFullText,omitempty"`
	Details        bool   `json:"details,omitempty"` // TGI parameters.details
}

// streamHead is what a stream sends before its first token's event.
func (f *answerFormat) streamHead() []any {
	if f.API == apiChat {
		return []any{f.chatChunk(map[string]any{"role": "assistant", "content": ""}, nil)}
	}
	return nil
}

// streamEvent is the event of token i (of out, whose pieces are given).
func (f *answerFormat) streamEvent(out completion, pieces []string, i int) any {
	last := i == len(out.tokens)-1
	var finish any
	if last {
		finish = out.finish
	}
	switch f.API {
	case apiChat:
		return f.chatChunk(map[string]any{"content": pieces[i]}, finish)
	case apiCompletions:
		return map[string]any{
			"id": f.ID, "object": "text_completion", "created": f.Created, "model": f.Model,
			"choices": []any{completionChoice(pieces[i], finish)},
		}
	case apiTriton:
		return f.tritonAnswer(pieces[i])
	}
	// TGI: the last event carries the whole text and the details.
	ev := map[string]any{
		"index":          i + 1,
		"token":          tgiToken{ID: tokenID(out.tokens[i]), Text: pieces[i]},
		"generated_text": nil,
		"details":        nil,
	}
	if last {
		full := strings.Join(pieces, "")
		if f.ReturnFullText {
			full = f.Input + full
		}
		ev["generated_text"] = full
		ev["details"] = map[string]any{
			"finish_reason": tgiFinishReason(out.finish), "generated_tokens": len(pieces), "seed": nil,
		}
	}
	return ev
}

// streamTail is what a stream sends after its last token's event.
func (f *answerFormat) streamTail(g *generation) []any {
	if f.API != apiChat && f.API != apiCompletions {
		return nil
	}
	if !f.IncludeUsage {
		return []any{"[DONE]"}
	}
	object := "chat.completion.chunk"
	if f.API == apiCompletions {
		object = "text_completion"
	}
	return []any{map[string]any{
		"id": f.ID, "object": object, "created": f.Created, "model": f.Model,
		"choices": []any{}, "usage": usageOf(g),
	}, "[DONE]"}
}

// body is the answer of a request that is not streamed.
func (f *answerFormat) body(g *generation) any {
	switch f.API {
	case apiChat:
		return map[string]any{
			"id": f.ID, "object": "chat.completion", "created": f.Created, "model": f.Model,
			"choices": []any{map[string]any{
				"index":         0,
				"message":       map[string]any{"role": "assistant", "content": g.text()},
				"logprobs":      nil,
				"finish_reason": g.finish,
			}},
			"usage": usageOf(g),
		}
	case apiCompletions:
		return map[string]any{
			"id": f.ID, "object": "text_completion", "created": f.Created, "model": f.Model,
			"choices": []any{completionChoice(g.text(), g.finish)},
			"usage":   usageOf(g),
		}
	case apiVLLM:
		return map[string]any{"text": []string{f.Input + g.text()}}
	case apiTriton:
		return f.tritonAnswer(g.text())
	}
	text := g.text()
	if f.ReturnFullText {
		text = f.Input + text
	}
	resp := map[string]any{"generated_text": text}
	if f.Details {
		tokens := make([]tgiToken, len(g.tokens))
		for i, tok := range g.tokens {
			tokens[i] = tgiToken{ID: tokenID(tok), Text: g.pieces[i]}
		}
		resp["details"] = map[string]any{
			"finish_reason": tgiFinishReason(g.finish), "generated_tokens": len(g.tokens), "seed": nil,
			"prefill": []any{}, "tokens": tokens,
		}
	}
	return resp
}

func (f *answerFormat) chatChunk(delta map[string]any, finish any) map[string]any {
	return map[string]any{
		"id": f.ID, "object": "chat.completion.chunk", "created": f.Created, "model": f.Model,
		"choices": []any{map[string]any{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}},
	}
}

func completionChoice(text string, finish any) map[string]any {
	return map[string]any{"index": 0, "text": text, "logprobs": nil, "finish_reason": finish}
}

func (f *answerFormat) tritonAnswer(text string) map[string]any {
	return map[string]any{"model_name": f.Model, "model_version": "1", "text_output": text}
}

// sseEvent is one server-sent event, "data: <payload>\n\n"; payload is
// JSON-encoded unless it is a string.
func sseEvent(payload any) ([]byte, error) {
	var body []byte
	if str, ok := payload.(string); ok {
		body = []byte(str)
	} else {
		var err error
		if body, err = json.Marshal(payload); err != nil {
			return nil, err
		}
	}
	buf := make([]byte, 0, len(body)+8)
	buf = append(buf, "data: "...)
	buf = append(buf, body...)
	return append(buf, "\n\n"...), nil
}

// sseEvents concatenates the events of payloads.
func sseEvents(payloads ...any) ([]byte, error) {
	var out []byte
	for _, p := range payloads {
		ev, err := sseEvent(p)
		if err != nil {
			return nil, err
		}
		out = append(out, ev...)
	}
	return out, nil
}

// jsonLine is v as writeJSON writes it: JSON and a newline.
func jsonLine(v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(body, '\n'), nil
}
