package trace

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Printable returns s safe to print on a terminal: control characters (C0,
// DEL, C1, which terminals act on: ESC starts a sequence that can retitle
// the window, rewrite the screen or paste into the shell) and the Unicode
// bidirectional overrides (which reorder what is shown) become \uXXXX
// escapes, and invalid UTF-8 becomes U+FFFD. The escapes are valid inside
// JSON strings, so a JSON line stays JSON.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unsafeRune(r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// PrintableLines is Printable for text of lines: the newlines stay.
func PrintableLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Printable(l)
	}
	return strings.Join(lines, "\n")
}

func unsafeRune(r rune) bool {
	return r < 0x20 || (r >= 0x7f && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == 0x200e || r == 0x200f || r == 0x061c
}
