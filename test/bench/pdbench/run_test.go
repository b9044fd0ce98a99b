package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"mindie.io/deployer/pkg/router"
	"mindie.io/deployer/test/bench/results"
)

// sse serves a chat stream of the given events, one write each, gap apart.
func sse(gap time.Duration, status int, events ...string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(status)
		for _, ev := range events {
			fmt.Fprintf(w, "data: %s\n\n", ev)
			w.(http.Flusher).Flush()
			time.Sleep(gap)
		}
	}))
}

func chunk(content string) string {
	return fmt.Sprintf(`{"choices":[{"index":0,"delta":{"content":%q}}]}`, content)
}

const usage3 = `{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3}}`

func TestStreamChat(t *testing.T) {
	role := `{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`
	cases := []struct {
		name   string
		status int
		events []string
		ok     bool
		tokens int
	}{
		{"a whole answer", 200, []string{role, chunk("The"), chunk(" model"), chunk("."), usage3, "[DONE]"}, true, 3},
		{"no [DONE]", 200, []string{role, chunk("The"), chunk(" model"), chunk("."), usage3}, false, 3},
		{"a token lost", 200, []string{role, chunk("The"), chunk("."), usage3, "[DONE]"}, false, 2},
		{"no usage", 200, []string{role, chunk("The"), chunk(" model"), chunk("."), "[DONE]"}, false, 3},
		{"an error event", 200, []string{role, chunk("The"), `{"error":{"message":"decode failed"}}`}, false, 1},
		{"an error status", 502, []string{`{"error":"no"}`}, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := sse(5*time.Millisecond, c.status, c.events...)
			defer srv.Close()
			o := streamChat(context.Background(), srv.Client(), srv.URL, "m", "hello", 3)
			if o.ok != c.ok || o.tokens != c.tokens {
				t.Fatalf("ok %t tokens %d, want %t and %d", o.ok, o.tokens, c.ok, c.tokens)
			}
			if !c.ok {
				return
			}
			// The role chunk carries no token: the first token is the next
			// event, written 5 ms later; the last comes 10 ms after it.
			if o.first.Sub(o.sent) < 5*time.Millisecond || o.last.Sub(o.first) < 10*time.Millisecond || o.maxGap < 5*time.Millisecond {
				t.Errorf("ttft %v, first to last %v, max gap %v", o.first.Sub(o.sent), o.last.Sub(o.first), o.maxGap)
			}
		})
	}
}

// A short trace through real simulators and the router, with and without
// roles: every request is answered, and in PD mode the decode instance
// generates the tokens after the first.
func TestRunLayoutOnSimulators(t *testing.T) {
	tr, err := GenerateTrace(results.PDTrace{Seed: 3, Requests: 6, RatePerSecond: 20, PromptTokensMin: 200, PromptTokensMax: 400, MaxTokens: 24})
	if err != nil {
		t.Fatal(err)
	}
	const scale = 0.1
	for _, l := range []results.PDLayout{
		{Name: "plain", Plain: 2},
		{Name: "pd", Groups: 1, PrefillPerGroup: 1, DecodePerGroup: 1},
	} {
		t.Run(l.Name, func(t *testing.T) {
			run, err := runLayout(context.Background(), tr, runParams{
				Layout: l, Algorithm: router.LeastLoad, Sim: simConfig(scale), TimeScale: scale, Grace: 30 * time.Second,
				PrefillPerToken: 200 * time.Microsecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			if run.Requests != 6 || run.Failed != 0 || run.CompletionTokens == 0 || run.TPOTRequests == 0 {
				t.Fatalf("%+v", run)
			}
			if len(run.Instances) != 2 {
				t.Fatalf("instances %+v", run.Instances)
			}
			if l.Groups > 0 {
				p, d := run.Instances[0], run.Instances[1]
				if p.Role != router.RolePrefill || p.Prefilled != 6 || d.Role != router.RoleDecode || d.Decoded == 0 ||
					d.GeneratedTokens+p.GeneratedTokens != uint64(run.CompletionTokens) {
					t.Errorf("prefill %+v, decode %+v, %d tokens", p, d, run.CompletionTokens)
				}
			}
			if run.PredictedTTFTP50Ms <= 0 || run.PrefillBusy <= 0 {
				t.Errorf("no prediction: %+v", run)
			}
		})
	}
}
