package jsontext

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every string comes back from encoding/json as it went in.
func TestAppendStringRoundTrips(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "tab\tnew\nline\r", "\x00\x01\x1f\b\f", "ünï💥", "<&>", "\u2028"} {
		var got string
		require.NoError(t, json.Unmarshal(AppendString(nil, s), &got), "%q", s)
		require.Equal(t, s, got)
		require.Equal(t, string(AppendString(nil, s)), string(AppendString(nil, []byte(s))))
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("a\"b\\c\x00")
	f.Fuzz(func(t *testing.T, s string) {
		b := AppendString([]byte("x"), s)
		var got string
		require.NoError(t, json.Unmarshal(b[1:], &got))
		// Invalid UTF-8 comes back replaced, as through encoding/json's own.
		want, err := json.Marshal(s)
		require.NoError(t, err)
		var w string
		require.NoError(t, json.Unmarshal(want, &w))
		require.Equal(t, w, got)
	})
}
