package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// The canonical JSON form is the text Postgres prints for a jsonb value
// (`value::jsonb::text`), so that Postgres can compute the same content
// digest as triad (see digest.go). Its rules, from Postgres' jsonb code:
//
//   - objects: keys sorted by byte length, then bytewise; a repeated key keeps
//     its last value; members printed as `"k": v` joined by ", ";
//   - arrays: elements in order joined by ", "; empty containers are {} and [];
//   - strings: UTF-8 printed as is, except `"` `\` and the control characters
//     below U+0020, escaped as \b \f \n \r \t or \u00XX (lowercase hex);
//     \u0000 is refused (jsonb cannot store it);
//   - numbers: Postgres numeric text: plain decimal, no exponent, the scale
//     kept (1.50 stays 1.50, 1.5e1 becomes 15, -0 becomes 0);
//   - true, false, null.

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 64

// maxExponent bounds number exponents (Postgres accepts about ±1000; triad
// refuses earlier so canonical numbers stay short).
const maxExponent = 300

// SyntaxError is a JSON error at a byte offset of the parsed text.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset, e.Msg)
}

type kind uint8

const (
	kindNull kind = iota
	kindFalse
	kindTrue
	kindNumber
	kindString
	kindArray
	kindObject
)

// node is one parsed JSON value. Strings and numbers refer to their decoded
// (strings) or normalised (numbers) text in parser.text; containers refer to
// their children in parser.kids (objects as key, value pairs).
type node struct {
	kind       kind
	start, end int32
}

// parser turns JSON text into nodes and prints them in canonical form. Its
// buffers are reused from one Parse to the next, so a parser is not safe for
// concurrent use and the nodes of one Parse are invalid after the next.
type parser struct {
	src   []byte
	pos   int
	text  []byte
	nodes []node
	kids  []int32
	stack []int32
	order []int32
}

func (p *parser) fail(msg string) error { return &SyntaxError{Offset: p.pos, Msg: msg} }

// Parse parses exactly one JSON value (surrounding white space allowed).
func (p *parser) Parse(src []byte) (int32, error) {
	p.src, p.pos = src, 0
	p.text, p.nodes, p.kids, p.stack = p.text[:0], p.nodes[:0], p.kids[:0], p.stack[:0]
	p.space()
	root, err := p.value(0)
	if err != nil {
		return 0, err
	}
	p.space()
	if p.pos != len(p.src) {
		return 0, p.fail("unexpected data after the value")
	}
	return root, nil
}

func (p *parser) space() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) add(n node) int32 {
	p.nodes = append(p.nodes, n)
	return int32(len(p.nodes) - 1)
}

func (p *parser) value(depth int) (int32, error) {
	if depth > maxDepth {
		return 0, p.fail("nested too deeply")
	}
	if p.pos >= len(p.src) {
		return 0, p.fail("unexpected end of input")
	}
	switch c := p.src[p.pos]; {
	case c == '{':
		return p.container(depth, kindObject, '}')
	case c == '[':
		return p.container(depth, kindArray, ']')
	case c == '"':
		start := len(p.text)
		if err := p.str(); err != nil {
			return 0, err
		}
		return p.add(node{kind: kindString, start: int32(start), end: int32(len(p.text))}), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 't':
		return p.literal("true", kindTrue)
	case c == 'f':
		return p.literal("false", kindFalse)
	case c == 'n':
		return p.literal("null", kindNull)
	default:
		return 0, p.fail(fmt.Sprintf("unexpected character %q", c))
	}
}

func (p *parser) literal(word string, k kind) (int32, error) {
	if !bytes.HasPrefix(p.src[p.pos:], []byte(word)) {
		return 0, p.fail("invalid literal")
	}
	p.pos += len(word)
	return p.add(node{kind: k}), nil
}

func (p *parser) container(depth int, k kind, closer byte) (int32, error) {
	p.pos++ // opening bracket
	mark := len(p.stack)
	p.space()
	if p.pos < len(p.src) && p.src[p.pos] == closer {
		p.pos++
		return p.add(node{kind: k, start: int32(len(p.kids)), end: int32(len(p.kids))}), nil
	}
	for {
		p.space()
		if k == kindObject {
			if p.pos >= len(p.src) || p.src[p.pos] != '"' {
				return 0, p.fail("expected a string key")
			}
			key, err := p.value(depth + 1)
			if err != nil {
				return 0, err
			}
			p.stack = append(p.stack, key)
			p.space()
			if p.pos >= len(p.src) || p.src[p.pos] != ':' {
				return 0, p.fail("expected ':' after an object key")
			}
			p.pos++
			p.space()
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return 0, err
		}
		p.stack = append(p.stack, v)
		p.space()
		if p.pos >= len(p.src) {
			return 0, p.fail("unexpected end of input")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
			continue
		case closer:
			p.pos++
			start := len(p.kids)
			p.kids = append(p.kids, p.stack[mark:]...)
			p.stack = p.stack[:mark]
			return p.add(node{kind: k, start: int32(start), end: int32(len(p.kids))}), nil
		default:
			return 0, p.fail(fmt.Sprintf("expected ',' or '%c'", closer))
		}
	}
}

// str decodes a JSON string at p.pos into p.text.
func (p *parser) str() error {
	p.pos++ // opening quote
	for {
		i := p.pos
		for i < len(p.src) && p.src[i] != '"' && p.src[i] != '\\' && p.src[i] >= 0x20 && p.src[i] < utf8.RuneSelf {
			i++
		}
		p.text = append(p.text, p.src[p.pos:i]...)
		p.pos = i
		if p.pos >= len(p.src) {
			return p.fail("unterminated string")
		}
		c := p.src[p.pos]
		switch {
		case c == '"':
			p.pos++
			return nil
		case c < 0x20:
			return p.fail("control character in a string")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(p.src[p.pos:])
			if r == utf8.RuneError && size <= 1 {
				return p.fail("invalid UTF-8")
			}
			p.text = append(p.text, p.src[p.pos:p.pos+size]...)
			p.pos += size
		default: // backslash
			if p.pos+1 >= len(p.src) {
				return p.fail("unterminated escape")
			}
			e := p.src[p.pos+1]
			p.pos += 2
			switch e {
			case '"', '\\', '/':
				p.text = append(p.text, e)
			case 'b':
				p.text = append(p.text, '\b')
			case 'f':
				p.text = append(p.text, '\f')
			case 'n':
				p.text = append(p.text, '\n')
			case 'r':
				p.text = append(p.text, '\r')
			case 't':
				p.text = append(p.text, '\t')
			case 'u':
				r, err := p.hex4()
				if err != nil {
					return err
				}
				if utf16.IsSurrogate(r) {
					if r >= 0xdc00 || !bytes.HasPrefix(p.src[p.pos:], []byte(`\u`)) {
						return p.fail("unpaired surrogate in a \\u escape")
					}
					p.pos += 2
					r2, err := p.hex4()
					if err != nil {
						return err
					}
					if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
						return p.fail("invalid surrogate pair in a \\u escape")
					}
				}
				if r == 0 {
					return p.fail(`\u0000 is not allowed (Postgres jsonb cannot store it)`)
				}
				p.text = utf8.AppendRune(p.text, r)
			default:
				return p.fail(fmt.Sprintf("invalid escape \\%c", e))
			}
		}
	}
}

func (p *parser) hex4() (rune, error) {
	if p.pos+4 > len(p.src) {
		return 0, p.fail("short \\u escape")
	}
	v, err := strconv.ParseUint(string(p.src[p.pos:p.pos+4]), 16, 16)
	if err != nil {
		return 0, p.fail("invalid \\u escape")
	}
	p.pos += 4
	return rune(v), nil
}

// number scans a JSON number and stores its Postgres numeric text.
func (p *parser) number() (int32, error) {
	neg := false
	if p.src[p.pos] == '-' {
		neg = true
		p.pos++
	}
	digits := func() int {
		s := p.pos
		for p.pos < len(p.src) && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
			p.pos++
		}
		return p.pos - s
	}
	intStart := p.pos
	nInt := digits()
	if nInt == 0 {
		return 0, p.fail("invalid number")
	}
	if nInt > 1 && p.src[intStart] == '0' {
		return 0, p.fail("leading zero in a number")
	}
	fracStart, nFrac := p.pos, 0
	if p.pos < len(p.src) && p.src[p.pos] == '.' {
		p.pos++
		fracStart = p.pos
		if nFrac = digits(); nFrac == 0 {
			return 0, p.fail("invalid number")
		}
	}
	exp := 0
	if p.pos < len(p.src) && (p.src[p.pos] == 'e' || p.src[p.pos] == 'E') {
		p.pos++
		sign := 1
		if p.pos < len(p.src) && (p.src[p.pos] == '+' || p.src[p.pos] == '-') {
			if p.src[p.pos] == '-' {
				sign = -1
			}
			p.pos++
		}
		s := p.pos
		if digits() == 0 {
			return 0, p.fail("invalid number exponent")
		}
		if p.pos-s > 4 {
			return 0, p.fail("number exponent out of range")
		}
		e, _ := strconv.Atoi(string(p.src[s:p.pos]))
		exp = sign * e
		if exp > maxExponent || exp < -maxExponent {
			return 0, p.fail("number exponent out of range")
		}
	}
	start := len(p.text)
	p.text = appendNumeric(p.text, neg, p.src[intStart:intStart+nInt], p.src[fracStart:fracStart+nFrac], exp)
	return p.add(node{kind: kindNumber, start: int32(start), end: int32(len(p.text))}), nil
}

// appendNumeric prints intDigits.fracDigits × 10^exp the way Postgres prints
// a numeric parsed from that literal: the display scale is the number of
// fraction digits minus the exponent, at least 0.
func appendNumeric(dst []byte, neg bool, intDigits, fracDigits []byte, exp int) []byte {
	scale := len(fracDigits) - exp
	if scale < 0 {
		scale = 0
	}
	// All significant digits, and where the decimal point falls in them.
	point := len(intDigits) + exp
	var all [1024]byte
	digits := append(append(all[:0], intDigits...), fracDigits...)
	// Integer part: digits[:point] (zero padded when point > len).
	zero := true
	for _, d := range digits {
		if d != '0' {
			zero = false
			break
		}
	}
	if neg && !zero {
		dst = append(dst, '-')
	}
	wrote := false
	for i := 0; i < point; i++ {
		d := byte('0')
		if i < len(digits) {
			d = digits[i]
		}
		if d == '0' && !wrote {
			continue
		}
		wrote = true
		dst = append(dst, d)
	}
	if !wrote {
		dst = append(dst, '0')
	}
	if scale > 0 {
		dst = append(dst, '.')
		for i := 0; i < scale; i++ {
			j := point + i
			d := byte('0')
			if j >= 0 && j < len(digits) {
				d = digits[j]
			}
			dst = append(dst, d)
		}
	}
	return dst
}

// Append prints node n in canonical form.
func (p *parser) Append(dst []byte, n int32) []byte {
	nd := p.nodes[n]
	switch nd.kind {
	case kindNull:
		return append(dst, "null"...)
	case kindTrue:
		return append(dst, "true"...)
	case kindFalse:
		return append(dst, "false"...)
	case kindNumber:
		return append(dst, p.text[nd.start:nd.end]...)
	case kindString:
		dst, _ = jsontext.AppendQuote(dst, p.text[nd.start:nd.end])
		return dst
	case kindArray:
		dst = append(dst, '[')
		for i := nd.start; i < nd.end; i++ {
			if i > nd.start {
				dst = append(dst, ", "...)
			}
			dst = p.Append(dst, p.kids[i])
		}
		return append(dst, ']')
	default:
		return p.appendObject(dst, nd)
	}
}

func (p *parser) appendObject(dst []byte, nd node) []byte {
	// Member indexes (into kids, pointing at keys), sorted stably by key so
	// that among equal keys the last one can be kept.
	mark := len(p.order)
	for i := nd.start; i < nd.end; i += 2 {
		p.order = append(p.order, i)
	}
	members := p.order[mark:]
	slices.SortStableFunc(members, func(a, b int32) int { return compareKeys(p.key(a), p.key(b)) })
	dst = append(dst, '{')
	first := true
	for i, m := range members {
		if i+1 < len(members) && bytes.Equal(p.key(m), p.key(members[i+1])) {
			continue // a later duplicate wins
		}
		if !first {
			dst = append(dst, ", "...)
		}
		first = false
		dst, _ = jsontext.AppendQuote(dst, p.key(m))
		dst = append(dst, ": "...)
		dst = p.Append(dst, p.kids[m+1])
	}
	p.order = p.order[:mark]
	return append(dst, '}')
}

func (p *parser) key(member int32) []byte {
	k := p.nodes[p.kids[member]]
	return p.text[k.start:k.end]
}

// compareKeys orders object keys as jsonb does: shorter first, then bytewise.
func compareKeys(a, b []byte) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return bytes.Compare(a, b)
}

// errEmpty is returned by CanonicalJSON for an empty input.
var errEmpty = errors.New("empty JSON value")

// CanonicalJSON appends the canonical (jsonb text) form of the JSON value in
// src to dst.
func CanonicalJSON(dst, src []byte) ([]byte, error) {
	if len(bytes.TrimSpace(src)) == 0 {
		return dst, errEmpty
	}
	var p parser
	root, err := p.Parse(src)
	if err != nil {
		return dst, err
	}
	return p.Append(dst, root), nil
}
