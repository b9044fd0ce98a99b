package router

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
	"github.com/google/go-cmp/cmp"
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

// referencePrompt is chatPrompt written with encoding/json, as the router
// did before its scanner (decode, build each message's text, hash it): the
// scanner must cut and hash the same message stream.
func referencePrompt(body []byte, blockChars int) (prompt, bool) {
	var req struct {
		Model    string          `json:"model"`
		Tools    json.RawMessage `json:"tools"`
		Messages []struct {
			Role       string          `json:"role"`
			Name       string          `json:"name"`
			Content    json.RawMessage `json:"content"`
			ToolCalls  json.RawMessage `json:"tool_calls"`
			ToolCallID string          `json:"tool_call_id"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.Messages) == 0 {
		return prompt{tokens: estimateTokens(len(body))}, false
	}
	compact := func(raw json.RawMessage) []byte {
		if len(raw) == 0 || string(raw) == "null" {
			return nil
		}
		var b bytes.Buffer
		if json.Compact(&b, raw) != nil {
			return raw
		}
		return b.Bytes()
	}
	var seed xxhash.Digest
	seed.Reset()
	seed.WriteString(req.Model)
	seed.Write([]byte{0})
	seed.Write(compact(req.Tools))
	p := prompt{}
	bh := blockHasher{size: blockChars, prev: seed.Sum64(), p: &p}
	foundUser := false
	for i, m := range req.Messages {
		var text bytes.Buffer
		content := bytes.TrimSpace(m.Content)
		switch {
		case len(content) == 0 || string(content) == "null":
		case content[0] == '"':
			var s string
			json.Unmarshal(content, &s)
			text.WriteString(s)
		case content[0] == '[':
			var parts []json.RawMessage
			json.Unmarshal(content, &parts)
			for _, raw := range parts {
				var part struct {
					Type string  `json:"type"`
					Text *string `json:"text"`
				}
				if json.Unmarshal(raw, &part) == nil && part.Type == "text" && part.Text != nil {
					text.WriteString(*part.Text)
				} else {
					text.Write(compact(raw))
				}
			}
		default:
			text.Write(compact(content))
		}
		if tc := compact(m.ToolCalls); tc != nil {
			text.WriteByte(0)
			text.Write(tc)
		}
		if m.ToolCallID != "" {
			text.WriteByte(0)
			text.WriteString(m.ToolCallID)
		}
		bh.markConversation = !foundUser && (m.Role == "user" || i == len(req.Messages)-1)
		foundUser = foundUser || bh.markConversation
		bh.start([]byte(m.Role + "\x1f" + m.Name))
		bh.Write(text.Bytes())
		bh.end()
	}
	p.tokens = estimateTokens(bh.chars)
	return p, true
}

// chatBodies are chats of every shape the scanner reads.
var chatBodies = []string{
	chat("You are helpful.", "hi", "hello!", "how are you?"),
	`{"model":"m","messages":[{"role":"user","content":"quote \" backslash \\ slash \/ controls \b\f\n\r\t end"}]}`,
	`{"model":"m","messages":[{"role":"user","content":"\\\"\\\\\"\\"}]}`,
	`{"model":"m","messages":[{"role":"user","content":"é \u00e9 \u00E9 中 \u4e2d 😀 \ud83d\ude00 \uD83D\uDE00"}]}`,
	`{"model":"m","messages":[{"role":"user","content":"lone high \ud83d, lone low \ude00, high then letter \ud83d\u0041, high then high \ud83d\ud83d\ude00, at the end \ud83d"}]}`,
	`{"model":"m","messages":[{"role":"user","content":"\u0000 nul and \u001f unit separator and \u0041"}]}`,
	`{"m\u006fdel":"m","m\u0065ssages":[{"rol\u0065":"\u0075ser","c\u006fntent":"escaped keys"}]}`,
	`{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"What is in this image?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}},{"text":" And this one?","type":"text"}]}]}`,
	`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a","extra":[1,{"x":null}]},{"type":"text","text":null},{"type":"image","text":"not text"},"a bare string",["nested",["array"]],{"type":"text","text":"b \u00e9\n","type":"text"},{"type":5,"text":"c"},{}]}]}`,
	`{"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"{\"temp\": 21}"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"model":"m"}`,
	"{\n  \"model\" : \"m\" ,\n  \"messages\" : [\n    { \"role\" : \"system\" , \"content\" : \"sys\" } ,\n    {\"content\":[ {\"type\" : \"text\", \"text\" : \"x\"} , { \"type\" : \"image_url\" , \"image_url\" : { \"url\" : \"u\" } } ] , \"role\":\"user\"}\n  ] ,\n  \"tools\" : [ { \"a\" : [ 1 , 2 , { } , [ ] ] } ]\n}\n",
	`{"model":"m","max_tokens":16,"temperature":0.7,"top_p":1e-3,"n":-1,"x":-0.5E+10,"stream":true,"stop":null,"logit_bias":{"1":false},"messages":[{"role":"user","content":"numbers elsewhere"}],"deep":[[[[[[{"a":[[[]]]}]]]]]]}`,
	`{"model":"m","messages":[null,{"role":"user","name":"alice","content":""},{"role":"assistant","content":{"an":"object"}},{"role":"user","content":42},{"role":"user","content":true}]}`,
	`{"model":"first","model":"second","messages":[{"role":"user","content":"one","content":"two","role":"system"}]}`,
	`{"model":null,"messages":[{"role":"user","name":null,"content":"null model and name","tool_call_id":null}]}`,
	`{"model":"m","model":null,"messages":[{"role":"user","role":null,"content":"null after a value"}]}`,
	`{"model":"m","messages":[{"role":"user","content":"x"}],"messages":[{"role":"user","content":"the last messages count"}]}`,
	`{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("0123456789abcdef", 3) + `\n` + strings.Repeat("é", 40) + `\u00e9\ud83d\ude00` + strings.Repeat(`\"`, 70) + `"}]}`,
	`{"messages":[{"role":"user","content":"` + strings.Repeat("x", 63) + `\u4e2d` + strings.Repeat("y", 62) + `\n\n` + `"}]}`,
	`{"messages":[{"role":"user","content":"` + strings.Repeat("z", 128) + `"},{"role":"user","content":""},{"role":"user"}]}`,
}

func TestChatPromptMatchesEncodingJSON(t *testing.T) {
	for _, blockChars := range []int{1, 7, 64, DefaultAffinityBlockChars} {
		for i, body := range chatBodies {
			if !json.Valid([]byte(body)) {
				t.Fatalf("body %d is not JSON: %s", i, body)
			}
			got, ok := chatPrompt([]byte(body), blockChars)
			want, wantOK := referencePrompt([]byte(body), blockChars)
			if !ok || !wantOK {
				t.Errorf("body %d: chat %v, reference %v: %s", i, ok, wantOK, body)
				continue
			}
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(prompt{})); diff != "" {
				t.Errorf("body %d, blocks of %d: (-encoding/json +scanner)\n%s\n%s", i, blockChars, diff, body)
			}
		}
	}
}

func TestChatPromptBlocks(t *testing.T) {
	const size = 8
	cases := []struct {
		text string
		ends []int
	}{
		{"", []int{0}},
		{"1234567", []int{7}},
		{"12345678", []int{8}},
		{"123456789", []int{8, 9}},
		{"1234567812345678", []int{8, 16}},
		{`1234567\n`, []int{8}}, // the escape is one character
		{`123456\u00e9`, []int{8}},
		{`1234567\u00e9`, []int{8, 9}}, // a character may straddle two blocks
	}
	for _, c := range cases {
		p, ok := chatPrompt([]byte(`{"messages":[{"role":"user","content":"`+c.text+`"}]}`), size)
		if !ok || !slices.Equal(p.blockEnds, c.ends) || len(p.blocks) != len(c.ends) || p.conversation != p.blocks[0] {
			t.Errorf("%q: ends %v (%v), want %v", c.text, p.blockEnds, ok, c.ends)
		}
	}
}

// TestChatPromptIsStable pins the hashes: router replicas, and releases,
// must agree on them (XXH64 is the same on every platform).
func TestChatPromptIsStable(t *testing.T) {
	p, ok := chatPrompt([]byte(chat("You are helpful.", "hi", "hello!", "how are you?")), DefaultAffinityBlockChars)
	want := []uint64{0xa980c51671408ca8, 0xff0541c5aa7e1cb5, 0xe6a8ee851ad30046, 0xe28d512972064bd4}
	if !ok || !slices.Equal(p.blocks, want) || p.conversation != p.blocks[1] || p.conversationBlock != 1 {
		t.Errorf("blocks %#x, conversation %#x (block %d); want %#x and the second block", p.blocks, p.conversation, p.conversationBlock, want)
	}
}

func TestChatPromptMalformed(t *testing.T) {
	good := `{"model":"m","messages":[{"role":"user","content":"x"}]}`
	bodies := []string{
		good[:len(good)-1], good[:20], good + "x", good + "{}", `[` + good + `]`,
		`{"model":"m","messages":[{"role":"user","content":"x}]}`,
		`{"model":"m","messages":[{"role":"user","content":"\x"}]}`,
		`{"model":"m","messages":[{"role":"user","content":"\u12"}]}`,
		`{"model":"m","messages":[{"role":"user","content":"\u12g4"}]}`,
		`{"model":"m","messages":[{"role":"user","content":"x\`,
		`{"model":"m","messages":[{"role":"user" "content":"x"}]}`,
		`{"model":"m","messages":[{"role":"user",,"content":"x"}]}`,
		`{"model":"m","messages":[{"role":"user","content":"x"},]}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}],}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}]`,
		`{"model":"m","messages":[{"role":"user","content":"x"}}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}] "n":1}`,
		`{"model" "m","messages":[{"role":"user","content":"x"}]}`,
		`{model:"m","messages":[{"role":"user","content":"x"}]}`,
		`{"n":01,"messages":[{"role":"user","content":"x"}]}`,
		`{"n":1.,"messages":[{"role":"user","content":"x"}]}`,
		`{"n":-,"messages":[{"role":"user","content":"x"}]}`,
		`{"n":+1,"messages":[{"role":"user","content":"x"}]}`,
		`{"n":1e,"messages":[{"role":"user","content":"x"}]}`,
		`{"n":.5,"messages":[{"role":"user","content":"x"}]}`,
		`{"n":tru,"messages":[{"role":"user","content":"x"}]}`,
		`{"n":nul,"messages":[{"role":"user","content":"x"}]}`,
		`{"n":True,"messages":[{"role":"user","content":"x"}]}`,
		`{"n":[1 2],"messages":[{"role":"user","content":"x"}]}`,
		`{"model":5,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","messages":{"role":"user","content":"x"}}`,
		`{"model":"m","messages":"x"}`,
		`{"model":"m","messages":null}`,
		`{"model":"m","messages":[]}`,
		`{"model":"m","messages":["x"]}`,
		`{"model":"m","messages":[[]]}`,
		`{"model":"m","messages":[{"role":1,"content":"x"}]}`,
		`{"model":"m","messages":[{"role":"user","name":[],"content":"x"}]}`,
		`{"model":"m","messages":[{"role":"user","tool_call_id":{},"content":"x"}]}`,
		`{"model":"m","messages":[{"role":"user","content":[1,}]}]}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}],"deep":` + strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2) + `}`,
		``, ` `, `null`, `"x"`, `{}`, `{"prompt":"x"}`, `{`, `}`, `{"`, `{"messages"`, `{"messages":`, `{"messages":[`, `{"messages":[{`,
	}
	for _, body := range bodies {
		p, ok := chatPrompt([]byte(body), 64)
		if ok || p.blocks != nil || p.tokens != estimateTokens(len(body)) {
			t.Errorf("%.80q taken for a chat (%+v)", body, p)
		}
		if _, refOK := referencePrompt([]byte(body), 64); refOK {
			t.Errorf("%.80q: encoding/json takes it for a chat", body)
		}
	}
}

// FuzzChatPrompt compares the scanner with encoding/json on any body:
// both take it for a chat or neither does, and when they do, with the same
// blocks. `go test ./pkg/router -run '^$' -fuzz FuzzChatPrompt` explores.
func FuzzChatPrompt(f *testing.F) {
	for _, b := range chatBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := chatPrompt(body, 16)
		if knownDifference(body) {
			return
		}
		want, wantOK := referencePrompt(body, 16)
		if ok != wantOK {
			t.Fatalf("chat %v, encoding/json %v: %q", ok, wantOK, body)
		}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(prompt{})); diff != "" {
			t.Fatalf("(-encoding/json +scanner)\n%s\n%q", diff, body)
		}
	})
}

// knownDifference reports bodies on which the scanner and encoding/json
// differ by design: encoding/json refuses control characters in strings
// and replaces invalid UTF-8 (the scanner leaves strings to the
// instance), matches keys ignoring case (the scanner exactly), and decodes
// a key given twice over the first value's elements.
func knownDifference(body []byte) bool {
	if !utf8.Valid(body) {
		return true
	}
	inString, escaped := false, false
	for _, c := range body {
		switch {
		case inString && c < 0x20:
			return true
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		}
	}
	lower := bytes.ToLower(body)
	for _, k := range []string{"model", "tools", "messages", "role", "name", "content", "tool_calls", "tool_call_id", "type", "text"} {
		if bytes.Count(lower, []byte(`"`+k+`"`)) != bytes.Count(body, []byte(`"`+k+`"`)) {
			return true
		}
	}
	return bytes.Count(body, []byte(`"messages"`)) > 1
}

// BenchmarkChatPrompt measures the scanner on chats of one user message of
// 1 KiB and 200 KiB of words (the router benchmark's prompts).
func BenchmarkChatPrompt(b *testing.B) {
	for _, size := range []int{1 << 10, 200 << 10} {
		rng := rand.New(rand.NewPCG(1, uint64(size)))
		var text strings.Builder
		for text.Len() < size {
			fmt.Fprintf(&text, "w%d ", rng.IntN(5000))
		}
		body := []byte(chat("", text.String()))
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				chatPrompt(body, DefaultAffinityBlockChars)
			}
		})
	}
}
