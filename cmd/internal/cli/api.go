package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// apiClient talks to a running triad's API.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

// apiFlags are --server, --token and --token-file.
type apiFlags struct{ server, token, tokenFile *string }

func newAPIFlags(fs *flag.FlagSet) apiFlags {
	return apiFlags{fs.String("server", "", "triad API base URL (default: http://<server.listen>)"),
		fs.String("token", "", "API token (default: TRIAD_TOKEN, then --token-file)"),
		fs.String("token-file", ".triad/admin-token", "file holding the API token")}
}

// connect loads the configuration (for server.listen) and returns a client
// of the API the flags name.
func (e env) connect(c common, f apiFlags) (*apiClient, error) {
	cfg, _, err := e.load(c)
	if err != nil {
		return nil, err
	}
	return e.newAPIClient(*f.server, *f.token, *f.tokenFile, cfg.Server.Listen)
}

func (e env) newAPIClient(serverURL, token, tokenFile, listen string) (*apiClient, error) {
	if serverURL == "" {
		serverURL = "http://" + listen
	}
	if token == "" {
		for _, kv := range e.environ {
			if v, ok := strings.CutPrefix(kv, "TRIAD_TOKEN="); ok {
				token = v
			}
		}
	}
	if token == "" && tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return nil, usagef("no API token: pass --token, set TRIAD_TOKEN or --token-file (create one with `triad token create`)")
	}
	return &apiClient{base: strings.TrimSuffix(serverURL, "/"), token: token, http: &http.Client{Timeout: 5 * time.Minute}}, nil
}

// do sends a request and decodes the envelope's data into out; an error
// envelope becomes an error carrying its message.
func (a *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	res, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("triad API at %s: %w", a.base, err)
	}
	defer res.Body.Close()
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  *struct {
			Code, Message string
		} `json:"error"`
	}
	if err := json.NewDecoder(res.Body).Decode(&env); err != nil {
		return fmt.Errorf("triad API at %s: %s: %w", a.base, res.Status, err)
	}
	if env.Error != nil {
		return answerError(res, env.Error.Message)
	}
	return json.Unmarshal(env.Data, out)
}

// answerError is the error for an API answer that is not a success:
// ExitNotFound for a 404, a usage error for another 4xx the caller can fix
// (not 401 or 403).
func answerError(res *http.Response, message string) error {
	err := fmt.Errorf("%s (%s)", message, res.Status)
	if res.StatusCode == http.StatusNotFound {
		return exitError{ExitNotFound, err}
	}
	if res.StatusCode >= 400 && res.StatusCode < 500 && res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusForbidden {
		return usageError{err}
	}
	return err
}

// raw copies a non-enveloped answer (an export) to w.
func (a *apiClient) raw(ctx context.Context, path string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	res, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("triad API at %s: %w", a.base, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		var env struct {
			Error struct{ Message string } `json:"error"`
		}
		_ = json.NewDecoder(res.Body).Decode(&env)
		return answerError(res, cmp.Or(env.Error.Message, "no answer"))
	}
	_, err = io.Copy(w, res.Body)
	return err
}

// answer prints an API answer: as the API's JSON with --json, else for
// a terminal (text).
func (e env) answer(asJSON bool, out json.RawMessage, text func() error) error {
	if asJSON {
		_, err := fmt.Fprintf(e.stdout, "%s\n", out)
		return err
	}
	return text()
}
