package server

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRedactor(t *testing.T) {
	r := newRedactor([]string{"props.email", "devices", "props.missing.deep"}, []string{"user.email", "enduser.id"})
	out, err := r.Profile([]byte(`{"user_id":7,"version":1767225600000000006,"digest":-9007199254740993,"devices":[{"id":"fp-1"}],` +
		`"props":{"email":"a@example.org","city":"Lyon"},"tags":["x"]}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"user_id":7,"version":1767225600000000006,"digest":-9007199254740993,"devices":"[redacted]",`+
		`"props":{"email":"[redacted]","city":"Lyon"},"tags":["x"]}`, string(out))
	require.Contains(t, string(out), "1767225600000000006", "int64 versions stay exact")

	out, err = r.Spans([]byte(`{"spans":[{"name":"GET /","attributes":{"user.email":"a@example.org","http.method":"GET"},` +
		`"events":[{"name":"login","attributes":{"enduser.id":"42"}}]}],` +
		`"otlp":[{"key":"user.email","value":{"stringValue":"a@example.org"}},{"key":"http.method","value":{"stringValue":"GET"}}]}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"spans":[{"name":"GET /","attributes":{"user.email":"[redacted]","http.method":"GET"},`+
		`"events":[{"name":"login","attributes":{"enduser.id":"[redacted]"}}]}],`+
		`"otlp":[{"key":"user.email","value":{"stringValue":"[redacted]"}},{"key":"http.method","value":{"stringValue":"GET"}}]}`, string(out))

	// A key spelt with an escape is still found; a span naming no
	// redacted key passes as it is, undecoded.
	out, err = r.Spans([]byte(`{"attributes":{"user\u002eemail":"a@example.org"}}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"attributes":{"user.email":"[redacted]"}}`, string(out))
	plain := []byte(`{"name":"GET /",  "attributes":{"item":"7"}}`)
	out, err = r.Spans(plain)
	require.NoError(t, err)
	require.Equal(t, plain, out)
	out, err = r.Spans([]byte(`{"garbled":{"attributes":"stored attributes are not a JSON object: user.email=a@example.org"}}`))
	require.NoError(t, err)
	require.NotContains(t, string(out), "a@example.org", "a garbled note's excerpt is hidden")

	none := newRedactor(nil, nil)
	in := []byte(`{"props":{"email":"a@example.org"}}`)
	out, err = none.Profile(in)
	require.NoError(t, err)
	require.Equal(t, in, out, "nothing configured: the body passes untouched")
}
