package router

import (
	"strings"
	"testing"
)

func blocksOf(t *testing.T, body string) prompt {
	t.Helper()
	p, ok := chatPrompt([]byte(body), 64)
	if !ok {
		t.Fatalf("%s: not a chat", body)
	}
	return p
}

func sharedPrefix(a, b []uint64) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func TestChatPromptChainsBlocks(t *testing.T) {
	long := strings.Repeat("a long message ", 20) // 300 characters: 5 blocks of 64
	cases := []struct {
		name         string
		a, b         string
		wantShared   int // leading blocks a and b share
		sameConversa bool
	}{
		{"the next turn extends the previous one (short messages)", chat("", "123"), chat("", "123", "456", "789"), 1, true},
		{"and again", chat("", "123", "456", "789"), chat("", "123", "456", "789", "abc", "def"), 3, true},
		{"a long message is several blocks", chat("", long), chat("", long, "ok", "more"), 5, true},
		{"a shared system prompt matches across users", chat("You are helpful.", "user one"), chat("You are helpful.", "user two"), 1, false},
		{"different first messages share nothing", chat("", "123"), chat("", "124"), 0, false},
		{"the role counts", `{"messages":[{"role":"user","content":"x"}]}`, `{"messages":[{"role":"system","content":"x"}]}`, 0, false},
		{"the model seeds the chain", `{"model":"a","messages":[{"role":"user","content":"x"}]}`, `{"model":"b","messages":[{"role":"user","content":"x"}]}`, 0, false},
		{"JSON formatting does not count", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, "{ \"messages\" : [ {\"content\": \"x\", \"role\": \"user\"} ], \"model\": \"m\" }", 1, true},
		{"text parts hash like a string", `{"messages":[{"role":"user","content":"hello"}]}`, `{"messages":[{"role":"user","content":[{"type":"text","text":"hello"}]}]}`, 1, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b := blocksOf(t, c.a), blocksOf(t, c.b)
			if got := sharedPrefix(a.blocks, b.blocks); got != c.wantShared {
				t.Errorf("shared blocks %d, want %d (a %d blocks, b %d)", got, c.wantShared, len(a.blocks), len(b.blocks))
			}
			if (a.conversation == b.conversation) != c.sameConversa {
				t.Errorf("same conversation: %v, want %v", a.conversation == b.conversation, c.sameConversa)
			}
		})
	}
}

func TestChatPromptRefusesNonChats(t *testing.T) {
	for _, body := range []string{``, `not json`, `{"prompt":"x"}`, `{"messages":[]}`, `{"messages":"x"}`} {
		if _, ok := chatPrompt([]byte(body), 64); ok {
			t.Errorf("%q taken for a chat", body)
		}
	}
}

func TestPrefixIndex(t *testing.T) {
	x := newPrefixIndex(4, 2)
	x.record([]uint64{1, 2, 3}, "a")
	x.record([]uint64{1, 2}, "b")
	if got := x.match([]uint64{1, 2, 3, 9}); got["a"] != 3 || got["b"] != 2 {
		t.Errorf("match %v, want a:3 b:2", got)
	}
	x.record([]uint64{7, 8}, "c") // 5 blocks in an index of 4: block 3, used least recently, goes
	if got := x.match([]uint64{1, 2, 3}); got["a"] != 2 || x.len() != 4 {
		t.Errorf("after eviction match %v (len %d), want a:2 (len 4)", got, x.len())
	}
	x.forget("a")
	if got := x.match([]uint64{1, 2, 3}); got["a"] != 0 || got["b"] != 2 {
		t.Errorf("after forgetting a: %v", got)
	}
	x.observe(0, 10)
	if x.lowReuse(0.5) {
		t.Error("low reuse before the window is full")
	}
	x.observe(1, 10)
	if !x.lowReuse(0.5) {
		t.Errorf("hit rate %v: want low reuse", x.hitRate())
	}
	x.observe(10, 10)
	x.observe(10, 10)
	if x.lowReuse(0.5) {
		t.Errorf("hit rate %v: want reuse", x.hitRate())
	}
	names := []string{}
	for _, n := range []string{"a", "b", "c", "d", "e", "b"} {
		names = moveToFront(names, n, 4)
	}
	if strings.Join(names, "") != "bedc" {
		t.Errorf("most recent first, 4 kept: %v", names)
	}
}

func TestRendezvousMovesOnlyTheRemovedInstancesConversations(t *testing.T) {
	all := []string{"a", "b", "c", "d"}
	winner := func(conv uint64, names []string) string {
		best, bestScore := "", uint64(0)
		for _, n := range names {
			if s := rendezvousScore(conv, n); best == "" || s > bestScore {
				best, bestScore = n, s
			}
		}
		return best
	}
	count := map[string]int{}
	for conv := uint64(0); conv < 4000; conv++ {
		w := winner(mix64(conv), all)
		count[w]++
		if w != "d" && winner(mix64(conv), all[:3]) != w {
			t.Fatalf("conversation %d moved from %s though d was removed", conv, w)
		}
	}
	for _, n := range all {
		if count[n] < 800 {
			t.Errorf("instance %s won %d of 4000 conversations: %v", n, count[n], count)
		}
	}
}
