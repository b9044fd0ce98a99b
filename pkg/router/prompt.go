package router

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
)

// prompt is what the router knows of a request's prompt before sending it.
type prompt struct {
	// tokens estimates the prompt's tokens.
	tokens int
	// blocks are the chained hashes of an OpenAI chat's canonical message
	// stream: blocks[i] stands for everything up to and including block i,
	// so a conversation's next turn shares its previous turn's blocks, and
	// chats that share a system prompt share its blocks. Nil when the
	// request is not a chat.
	blocks []uint64
	// blockEnds[i] is how many characters blocks 0..i cover.
	blockEnds []int
	// conversation identifies the conversation: the block that holds the
	// start of its first user message (so users sharing a system prompt
	// differ). Replicas that never saw the conversation agree on its
	// instance by rendezvous hashing of it.
	conversation uint64
	// conversationBlock is the index of that block in blocks.
	conversationBlock int
}

// chatRequest is the part of an OpenAI chat request that makes its prompt.
type chatRequest struct {
	Model    string          `json:"model"`
	Tools    json.RawMessage `json:"tools"`
	Messages []chatMessage   `json:"messages"`
}

type chatMessage struct {
	Role       string          `json:"role"`
	Name       string          `json:"name"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  json.RawMessage `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
}

// estimateTokens guesses a prompt's tokens from its size in characters.
func estimateTokens(chars int) int { return (chars + charsPerToken - 1) / charsPerToken }

// chatPrompt hashes an OpenAI chat body into prefix blocks of at most
// blockChars characters. Each message is its role, name and content (text
// parts as text, other parts and tool calls as their JSON); a long message
// is split into several blocks, and every block's hash is chained on the one
// before, seeded with the model and the tools. It reports false when the
// body is not a chat with messages; such requests are balanced on load.
func chatPrompt(body []byte, blockChars int) (prompt, bool) {
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil || len(req.Messages) == 0 {
		return prompt{tokens: estimateTokens(len(body))}, false
	}
	h := hashString(fnvOffset, req.Model)
	h = hashBytes(hashByte(h, 0), compactJSON(req.Tools))
	p := prompt{}
	chars := 0
	foundUser := false
	for i, m := range req.Messages {
		text := messageText(m)
		header := m.Role + "\x1f" + m.Name
		first := true
		for first || len(text) > 0 {
			chunk := text[:min(len(text), blockChars)]
			text = text[len(chunk):]
			h = chainBlock(h, header, chunk)
			chars += len(chunk)
			p.blocks = append(p.blocks, h)
			p.blockEnds = append(p.blockEnds, chars)
			if first && !foundUser && (m.Role == "user" || i == len(req.Messages)-1) {
				p.conversation, p.conversationBlock, foundUser = h, len(p.blocks)-1, true
			}
			first = false
		}
	}
	p.tokens = estimateTokens(chars)
	return p, true
}

// messageText is a message's content as one string: text as it is, other
// content parts and tool calls as compact JSON.
func messageText(m chatMessage) string {
	var b bytes.Buffer
	content := bytes.TrimSpace(m.Content)
	switch {
	case len(content) == 0 || bytes.Equal(content, []byte("null")):
	case content[0] == '"':
		var s string
		if json.Unmarshal(content, &s) == nil {
			b.WriteString(s)
		} else {
			b.Write(content)
		}
	case content[0] == '[':
		var parts []json.RawMessage
		if json.Unmarshal(content, &parts) != nil {
			b.Write(compactJSON(content))
			break
		}
		for _, raw := range parts {
			var part struct {
				Type string  `json:"type"`
				Text *string `json:"text"`
			}
			if json.Unmarshal(raw, &part) == nil && part.Type == "text" && part.Text != nil {
				b.WriteString(*part.Text)
			} else {
				b.Write(compactJSON(raw))
			}
		}
	default:
		b.Write(compactJSON(content))
	}
	if len(m.ToolCalls) > 0 {
		b.WriteByte(0)
		b.Write(compactJSON(m.ToolCalls))
	}
	if m.ToolCallID != "" {
		b.WriteByte(0)
		b.WriteString(m.ToolCallID)
	}
	return b.String()
}

// compactJSON drops insignificant white space, so that re-formatted JSON
// hashes the same.
func compactJSON(raw []byte) []byte {
	if len(raw) == 0 {
		return nil
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}

// FNV-1a, 64 bits: deterministic across processes, so that router replicas
// hash alike, and without allocation.
const (
	fnvOffset uint64 = 14695981039346656037
	fnvPrime  uint64 = 1099511628211
)

func hashByte(h uint64, c byte) uint64 { return (h ^ uint64(c)) * fnvPrime }

func hashBytes(h uint64, b []byte) uint64 {
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return h
}

func hashString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h
}

// chainBlock hashes one block on the hash of the blocks before it.
func chainBlock(prev uint64, header, chunk string) uint64 {
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], prev)
	h := hashBytes(fnvOffset, buf[:])
	h = hashByte(hashString(h, header), 0x1e)
	return mix64(hashString(h, chunk))
}

// mix64 is SplitMix64's finaliser: it spreads FNV's weak low bits.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// rendezvousScore is the highest-random-weight score of an instance for a
// conversation: the instance with the highest score wins, and removing an
// instance moves only its own conversations.
func rendezvousScore(conversation uint64, instance string) uint64 {
	return mix64(hashString(conversation^fnvOffset, instance))
}
