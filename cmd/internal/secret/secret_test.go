package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValueNeverPrints(t *testing.T) {
	v := Value("hunter2")
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "pw", v)
	js, err := json.Marshal(struct{ P Value }{v})
	require.NoError(t, err)
	for _, s := range []string{fmt.Sprint(v), fmt.Sprintf("%v %s %q %+v %#v %x", v, v, v, v, v, v), buf.String(), string(js)} {
		require.NotContains(t, s, "hunter2")
		require.Contains(t, s, "[REDACTED]")
	}
	require.Equal(t, "hunter2", v.Reveal())
}

func TestFromFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pw")
	require.NoError(t, os.WriteFile(p, []byte("s3cret\n"), 0o600))
	v, err := FromFile(p)
	require.NoError(t, err)
	require.Equal(t, "s3cret", v.Reveal())

	require.NoError(t, os.WriteFile(p, []byte("\n"), 0o600))
	_, err = FromFile(p)
	require.ErrorContains(t, err, "is empty")
	_, err = FromFile(filepath.Join(dir, "missing"))
	require.ErrorContains(t, err, "missing")
}
