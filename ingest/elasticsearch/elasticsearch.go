// Package elasticsearch is the Elasticsearch store of the profile pipeline:
// bulk indexing with external versioning (the profile version), so the index
// never replaces a newer version, under an index template triad owns.
package elasticsearch

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/triad-dev/triad/ingest"
)

//go:embed template.json
var templateJSON string

// Config is the Elasticsearch store's configuration.
type Config struct {
	// IndexPrefix prefixes the alias, the indices and the template.
	IndexPrefix string `yaml:"index_prefix"`
	// Version is the dataset version whose index a fresh setup creates
	// (<prefix>profiles-v<Version>); the alias <prefix>profiles points at it.
	Version int `yaml:"-"`
}

// Store writes profiles to Elasticsearch. Safe for concurrent use.
type Store struct {
	es  *elasticsearch.Client
	cfg Config
}

// New returns a store.
func New(es *elasticsearch.Client, cfg Config) *Store {
	if cfg.Version == 0 {
		cfg.Version = 1
	}
	return &Store{es: es, cfg: cfg}
}

// Name implements ingest.Derived.
func (s *Store) Name() string { return "elasticsearch" }

// Alias is what readers and writers address.
func (s *Store) Alias() string { return s.cfg.IndexPrefix + "profiles" }

// Index is the concrete index of a dataset version.
func (s *Store) Index(version int) string {
	return s.cfg.IndexPrefix + "profiles-v" + strconv.Itoa(version)
}

func (s *Store) templateName() string { return s.cfg.IndexPrefix + "triad-profiles" }

// Setup applies the index template (idempotent: PUT replaces it with the
// same body) and, when the alias does not exist yet, creates the first
// index behind it.
func (s *Store) Setup(ctx context.Context) error {
	body := strings.ReplaceAll(templateJSON, "{{PREFIX}}", s.cfg.IndexPrefix)
	if err := s.do(ctx, esapi.IndicesPutIndexTemplateRequest{Name: s.templateName(), Body: strings.NewReader(body)}, "put template"); err != nil {
		return err
	}
	res, err := esapi.IndicesExistsAliasRequest{Name: []string{s.Alias()}}.Do(ctx, s.es)
	if err != nil {
		return fmt.Errorf("check alias: %w", err)
	}
	drain(res)
	if res.StatusCode == http.StatusOK {
		return nil
	}
	create := fmt.Sprintf(`{"aliases": {%q: {"is_write_index": true}}}`, s.Alias())
	res, err = esapi.IndicesCreateRequest{Index: s.Index(s.cfg.Version), Body: strings.NewReader(create)}.Do(ctx, s.es)
	if err != nil {
		return fmt.Errorf("create index: %w", err)
	}
	defer drain(res)
	if res.IsError() && !strings.Contains(readAll(res), "resource_already_exists_exception") {
		return fmt.Errorf("create index %s: %s", s.Index(s.cfg.Version), res.Status())
	}
	return nil
}

func (s *Store) do(ctx context.Context, req esapi.Request, what string) error {
	res, err := req.Do(ctx, s.es)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer drain(res)
	if res.IsError() {
		return fmt.Errorf("%s: %s: %s", what, res.Status(), readAll(res))
	}
	return nil
}

func drain(res *esapi.Response) {
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
}

func readAll(res *esapi.Response) string {
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	return string(b)
}

// AppendDocument appends the document indexed for p: identity, version,
// digest, time and the canonical attribute fields as they are.
func AppendDocument(dst []byte, p *ingest.Profile) []byte {
	dst = append(dst, `{"user_id":`...)
	dst = strconv.AppendInt(dst, p.UserID, 10)
	dst = append(dst, `,"version":`...)
	dst = strconv.AppendInt(dst, p.Version, 10)
	dst = append(dst, `,"digest":`...)
	dst = strconv.AppendInt(dst, p.Digest, 10)
	dst = append(dst, `,"digest_version":`...)
	dst = strconv.AppendInt(dst, ingest.DigestVersion, 10)
	dst = append(dst, `,"updated_at":`...)
	if p.UpdatedAt.IsZero() {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst = p.UpdatedAt.AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
		dst = append(dst, '"')
	}
	for f, name := range ingest.FieldNames {
		dst = append(dst, ',', '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':')
		dst = append(dst, p.Field(f)...)
	}
	return append(dst, '}')
}

type bulkResponse struct {
	Errors bool `json:"errors"`
	Items  []map[string]struct {
		Status int `json:"status"`
		Error  *struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		} `json:"error"`
	} `json:"items"`
}

// Write implements ingest.Derived with one _bulk request: index (or delete,
// for a tombstone) with version_type external, so Elasticsearch keeps the
// newer version; a version conflict means the index already has this
// version or a newer one and counts as stale.
func (s *Store) Write(ctx context.Context, batch []*ingest.Profile, out []ingest.WriteResult) error {
	// About 1 KiB per profile avoids regrowing the body while it is built.
	body := make([]byte, 0, len(batch)*1024)
	alias := s.Alias()
	for _, p := range batch {
		if p.Deleted {
			body = append(body, `{"delete":{"_index":`...)
		} else {
			body = append(body, `{"index":{"_index":`...)
		}
		body = strconv.AppendQuote(body, alias)
		body = append(body, `,"_id":"`...)
		body = strconv.AppendInt(body, p.UserID, 10)
		body = append(body, `","version":`...)
		body = strconv.AppendInt(body, p.Version, 10)
		body = append(body, ",\"version_type\":\"external\"}}\n"...)
		if !p.Deleted {
			body = append(AppendDocument(body, p), '\n')
		}
	}
	// filter_path trims the response to what is read: less for
	// Elasticsearch to write and for triad to decode.
	res, err := esapi.BulkRequest{Body: bytes.NewReader(body), FilterPath: []string{"errors", "items.*.status", "items.*.error.type", "items.*.error.reason"}}.Do(ctx, s.es)
	if err != nil {
		return fmt.Errorf("bulk of %d: %w", len(batch), err)
	}
	defer drain(res)
	if res.IsError() {
		return fmt.Errorf("bulk of %d: %s: %s", len(batch), res.Status(), readAll(res))
	}
	var br bulkResponse
	if err := json.NewDecoder(res.Body).Decode(&br); err != nil {
		return fmt.Errorf("bulk of %d: decode response: %w", len(batch), err)
	}
	if len(br.Items) != len(batch) {
		return fmt.Errorf("bulk of %d: %d items in the response", len(batch), len(br.Items))
	}
	for i, item := range br.Items {
		for _, r := range item {
			switch {
			case r.Status == http.StatusConflict:
				out[i] = ingest.WriteResult{Stale: true}
			case r.Status == http.StatusNotFound && batch[i].Deleted:
				// Already absent: the delete is recorded with its version.
			case r.Status >= 300:
				reason := ""
				if r.Error != nil {
					reason = r.Error.Type + ": " + r.Error.Reason
				}
				out[i] = ingest.WriteResult{Err: fmt.Errorf("elasticsearch item status %d: %s", r.Status, reason)}
			}
		}
	}
	return nil
}

// Refresh makes recent writes visible to searches (tests, tools).
func (s *Store) Refresh(ctx context.Context) error {
	return s.do(ctx, esapi.IndicesRefreshRequest{Index: []string{s.Alias()}}, "refresh")
}

// Get reads one profile document; ok is false when there is none.
func (s *Store) Get(ctx context.Context, userID int64) (*ingest.Profile, bool, error) {
	res, err := esapi.GetRequest{Index: s.Alias(), DocumentID: strconv.FormatInt(userID, 10)}.Do(ctx, s.es)
	if err != nil {
		return nil, false, err
	}
	defer drain(res)
	if res.StatusCode == http.StatusNotFound {
		return nil, false, nil
	}
	if res.IsError() {
		return nil, false, fmt.Errorf("get %d: %s", userID, res.Status())
	}
	var doc struct {
		Source map[string]json.RawMessage `json:"_source"`
	}
	if err := json.NewDecoder(res.Body).Decode(&doc); err != nil {
		return nil, false, err
	}
	p, err := Decode(doc.Source)
	return p, err == nil, err
}

// Decode turns a document's _source back into a profile (the digest as
// stored; fields re-canonicalised, as Elasticsearch returns _source as sent).
func Decode(src map[string]json.RawMessage) (*ingest.Profile, error) {
	p := &ingest.Profile{}
	for key, dst := range map[string]*int64{"user_id": &p.UserID, "version": &p.Version, "digest": &p.Digest} {
		if err := json.Unmarshal(src[key], dst); err != nil {
			return nil, fmt.Errorf("document field %s: %w", key, err)
		}
	}
	if raw, ok := src["updated_at"]; ok && string(raw) != "null" {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("document field updated_at: %w", err)
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, fmt.Errorf("document field updated_at: %w", err)
		}
		p.UpdatedAt = t.UTC()
	}
	for f, name := range ingest.FieldNames {
		if raw, ok := src[name]; ok {
			c, err := ingest.CanonicalJSON(nil, raw)
			if err != nil {
				return nil, fmt.Errorf("document field %s: %w", name, err)
			}
			p.Fields[f] = c
		}
	}
	return p, nil
}

// GetMany reads the documents of ids with one _mget; absent ids are not in
// the result.
func (s *Store) GetMany(ctx context.Context, ids []int64) (map[int64]*ingest.Profile, error) {
	body := []byte(`{"ids":[`)
	for i, id := range ids {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, '"')
		body = strconv.AppendInt(body, id, 10)
		body = append(body, '"')
	}
	body = append(body, "]}"...)
	res, err := esapi.MgetRequest{Index: s.Alias(), Body: bytes.NewReader(body)}.Do(ctx, s.es)
	if err != nil {
		return nil, err
	}
	defer drain(res)
	if res.IsError() {
		return nil, fmt.Errorf("mget: %s: %s", res.Status(), readAll(res))
	}
	var r struct {
		Docs []struct {
			Found  bool                       `json:"found"`
			Source map[string]json.RawMessage `json:"_source"`
		} `json:"docs"`
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		return nil, err
	}
	out := make(map[int64]*ingest.Profile, len(r.Docs))
	for _, d := range r.Docs {
		if !d.Found {
			continue
		}
		p, err := Decode(d.Source)
		if err != nil {
			return nil, err
		}
		out[p.UserID] = p
	}
	return out, nil
}
