package mindie

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// engineConfig is testConfig with a decode step that visibly grows with the
// batch: 1s alone, 100ms more for each further request.
func engineConfig() Config {
	cfg := testConfig() // 1ms per prefilled token, blocks of 4 tokens
	cfg.DecodePerBatchedRequest = 100 * time.Millisecond
	return cfg
}

// blockingHarness is a harness whose clock only moves when the test runs it.
func blockingHarness(t *testing.T, cfg Config) *harness {
	h := newHarness(t, cfg)
	h.clock.setBlocking(true)
	return h
}

// submitWhilePrefilling submits the first request, waits until its prefill
// runs, then submits the others, which therefore arrive at the same moment
// and queue behind it in the order given.
func submitWhilePrefilling(t *testing.T, h *harness, maxTokens int, prompts ...string) []*submitted {
	t.Helper()
	subs := []*submitted{h.submit(prompts[0], maxTokens)}
	waitUntil(t, "the first prefill runs", func() bool { return h.clock.sleepers() == 1 })
	for i, p := range prompts[1:] {
		subs = append(subs, h.submit(p, maxTokens))
		waitUntil(t, "the request queues", func() bool { return h.srv.Stats().Waiting == i+1 })
	}
	return subs
}

func TestRequestsArrivingTogetherShareThePrefill(t *testing.T) {
	h := blockingHarness(t, engineConfig())
	subs := submitWhilePrefilling(t, h, 3, words(0, 100), words(1000, 50))
	a, b := subs[0], subs[1]
	h.wait(a, b)

	// One prefill at a time, first come first served: b waits for a's.
	if a.ttft() != 100*time.Millisecond {
		t.Errorf("a's TTFT %v, want its own 100ms prefill", a.ttft())
	}
	if b.ttft() != 150*time.Millisecond {
		t.Errorf("b's TTFT %v, want a's 100ms prefill + its own 50ms", b.ttft())
	}
	// a's next token waits for b's prefill (prefill first), then a decode
	// step of both: 1s + 100ms.
	if got, want := a.intervals(), []time.Duration{50*time.Millisecond + 1100*time.Millisecond, 1100 * time.Millisecond}; !slices.Equal(got, want) {
		t.Errorf("a's token intervals %v, want %v", got, want)
	}
	if got, want := b.intervals(), []time.Duration{1100 * time.Millisecond, 1100 * time.Millisecond}; !slices.Equal(got, want) {
		t.Errorf("b's token intervals %v, want %v", got, want)
	}

	// Alone, b's prompt takes only its own prefill.
	alone := blockingHarness(t, engineConfig())
	c := alone.submit(words(1000, 50), 3)
	alone.wait(c)
	if c.ttft() != 50*time.Millisecond {
		t.Errorf("alone: TTFT %v, want 50ms", c.ttft())
	}
}

func TestDecodeStepGrowsWithTheBatch(t *testing.T) {
	alone := blockingHarness(t, engineConfig())
	one := alone.submit(words(0, 10), 5)
	alone.wait(one)
	for _, d := range one.intervals() {
		if d != time.Second {
			t.Errorf("batch of 1: token intervals %v, want 1s each", one.intervals())
			break
		}
	}

	h := blockingHarness(t, engineConfig())
	prompts := []string{words(0, 10), words(100, 10), words(200, 10), words(300, 10)}
	subs := submitWhilePrefilling(t, h, 5, prompts...)
	h.wait(subs...)
	for i, s := range subs {
		iv := s.intervals()
		if len(iv) != 4 {
			t.Fatalf("request %d: %d intervals, want 4", i, len(iv))
		}
		// After every prefill, each step serves the batch of 4: 1s + 3 x 100ms.
		for _, d := range iv[1:] {
			if d != 1300*time.Millisecond {
				t.Errorf("batch of 4: request %d's token intervals %v, want 1.3s after the first", i, iv)
				break
			}
		}
		// The first interval also holds the prefills queued behind it.
		if want := time.Duration(len(subs)-1-i)*10*time.Millisecond + 1300*time.Millisecond; iv[0] != want {
			t.Errorf("request %d's first interval %v, want %v", i, iv[0], want)
		}
		if want := time.Duration(i+1) * 10 * time.Millisecond; s.ttft() != want {
			t.Errorf("request %d's TTFT %v, want %v", i, s.ttft(), want)
		}
	}
	if sleeps := h.clock.takeSleeps(); !slices.Equal(sleeps, []time.Duration{
		10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond,
		1300 * time.Millisecond, 1300 * time.Millisecond, 1300 * time.Millisecond, 1300 * time.Millisecond,
	}) {
		t.Errorf("iterations %v, want 4 prefills of 10ms then 4 steps of 1.3s", sleeps)
	}
}

func TestMaxBatchSizeMakesRequestsWait(t *testing.T) {
	cfg := engineConfig()
	cfg.TotalSlots = 2
	h := blockingHarness(t, cfg)
	subs := submitWhilePrefilling(t, h, 2, words(0, 10), words(100, 10), words(200, 10))
	h.wait(subs...)
	// The third starts when a slot frees up: after the first two's
	// prefills (20ms) and their last token, a step of two (1.1s).
	if got, want := subs[2].ttft(), 20*time.Millisecond+1100*time.Millisecond+10*time.Millisecond; got != want {
		t.Errorf("third request's TTFT %v, want %v", got, want)
	}
	if got := subs[2].intervals(); !slices.Equal(got, []time.Duration{time.Second}) {
		t.Errorf("third request alone in the batch: intervals %v, want [1s]", got)
	}
}

func TestQueuedRequestHitsThePrefixItsPredecessorPrefilled(t *testing.T) {
	h := blockingHarness(t, engineConfig())
	same := words(0, 40)
	subs := submitWhilePrefilling(t, h, 2, same, same, words(500, 40))
	h.wait(subs...)
	// The second finds the whole prompt in the cache when its turn comes:
	// only its last token is computed. The third shares nothing.
	if got, want := subs[1].ttft(), 40*time.Millisecond+time.Millisecond; got != want {
		t.Errorf("identical prompt: TTFT %v, want %v", got, want)
	}
	if subs[1].gen.cachedTokens != 40 || subs[2].gen.cachedTokens != 0 {
		t.Errorf("cached tokens %d and %d, want 40 and 0", subs[1].gen.cachedTokens, subs[2].gen.cachedTokens)
	}
	if got, want := subs[2].ttft(), 41*time.Millisecond+40*time.Millisecond; got != want {
		t.Errorf("different prompt: TTFT %v, want %v", got, want)
	}
}

func TestFullKVCacheMakesRequestsWaitAndEvictsTheOldestPrefix(t *testing.T) {
	cfg := engineConfig()
	cfg.CacheBlocks = 10 // 40 tokens
	h := blockingHarness(t, cfg)

	// a's 28-token prompt holds 7 of the 10 blocks, and 8 once it decodes.
	a := h.submit(words(0, 28), 4)
	waitUntil(t, "a prefills", func() bool { return h.clock.sleepers() == 1 })
	// b's 16 tokens need 4 blocks: it waits though slots are free.
	b := h.submit(words(100, 16), 1)
	waitUntil(t, "b queues", func() bool { return h.srv.Stats().Waiting == 1 })
	h.runUntil("a finishes", a.finished)
	if a.err != nil {
		t.Fatal(a.err)
	}
	h.wait(b)
	// a: 28ms prefill and three 1s steps alone; b starts after that.
	if got, want := b.ttft(), 28*time.Millisecond+3*time.Second+16*time.Millisecond; got != want {
		t.Errorf("b's TTFT %v, want %v: it must wait for a's blocks", got, want)
	}
	// b took the 2 free blocks and one of a's cached blocks nobody held:
	// the least recently used, a's last.
	st := h.srv.Stats()
	if st.EvictedBlocks != 1 || st.CachedBlocks != 6+4 {
		t.Errorf("evicted %d, cached %d blocks; want 1 evicted, a's 6 first blocks and b's 4 cached", st.EvictedBlocks, st.CachedBlocks)
	}
	if st.FreeBlocks != 10 || st.Preemptions != 0 {
		t.Errorf("free blocks %d, preemptions %d; want 10 and 0", st.FreeBlocks, st.Preemptions)
	}
	c := h.submit(words(0, 28), 1)
	h.wait(c)
	if c.gen.cachedTokens != 24 || c.ttft() != 4*time.Millisecond {
		t.Errorf("a's prompt again: %d cached tokens, TTFT %v; want 24 (its head survived) and 4ms", c.gen.cachedTokens, c.ttft())
	}
}

func TestHeldPrefixBlocksAreNotEvicted(t *testing.T) {
	cfg := engineConfig()
	cfg.CacheBlocks = 6
	h := blockingHarness(t, cfg)
	old := h.submit(words(0, 8), 1) // 2 blocks, cached once it ends
	h.wait(old)
	shared := words(100, 8)
	a := h.submit(shared, 8) // holds blocks(8) = 2, then grows to 4
	waitUntil(t, "a prefills", func() bool { return h.clock.sleepers() == 1 })
	b := h.submit(shared, 8)
	waitUntil(t, "b queues", func() bool { return h.srv.Stats().Waiting == 1 })
	h.wait(a, b)
	// b shares a's two prompt blocks. Each then grows by 2 blocks, to
	// blocks(8+7) = 4: that takes the 2 free blocks, then old's 2 cached
	// ones, which nobody holds; the shared ones, held, are not evicted.
	st := h.srv.Stats()
	if b.gen.cachedTokens != 8 || st.EvictedBlocks != 2 || st.Preemptions != 0 {
		t.Errorf("b cached %d tokens, %d blocks evicted, %d preemptions; want 8, 2, 0", b.gen.cachedTokens, st.EvictedBlocks, st.Preemptions)
	}
	again := h.submit(shared, 1)
	h.wait(again)
	if again.gen.cachedTokens != 8 {
		t.Errorf("the shared prompt should still be cached, found %d tokens", again.gen.cachedTokens)
	}
}

func TestPreemptionWhenDecodeRunsOutOfBlocks(t *testing.T) {
	cfg := engineConfig()
	cfg.CacheBlocks = 6
	h := blockingHarness(t, cfg)
	subs := submitWhilePrefilling(t, h, 8, words(0, 8), words(100, 8))
	a, b := subs[0], subs[1]
	h.wait(a, b)
	// Each ends holding blocks(8+7) = 4: 8 > 6. When both need their
	// fourth block (generating their 6th token), b, started last, is
	// preempted: it waits for a to finish and is prefilled again, its 8
	// prompt tokens from the cache and its 5 generated tokens recomputed.
	st := h.srv.Stats()
	if st.Preemptions != 1 {
		t.Fatalf("%d preemptions, want 1", st.Preemptions)
	}
	if len(a.gen.tokens) != 8 || len(b.gen.tokens) != 8 {
		t.Errorf("tokens %d and %d, want 8 each", len(a.gen.tokens), len(b.gen.tokens))
	}
	ai, bi := a.intervals(), b.intervals()
	if !slices.Equal(ai[len(ai)-3:], []time.Duration{time.Second, time.Second, time.Second}) {
		t.Errorf("a's last intervals %v, want 1s each: alone after b's preemption", ai)
	}
	// b's 6th token comes from its second prefill (5 tokens, 5ms), after
	// a's three last steps.
	if got, want := bi[4], 3*time.Second+5*time.Millisecond; got != want {
		t.Errorf("b's interval across the preemption %v, want %v (intervals %v)", got, want, bi)
	}
	m := string(h.getInference("/metrics").body)
	if !strings.Contains(m, `num_preemptions_total{model_name="llama3-8b-sim"} 1`) {
		t.Errorf("/metrics should count the preemption:\n%s", m)
	}
}

func TestRequestTooLargeForTheKVCacheIsRefused(t *testing.T) {
	cfg := engineConfig()
	cfg.CacheBlocks = 3 // 12 tokens
	h := newHarness(t, cfg)
	r := h.post("/v1/completions", `{"prompt": "`+words(0, 10)+`", "max_tokens": 4}`)
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "need 4 KV cache blocks of 4 tokens; this instance has 3") {
		t.Errorf("a request that cannot fit: %d %s", r.status, r.body)
	}
	if r := h.post("/v1/completions", `{"prompt": "`+words(0, 10)+`", "max_tokens": 3}`); r.status != http.StatusOK {
		t.Errorf("a request that just fits: %d %s", r.status, r.body)
	}
}

func TestStatusFollowsTheEngine(t *testing.T) {
	cfg := engineConfig()
	cfg.TotalSlots = 2
	cfg.CacheBlocks = 20
	h := blockingHarness(t, cfg)
	type snapshot struct{ running, waiting, freeSlots, freeBlocks int }
	status := func() snapshot {
		r := getStatus(t, h, "/v1/status").Resource
		if r.TotalSlotsNum != 2 || r.TotalBlockNum != 20 {
			t.Fatalf("totals %d slots, %d blocks; want 2 and 20", r.TotalSlotsNum, r.TotalBlockNum)
		}
		if r.FreeNpuBlockNums != r.AvailBlockNum || r.TotalAvailNpuSlotsNum != r.AvailSlotsNum {
			t.Errorf("the NPU block and slot fields disagree with availBlockNum/availSlotsNum: %+v", r)
		}
		return snapshot{r.RunningRequestNum, r.WaitingRequestNum, r.AvailSlotsNum, r.AvailBlockNum}
	}
	if got := status(); got != (snapshot{0, 0, 2, 20}) {
		t.Errorf("idle: %+v", got)
	}
	subs := submitWhilePrefilling(t, h, 2, words(0, 10), words(100, 10), words(200, 10))
	// a prefills (3 blocks), b and c wait.
	if got := status(); got != (snapshot{1, 2, 1, 17}) {
		t.Errorf("a prefilling: %+v, want 1 running, 2 waiting, 1 free slot, 17 free blocks", got)
	}
	h.runUntil("b prefills", func() bool { return h.srv.Stats().GenerationTokens == 1 && h.clock.sleepers() == 1 })
	if got := status(); got != (snapshot{2, 1, 0, 14}) {
		t.Errorf("b prefilling: %+v, want 2 running, 1 waiting, no free slot, 14 free blocks", got)
	}
	h.runUntil("c prefills", func() bool { return h.srv.Stats().GenerationTokens == 4 && h.clock.sleepers() == 1 })
	// a and b are done; their blocks stay cached but count as free.
	if got := status(); got != (snapshot{1, 0, 1, 17}) {
		t.Errorf("c prefilling: %+v, want 1 running, none waiting, 1 free slot, 17 free blocks", got)
	}
	h.wait(subs...)
	if got := status(); got != (snapshot{0, 0, 2, 20}) {
		t.Errorf("all done: %+v", got)
	}
	if st := h.srv.Stats(); st.CachedBlocks != 9 {
		t.Errorf("%d cached blocks, want the 3 prompts' 9", st.CachedBlocks)
	}
}

// The model's times depend only on what arrives when, never on the wall
// clock or on goroutine scheduling.
func TestEngineTimingIsDeterministic(t *testing.T) {
	timeline := func() [][]time.Duration {
		h := blockingHarness(t, engineConfig())
		subs := submitWhilePrefilling(t, h, 6, words(0, 30), words(0, 20)+" "+words(900, 10), words(300, 17))
		h.wait(subs...)
		var out [][]time.Duration
		for _, s := range subs {
			var ts []time.Duration
			for _, at := range s.gen.tokenTimes {
				ts = append(ts, at.Sub(subs[0].gen.arrived))
			}
			out = append(out, ts)
		}
		return out
	}
	first := timeline()
	for range 3 {
		if diff := cmp.Diff(first, timeline()); diff != "" {
			t.Fatalf("token times differ between identical runs (-first +again):\n%s", diff)
		}
	}
}

// A host that wakes the engine late (timer slack, a busy CPU) must not slow
// the model down: the next iteration's sleep is shortened by the delay,
// while the model's time line stays exact. A long gap is real and kept.
func TestEngineCatchesUpWithLateWakeUps(t *testing.T) {
	for _, tc := range []struct {
		name           string
		late           time.Duration
		sleeps         []time.Duration
		wantIntervals  time.Duration
		wantFirstToken time.Duration
	}{
		{"5ms late", 5 * time.Millisecond, []time.Duration{10 * time.Millisecond, 995 * time.Millisecond, 995 * time.Millisecond, 995 * time.Millisecond}, time.Second, 10 * time.Millisecond},
		{"100ms late", 100 * time.Millisecond, []time.Duration{10 * time.Millisecond, time.Second, time.Second, time.Second}, 1100 * time.Millisecond, 10 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := blockingHarness(t, engineConfig())
			s := h.submit(words(0, 10), 4)
			for !s.finished() {
				waitUntil(t, "an iteration sleeps or the request ends", func() bool { return h.clock.sleepers() == 1 || s.finished() })
				h.clock.mu.Lock()
				var last time.Duration
				if n := len(h.clock.sleeps); n > 0 {
					last = h.clock.sleeps[n-1]
				}
				h.clock.mu.Unlock()
				if h.clock.sleepers() == 1 {
					h.clock.Advance(last + tc.late)
				}
				time.Sleep(time.Millisecond)
			}
			if s.err != nil {
				t.Fatal(s.err)
			}
			if got := h.clock.takeSleeps(); !slices.Equal(got, tc.sleeps) {
				t.Errorf("sleeps %v, want %v", got, tc.sleeps)
			}
			if s.ttft() != tc.wantFirstToken {
				t.Errorf("TTFT %v, want %v", s.ttft(), tc.wantFirstToken)
			}
			for _, iv := range s.intervals() {
				if iv != tc.wantIntervals {
					t.Errorf("token intervals %v, want %v each", s.intervals(), tc.wantIntervals)
					break
				}
			}
		})
	}
}
