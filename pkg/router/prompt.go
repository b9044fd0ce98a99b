package router

import (
	"bytes"
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
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

// estimateTokens guesses a prompt's tokens from its size in characters.
func estimateTokens(chars int) int { return (chars + charsPerToken - 1) / charsPerToken }

// chatPrompt hashes an OpenAI chat body into prefix blocks of at most
// blockChars characters. Each message is its role, name and content (text
// parts as text, other parts and tool calls as their compact JSON, then the
// tool call ID); a long message is split into several blocks, and every
// block's hash is chained on the one before, seeded with the model and the
// tools. It reports false when the body is not a JSON object with a
// non-empty "messages" array of message objects; such requests are
// balanced on load.
//
// It reads the body in place, without decoding it: one pass finds the
// fields it needs (validating the JSON's structure as it goes), and the
// hashing reads only their bytes, unescaping strings on the fly. The hash
// is XXH64, the same in every process, so that router replicas agree.
func chatPrompt(body []byte, blockChars int) (prompt, bool) {
	var c chatFields
	if !c.parse(body) || len(c.messages) == 0 {
		return prompt{tokens: estimateTokens(len(body))}, false
	}
	var seed xxhash.Digest
	seed.Reset()
	writeString(&seed, c.model)
	seed.Write([]byte{0})
	writeCompact(&seed, c.tools)

	p := prompt{}
	n := len(body)/blockChars + len(c.messages) + 1
	p.blocks, p.blockEnds = make([]uint64, 0, n), make([]int, 0, n)
	bh := blockHasher{size: blockChars, prev: seed.Sum64(), p: &p}
	var header []byte
	foundUser := false
	for i, m := range c.messages {
		header = appendString(header[:0], m.role)
		header = append(header, 0x1f)
		header = appendString(header, m.name)
		bh.markConversation = !foundUser && (stringIs(m.role, "user") || i == len(c.messages)-1)
		foundUser = foundUser || bh.markConversation
		bh.start(header)
		writeContent(&bh, m.content)
		if m.toolCalls != nil {
			bh.Write([]byte{0})
			writeCompact(&bh, m.toolCalls)
		}
		if len(m.toolCallID) > 2 { // not ""
			bh.Write([]byte{0})
			writeString(&bh, m.toolCallID)
		}
		bh.end()
	}
	p.tokens = estimateTokens(bh.chars)
	return p, true
}

// chatFields are the parts of a chat request that make its prompt, as
// slices of the body: raw JSON values, strings with their quotes. A field
// absent or null is nil.
type chatFields struct {
	model, tools []byte
	messages     []messageFields
}

type messageFields struct {
	role, name, toolCallID []byte // strings
	content, toolCalls     []byte // any value
}

// parse finds the fields in body, a JSON object; it reports false if body
// is not JSON, not an object, or has "model", "messages" or a message field
// of the wrong type. As with encoding/json, a key given twice counts with
// its last value, and a null message is an empty one; unlike it, keys match
// exactly (not ignoring case), and "tool_calls": null is no tool calls.
func (c *chatFields) parse(body []byte) bool {
	s := scanner{b: body}
	s.ws()
	ok := s.object(0, func(key []byte) bool {
		switch {
		case stringIs(key, "model"):
			v, ok := s.value(1)
			if !ok || !isStringOrNull(v) {
				return false
			}
			if v[0] == '"' { // null leaves a string as it was, as in encoding/json
				c.model = v
			}
		case stringIs(key, "tools"):
			v, ok := s.value(1)
			if !ok {
				return false
			}
			c.tools = nonNull(v)
		case stringIs(key, "messages"):
			c.messages = c.messages[:0]
			if s.peek() == 'n' {
				_, ok := s.value(1)
				return ok
			}
			return s.array(1, func() bool {
				var m messageFields
				if s.peek() == 'n' { // a null message is an empty one, as encoding/json has it
					_, ok := s.value(2)
					c.messages = append(c.messages, m)
					return ok
				}
				ok := s.object(2, func(key []byte) bool { return m.field(&s, key) })
				c.messages = append(c.messages, m)
				return ok
			})
		default:
			_, ok := s.value(1)
			return ok
		}
		return true
	})
	if !ok {
		return false
	}
	s.ws()
	return s.i == len(s.b)
}

// field reads the value of one key of a message.
func (m *messageFields) field(s *scanner, key []byte) bool {
	var dst *[]byte
	str := true
	switch {
	case stringIs(key, "role"):
		dst = &m.role
	case stringIs(key, "name"):
		dst = &m.name
	case stringIs(key, "tool_call_id"):
		dst = &m.toolCallID
	case stringIs(key, "content"):
		dst, str = &m.content, false
	case stringIs(key, "tool_calls"):
		dst, str = &m.toolCalls, false
	default:
		_, ok := s.value(3)
		return ok
	}
	v, ok := s.value(3)
	switch {
	case !ok || str && !isStringOrNull(v):
		return false
	case str && v[0] == 'n': // null leaves a string as it was, as in encoding/json
	default:
		*dst = nonNull(v)
	}
	return true
}

func isStringOrNull(v []byte) bool { return v[0] == '"' || v[0] == 'n' }

func nonNull(v []byte) []byte {
	if v[0] == 'n' {
		return nil
	}
	return v
}

// maxDepth bounds the nesting of a body, as encoding/json does.
const maxDepth = 10000

// scanner reads JSON in place. Every method starts at a value's first byte
// (after white space) and leaves i after it and the white space that
// follows. It checks the structure (brackets, commas, colons, literals,
// numbers, escapes); it does not check that strings are valid UTF-8 free
// of control characters, which only the instance's own parser cares about.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek is the next byte, 0 at the end.
func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// value skips one value and returns its bytes.
func (s *scanner) value(depth int) ([]byte, bool) {
	start := s.i
	var ok bool
	switch s.peek() {
	case '"':
		_, ok = s.str()
	case '{':
		ok = s.object(depth, func([]byte) bool { _, ok := s.value(depth + 1); return ok })
	case '[':
		ok = s.array(depth, func() bool { _, ok := s.value(depth + 1); return ok })
	case 't':
		ok = s.literal("true")
	case 'f':
		ok = s.literal("false")
	case 'n':
		ok = s.literal("null")
	default:
		ok = s.number()
	}
	if !ok {
		return nil, false
	}
	end := s.i
	s.ws()
	return s.b[start:end], true
}

// object reads an object, calling member with each key (raw, with its
// quotes) when i is at the key's value; member must read the value.
func (s *scanner) object(depth int, member func(key []byte) bool) bool {
	if s.peek() != '{' || depth > maxDepth {
		return false
	}
	s.i++
	s.ws()
	if s.peek() == '}' {
		s.i++
		s.ws()
		return true
	}
	for {
		key, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		if s.peek() != ':' {
			return false
		}
		s.i++
		s.ws()
		if !member(key) {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			s.ws()
			return true
		default:
			return false
		}
	}
}

// array reads an array, calling element at each element; element must
// read it.
func (s *scanner) array(depth int, element func() bool) bool {
	if s.peek() != '[' || depth > maxDepth {
		return false
	}
	s.i++
	s.ws()
	if s.peek() == ']' {
		s.i++
		s.ws()
		return true
	}
	for {
		if !element() {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
			s.ws()
		case ']':
			s.i++
			s.ws()
			return true
		default:
			return false
		}
	}
}

// str reads a string and returns it with its quotes. It finds the closing
// quote with bytes.IndexByte-speed scans (indexByte), looking for
// backslashes only up to the next quote.
func (s *scanner) str() ([]byte, bool) {
	if s.peek() != '"' {
		return nil, false
	}
	start := s.i
	i := s.i + 1
	q := indexByte(s.b, i, '"')
	for {
		if q < 0 {
			return nil, false
		}
		e := indexByte(s.b[:q], i, '\\')
		if e < 0 {
			s.i = q + 1
			return s.b[start:s.i], true
		}
		n := escapeLen(s.b[e:])
		if n == 0 {
			return nil, false
		}
		i = e + n
		if i > q { // the escape was \" : the string goes on
			q = indexByte(s.b, i, '"')
		}
	}
}

// indexByte is the index of the first c in b from from on, -1 if none.
func indexByte(b []byte, from int, c byte) int {
	if from >= len(b) {
		return -1
	}
	if k := bytes.IndexByte(b[from:], c); k >= 0 {
		return from + k
	}
	return -1
}

// escapeLen is the length of the escape sequence at the start of b (a
// backslash), 0 if it is not one.
func escapeLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if len(b) >= 6 && isHex(b[2]) && isHex(b[3]) && isHex(b[4]) && isHex(b[5]) {
			return 6
		}
	}
	return 0
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// number reads -?int(.digits)?([eE][+-]?digits)?.
func (s *scanner) number() bool {
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		s.digits()
	default:
		return false
	}
	if s.peek() == '.' {
		s.i++
		if !s.digits() {
			return false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// writer takes the canonical message stream: a block hasher, or a digest.
type writer interface {
	Write([]byte) (int, error)
}

// writeContent writes a message's content: a string as its text, an array
// of parts with each OpenAI text part ({"type":"text","text":...}) as its
// text and any other part as compact JSON, anything else as compact JSON.
func writeContent(w writer, content []byte) {
	switch {
	case content == nil:
	case content[0] == '"':
		writeString(w, content)
	case content[0] == '[':
		s := scanner{b: content}
		s.array(0, func() bool {
			part, ok := s.value(1)
			if !ok {
				return false
			}
			if text := textPart(part); text != nil {
				writeString(w, text)
			} else {
				writeCompact(w, part)
			}
			return true
		})
	default:
		writeCompact(w, content)
	}
}

// textPart is the text of a part {"type":"text","text":"..."} (with other
// keys in any order), nil if part is not one.
func textPart(part []byte) []byte {
	if part[0] != '{' {
		return nil
	}
	var typ, text []byte
	s := scanner{b: part}
	s.object(0, func(key []byte) bool {
		v, ok := s.value(1)
		switch {
		case stringIs(key, "type"):
			typ = v
		case stringIs(key, "text"):
			text = v
		}
		return ok
	})
	if typ == nil || text == nil || !stringIs(typ, "text") || text[0] != '"' {
		return nil
	}
	return text
}

// writeString writes the text of a JSON string (raw, with its quotes),
// unescaped; nil writes nothing.
func writeString(w writer, raw []byte) {
	if len(raw) < 2 {
		return
	}
	s := raw[1 : len(raw)-1]
	var buf [8]byte
	for len(s) > 0 {
		e := indexByte(s, 0, '\\')
		if e < 0 {
			w.Write(s)
			return
		}
		if e > 0 {
			w.Write(s[:e])
		}
		out, n := unescape(buf[:0], s[e:])
		if n == 0 { // cannot happen after the scanner; keep the byte
			out, n = append(out, s[e]), 1
		}
		w.Write(out)
		s = s[e+n:]
	}
}

// appendString appends the text of a JSON string (raw, with its quotes).
func appendString(dst, raw []byte) []byte {
	if len(raw) < 2 {
		return dst
	}
	s := raw[1 : len(raw)-1]
	for len(s) > 0 {
		e := indexByte(s, 0, '\\')
		if e < 0 {
			return append(dst, s...)
		}
		dst = append(dst, s[:e]...)
		var n int
		dst, n = unescape(dst, s[e:])
		if n == 0 {
			dst, n = append(dst, s[e]), 1
		}
		s = s[e+n:]
	}
	return dst
}

// stringIs reports whether the JSON string raw (with its quotes) is lit.
func stringIs(raw []byte, lit string) bool {
	if len(raw) < 2 || raw[0] != '"' {
		return false
	}
	inner := raw[1 : len(raw)-1]
	if indexByte(inner, 0, '\\') < 0 {
		return string(inner) == lit
	}
	var buf [64]byte
	return string(appendString(buf[:0], raw)) == lit
}

// unescape appends the text of the escape sequence at the start of s and
// returns how many bytes of s it took (0: not an escape). A \u escape of a
// UTF-16 surrogate pair is one character; a lone surrogate is U+FFFD, as
// encoding/json has them.
func unescape(dst, s []byte) ([]byte, int) {
	n := escapeLen(s)
	switch n {
	case 0:
		return dst, 0
	case 2:
		c := s[1]
		switch c {
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		}
		return append(dst, c), 2
	}
	r := rune(hex4(s[2:6]))
	if 0xD800 <= r && r < 0xDC00 { // a high surrogate: a low one must follow
		if escapeLen(s[6:]) == 6 && s[7] == 'u' {
			if lo := rune(hex4(s[8:12])); 0xDC00 <= lo && lo < 0xE000 {
				return appendRune(dst, (r-0xD800)<<10+(lo-0xDC00)+0x10000), 12
			}
		}
		return appendRune(dst, 0xFFFD), 6
	}
	if 0xDC00 <= r && r < 0xE000 {
		r = 0xFFFD
	}
	return appendRune(dst, r), 6
}

func hex4(b []byte) uint32 {
	var v uint32
	for _, c := range b[:4] {
		v <<= 4
		switch {
		case c <= '9':
			v |= uint32(c - '0')
		case c >= 'a':
			v |= uint32(c - 'a' + 10)
		default:
			v |= uint32(c - 'A' + 10)
		}
	}
	return v
}

// appendRune appends r's UTF-8 (utf8.AppendRune, kept here without the
// package for four lines).
func appendRune(dst []byte, r rune) []byte {
	switch {
	case r < 0x80:
		return append(dst, byte(r))
	case r < 0x800:
		return append(dst, 0xC0|byte(r>>6), 0x80|byte(r)&0x3F)
	case r < 0x10000:
		return append(dst, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
	default:
		return append(dst, 0xF0|byte(r>>18), 0x80|byte(r>>12)&0x3F, 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F)
	}
}

// writeCompact writes a JSON value without its insignificant white space,
// so that re-formatted JSON hashes the same; strings are written as they
// are (escapes included). nil writes nothing.
func writeCompact(w writer, raw []byte) {
	start := 0
	for i := 0; i < len(raw); {
		switch raw[i] {
		case ' ', '\t', '\n', '\r':
			if i > start {
				w.Write(raw[start:i])
			}
			i++
			start = i
		case '"':
			s := scanner{b: raw, i: i}
			if _, ok := s.str(); !ok {
				w.Write(raw[start:])
				return
			}
			i = s.i
		default:
			i++
		}
	}
	if start < len(raw) {
		w.Write(raw[start:])
	}
}

// blockHasher cuts the canonical message stream into blocks of at most
// size characters, a message starting a new block, and chains each block's
// hash on the one before: XXH64 of the previous hash, the message's header
// (role and name) and the block's characters.
type blockHasher struct {
	size  int
	prev  uint64
	p     *prompt
	d     xxhash.Digest
	n     int // characters in the current block
	chars int // characters of the prompt so far

	header  []byte
	emitted int // blocks of the current message
	// markConversation: the current message's first block identifies the
	// conversation.
	markConversation bool
}

// start begins a message.
func (h *blockHasher) start(header []byte) {
	h.header, h.emitted = header, 0
	h.begin()
}

func (h *blockHasher) begin() {
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], h.prev)
	h.d.Reset()
	h.d.Write(buf[:])
	h.d.Write(h.header)
	h.d.Write([]byte{0x1e})
	h.n = 0
}

// Write adds characters of the current message.
func (h *blockHasher) Write(b []byte) (int, error) {
	written := len(b)
	for len(b) > 0 {
		if h.n == h.size {
			h.emit()
			h.begin()
		}
		k := min(len(b), h.size-h.n)
		h.d.Write(b[:k])
		h.n += k
		h.chars += k
		b = b[k:]
	}
	return written, nil
}

// end ends a message: its last block, or its only one when it is empty.
func (h *blockHasher) end() {
	if h.n > 0 || h.emitted == 0 {
		h.emit()
	}
}

func (h *blockHasher) emit() {
	h.prev = h.d.Sum64()
	if h.emitted == 0 && h.markConversation {
		h.p.conversation, h.p.conversationBlock = h.prev, len(h.p.blocks)
	}
	h.p.blocks = append(h.p.blocks, h.prev)
	h.p.blockEnds = append(h.p.blockEnds, h.chars)
	h.emitted++
}

// FNV-1a, 64 bits, for short strings (rendezvous scores): deterministic
// across processes and without allocation.
const (
	fnvOffset uint64 = 14695981039346656037
	fnvPrime  uint64 = 1099511628211
)

func hashString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h
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
