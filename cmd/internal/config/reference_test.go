package config

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the configuration reference in README.md")

const begin, end = "<!-- config-reference:begin -->", "<!-- config-reference:end -->"

// reference renders every key, its environment variable and its default.
func reference() string {
	var b strings.Builder
	b.WriteString("| key | environment | default |\n|---|---|---|\n")
	for _, k := range Keys() {
		def := k[2]
		if def == "" {
			def = "—"
		}
		home, _ := os.UserHomeDir()
		if home != "" {
			def = strings.ReplaceAll(def, home, "~")
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | `%s` |\n", k[0], k[1], def)
	}
	return b.String()
}

// TestREADMEReference keeps README.md's configuration table equal to the
// code's keys and defaults; regenerate with go test -run README -update.
func TestREADMEReference(t *testing.T) {
	const path = "../../../README.md"
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	re := regexp.MustCompile("(?s)" + regexp.QuoteMeta(begin) + ".*" + regexp.QuoteMeta(end))
	want := begin + "\n" + reference() + end
	if *update {
		require.True(t, re.Match(b), "README.md lacks the reference markers")
		require.NoError(t, os.WriteFile(path, re.ReplaceAll(b, []byte(want)), 0o644))
	}
	require.Equal(t, want, re.FindString(string(b)), "README.md configuration reference is stale: go test ./cmd/internal/config -run README -update")
}
