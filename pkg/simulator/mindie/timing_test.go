package mindie

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

// completeOnce sends a completion of max_tokens 1 and returns its usage and
// the engine's one iteration: the prefill, which produces the only token.
func completeOnce(t *testing.T, h *harness, prompt string) (openAIUsage, time.Duration) {
	t.Helper()
	h.clock.takeSleeps()
	r := h.post("/v1/completions", jsonBody(t, map[string]any{"prompt": prompt, "max_tokens": 1}))
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	c := decode[chatCompletion](t, r)
	sleeps := h.clock.takeSleeps()
	if len(sleeps) != 1 {
		t.Fatalf("want a single prefill sleep, got %v", sleeps)
	}
	return *c.Usage, sleeps[0]
}

func TestPrefillChargesOnlyUncachedTokens(t *testing.T) {
	h := newHarness(t, testConfig()) // blocks of 4 tokens, 1ms per prefilled token, 1s per decoded token
	prompt := words(0, 22)           // blocks: 5 full + 1 of 2 tokens

	usage, prefill := completeOnce(t, h, prompt)
	if prefill != 22*time.Millisecond {
		t.Errorf("cold prompt: prefill %v, want 22ms", prefill)
	}
	if usage.PromptTokensDetails.CachedTokens != 0 {
		t.Errorf("cold prompt: %d cached tokens", usage.PromptTokensDetails.CachedTokens)
	}
	st := h.srv.Stats()
	if st.PrefixCacheHits != 0 || st.PrefixCacheMisses != 6 || st.CachedBlocks != 6 {
		t.Errorf("cold prompt: hits %d misses %d cached %d, want 0 6 6", st.PrefixCacheHits, st.PrefixCacheMisses, st.CachedBlocks)
	}

	// The same prompt again: every block hits; only the last prompt token
	// is computed, for the logits of the first generated token.
	usage, prefill = completeOnce(t, h, prompt)
	if prefill != time.Millisecond {
		t.Errorf("repeated prompt: prefill %v, want 1ms (one token)", prefill)
	}
	if usage.PromptTokensDetails.CachedTokens != 22 {
		t.Errorf("repeated prompt: %d cached tokens, want 22", usage.PromptTokensDetails.CachedTokens)
	}
	if st := h.srv.Stats(); st.PrefixCacheHits != 6 || st.PrefixCacheMisses != 6 {
		t.Errorf("repeated prompt: hits %d misses %d, want 6 6", st.PrefixCacheHits, st.PrefixCacheMisses)
	}

	// Sharing the first 3 blocks (12 tokens): only the other 18 are charged.
	usage, prefill = completeOnce(t, h, words(0, 12)+" "+words(500, 18))
	if prefill != 18*time.Millisecond {
		t.Errorf("shared prefix: prefill %v, want 18ms", prefill)
	}
	if usage.PromptTokensDetails.CachedTokens != 12 || usage.PromptTokens != 30 {
		t.Errorf("shared prefix: usage %+v, want 12 of 30 cached", usage)
	}
	if st := h.srv.Stats(); st.PrefixCacheHits != 9 || st.PrefixCacheMisses != 11 {
		t.Errorf("shared prefix: hits %d misses %d, want 9 11", st.PrefixCacheHits, st.PrefixCacheMisses)
	}

	// The same blocks after a different first block do not match.
	_, prefill = completeOnce(t, h, "different "+words(1, 21))
	if prefill != 22*time.Millisecond {
		t.Errorf("different first block: prefill %v, want all 22ms", prefill)
	}
}

func TestDecodeTakesOneStepPerGeneratedToken(t *testing.T) {
	h := newHarness(t, testConfig())
	c := decode[chatCompletion](t, h.post("/v1/completions", `{"prompt": "count the steps", "max_tokens": 9}`))
	if c.Usage.CompletionTokens != 9 {
		t.Fatalf("%d tokens generated, want 9", c.Usage.CompletionTokens)
	}
	sleeps := h.clock.takeSleeps()
	// The prefill produces the first token, a decode step (of a batch of
	// one) each of the others.
	want := []time.Duration{3 * time.Millisecond}
	for range c.Usage.CompletionTokens - 1 {
		want = append(want, time.Second)
	}
	if !slices.Equal(sleeps, want) {
		t.Errorf("sleeps %v, want %v", sleeps, want)
	}
}

func TestChatReusesEarlierTurns(t *testing.T) {
	h := newHarness(t, testConfig())
	turn1 := []map[string]string{
		{"role": "system", "content": "You are a concise assistant."},
		{"role": "user", "content": "What does a prefix cache store?"},
	}
	first := decode[chatCompletion](t, h.post("/v1/chat/completions", chatBody(t, turn1, map[string]any{"max_tokens": 12})))
	n1 := first.Usage.PromptTokens
	if first.Usage.PromptTokensDetails.CachedTokens != 0 {
		t.Fatalf("first turn found %d cached tokens", first.Usage.PromptTokensDetails.CachedTokens)
	}
	turn2 := append(slices.Clone(turn1),
		map[string]string{"role": "assistant", "content": first.Choices[0].Message.Content},
		map[string]string{"role": "user", "content": "And how long does it keep it?"},
	)
	h.clock.takeSleeps()
	second := decode[chatCompletion](t, h.post("/v1/chat/completions", chatBody(t, turn2, map[string]any{"max_tokens": 12})))
	// Every full block of the first turn's prompt is reused; its last,
	// partial block is not, since the second prompt continues it.
	wantCached := n1 / 4 * 4
	if got := second.Usage.PromptTokensDetails.CachedTokens; got != wantCached {
		t.Errorf("second turn: %d cached tokens, want %d (the first turn had %d)", got, wantCached, n1)
	}
	if sleeps := h.clock.takeSleeps(); sleeps[0] != time.Duration(second.Usage.PromptTokens-wantCached)*time.Millisecond {
		t.Errorf("second turn: prefill %v for %d prompt tokens with %d cached", sleeps[0], second.Usage.PromptTokens, wantCached)
	}
}

func TestPrefixCacheEvictsAtCapacity(t *testing.T) {
	cfg := testConfig()
	cfg.CacheBlocks = 4
	h := newHarness(t, cfg)
	a, b, c := words(0, 8), words(100, 8), words(200, 8) // two blocks each

	completeOnce(t, h, a)
	completeOnce(t, h, b)
	if _, prefill := completeOnce(t, h, a); prefill != time.Millisecond {
		t.Fatalf("a should still be cached (4 blocks fit), prefill %v", prefill)
	}
	completeOnce(t, h, c) // evicts b, the least recently used
	if _, prefill := completeOnce(t, h, a); prefill != time.Millisecond {
		t.Errorf("a was used recently and should be cached, prefill %v", prefill)
	}
	if _, prefill := completeOnce(t, h, b); prefill != 8*time.Millisecond {
		t.Errorf("b should have been evicted, prefill %v, want 8ms", prefill)
	}
	if st := h.srv.Stats(); st.CachedBlocks != 4 {
		t.Errorf("cache holds %d blocks, want 4", st.CachedBlocks)
	}
}

func TestDisabledPrefixCacheChargesEveryToken(t *testing.T) {
	cfg := testConfig()
	cfg.DisablePrefixCache = true
	h := newHarness(t, cfg)
	for range 2 {
		usage, prefill := completeOnce(t, h, words(0, 10))
		if prefill != 10*time.Millisecond || usage.PromptTokensDetails.CachedTokens != 0 {
			t.Errorf("prefill %v with %d cached tokens, want 10ms and none", prefill, usage.PromptTokensDetails.CachedTokens)
		}
	}
	if st := h.srv.Stats(); st.PrefixCacheHits != 0 || st.CachedBlocks != 0 {
		t.Errorf("a disabled cache should stay empty: %+v", st)
	}
}

func TestSlowdownMultipliesModelledDurations(t *testing.T) {
	h := newHarness(t, testConfig())
	h.srv.SetSlowdown(2.5)
	complete2 := func(prompt string) []time.Duration {
		h.clock.takeSleeps()
		if r := h.post("/v1/completions", jsonBody(t, map[string]any{"prompt": prompt, "max_tokens": 2})); r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		return h.clock.takeSleeps()
	}
	if sleeps := complete2(words(0, 4)); !slices.Equal(sleeps, []time.Duration{10 * time.Millisecond, 2500 * time.Millisecond}) {
		t.Errorf("slowdown 2.5: sleeps %v, want [10ms 2.5s]", sleeps)
	}
	if h.srv.Stats().Slowdown != 2.5 {
		t.Errorf("Stats().Slowdown = %g", h.srv.Stats().Slowdown)
	}
	for _, bad := range []float64{0, -1} {
		h.srv.SetSlowdown(bad)
		if got := h.srv.Stats().Slowdown; got != 1 {
			t.Errorf("SetSlowdown(%g) should reset to 1, got %g", bad, got)
		}
	}
	if sleeps := complete2(words(100, 4)); !slices.Equal(sleeps, []time.Duration{4 * time.Millisecond, time.Second}) {
		t.Errorf("after reset: sleeps %v, want [4ms 1s]", sleeps)
	}
}
