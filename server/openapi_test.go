package server

import (
	"io"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/triad-dev/triad/server/auth"
)

// TestOpenAPIMatchesRoutes keeps openapi.yaml honest: every registered API
// route is documented with its least role, and every documented /api/ path
// and method is registered.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			Role string `yaml:"x-triad-role"`
		} `yaml:"paths"`
	}
	require.NoError(t, yaml.Unmarshal(openapiDoc, &doc))
	reg := prometheus.NewRegistry()
	s := New(Options{Config: testConfig(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg, Gatherer: reg,
		Auth: auth.NewAuthenticator(nil, "")})
	param := regexp.MustCompile(`:(\w+)`)
	registered := map[string]string{}
	for _, rt := range s.Routes() {
		path := param.ReplaceAllString(rt.Path, "{$1}")
		registered[strings.ToLower(rt.Method)+" "+path] = rt.Role.String()
	}
	documented := map[string]string{}
	for path, ops := range doc.Paths {
		if !strings.HasPrefix(path, "/api/") {
			continue
		}
		for method, op := range ops {
			documented[method+" "+path] = op.Role
		}
	}
	keys := func(m map[string]string) []string {
		var out []string
		for k, v := range m {
			out = append(out, k+" "+v)
		}
		sort.Strings(out)
		return out
	}
	require.Equal(t, keys(registered), keys(documented), "server/openapi.yaml and the registered routes differ")
}
