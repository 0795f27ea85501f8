package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/triad-dev/triad/server/auth"
	"github.com/triad-dev/triad/trace"
)

// Redacted replaces a personal value a viewer may not see.
const Redacted = "[redacted]"

// redactor hides configured personal data from viewers: profile fields by
// path ("props.email", or a whole field such as "devices") and span
// attributes by key (wherever they appear: a span's or a resource's
// attributes, events, links, the OTLP export). Operators and admins see
// everything. The repair log holds versions and digests only, and logs
// name counts, never values, so nothing else carries these fields.
type redactor struct {
	profile [][]string      // paths from a profile's root
	span    map[string]bool // attribute keys
	// needles are the texts a span answer holds when Spans has anything
	// to do in it: each key as a JSON string, and the garbled notes' keys.
	needles [][]byte
}

func newRedactor(profileFields, spanAttributes []string) redactor {
	r := redactor{span: map[string]bool{}}
	for _, f := range profileFields {
		r.profile = append(r.profile, strings.Split(f, "."))
	}
	for _, k := range spanAttributes {
		r.span[k] = true
		q, _ := json.Marshal(k)
		r.needles = append(r.needles, q)
	}
	r.needles = append(r.needles, []byte(`"garbled"`), []byte(`"`+trace.GarbledKey))
	return r
}

// mayHold reports whether Spans could change body: it names a redacted key
// or a garbled note, or holds an escape (a key could be spelt with one).
// Most spans of a large trace name none, and pass without being decoded.
func (r redactor) mayHold(body []byte) bool {
	if bytes.IndexByte(body, '\\') >= 0 {
		return true
	}
	for _, n := range r.needles {
		if bytes.Contains(body, n) {
			return true
		}
	}
	return false
}

// applies reports whether the caller's answers are redacted.
func (r redactor) applies(c *gin.Context) bool { return principal(c).Role < auth.RoleOperator }

// Profile returns a profile's JSON with the configured paths replaced.
func (r redactor) Profile(body []byte) ([]byte, error) {
	if len(r.profile) == 0 {
		return body, nil
	}
	var doc map[string]any
	if err := decodeNumbers(body, &doc); err != nil {
		return nil, fmt.Errorf("redact profile: %w", err)
	}
	for _, path := range r.profile {
		redactPath(doc, path)
	}
	return json.Marshal(doc)
}

// Fields redacts a record's fields (name → canonical JSON) as Profile
// redacts a profile: the names are the paths' roots.
func (r redactor) Fields(fields map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	if len(r.profile) == 0 || len(fields) == 0 {
		return fields, nil
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	if body, err = r.Profile(body); err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	return out, json.Unmarshal(body, &out)
}

func redactPath(node map[string]any, path []string) {
	v, ok := node[path[0]]
	if !ok {
		return
	}
	if len(path) == 1 {
		node[path[0]] = Redacted
		return
	}
	if child, ok := v.(map[string]any); ok {
		redactPath(child, path[1:])
	}
}

// Spans returns any JSON with the configured attribute keys' values
// replaced: map-form attributes ({"user.email": "…"}) and OTLP's
// key/value lists ({"key": "user.email", "value": {…}}).
func (r redactor) Spans(body []byte) ([]byte, error) {
	if len(r.span) == 0 || !r.mayHold(body) {
		return body, nil
	}
	var doc any
	if err := decodeNumbers(body, &doc); err != nil {
		return nil, fmt.Errorf("redact spans: %w", err)
	}
	return json.Marshal(r.walk(doc))
}

// GarbledHidden replaces, for a viewer the redaction applies to, a note
// on stored content triad could not read: its excerpt of the stored form
// could hold any attribute, redacted ones included.
const GarbledHidden = "stored content triad could not read; the excerpt is hidden for this role"

// isGarbled is a key that carries such notes: a view span's "garbled",
// a resource's or an exported span's trace.GarbledKey attributes.
func isGarbled(k string) bool {
	return k == "garbled" || strings.HasPrefix(k, trace.GarbledKey)
}

func (r redactor) hidden(k string) string {
	if isGarbled(k) {
		return GarbledHidden
	}
	return Redacted
}

func (r redactor) walk(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if k, ok := x["key"].(string); ok && (r.span[k] || isGarbled(k)) {
			if _, has := x["value"]; has {
				x["value"] = map[string]any{"stringValue": r.hidden(k)}
				return x
			}
		}
		for k, child := range x {
			if notes, ok := child.(map[string]any); ok && k == "garbled" {
				for part := range notes {
					notes[part] = GarbledHidden
				}
				continue
			}
			if r.span[k] || isGarbled(k) {
				x[k] = r.hidden(k)
				continue
			}
			x[k] = r.walk(child)
		}
	case []any:
		for i := range x {
			x[i] = r.walk(x[i])
		}
	}
	return v
}

// decodeNumbers decodes keeping numbers exact (int64 versions and
// digests must not pass through float64).
func decodeNumbers(b []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(dst)
}

// DefaultRedactedProfileFields and DefaultRedactedSpanAttributes are the
// personal data hidden from viewers unless configured otherwise.
var (
	DefaultRedactedProfileFields  = []string{"props.email", "props.phone", "props.name", "devices"}
	DefaultRedactedSpanAttributes = []string{"enduser.id", "user.id", "user.email", "user.name", "client.address", "http.client_ip", "net.peer.ip"}
)
