package mindie

import (
	"hash/fnv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Tokenize splits text into the simulator's tokens: each maximal run of
// letters, digits and combining marks is one token, and every other
// non-space character is a token of its own. White space separates tokens
// and is not one. It is deterministic and cheap, and it is how prompt and
// completion lengths are counted everywhere in the simulator.
func Tokenize(text string) []string {
	var tokens []string
	start := -1 // start of the current word, or -1
	for i, r := range text {
		switch {
		case isWordRune(r):
			if start < 0 {
				start = i
			}
			continue
		case start >= 0:
			tokens = append(tokens, text[start:i])
			start = -1
		}
		if !unicode.IsSpace(r) {
			tokens = append(tokens, text[i:i+utf8.RuneLen(r)])
		}
	}
	if start >= 0 {
		tokens = append(tokens, text[start:])
	}
	return tokens
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// chatPromptText renders chat messages the way the simulator's "chat
// template" does: one "role: content" line per message. Concatenating the
// messages keeps an earlier turn's text a prefix of the next turn's prompt,
// which is what lets the prefix cache reuse it.
func chatPromptText(messages []chatTurn) string {
	var b strings.Builder
	for _, m := range messages {
		b.WriteString(m.role)
		b.WriteString(": ")
		b.WriteString(m.content)
		b.WriteString("\n")
	}
	return b.String()
}

// chatTurn is one chat message reduced to text.
type chatTurn struct{ role, content string }

// The generated text's vocabulary: plain words, so that tokenizing the
// generated text gives back exactly the generated tokens.
var vocabulary = [...]string{
	"the", "model", "cluster", "node", "token", "cache", "prefix", "block",
	"request", "server", "instance", "replica", "pod", "device", "chip", "ring",
	"batch", "queue", "slot", "prompt", "answer", "stream", "latency", "memory",
	"graph", "kernel", "tensor", "layer", "weight", "shard", "route", "probe",
	"ready", "alive", "quick", "steady", "simple", "careful", "simulated", "local",
	"runs", "serves", "waits", "loads", "keeps", "sends", "finds", "builds",
	"and", "or", "with", "for", "from", "into", "over", "under",
	"a", "every", "each", "some", "many", "one", "two", "this",
}

const (
	minNaturalLength = 8   // shortest answer before "stop"
	naturalSpread    = 121 // natural lengths are minNaturalLength + [0, naturalSpread)
)

// completion is what the simulated model answers to a prompt.
type completion struct {
	tokens []string
	// finish is "stop" when the answer ended by itself and "length" when
	// max_tokens cut it.
	finish string
}

// generate produces the answer to prompt: a pure function of its arguments.
// Tokens come one at a time from a PRNG seeded with a hash of model and
// prompt, so a smaller maxTokens yields a prefix of a larger one's answer.
func generate(model string, prompt []string, maxTokens int) completion {
	rng := splitmix(promptHash(model, prompt))
	natural := minNaturalLength + int(rng.next()%naturalSpread)
	n := min(natural, maxTokens)
	tokens := make([]string, 0, n)
	wordsInSentence := 0
	for i := range n {
		r := rng.next()
		var tok string
		switch {
		case i == natural-1:
			tok = "."
		case wordsInSentence >= 4 && i < natural-2 && r%6 == 0:
			if r%12 == 0 {
				tok = "."
			} else {
				tok = ","
			}
		default:
			tok = vocabulary[(r>>8)%uint64(len(vocabulary))]
			if wordsInSentence == 0 {
				tok = strings.ToUpper(tok[:1]) + tok[1:]
			}
		}
		switch tok {
		case ".":
			wordsInSentence = 0
		case ",":
			wordsInSentence = 1 // no comma right after a comma
		default:
			wordsInSentence++
		}
		tokens = append(tokens, tok)
	}
	finish := "length"
	if natural <= maxTokens {
		finish = "stop"
	}
	return completion{tokens: tokens, finish: finish}
}

// pieces returns the text each token adds to the answer: the token preceded
// by a space unless it is punctuation or the answer's first token (the first
// gets one too when leadingSpace, as a continuation of a prompt does).
// Concatenated they are the answer's text.
func (c completion) pieces(leadingSpace bool) []string {
	out := make([]string, len(c.tokens))
	for i, tok := range c.tokens {
		if (i > 0 || leadingSpace) && tok != "." && tok != "," {
			tok = " " + tok
		}
		out[i] = tok
	}
	return out
}

// tokenID is a stable fake vocabulary id for a token, for the APIs that
// report one.
func tokenID(tok string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(tok))
	return h.Sum32() % 32000
}

func promptHash(model string, prompt []string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(model))
	for _, t := range prompt {
		h.Write([]byte{0x1f})
		h.Write([]byte(t))
	}
	return h.Sum64()
}

// splitmix is SplitMix64: tiny, fast, and fully specified here, so the
// simulator's answers never change with the Go version.
type splitmix uint64

func (s *splitmix) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
