package mindie

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTokenize(t *testing.T) {
	cases := map[string][]string{
		"":                              nil,
		"   \n\t":                       nil,
		"Hello, world!":                 {"Hello", ",", "world", "!"},
		"user: what's 2+2?\n":           {"user", ":", "what", "'", "s", "2", "+", "2", "?"},
		"  spaces   between\twords  ":   {"spaces", "between", "words"},
		"llama3-8b v1.0":                {"llama3", "-", "8b", "v1", ".", "0"},
		"naïve café 東京":                 {"naïve", "café", "東京"},
		"a\u0301":                       {"a\u0301"}, // a combining mark stays in its word
		"(x)[y]{z}":                     {"(", "x", ")", "[", "y", "]", "{", "z", "}"},
		"emoji 🙂 ok":                    {"emoji", "🙂", "ok"},
		"trailing punctuation...":       {"trailing", "punctuation", ".", ".", "."},
		"numbers 12345 and 3.14159 too": {"numbers", "12345", "and", "3", ".", "14159", "too"},
	}
	for in, want := range cases {
		if got := Tokenize(in); !slices.Equal(got, want) {
			t.Errorf("Tokenize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	prompt := Tokenize("user: tell me about caches\n")
	a := generate("m", prompt, 50)
	b := generate("m", slices.Clone(prompt), 50)
	if diff := cmp.Diff(a.tokens, b.tokens); diff != "" || a.finish != b.finish {
		t.Fatalf("same input, different answers (-a +b):\n%s", diff)
	}
	if other := generate("m", Tokenize("user: tell me about queues\n"), 50); slices.Equal(a.tokens, other.tokens) {
		t.Error("different prompts gave the same answer")
	}
	if other := generate("other-model", prompt, 50); slices.Equal(a.tokens, other.tokens) {
		t.Error("different models gave the same answer")
	}
}

func TestGenerateLengthAndFinishReason(t *testing.T) {
	for i := range 200 {
		prompt := Tokenize(words(i, 3))
		full := generate("m", prompt, 1000)
		if full.finish != "stop" {
			t.Fatalf("prompt %d: with room to spare the answer should stop by itself, got %q", i, full.finish)
		}
		n := len(full.tokens)
		if n < minNaturalLength || n >= minNaturalLength+naturalSpread {
			t.Fatalf("prompt %d: natural length %d out of range", i, n)
		}
		if full.tokens[n-1] != "." {
			t.Errorf("prompt %d: a stopped answer should end with a full stop, got %q", i, full.tokens)
		}
		if exact := generate("m", prompt, n); exact.finish != "stop" || !slices.Equal(exact.tokens, full.tokens) {
			t.Errorf("prompt %d: max_tokens equal to the natural length should still stop: %q %q", i, exact.finish, exact.tokens)
		}
		cut := generate("m", prompt, n-1)
		if cut.finish != "length" || len(cut.tokens) != n-1 {
			t.Errorf("prompt %d: max_tokens %d: finish %q with %d tokens, want length with %d", i, n-1, cut.finish, len(cut.tokens), n-1)
		}
		if !slices.Equal(cut.tokens, full.tokens[:n-1]) {
			t.Errorf("prompt %d: a shorter answer should be a prefix of the longer one", i)
		}
	}
}

func TestGeneratedTextTokenizesBack(t *testing.T) {
	for i := range 100 {
		c := generate("m", Tokenize(words(i, 5)), 200)
		for _, leading := range []bool{false, true} {
			text := strings.Join(c.pieces(leading), "")
			if got := Tokenize(text); !slices.Equal(got, c.tokens) {
				t.Fatalf("Tokenize(%q) = %q, want the generated tokens %q", text, got, c.tokens)
			}
			if starts := strings.HasPrefix(text, " "); starts != leading {
				t.Errorf("leadingSpace %t but text %q", leading, text)
			}
			if strings.Contains(text, " .") || strings.Contains(text, " ,") || strings.Contains(text, ",.") || strings.Contains(text, ",,") {
				t.Errorf("badly punctuated text %q", text)
			}
		}
	}
}
