// Package chat holds the chat command, which talks to the model an
// InferServer serves through the API server's proxy subresource.
package chat

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"mindie.io/deployer/plugin/cmd/completion"
	"mindie.io/deployer/plugin/internal/printing"
	"mindie.io/deployer/plugin/internal/proxyerr"
	"mindie.io/deployer/plugin/options"
)

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

type chatOptions struct {
	*options.MindieOptions

	message     string
	stream      bool
	model       string
	maxTokens   int
	system      string
	temperature float64
	// interactive forces the prompts on or off; nil means "when stdin is a terminal".
	interactive *bool

	temperatureSet bool
}

// NewCmdChat returns the chat command.
func NewCmdChat(mindie *options.MindieOptions) *cobra.Command {
	o := &chatOptions{MindieOptions: mindie}
	c := &cobra.Command{
		Use:   "chat NAME [-m MESSAGE]",
		Short: "Chat with the model an InferServer serves (OpenAI chat completions)",
		Long: `Send OpenAI chat completion requests to an InferServer through the API server's
proxy subresource (POST .../inferservers/NAME/proxy/v1/chat/completions), so
no port-forward or Service address is needed, only the permission to create
inferservers/proxy.

With -m, ask one question and print the answer. Without it, read one message
per line from stdin and keep the conversation's history; /exit or end of
input ends it. --stream prints the answer's tokens as they arrive.

The model is --model, else the first model of the InferServer's status, else
the first that GET /v1/models lists.`,
		Example: `  # One question
  kubectl mindie chat llama3 -m "What is an NPU?"

  # A conversation, the answer streamed
  kubectl mindie chat llama3 --stream --system "Answer in one sentence."`,
		Args:              options.ExactArgs(1, "NAME"),
		ValidArgsFunction: completion.InferServerNames(mindie, false),
		RunE: func(c *cobra.Command, args []string) error {
			o.temperatureSet = c.Flags().Changed("temperature")
			return o.run(c.Context(), args[0])
		},
	}
	c.Flags().StringVarP(&o.message, "message", "m", "", "The message to send; without it, messages are read from stdin, one per line.")
	c.Flags().BoolVar(&o.stream, "stream", false, "Print the answer token by token as it is generated.")
	c.Flags().StringVar(&o.model, "model", "", "The model to ask; default the InferServer's first model.")
	c.Flags().IntVar(&o.maxTokens, "max-tokens", 0, "The most tokens to generate; 0 leaves it to the server.")
	c.Flags().StringVar(&o.system, "system", "", "A system message that starts the conversation.")
	c.Flags().Float64Var(&o.temperature, "temperature", 0, "Sampling temperature; unset leaves it to the server.")
	return c
}

// chatMessage is one message of the OpenAI chat format.
type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model       string        `json:"model"`
	Messages    []chatMessage `json:"messages"`
	Stream      bool          `json:"stream"`
	MaxTokens   *int          `json:"max_tokens,omitempty"`
	Temperature *float64      `json:"temperature,omitempty"`
}

// chatSession talks to one InferServer.
type chatSession struct {
	rc        *rest.RESTClient
	ns, name  string
	out       io.Writer
	history   []chatMessage
	request   chatRequest
	streaming bool
}

func (o *chatOptions) run(ctx context.Context, name string) error {
	if o.maxTokens < 0 {
		return errors.New("--max-tokens must not be negative")
	}
	ns, _, err := o.Namespace()
	if err != nil {
		return err
	}
	rc, err := o.RESTClient()
	if err != nil {
		return err
	}
	s := &chatSession{rc: rc, ns: ns, name: name, out: o.Out, streaming: o.stream}
	model := o.model
	if model == "" {
		if model, err = o.defaultModel(ctx, s); err != nil {
			return err
		}
	}
	s.request = chatRequest{Model: model, Stream: o.stream}
	if o.maxTokens > 0 {
		s.request.MaxTokens = &o.maxTokens
	}
	if o.temperatureSet {
		s.request.Temperature = &o.temperature
	}
	if o.system != "" {
		s.history = append(s.history, chatMessage{Role: "system", Content: o.system})
	}

	if o.message != "" {
		_, err := s.say(ctx, o.message)
		return err
	}
	return o.converse(ctx, s, model)
}

// converse reads messages from stdin until /exit or end of input.
func (o *chatOptions) converse(ctx context.Context, s *chatSession, model string) error {
	if o.In == nil {
		return errors.New("no message: pass -m MESSAGE or write messages to stdin")
	}
	interactive := o.isInteractive()
	if interactive {
		fmt.Fprintf(o.ErrOut, "Chatting with InferServer %s/%s (model %s). /exit or Ctrl-D ends.\n", s.ns, s.name, model)
	}
	in := bufio.NewReader(o.In)
	for {
		if interactive {
			fmt.Fprint(o.Out, "> ")
		}
		line, err := in.ReadString('\n')
		text := strings.TrimSpace(line)
		switch {
		case text == "/exit" || text == "/quit":
			return nil
		case text != "":
			if _, serr := s.say(ctx, text); serr != nil {
				if !interactive || ctx.Err() != nil {
					return serr
				}
				// On a terminal the conversation goes on after an error.
				printing.Error(o.ErrOut, serr)
			}
		}
		if err != nil {
			if interactive {
				fmt.Fprintln(o.Out)
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

func (o *chatOptions) isInteractive() bool {
	if o.interactive != nil {
		return *o.interactive
	}
	f, ok := o.In.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// defaultModel is the first model of the InferServer's status, else the
// first one GET /v1/models lists.
func (o *chatOptions) defaultModel(ctx context.Context, s *chatSession) (string, error) {
	client, err := o.InferClient()
	if err != nil {
		return "", err
	}
	obj, err := client.InferV1alpha1().InferServers(s.ns).Get(ctx, s.name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if m := obj.Status.Model; m != nil {
		for _, e := range m.Models {
			if e.ID != "" {
				return e.ID, nil
			}
		}
	}
	resp, err := s.do(ctx, http.MethodGet, "models", nil)
	if err != nil {
		return "", fmt.Errorf("finding the model of InferServer %q (pass --model to skip): %w", s.name, err)
	}
	defer resp.Body.Close()
	var models struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxErrorBody)).Decode(&models); err != nil {
		return "", fmt.Errorf("reading GET /v1/models of InferServer %q: %w", s.name, err)
	}
	for _, m := range models.Data {
		if m.ID != "" {
			return m.ID, nil
		}
	}
	return "", fmt.Errorf("InferServer %q lists no model on /v1/models; pass --model", s.name)
}

// say sends text with the history, prints the answer and keeps both in
// the history.
func (s *chatSession) say(ctx context.Context, text string) (string, error) {
	req := s.request
	req.Messages = append(append([]chatMessage(nil), s.history...), chatMessage{Role: "user", Content: text})
	body, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("encode the chat request: %w", err)
	}
	resp, err := s.do(ctx, http.MethodPost, "chat/completions", body)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var answer string
	if s.streaming && isEventStream(resp) {
		answer, err = s.readStream(resp.Body)
	} else {
		answer, err = s.readCompletion(resp.Body)
	}
	if err != nil {
		return "", err
	}
	s.history = append(req.Messages, chatMessage{Role: "assistant", Content: answer})
	return answer, nil
}

func isEventStream(resp *http.Response) bool {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return mt == "text/event-stream"
}

// chatCompletion is the part of an OpenAI response (or stream chunk) read here.
type chatCompletion struct {
	Choices []struct {
		Message *struct {
			Content string `json:"content"`
		} `json:"message"`
		Delta *struct {
			Content string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Error json.RawMessage `json:"error"`
}

func (s *chatSession) readCompletion(body io.Reader) (string, error) {
	var c chatCompletion
	if err := json.NewDecoder(body).Decode(&c); err != nil {
		return "", fmt.Errorf("reading the answer of InferServer %q: %w", s.name, err)
	}
	if len(c.Error) > 0 && string(c.Error) != "null" {
		return "", fmt.Errorf("the model server failed: %s", proxyerr.ErrorText(c.Error))
	}
	if len(c.Choices) == 0 || c.Choices[0].Message == nil {
		return "", fmt.Errorf("the answer of InferServer %q has no choices[0].message", s.name)
	}
	answer := c.Choices[0].Message.Content
	fmt.Fprintln(s.out, answer)
	return answer, nil
}

// readStream prints the content of every "data:" event until "data: [DONE]"
// (or, from a server that does not send it, the end of a finished answer).
func (s *chatSession) readStream(body io.Reader) (string, error) {
	var answer strings.Builder
	finished := false
	var data []string
	// dispatch handles the event whose data lines are in data; it reports
	// whether the stream is done.
	dispatch := func() (bool, error) {
		if len(data) == 0 {
			return false, nil
		}
		payload := strings.Join(data, "\n")
		data = data[:0]
		if strings.TrimSpace(payload) == "[DONE]" {
			return true, nil
		}
		var c chatCompletion
		if err := json.Unmarshal([]byte(payload), &c); err != nil {
			return false, fmt.Errorf("reading the answer stream of InferServer %q: %w (event %q)", s.name, err, payload)
		}
		if len(c.Error) > 0 && string(c.Error) != "null" {
			return false, fmt.Errorf("the model server failed while answering: %s", proxyerr.ErrorText(c.Error))
		}
		for _, ch := range c.Choices {
			if ch.Delta != nil && ch.Delta.Content != "" {
				answer.WriteString(ch.Delta.Content)
				_, _ = io.WriteString(s.out, ch.Delta.Content)
			}
			if ch.FinishReason != nil && *ch.FinishReason != "" {
				finished = true
			}
		}
		return false, nil
	}
	end := func(err error) (string, error) {
		if answer.Len() > 0 {
			fmt.Fprintln(s.out)
		}
		return answer.String(), err
	}
	r := bufio.NewReader(body)
	for {
		line, rerr := r.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "data:") {
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
		// A blank line ends an event, and so does the end of the input.
		if line == "" || rerr != nil {
			done, err := dispatch()
			if err != nil || done {
				return end(err)
			}
		}
		if rerr != nil {
			switch {
			case !errors.Is(rerr, io.EOF):
				return end(fmt.Errorf("reading the answer stream of InferServer %q: %w", s.name, rerr))
			case !finished:
				return end(fmt.Errorf("the answer stream of InferServer %q ended before data: [DONE]", s.name))
			}
			return end(nil)
		}
	}
}

// do sends a request to the InferServer's proxy subresource, to path under
// /v1/, and returns the response when it is a success.
func (s *chatSession) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	u := s.rc.Verb(method).AbsPath(options.InferServersPath(s.ns, s.name, "proxy", "v1", path)).URL()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.streaming && path == "chat/completions" {
		req.Header.Set("Accept", "text/event-stream, application/json")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	client := s.rc.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return nil, s.proxyError(method, path, resp, data)
}

// proxyError turns a refused proxy request into one clear message.
func (s *chatSession) proxyError(method, path string, resp *http.Response, body []byte) error {
	msg := proxyerr.Message(body)
	code := resp.StatusCode
	switch code {
	case http.StatusForbidden:
		verb := "create"
		if method == http.MethodGet {
			verb = "get"
		}
		return fmt.Errorf("%s (talking to a model needs the %q verb on inferservers/proxy in API group infer.mindie.io in namespace %s)", orText(msg, "forbidden"), verb, s.ns)
	case http.StatusUnauthorized:
		return fmt.Errorf("%s: you are not logged in to the cluster (check your kubeconfig)", orText(msg, "Unauthorized"))
	case http.StatusServiceUnavailable:
		return fmt.Errorf("InferServer %q cannot answer now (503 Service Unavailable): %s", s.name, orText(msg, "no instance is ready"))
	case http.StatusNotFound:
		if msg == "" {
			msg = fmt.Sprintf("%s not found", "/v1/"+path)
		}
		return fmt.Errorf("InferServer %q: %s (404 Not Found)", s.name, msg)
	}
	return fmt.Errorf("InferServer %q refused %s /v1/%s: %d %s: %s", s.name, method, path, code, http.StatusText(code), orText(msg, "no message"))
}

func orText(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
