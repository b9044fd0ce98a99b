package mindie

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Default max_tokens when a request leaves it out, per API, as the real
// servers have it; chat completions default to Config.MaxOutputLength.
const (
	defaultCompletionTokens = 16 // OpenAI completions and vLLM
	defaultNewTokens        = 20 // TGI, MindIE /infer and Triton
)

// InferenceHandler returns the handler of the inference port.
func (s *Server) InferenceHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.generation(openAIErrors, s.handleChatCompletions))
	mux.HandleFunc("POST /v1/completions", s.generation(openAIErrors, s.handleCompletions))
	mux.HandleFunc("GET /v1/models", s.handleModels)
	mux.HandleFunc("GET /v1/models/{model}", s.handleModel)
	mux.HandleFunc("POST /generate", s.generation(plainErrors, s.handleGenerate))
	mux.HandleFunc("POST /generate_stream", s.generation(plainErrors, s.handleGenerateStream))
	mux.HandleFunc("POST /infer", s.generation(plainErrors, s.handleInfer))
	mux.HandleFunc("POST /v2/models/{model}/generate", s.generation(plainErrors, s.handleTritonGenerate(false)))
	mux.HandleFunc("POST /v2/models/{model}/generate_stream", s.generation(plainErrors, s.handleTritonGenerate(true)))
	mux.HandleFunc("POST /v1/tokenizer", s.handleTokenizer)
	mux.HandleFunc("GET /metrics", s.handleMetrics)
	// PD disaggregation (pd.go, dresult.go).
	mux.HandleFunc("POST "+HandoffPath, s.handleHandoff)
	mux.HandleFunc("GET /dresult", s.handleDResult)
	return s.instrument("inference", mux, nil)
}

// reject answers a generation request that failed before it was run.
func (s *Server) reject(w http.ResponseWriter, style errorStyle, e *apiError) {
	s.failed.Add(1)
	writeAPIError(w, style, e)
}

// checkModel accepts an empty model name (the served one) or the served one.
func (s *Server) checkModel(model string) *apiError {
	if model == "" || model == s.cfg.ModelID {
		return nil
	}
	return &apiError{status: http.StatusNotFound, kind: kindNotFound,
		msg: fmt.Sprintf("the model %q does not exist: this server serves %q", model, s.cfg.ModelID)}
}

// checkOpenAIRequest checks what every OpenAI request shares: a model this
// server serves (or none) and a single choice.
func (s *Server) checkOpenAIRequest(model string, n *int) *apiError {
	if err := s.checkModel(model); err != nil {
		return err
	}
	if n != nil && *n != 1 {
		return badRequest("n must be 1: the simulator generates a single choice, got %d", *n)
	}
	return nil
}

// respond runs j and answers in format f: the whole answer, or (a PD
// prefill request, see pd.go) the prefill instance's reply.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, style errorStyle, j *job, f *answerFormat) {
	if pd := pdOf(r); pd != nil {
		s.prefillForPD(w, r, style, j, f, pd)
		return
	}
	if f.Stream {
		s.stream(w, r, style, j, f)
		return
	}
	g, err := s.execute(r.Context(), j, nil)
	if err != nil {
		answerFailure(w, style, err)
		return
	}
	writeJSON(w, http.StatusOK, f.body(g))
}

// stream runs j and streams it as server-sent events: f's head before the
// first token, an event for each token, then f's tail.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, style errorStyle, j *job, f *answerFormat) {
	sw := newSSEWriter(w)
	pieces := j.out.pieces(j.leadingSpace)
	g, err := s.execute(r.Context(), j, func(i int, _ string) error {
		if i == 0 {
			for _, h := range f.streamHead() {
				if err := sw.data(h); err != nil {
					return err
				}
			}
		}
		return sw.data(f.streamEvent(j.out, pieces, i))
	})
	if err != nil {
		sw.fail(style, err)
		return
	}
	for _, t := range f.streamTail(g) {
		if sw.data(t) != nil {
			return
		}
	}
}

// ---- OpenAI ----

type openAIUsage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

func usageOf(g *generation) openAIUsage {
	u := openAIUsage{PromptTokens: g.promptTokens, CompletionTokens: len(g.tokens), TotalTokens: g.promptTokens + len(g.tokens)}
	u.PromptTokensDetails.CachedTokens = g.cachedTokens
	return u
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatRequest struct {
	Model               string         `json:"model"`
	Messages            []chatMessage  `json:"messages"`
	MaxTokens           *int           `json:"max_tokens"`
	MaxCompletionTokens *int           `json:"max_completion_tokens"`
	N                   *int           `json:"n"`
	Stream              bool           `json:"stream"`
	StreamOptions       *streamOptions `json:"stream_options"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

var chatRoles = map[string]bool{"system": true, "user": true, "assistant": true, "tool": true, "developer": true, "function": true}

// chatTurns validates chat messages and reduces them to text.
func chatTurns(messages []chatMessage) ([]chatTurn, *apiError) {
	if len(messages) == 0 {
		return nil, badRequest("messages is required and must be a non-empty array of {role, content}")
	}
	turns := make([]chatTurn, 0, len(messages))
	for i, m := range messages {
		if m.Role == "" {
			return nil, badRequest("messages[%d].role is required", i)
		}
		if !chatRoles[m.Role] {
			return nil, badRequest("messages[%d].role %q is not one of system, user, assistant, tool, developer", i, m.Role)
		}
		content, err := messageText(m)
		if err != nil {
			return nil, badRequest("messages[%d].content: %s", i, err.msg)
		}
		turns = append(turns, chatTurn{role: m.Role, content: content})
	}
	return turns, nil
}

// messageText returns a message's content: a string or an array of text
// parts. Only an assistant message may have none (it made tool calls).
func messageText(m chatMessage) (string, *apiError) {
	raw := strings.TrimSpace(string(m.Content))
	if raw == "" || raw == "null" {
		if m.Role == "assistant" {
			return "", nil
		}
		return "", badRequest("is required")
	}
	var text string
	if json.Unmarshal(m.Content, &text) == nil {
		return text, nil
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(m.Content, &parts); err != nil {
		return "", badRequest("must be a string or an array of {\"type\":\"text\",\"text\":...} parts")
	}
	texts := make([]string, 0, len(parts))
	for j, p := range parts {
		if p.Type != "text" || p.Text == nil {
			return "", badRequest("part %d: only text parts ({\"type\":\"text\",\"text\":...}) are supported, got type %q", j, p.Type)
		}
		texts = append(texts, *p.Text)
	}
	return strings.Join(texts, "\n"), nil
}

func (s *Server) handleChatCompletions(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if err := decodeJSON(r, &req); err != nil {
		s.reject(w, openAIErrors, err)
		return
	}
	if err := s.checkOpenAIRequest(req.Model, req.N); err != nil {
		s.reject(w, openAIErrors, err)
		return
	}
	turns, apiErr := chatTurns(req.Messages)
	if apiErr != nil {
		s.reject(w, openAIErrors, apiErr)
		return
	}
	maxTokens, field := req.MaxTokens, "max_tokens"
	if maxTokens == nil {
		maxTokens, field = req.MaxCompletionTokens, "max_completion_tokens"
	}
	j, apiErr := s.newJob(Tokenize(chatPromptText(turns)), maxTokens, field, s.cfg.MaxOutputLength, false)
	if apiErr != nil {
		s.reject(w, openAIErrors, apiErr)
		return
	}
	s.respond(w, r, openAIErrors, j, &answerFormat{
		API: apiChat, Stream: req.Stream, ID: fmt.Sprintf("chatcmpl-sim-%d", requestSeq(r)), Created: s.clock.Now().Unix(),
		Model: s.cfg.ModelID, IncludeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage,
	})
}

type completionRequest struct {
	Model         string          `json:"model"`
	Prompt        json.RawMessage `json:"prompt"`
	MaxTokens     *int            `json:"max_tokens"`
	N             *int            `json:"n"`
	Stream        bool            `json:"stream"`
	StreamOptions *streamOptions  `json:"stream_options"`
}

// promptText accepts a prompt that is a string or an array of one string.
func promptText(raw json.RawMessage, field string) (string, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", badRequest("%s is required", field)
	}
	var text string
	if json.Unmarshal(raw, &text) == nil {
		return text, nil
	}
	var texts []string
	if json.Unmarshal(raw, &texts) == nil {
		if len(texts) != 1 {
			return "", badRequest("%s: the simulator takes one prompt per request, got %d", field, len(texts))
		}
		return texts[0], nil
	}
	return "", badRequest("%s must be a string (token-id prompts are not supported)", field)
}

func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if err := decodeJSON(r, &req); err != nil {
		s.reject(w, openAIErrors, err)
		return
	}
	if err := s.checkOpenAIRequest(req.Model, req.N); err != nil {
		s.reject(w, openAIErrors, err)
		return
	}
	prompt, apiErr := promptText(req.Prompt, "prompt")
	if apiErr != nil {
		s.reject(w, openAIErrors, apiErr)
		return
	}
	j, apiErr := s.newJob(Tokenize(prompt), req.MaxTokens, "max_tokens", defaultCompletionTokens, true)
	if apiErr != nil {
		s.reject(w, openAIErrors, apiErr)
		return
	}
	s.respond(w, r, openAIErrors, j, &answerFormat{
		API: apiCompletions, Stream: req.Stream, ID: fmt.Sprintf("cmpl-sim-%d", requestSeq(r)), Created: s.clock.Now().Unix(),
		Model: s.cfg.ModelID, IncludeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage,
	})
}

func (s *Server) modelCard() map[string]any {
	return map[string]any{
		"id":            s.cfg.ModelID,
		"object":        "model",
		"created":       s.start.Unix(),
		"owned_by":      "mindie-simulator",
		"root":          s.cfg.ModelID,
		"max_model_len": s.cfg.MaxTotalTokens,
	}
}

func (s *Server) handleModels(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []any{s.modelCard()}})
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	if err := s.checkModel(r.PathValue("model")); err != nil {
		writeAPIError(w, openAIErrors, err)
		return
	}
	writeJSON(w, http.StatusOK, s.modelCard())
}

// ---- TGI, vLLM and MindIE's native /infer ----

type tgiRequest struct {
	Inputs     *string `json:"inputs"`
	Stream     bool    `json:"stream"`
	Parameters struct {
		MaxNewTokens   *int `json:"max_new_tokens"`
		Details        bool `json:"details"`
		ReturnFullText bool `json:"return_full_text"`
	} `json:"parameters"`

	// vLLM's /generate.
	Prompt    json.RawMessage `json:"prompt"`
	MaxTokens *int            `json:"max_tokens"`
}

type tgiToken struct {
	ID      uint32  `json:"id"`
	Text    string  `json:"text"`
	Logprob float64 `json:"logprob"`
	Special bool    `json:"special"`
}

// tgiFinishReason maps "stop" to TGI's name for it.
func tgiFinishReason(finish string) string {
	if finish == "stop" {
		return "eos_token"
	}
	return finish
}

// tgiJob validates a TGI-style request body.
func (s *Server) tgiJob(req *tgiRequest) (*job, *apiError) {
	if req.Inputs == nil {
		return nil, badRequest("inputs is required: the prompt, a string")
	}
	return s.newJob(Tokenize(*req.Inputs), req.Parameters.MaxNewTokens, "parameters.max_new_tokens", defaultNewTokens, true)
}

// tgiFormat is the answer format of a TGI-style request.
func (s *Server) tgiFormat(req *tgiRequest, stream bool) *answerFormat {
	return &answerFormat{
		API: apiTGI, Stream: stream, Model: s.cfg.ModelID, Input: *req.Inputs,
		ReturnFullText: req.Parameters.ReturnFullText, Details: req.Parameters.Details,
	}
}

// handleGenerate serves POST /generate: TGI's format, or vLLM's when the
// body has "prompt" and no "inputs".
func (s *Server) handleGenerate(w http.ResponseWriter, r *http.Request) {
	var req tgiRequest
	if err := decodeJSON(r, &req); err != nil {
		s.reject(w, plainErrors, err)
		return
	}
	if req.Inputs == nil && req.Prompt != nil {
		s.vllmGenerate(w, r, &req)
		return
	}
	j, apiErr := s.tgiJob(&req)
	if apiErr != nil {
		s.reject(w, plainErrors, apiErr)
		return
	}
	s.respond(w, r, plainErrors, j, s.tgiFormat(&req, false))
}

// handleGenerateStream serves TGI's /generate_stream: one event per token,
// the last one carrying the whole generated text and the details.
func (s *Server) handleGenerateStream(w http.ResponseWriter, r *http.Request) {
	var req tgiRequest
	if err := decodeJSON(r, &req); err != nil {
		s.reject(w, plainErrors, err)
		return
	}
	j, apiErr := s.tgiJob(&req)
	if apiErr != nil {
		s.reject(w, plainErrors, apiErr)
		return
	}
	s.respond(w, r, plainErrors, j, s.tgiFormat(&req, true))
}

// handleInfer serves MindIE's native POST /infer: TGI's body and answers,
// streamed when the body says "stream": true.
func (s *Server) handleInfer(w http.ResponseWriter, r *http.Request) {
	var req tgiRequest
	if err := decodeJSON(r, &req); err != nil {
		s.reject(w, plainErrors, err)
		return
	}
	j, apiErr := s.tgiJob(&req)
	if apiErr != nil {
		s.reject(w, plainErrors, apiErr)
		return
	}
	s.respond(w, r, plainErrors, j, s.tgiFormat(&req, req.Stream))
}

// vllmGenerate serves vLLM's /generate: {"text": [prompt + answer]}, or,
// streaming, that object after each token, each followed by a NUL byte. A
// PD prefill instance refuses to stream it: NUL bytes cannot travel in
// /dresult's NUL-separated messages.
func (s *Server) vllmGenerate(w http.ResponseWriter, r *http.Request, req *tgiRequest) {
	prompt, apiErr := promptText(req.Prompt, "prompt")
	if apiErr != nil {
		s.reject(w, plainErrors, apiErr)
		return
	}
	if req.Stream && pdOf(r) != nil {
		s.reject(w, plainErrors, badRequest("vLLM's /generate cannot be streamed with PD headers: its NUL-separated chunks cannot travel in /dresult messages"))
		return
	}
	j, apiErr := s.newJob(Tokenize(prompt), req.MaxTokens, "max_tokens", defaultCompletionTokens, true)
	if apiErr != nil {
		s.reject(w, plainErrors, apiErr)
		return
	}
	if !req.Stream {
		s.respond(w, r, plainErrors, j, &answerFormat{API: apiVLLM, Model: s.cfg.ModelID, Input: prompt})
		return
	}
	rc := http.NewResponseController(w)
	started := false
	text := prompt
	_, err := s.execute(r.Context(), j, func(_ int, piece string) error {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
		}
		text += piece
		body, err := json.Marshal(map[string]any{"text": []string{text}})
		if err != nil {
			return err
		}
		if _, err := w.Write(append(body, 0)); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		return nil
	})
	if err != nil && !started {
		answerFailure(w, plainErrors, err)
	}
}

// ---- Triton ----

type tritonRequest struct {
	TextInput  *string `json:"text_input"`
	Parameters struct {
		MaxTokens *int `json:"max_tokens"`
	} `json:"parameters"`
}

func (s *Server) handleTritonGenerate(streaming bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		model := r.PathValue("model")
		if err := s.checkModel(model); err != nil {
			s.reject(w, plainErrors, err)
			return
		}
		var req tritonRequest
		if err := decodeJSON(r, &req); err != nil {
			s.reject(w, plainErrors, err)
			return
		}
		if req.TextInput == nil {
			s.reject(w, plainErrors, badRequest("text_input is required: the prompt, a string"))
			return
		}
		j, apiErr := s.newJob(Tokenize(*req.TextInput), req.Parameters.MaxTokens, "parameters.max_tokens", defaultNewTokens, true)
		if apiErr != nil {
			s.reject(w, plainErrors, apiErr)
			return
		}
		s.respond(w, r, plainErrors, j, &answerFormat{API: apiTriton, Stream: streaming, Model: s.cfg.ModelID})
	}
}

// ---- Tokenizer ----

// handleTokenizer serves POST /v1/tokenizer: {"inputs": text} ->
// {"token_number": n}, counted with the simulator's tokenizer.
func (s *Server) handleTokenizer(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Inputs *string `json:"inputs"`
	}
	if err := decodeJSON(r, &req); err != nil {
		writeAPIError(w, plainErrors, err)
		return
	}
	if req.Inputs == nil {
		writeAPIError(w, plainErrors, badRequest("inputs is required: the text to count tokens of"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"token_number": len(Tokenize(*req.Inputs))})
}
