// Package secret holds credentials so they cannot leak by accident: every way
// of printing a Value (fmt, slog, JSON, YAML) shows a placeholder.
package secret

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Value is a credential. Use Reveal to pass it to a client; nothing else shows it.
type Value string

const redacted = "[REDACTED]"

// Reveal returns the secret itself.
func (v Value) Reveal() string { return string(v) }

// IsSet reports whether the secret is non-empty.
func (v Value) IsSet() bool { return v != "" }

func (v Value) String() string   { return mask(v) }
func (v Value) GoString() string { return mask(v) }

// LogValue implements slog.LogValuer.
func (v Value) LogValue() slog.Value { return slog.StringValue(mask(v)) }

// MarshalJSON shows the placeholder.
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + mask(v) + `"`), nil }

// MarshalYAML shows the placeholder.
func (v Value) MarshalYAML() (any, error) { return mask(v), nil }

// Format makes %s, %v, %q and %x all print the placeholder.
func (v Value) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(mask(v))) }

func mask(v Value) string {
	if v == "" {
		return ""
	}
	return redacted
}

// FromFile reads a secret from path, dropping one trailing newline. Errors name
// the path, never the content.
func FromFile(path string) (Value, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read secret file %s: %w", path, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return Value(s), nil
}
