package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"mindie.io/deployer/test/bench/results"
)

func testChatShape() results.TraceShape {
	return results.TraceShape{
		Name: results.TraceChat, Seed: 7, Sessions: 12, SessionsPerSecond: 2,
		Groups: 3, SystemTokens: 40, TurnsMin: 2, TurnsMax: 4,
		UserTokensMin: 5, UserTokensMax: 20, AnswerTokensMin: 3, AnswerTokensMax: 9,
		ThinkMeanSeconds: 1,
	}
}

func TestGenerateChatIsDeterministic(t *testing.T) {
	a, err := GenerateChat(testChatShape())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateChat(testChatShape())
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave two different traces")
	}
	other := testChatShape()
	other.Seed = 8
	c, _ := GenerateChat(other)
	if reflect.DeepEqual(a.Sessions, c.Sessions) {
		t.Fatal("another seed gave the same trace")
	}
}

func TestGenerateChatShape(t *testing.T) {
	shape := testChatShape()
	tr, err := GenerateChat(shape)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Sessions) != shape.Sessions {
		t.Fatalf("%d sessions, want %d", len(tr.Sessions), shape.Sessions)
	}
	var last time.Duration
	for i, s := range tr.Sessions {
		if s.Group != i%shape.Groups || s.System != tr.Sessions[s.Group].System {
			t.Errorf("session %d: group %d, want %d with its group's system prompt", i, s.Group, i%shape.Groups)
		}
		if n := len(PromptTokens([]Message{{"x", s.System}})) - 2; n != shape.SystemTokens { // less "x" and ":"
			t.Errorf("session %d: system prompt of %d tokens, want %d", i, n, shape.SystemTokens)
		}
		if s.Start < last {
			t.Errorf("session %d starts at %s, before the one before it (%s)", i, s.Start, last)
		}
		last = s.Start
		if len(s.Turns) < shape.TurnsMin || len(s.Turns) > shape.TurnsMax {
			t.Errorf("session %d: %d turns, want %d–%d", i, len(s.Turns), shape.TurnsMin, shape.TurnsMax)
		}
		for k, turn := range s.Turns {
			if n := len(strings.Fields(turn.User)); n < shape.UserTokensMin || n > shape.UserTokensMax {
				t.Errorf("session %d turn %d: user message of %d words, want %d–%d", i, k, n, shape.UserTokensMin, shape.UserTokensMax)
			}
			if n := len(strings.Fields(turn.Answer)); n != turn.MaxTokens || n < shape.AnswerTokensMin || n > shape.AnswerTokensMax {
				t.Errorf("session %d turn %d: answer of %d words, max_tokens %d, want equal in %d–%d", i, k, n, turn.MaxTokens, shape.AnswerTokensMin, shape.AnswerTokensMax)
			}
			if (k == 0) != (turn.Think == 0) {
				t.Errorf("session %d turn %d: think time %s; only the first turn has none", i, k, turn.Think)
			}
		}
		// Turn k's messages extend turn k-1's.
		for k := 1; k < len(s.Turns); k++ {
			prev, cur := s.Messages(k-1), s.Messages(k)
			if !reflect.DeepEqual(cur[:len(prev)], prev) || len(cur) != len(prev)+2 || cur[len(prev)].Role != "assistant" {
				t.Errorf("session %d turn %d does not extend turn %d by an answer and a message", i, k, k-1)
			}
		}
	}
}

func TestGenerateNoReuse(t *testing.T) {
	shape := results.TraceShape{Name: results.TraceNoReuse, Seed: 3, Sessions: 50, SessionsPerSecond: 10,
		UserTokensMin: 20, UserTokensMax: 60, AnswerTokensMin: 4, AnswerTokensMax: 8}
	tr, err := GenerateNoReuse(shape)
	if err != nil {
		t.Fatal(err)
	}
	o := TraceOracle(tr, 16)
	if o.SharedTokens != 0 || tr.Shape.Requests != 50 {
		t.Fatalf("no-reuse trace: %d shared tokens over %d requests, want 0 over 50", o.SharedTokens, tr.Shape.Requests)
	}
	// 50 arrivals at 10/s: the last near 5 s (a loose bound on the Poisson process).
	if at := tr.Sessions[49].Start; at < 2*time.Second || at > 10*time.Second {
		t.Errorf("the 50th arrival at %s, want about 5s", at)
	}
}

func TestGenerateRejectsBadShapes(t *testing.T) {
	for name, mutate := range map[string]func(*results.TraceShape){
		"no sessions":     func(s *results.TraceShape) { s.Sessions = 0 },
		"no rate":         func(s *results.TraceShape) { s.SessionsPerSecond = 0 },
		"turns reversed":  func(s *results.TraceShape) { s.TurnsMin, s.TurnsMax = 5, 2 },
		"no groups":       func(s *results.TraceShape) { s.Groups = 0 },
		"answers of zero": func(s *results.TraceShape) { s.AnswerTokensMin = 0 },
	} {
		s := testChatShape()
		mutate(&s)
		if _, err := GenerateChat(s); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func tokens(s string) []string { return strings.Fields(s) }

func TestComputeOracle(t *testing.T) {
	// Blocks of 2 tokens.
	o := ComputeOracle([][]string{
		tokens("a b c d e"),     // nothing before it: 0
		tokens("a b c d x y z"), // shares "a b", "c d": 4
		tokens("a b x y"),       // shares "a b" only ("x y" follows another parent): 2
		tokens("q b c d"),       // a different first block: 0 (chained hashes)
		tokens("a"),             // no full block: 0
	}, 2)
	if o.PromptTokens != 21 || o.SharedTokens != 6 {
		t.Fatalf("oracle: %d shared of %d, want 6 of 21", o.SharedTokens, o.PromptTokens)
	}
	if got, want := o.HitRate(), 6.0/21; got != want {
		t.Fatalf("hit rate %g, want %g", got, want)
	}
	if (Oracle{}).HitRate() != 0 {
		t.Fatal("an empty oracle's hit rate is not 0")
	}
}

func TestChatOracle(t *testing.T) {
	tr, err := GenerateChat(testChatShape())
	if err != nil {
		t.Fatal(err)
	}
	o := TraceOracle(tr, 4)
	// Every turn after a session's first shares at least its system prompt
	// and its first message's full blocks, so most tokens are shared.
	if r := o.HitRate(); r < 0.5 || r >= 1 {
		t.Fatalf("chat oracle hit rate %.3f, want in [0.5, 1)", r)
	}
	if tr.Shape.OracleSharedTokens != o.SharedTokens || tr.Shape.OracleHitRate != o.HitRate() || tr.Shape.PlannedSeconds <= 0 {
		t.Fatalf("TraceOracle did not fill in the shape: %+v", tr.Shape)
	}
	planned := tr.Planned()
	for i := 1; i < len(planned); i++ {
		if planned[i].At < planned[i-1].At {
			t.Fatalf("planned requests out of order at %d", i)
		}
	}
}
