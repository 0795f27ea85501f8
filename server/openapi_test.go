package server

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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

// TestAnswersAreGzipWhenAsked: the server compresses what a client asks to
// have compressed, and nothing else.
func TestAnswersAreGzipWhenAsked(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := New(Options{Config: testConfig(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg, Gatherer: reg,
		Auth: auth.NewAuthenticator(nil, "")})
	for _, enc := range []string{"gzip", ""} {
		req := httptest.NewRequest(http.MethodGet, "/openapi.yaml", nil)
		if enc != "" {
			req.Header.Set("Accept-Encoding", enc)
		}
		rec := httptest.NewRecorder()
		s.http.Handler.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code)
		require.Equal(t, enc, rec.Header().Get("Content-Encoding"))
		body := rec.Body.Bytes()
		if enc == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			require.NoError(t, err)
			body, err = io.ReadAll(zr)
			require.NoError(t, err)
			require.Less(t, rec.Body.Len(), len(openapiDoc)/2)
		}
		require.Equal(t, openapiDoc, body)
	}
}
