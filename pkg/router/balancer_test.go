package router

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
)

func TestRoundRobinSkipsSaturatedInstances(t *testing.T) {
	cases := []struct {
		name                  string
		freeSlots, freeBlocks int // of b's 100 slots and 1000 blocks
		want                  string
	}{
		// The cursor moves first, as in the Coordinator: the first request
		// goes to the second instance.
		{"all free", 100, 1000, "b c a b c a"},
		{"no free slot", 0, 1000, "c a c a c a"},
		{"slots at the threshold", 5, 1000, "c a c a c a"},
		{"slots just above the threshold", 6, 1000, "b c a b c a"},
		{"blocks at the threshold", 100, 50, "c a c a c a"},
		{"no free block", 100, 0, "c a c a c a"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			backends := threeBackends(t)
			backends[1].setStatus(c.freeSlots, c.freeBlocks)
			tr := startRouter(t, testConfig(RoundRobin), backends...)
			tr.waitStatus(t, "b", c.freeSlots, c.freeBlocks)
			var got []string
			for range 6 {
				got = append(got, send(t, http.MethodPost, tr.url+"/generate", `{"inputs":"hi"}`).instance)
			}
			if g := strings.Join(got, " "); g != c.want {
				t.Errorf("instances %q, want %q", g, c.want)
			}
		})
	}
}

func TestRoundRobinWhenAllAreSaturated(t *testing.T) {
	backends := threeBackends(t)
	for _, b := range backends {
		b.setStatus(0, 0)
	}
	tr := startRouter(t, testConfig(RoundRobin), backends...)
	for _, b := range backends {
		tr.waitStatus(t, b.name, 0, 0)
	}
	if a := send(t, http.MethodPost, tr.url+"/generate", `{"inputs":"hi"}`); a.status != http.StatusOK {
		t.Fatalf("got %d %s, want the request sent to the least-loaded instance", a.status, a.body)
	}
	m := tr.metricsText(t)
	if v := metricValue(m, `mindie_router_decisions_total{algorithm="round_robin",reason="all_saturated"}`); v != 1 {
		t.Errorf("all_saturated decisions = %v, want 1", v)
	}
}

// unitRouter is a router over instances without a management URL (no
// status polling), whose load the test sets by hand.
func unitRouter(t *testing.T, cfg Config, names ...string) *Router {
	t.Helper()
	r, err := New(cfg, StaticSource{}, WithLogger(logr.Discard()), WithRandSeed(7))
	if err != nil {
		t.Fatal(err)
	}
	var insts []Instance
	for _, n := range names {
		insts = append(insts, Instance{Name: n, Inference: "http://127.0.0.1:1", Ready: true})
	}
	r.update(insts)
	return r
}

func TestLeastLoadPicksTheLeastLoaded(t *testing.T) {
	// Requests waiting for their first byte, requests decoding, prompt
	// tokens still to prefill.
	type load struct{ waiting, decoding, pendingPrefill int }
	cases := []struct {
		name  string
		loads map[string]load
		want  string // "" when any of ties may win
		ties  []string
	}{
		{"fewest waiting", map[string]load{"a": {3, 0, 0}, "b": {1, 0, 0}, "c": {2, 0, 0}}, "b", nil},
		{"fewest decoding", map[string]load{"a": {0, 3, 0}, "b": {0, 1, 0}, "c": {0, 2, 0}}, "b", nil},
		{"prompt still to prefill weighs", map[string]load{"a": {1, 0, 0}, "b": {1, 0, 4096}, "c": {2, 0, 0}}, "a", nil},
		{"a long prefill outweighs a request", map[string]load{"a": {1, 0, 8192}, "b": {2, 0, 0}, "c": {3, 0, 0}}, "b", nil},
		// A request decoding weighs a quarter of one waiting for its
		// first token: the engine prefills before its next decode step.
		{"decoding weighs less than waiting", map[string]load{"a": {0, 7, 0}, "b": {2, 0, 0}, "c": {1, 4, 2048}}, "a", nil},
		{"prefill work decides, not requests decoding", map[string]load{"a": {1, 0, 3000}, "b": {0, 6, 0}, "c": {1, 3, 1000}}, "b", nil},
		{"ties broken at random", map[string]load{"a": {1, 0, 0}, "b": {0, 4, 0}, "c": {5, 0, 0}}, "", []string{"a", "b"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := unitRouter(t, testConfig(LeastLoad), "a", "b", "c")
			seen := map[string]bool{}
			for range 40 {
				for name, l := range c.loads {
					b := r.backends[name]
					b.inflight, b.prefilling, b.pendingPrefill = l.waiting+l.decoding, l.waiting, l.pendingPrefill
				}
				a, err := r.pick(&prompt{tokens: 100}, nil, true)
				if err != nil {
					t.Fatal(err)
				}
				seen[a.b.inst.Name] = true
			}
			if c.want != "" && (len(seen) != 1 || !seen[c.want]) {
				t.Errorf("picked %v, want only %s", seen, c.want)
			}
			for _, tie := range c.ties {
				if !seen[tie] {
					t.Errorf("tie %s never picked in 40 tries: %v", tie, seen)
				}
			}
		})
	}
}

func TestLeastLoadSpreadsConcurrentRequests(t *testing.T) {
	backends := threeBackends(t)
	release := make(chan struct{})
	for _, b := range backends {
		b.setHandler(func(w http.ResponseWriter, _ *http.Request) {
			<-release
			w.Write([]byte("{}"))
		})
	}
	tr := startRouter(t, testConfig(LeastLoad), backends...)
	var wg sync.WaitGroup
	got := make([]string, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := trySend(http.MethodPost, tr.url+"/v1/completions", `{"prompt":"x"}`)
			if err != nil {
				t.Error(err)
			}
			got[i] = a.instance
		}()
		waitFor(t, fmt.Sprintf("%d requests at the backends", i+1), func() bool {
			n := int64(0)
			for _, b := range backends {
				n += b.hits.Load()
			}
			return n == int64(i+1)
		})
	}
	close(release)
	wg.Wait()
	if got[0] == got[1] || got[1] == got[2] || got[0] == got[2] {
		t.Errorf("three concurrent requests went to %v, want three instances", got)
	}
}

func TestAffinityReleasedUnderLoad(t *testing.T) {
	long := "Shared rules. " + strings.Repeat("Rule. ", 100)
	turn1, _ := chatPrompt([]byte(chat("", "my question")), DefaultAffinityBlockChars)
	turn2, _ := chatPrompt([]byte(chat("", "my question", "answer", "next")), DefaultAffinityBlockChars)
	shared, _ := chatPrompt([]byte(chat(long, "user 1")), DefaultAffinityBlockChars)
	otherUser, _ := chatPrompt([]byte(chat(long, "user 2")), DefaultAffinityBlockChars)
	cases := []struct {
		name         string
		recorded     prompt
		next         prompt
		homeWaiting  int // requests waiting for their first byte on the home instance
		homeDecoding int // requests decoding there
		wantHome     bool
		wantReason   string
	}{
		{"next turn, home idle", turn1, turn2, 0, 0, true, reasonAffinity},
		{"next turn, home within the imbalance", turn1, turn2, 8, 0, true, reasonAffinity},
		{"next turn, home overloaded", turn1, turn2, 9, 0, false, reasonRehome},
		{"next turn, home decoding much, within the imbalance", turn1, turn2, 0, 32, true, reasonAffinity},
		{"next turn, home decoding too much", turn1, turn2, 0, 33, false, reasonRehome},
		{"shared system prompt, home idle", shared, otherUser, 0, 0, true, reasonAffinity},
		{"shared system prompt, home overloaded", shared, otherUser, 9, 0, false, reasonRehome},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := unitRouter(t, testConfig(CacheAffinity), "a", "b", "c")
			r.index.record(c.recorded.blocks, "b")
			home := r.backends["b"]
			home.inflight, home.prefilling = c.homeWaiting+c.homeDecoding, c.homeWaiting
			next := c.next
			a, err := r.pick(&next, nil, true)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.b.inst.Name == "b"; got != c.wantHome || a.reason != c.wantReason {
				t.Errorf("picked %s (%s), want home=%v (%s)", a.b.inst.Name, a.reason, c.wantHome, c.wantReason)
			}
		})
	}
}

func TestPickErrors(t *testing.T) {
	cfg := testConfig(LeastLoad)
	cfg.MaxInflightPerInstance = 1
	cases := []struct {
		name  string
		setup func(r *Router)
		tried []string
		want  error
	}{
		{"no instance", func(r *Router) { r.update(nil) }, nil, errNoInstance},
		{"all draining", func(r *Router) {
			for _, b := range r.order {
				b.inst.Draining = true
			}
		}, nil, errNoInstance},
		{"all not ready", func(r *Router) {
			for _, b := range r.order {
				b.inst.Ready = false
			}
		}, nil, errNoInstance},
		{"all full", func(r *Router) {
			for _, b := range r.order {
				b.inflight = 1
			}
		}, nil, errAllBusy},
		{"all tried", func(*Router) {}, []string{"a", "b"}, errTriedAll},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := unitRouter(t, cfg, "a", "b")
			c.setup(r)
			tried := map[*backend]bool{}
			for _, n := range c.tried {
				tried[r.backends[n]] = true
			}
			if _, err := r.pick(&prompt{}, tried, true); err != c.want {
				t.Errorf("got %v, want %v", err, c.want)
			}
		})
	}
}

// TestNewConversationAvoidsBusyInstances: a conversation no instance holds
// goes to its rendezvous instance unless that one is busier than the
// least-loaded by more than --affinity-new-max-imbalance; then to the
// best-scoring instance among those that are not.
func TestNewConversationAvoidsBusyInstances(t *testing.T) {
	r := unitRouter(t, testConfig(CacheAffinity), "a", "b", "c", "d")
	p, _ := chatPrompt([]byte(chat("", "a brand-new conversation")), DefaultAffinityBlockChars)
	// The instances in the conversation's rendezvous order.
	names := []string{"a", "b", "c", "d"}
	slices.SortFunc(names, func(x, y string) int {
		return cmp.Compare(rendezvousScore(p.conversation, y), rendezvousScore(p.conversation, x))
	})
	cases := []struct {
		name       string
		waiting    map[string]int // requests waiting for their first byte
		want       string
		wantReason string
	}{
		{"idle", nil, names[0], reasonRendezvous},
		{"home within the imbalance", map[string]int{names[0]: 1}, names[0], reasonRendezvous},
		{"home busier", map[string]int{names[0]: 2}, names[1], reasonMissLeastLoad},
		{"home and second busier", map[string]int{names[0]: 3, names[1]: 2, names[2]: 1}, names[2], reasonMissLeastLoad},
		{"all busy alike", map[string]int{names[0]: 5, names[1]: 5, names[2]: 5, names[3]: 5}, names[0], reasonRendezvous},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, b := range r.order {
				b.inflight, b.prefilling = c.waiting[b.inst.Name], c.waiting[b.inst.Name]
			}
			next := p
			a, err := r.pick(&next, nil, true)
			if err != nil {
				t.Fatal(err)
			}
			r.finish(a, verdictNone)
			if a.b.inst.Name != c.want || a.reason != c.wantReason || a.lookup != lookupMiss {
				t.Errorf("picked %s (%s, %s), want %s (%s); rendezvous order %v", a.b.inst.Name, a.reason, a.lookup, c.want, c.wantReason, names)
			}
		})
	}
}
