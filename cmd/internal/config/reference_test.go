package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the configuration reference in docs/configuration.md")

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

// TestREADMEReference keeps docs/configuration.md's table equal to the
// code's keys and defaults; regenerate with go test -run README -update.
func TestREADMEReference(t *testing.T) {
	const path = "../../../docs/configuration.md"
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	re := regexp.MustCompile("(?s)" + regexp.QuoteMeta(begin) + ".*" + regexp.QuoteMeta(end))
	want := begin + "\n" + reference() + end
	if *update {
		require.True(t, re.Match(b), "docs/configuration.md lacks the reference markers")
		require.NoError(t, os.WriteFile(path, re.ReplaceAll(b, []byte(want)), 0o644))
	}
	require.Equal(t, want, re.FindString(string(b)), "docs/configuration.md reference is stale: go test ./cmd/internal/config -run README -update")
}

// TestDocLinks checks every relative link in README.md and docs/*.md
// points at a file that exists and, when it names an anchor, at a heading
// of that file (GitHub's slugs).
func TestDocLinks(t *testing.T) {
	root := "../../.."
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	require.NoError(t, err)
	files = append(files, filepath.Join(root, "README.md"))
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := f
			if file != "" {
				path = filepath.Join(filepath.Dir(f), file)
			}
			_, err := os.Stat(path)
			require.NoError(t, err, "%s links to %s", f, m[1])
			if anchor != "" && strings.HasSuffix(path, ".md") {
				require.True(t, headingSlugs(t, path)[anchor], "%s links to %s: no such heading", f, m[1])
			}
		}
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	require.LessOrEqual(t, strings.Count(string(readme), "\n"), 200, "README.md is a map: at most ~200 lines")
}

// headingSlugs are the anchors GitHub gives the headings of a Markdown
// file: lower case, punctuation dropped, spaces to hyphens.
func headingSlugs(t *testing.T, path string) map[string]bool {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[string]bool{}
	inCode := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var slug strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				slug.WriteByte('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				slug.WriteRune(r)
			}
		}
		out[slug.String()] = true
	}
	return out
}
