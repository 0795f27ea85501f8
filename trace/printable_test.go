package trace

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"GET /users":        "GET /users",
		"héllo 日本":          "héllo 日本",
		"\x1b]0;pwned\x07":  `\u001b]0;pwned\u0007`,
		"a\x1b[2Jb":         `a\u001b[2Jb`,
		"csi\u009b31m":      `csi\u009b31m`,
		"del\x7f":           `del\u007f`,
		"evil\u202egnp.exe": `evil\u202egnp.exe`,
		"bad\xffutf8":       "bad\uFFFDutf8",
		"tab\tnewline\n":    `tab\u0009newline\u000a`,
	} {
		require.Equal(t, want, Printable(in), "%q", in)
	}
	// Inside a JSON string the escapes decode back to the same text.
	line := `{"name": "x` + "\u009b\u202e" + `y"}`
	var v map[string]string
	require.NoError(t, json.Unmarshal([]byte(PrintableLines(line)), &v))
	require.Equal(t, "x\u009b\u202ey", v["name"])
}
