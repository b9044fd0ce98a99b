package router

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func threeBackends(t *testing.T) []*fakeBackend {
	return []*fakeBackend{newFakeBackend(t, "a"), newFakeBackend(t, "b"), newFakeBackend(t, "c")}
}

// conversations are multi-turn chats: each element is the whole message
// list of one turn.
var conversations = []struct {
	name   string
	system string
	turns  [][]string
}{
	{"the Coordinator's TC01", "", [][]string{{"123"}, {"123", "456", "789"}, {"123", "456", "789", "abc", "def"}}},
	{"short letters", "", [][]string{{"abc"}, {"abc", "def", "ghi"}}},
	{"with a system prompt", "You are a helpful assistant.", [][]string{{"hi"}, {"hi", "hello!", "how are you?"}, {"hi", "hello!", "how are you?", "fine", "bye"}}},
	{"long messages over several blocks", "", [][]string{
		{strings.Repeat("long question ", 200)},
		{strings.Repeat("long question ", 200), strings.Repeat("long answer ", 300), "and?"},
	}},
}

func TestConversationKeepsItsInstance(t *testing.T) {
	tr := startRouter(t, testConfig(CacheAffinity), threeBackends(t)...)
	for _, c := range conversations {
		t.Run(c.name, func(t *testing.T) {
			home := ""
			for i, turn := range c.turns {
				a := tr.chat(t, c.system, turn...)
				if a.instance == "" {
					t.Fatalf("turn %d: no %s header", i+1, InstanceHeader)
				}
				if !strings.Contains(a.body, fmt.Sprintf(`"served_by":%q`, a.instance)) {
					t.Fatalf("turn %d: header says %s, body %s", i+1, a.instance, a.body)
				}
				if home == "" {
					home = a.instance
				} else if a.instance != home {
					t.Fatalf("turn %d went to %s, earlier turns to %s", i+1, a.instance, home)
				}
			}
		})
	}
	m := tr.metricsText(t)
	if hits := metricValue(m, `mindie_router_affinity_lookups_total{result="hit"}`); hits < 5 {
		t.Errorf("affinity hits = %v, want at least 5 (every later turn)\n%s", hits, m)
	}
	if blocks := metricValue(m, "mindie_router_affinity_expected_hit_blocks_total"); blocks <= 0 {
		t.Errorf("expected hit blocks = %v, want > 0", blocks)
	}
}

func TestNewConversationsSpread(t *testing.T) {
	backends := threeBackends(t)
	tr := startRouter(t, testConfig(CacheAffinity), backends...)
	count := map[string]int{}
	for i := range 12 {
		a := tr.chat(t, "", fmt.Sprintf("new conversation number %d", i))
		count[a.instance]++
	}
	for _, b := range backends {
		if count[b.name] == 0 {
			t.Errorf("no conversation went to %s: %v", b.name, count)
		}
	}
}

func TestSharedSystemPrompt(t *testing.T) {
	cases := []struct {
		name      string
		system    string
		user      string
		instances int // how many instances the users' first turns use
	}{
		{"long system prompt, short questions: one instance holds it", "Shared rules. " + strings.Repeat("Rule. ", 100), "user %d asks", 1},
		{"short system prompt, long questions: spread", "Be brief.", "user %d asks " + strings.Repeat("at length ", 60), 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := startRouter(t, testConfig(CacheAffinity), threeBackends(t)...)
			count := map[string]int{}
			for i := range 12 {
				count[tr.chat(t, c.system, fmt.Sprintf(c.user, i)).instance]++
			}
			if len(count) != c.instances {
				t.Errorf("the users went to %v, want %d instances", count, c.instances)
			}
		})
	}
}

func TestSaturatedInstanceIsBypassedAndConversationRehomed(t *testing.T) {
	backends := threeBackends(t)
	byName := map[string]*fakeBackend{}
	for _, b := range backends {
		byName[b.name] = b
	}
	cases := []struct {
		name                  string
		freeSlots, freeBlocks int
	}{
		{"no free slot", 0, 1000},
		{"slots at the threshold", 5, 1000},
		{"blocks at the threshold", 100, 50},
	}
	tr := startRouter(t, testConfig(CacheAffinity), backends...)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			turn1 := []string{fmt.Sprintf("conversation %d", i)}
			home := tr.chat(t, "", turn1...).instance
			b := byName[home]
			b.setStatus(c.freeSlots, c.freeBlocks)
			tr.waitStatus(t, home, c.freeSlots, c.freeBlocks)
			turn2 := append(turn1, "answer", "next question")
			moved := tr.chat(t, "", turn2...).instance
			if moved == home {
				t.Fatalf("turn 2 went to saturated %s", home)
			}
			b.setStatus(100, 1000)
			tr.waitStatus(t, home, 100, 1000)
			turn3 := append(turn2, "answer", "third question")
			if got := tr.chat(t, "", turn3...).instance; got != moved {
				t.Fatalf("turn 3 went to %s, want %s where the conversation was re-homed", got, moved)
			}
		})
	}
	m := tr.metricsText(t)
	if v := metricValue(m, `mindie_router_affinity_lookups_total{result="rehomed"}`); v != float64(len(cases)) {
		t.Errorf("rehomed = %v, want %d", v, len(cases))
	}
}

func TestRemovedInstanceIsForgotten(t *testing.T) {
	backends := threeBackends(t)
	tr := startRouter(t, testConfig(CacheAffinity), backends...)
	turn1 := []string{"where do I go"}
	home := tr.chat(t, "", turn1...).instance
	var rest []Instance
	for _, b := range backends {
		if b.name != home {
			rest = append(rest, b.instance())
		}
	}
	tr.src.set(rest...)
	tr.mu.Lock()
	for _, names := range tr.index.entries {
		for _, n := range names.Value.(*indexEntry).instances {
			if n == home {
				t.Errorf("the index still names removed %s", home)
			}
		}
	}
	tr.mu.Unlock()
	turn2 := append(turn1, "there", "and now")
	moved := tr.chat(t, "", turn2...).instance
	if moved == home {
		t.Fatalf("turn 2 went to removed %s", home)
	}
	turn3 := append(turn2, "ok", "still there?")
	if got := tr.chat(t, "", turn3...).instance; got != moved {
		t.Fatalf("turn 3 went to %s, want %s", got, moved)
	}
}

func TestTwoRoutersAgreeOnNewConversations(t *testing.T) {
	backends := threeBackends(t)
	one := startRouter(t, testConfig(CacheAffinity), backends...)
	two := startRouter(t, testConfig(CacheAffinity), backends...)
	for i := range 10 {
		system := ""
		if i%2 == 1 {
			system = "shared system prompt"
		}
		turn1 := []string{fmt.Sprintf("agree on conversation %d", i)}
		first := one.chat(t, system, turn1...).instance
		// The second router never saw turn 1.
		second := two.chat(t, system, append(turn1, "reply", "follow-up")...).instance
		if first != second {
			t.Errorf("conversation %d: router one sent turn 1 to %s, router two turn 2 to %s", i, first, second)
		}
	}
}

func TestLowReuseBalancesOnLoad(t *testing.T) {
	cfg := testConfig(CacheAffinity)
	cfg.AffinityHitWindow = 8
	cfg.AffinityMinHitRate = 0.2
	tr := startRouter(t, cfg, threeBackends(t)...)
	for i := range 8 {
		tr.chat(t, "", fmt.Sprintf("unrelated prompt %d", i))
	}
	m := tr.metricsText(t)
	if v := metricValue(m, "mindie_router_affinity_low_reuse"); v != 1 {
		t.Fatalf("low reuse = %v after 8 unrelated chats, want 1", v)
	}
	tr.chat(t, "", "one more unrelated prompt")
	m = tr.metricsText(t)
	// The 8th chat filled the window and was balanced already.
	if v := metricValue(m, `mindie_router_decisions_total{algorithm="cache_affinity",reason="low_reuse"}`); v != 2 {
		t.Errorf("low_reuse decisions = %v, want 2", v)
	}
	// Reuse comes back: continuing conversations lift the hit rate.
	for i := range 8 {
		tr.chat(t, "", fmt.Sprintf("unrelated prompt %d", i), "answer", "more")
	}
	m = tr.metricsText(t)
	if v := metricValue(m, "mindie_router_affinity_low_reuse"); v != 0 {
		t.Errorf("low reuse = %v after 8 continued chats, want 0", v)
	}
}

func TestNonChatGoesLeastLoaded(t *testing.T) {
	tr := startRouter(t, testConfig(CacheAffinity), threeBackends(t)...)
	a := send(t, http.MethodPost, tr.url+"/v1/completions", `{"model":"m","prompt":"hello"}`)
	if a.status != http.StatusOK || a.instance == "" {
		t.Fatalf("completions: %d %q %s", a.status, a.instance, a.body)
	}
	m := tr.metricsText(t)
	if v := metricValue(m, `mindie_router_decisions_total{algorithm="cache_affinity",reason="not_chat"}`); v != 1 {
		t.Errorf("not_chat decisions = %v, want 1", v)
	}
}
