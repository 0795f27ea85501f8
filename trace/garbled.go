package trace

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Other services and people can write to the span store: a stored
// resource, attribute set, event list or link list may be any JSON (a
// string, an array where an object belongs, objects of the wrong shape).
// Such content is classified, never fatal: the span is still read, shown
// and exported, and what could not be read is named with an excerpt of
// its stored form.

// GarbledKey is the attribute that carries a note on stored content
// triad could not read: in a resource's attributes (the resource as a
// whole), and in exported spans as GarbledKey + "." + the part.
const GarbledKey = "triad.garbled"

// maxExcerpt bounds the stored form quoted in a note.
const maxExcerpt = 200

// shape says what a part must be: an object for attributes and
// resources, an array for events and links.
func shape(part string) (byte, string) {
	if part == "events" || part == "links" {
		return '[', "array"
	}
	return '{', "object"
}

// shapeNote is "" when raw is empty or starts as part's JSON must (a
// check of one byte: stored JSON is passed through undecoded), else a
// note naming the part and quoting its stored form.
func shapeNote(part string, raw []byte) string {
	t := bytes.TrimLeft(raw, " \t\r\n")
	open, kind := shape(part)
	if len(t) == 0 || t[0] == open || bytes.Equal(t, []byte("null")) {
		return ""
	}
	return fmt.Sprintf("stored %s are not a JSON %s: %s", part, kind, excerpt(raw))
}

// decodeNote is the note for raw that did not decode as part.
func decodeNote(part string, raw []byte, err error) string {
	return fmt.Sprintf("stored %s could not be read (%v): %s", part, err, excerpt(raw))
}

// excerpt is the start of raw, cut at a character boundary.
func excerpt(raw []byte) string {
	if len(raw) <= maxExcerpt {
		return string(raw)
	}
	i := maxExcerpt
	for i > 0 && !utf8.RuneStart(raw[i]) {
		i--
	}
	return string(raw[:i]) + fmt.Sprintf("…[+%d bytes]", len(raw)-i)
}

// DecodeResource reads a stored resource's attributes; one that is not a
// JSON object comes back as a resource holding only GarbledKey's note.
func DecodeResource(id int64, raw []byte) map[string]any {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return map[string]any{GarbledKey: decodeNote(fmt.Sprintf("resource %x attributes", uint64(id)), raw, err)}
	}
	if m == nil {
		m = map[string]any{}
	}
	return m
}
