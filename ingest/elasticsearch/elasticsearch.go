// Package elasticsearch is the Elasticsearch store of the profile pipeline:
// bulk indexing with external versioning (the profile version), so the index
// never replaces a newer version, under an index template triad owns.
package elasticsearch

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
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
	// Shape is the primary shards and replicas of the indices triad
	// creates (a fresh setup's; a dataset build may ask for another).
	Shape `yaml:",inline"`
}

// Shape is an index's primary shards and replicas per primary. Shards
// are fixed when the index is created (a dataset build is how to change
// them); replicas keep every document on that many more nodes, so losing
// a node loses nothing, at the cost of each write on each.
type Shape struct {
	Shards   int `yaml:"shards" json:"shards,omitempty"`
	Replicas int `yaml:"replicas" json:"replicas,omitempty"`
}

// DefaultShape is one shard and no replica: a single node.
func DefaultShape() Shape { return Shape{Shards: 1} }

// Validate names the first invalid key under prefix.
func (sh Shape) Validate(prefix string) error {
	var errs []error
	if sh.Shards < 1 || sh.Shards > 1024 {
		errs = append(errs, fmt.Errorf("%sshards: must be 1-1024, got %d", prefix, sh.Shards))
	}
	if sh.Replicas < 0 || sh.Replicas > 16 {
		errs = append(errs, fmt.Errorf("%sreplicas: must be 0-16, got %d", prefix, sh.Replicas))
	}
	return errors.Join(errs...)
}

// IndexBody is an index-creation body with the shape's settings.
func (sh Shape) IndexBody() string { return "{" + sh.settings() + "}" }

// settings is the index-creation body's settings for the shape.
func (sh Shape) settings() string {
	return fmt.Sprintf(`"settings":{"index":{"number_of_shards":%d,"number_of_replicas":%d}}`, max(sh.Shards, 1), max(sh.Replicas, 0))
}

// Store writes profiles to Elasticsearch. Safe for concurrent use.
type Store struct {
	es       *elasticsearch.Client
	cfg      Config
	versions atomic.Pointer[ingest.Versions]
}

// New returns a store. It writes dataset version 1's index until
// SetVersions says otherwise; reads go through the alias.
func New(es *elasticsearch.Client, cfg Config) *Store {
	if cfg.Version == 0 {
		cfg.Version = 1
	}
	s := &Store{es: es, cfg: cfg}
	s.versions.Store(ingest.DefaultVersions())
	return s
}

// Name implements ingest.Derived.
func (s *Store) Name() string { return "elasticsearch" }

// SetVersions sets the dataset versions whose indices Write writes.
func (s *Store) SetVersions(v ingest.Versions) { s.versions.Store(&v) }

// CreateIndex creates a dataset version's index of the given shape (the
// template gives it the mapping); an existing index is fine.
func (s *Store) CreateIndex(ctx context.Context, version int, shape Shape) error {
	res, err := esapi.IndicesCreateRequest{Index: s.Index(version), Body: strings.NewReader("{" + shape.settings() + "}")}.Do(ctx, s.es)
	if err != nil {
		return fmt.Errorf("create index %s: %w", s.Index(version), err)
	}
	defer drain(res)
	if res.IsError() {
		if body := readAll(res); !strings.Contains(body, "resource_already_exists_exception") {
			return fmt.Errorf("create index %s: %s: %s", s.Index(version), res.Status(), body)
		}
	}
	return nil
}

// DeleteIndex deletes a dataset version's index; a missing one is fine.
func (s *Store) DeleteIndex(ctx context.Context, version int) error {
	res, err := esapi.IndicesDeleteRequest{Index: []string{s.Index(version)}}.Do(ctx, s.es)
	if err != nil {
		return fmt.Errorf("delete index %s: %w", s.Index(version), err)
	}
	defer drain(res)
	if res.IsError() && res.StatusCode != http.StatusNotFound {
		return fmt.Errorf("delete index %s: %s: %s", s.Index(version), res.Status(), readAll(res))
	}
	return nil
}

// AliasVersion returns the dataset version the alias points at (0: the
// alias does not exist or points at no profiles index of this prefix).
func (s *Store) AliasVersion(ctx context.Context) (int, error) {
	res, err := esapi.IndicesGetAliasRequest{Name: []string{s.Alias()}}.Do(ctx, s.es)
	if err != nil {
		return 0, fmt.Errorf("get alias %s: %w", s.Alias(), err)
	}
	defer drain(res)
	if res.StatusCode == http.StatusNotFound {
		return 0, nil
	}
	if res.IsError() {
		return 0, fmt.Errorf("get alias %s: %s: %s", s.Alias(), res.Status(), readAll(res))
	}
	var body map[string]json.RawMessage
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("get alias %s: %w", s.Alias(), err)
	}
	best := 0
	for index := range body {
		if v, err := strconv.Atoi(strings.TrimPrefix(index, s.cfg.IndexPrefix+"profiles-v")); err == nil && v > best {
			best = v
		}
	}
	return best, nil
}

// PointAlias moves the alias to a dataset version's index in one atomic
// _aliases call (remove from every other profiles index, add to this one
// as the write index).
func (s *Store) PointAlias(ctx context.Context, version int) error {
	body := fmt.Sprintf(`{"actions":[{"remove":{"index":%q,"alias":%q,"must_exist":false}},{"add":{"index":%q,"alias":%q,"is_write_index":true}}]}`,
		s.cfg.IndexPrefix+"profiles-v*", s.Alias(), s.Index(version), s.Alias())
	return s.do(ctx, esapi.IndicesUpdateAliasesRequest{Body: strings.NewReader(body)}, "point alias "+s.Alias()+" at "+s.Index(version))
}

// Count returns the number of documents in a dataset version's index
// (refreshed first, so recent writes count).
func (s *Store) Count(ctx context.Context, version int) (int64, error) {
	if err := s.do(ctx, esapi.IndicesRefreshRequest{Index: []string{s.Index(version)}}, "refresh"); err != nil {
		return 0, err
	}
	res, err := esapi.CountRequest{Index: []string{s.Index(version)}}.Do(ctx, s.es)
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", s.Index(version), err)
	}
	defer drain(res)
	if res.IsError() {
		return 0, fmt.Errorf("count %s: %s: %s", s.Index(version), res.Status(), readAll(res))
	}
	var c struct {
		Count int64 `json:"count"`
	}
	if err := json.NewDecoder(res.Body).Decode(&c); err != nil {
		return 0, fmt.Errorf("count %s: %w", s.Index(version), err)
	}
	return c.Count, nil
}

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
	// Indices created under template version 1 lack the segment hash
	// fields, and their strict mapping would refuse documents carrying
	// them: add the fields (adding is allowed; idempotent). Their old
	// documents stay without the fields until rewritten, and sweeps read
	// such segments record by record instead of calling them drift.
	res, err := esapi.IndicesPutMappingRequest{Index: []string{s.cfg.IndexPrefix + "profiles-v*"},
		Body: strings.NewReader(`{"properties":{"sweep_h0":{"type":"long"},"sweep_h1":{"type":"long"}}}`)}.Do(ctx, s.es)
	if err != nil {
		return fmt.Errorf("put mapping: %w", err)
	}
	if res.IsError() && res.StatusCode != http.StatusNotFound {
		defer drain(res)
		return fmt.Errorf("put mapping on %sprofiles-v*: %s: %s", s.cfg.IndexPrefix, res.Status(), readAll(res))
	}
	drain(res)
	res, err = esapi.IndicesExistsAliasRequest{Name: []string{s.Alias()}}.Do(ctx, s.es)
	if err != nil {
		return fmt.Errorf("check alias: %w", err)
	}
	drain(res)
	if res.StatusCode == http.StatusOK {
		return nil
	}
	create := fmt.Sprintf(`{%s, "aliases": {%q: {"is_write_index": true}}}`, s.cfg.Shape.settings(), s.Alias())
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

func readAll(res *esapi.Response) string { return ErrorBody(res) }

// ErrorBody summarises an error response's body for an error message:
// the error's type and the field it names, never Elasticsearch's reason,
// which can quote a document's values (and ends up in logs and API
// answers). A body that is not an Elasticsearch error is cut to 200 bytes.
func ErrorBody(res *esapi.Response) string {
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	var e struct {
		Error *bulkError `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != nil && e.Error.Type != "" {
		return strings.TrimPrefix(rejection(e.Error), "elasticsearch: ")
	}
	if len(b) > 200 {
		b = b[:200]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(string(b), "?"))
}

// AppendDocument appends the document indexed for p: the profile's JSON
// form (ingest.Profile.AppendJSON) plus the two 32-bit halves of its
// segment hash (ingest.SegmentHash), which sweeps add up per segment with
// sum aggregations: Elasticsearch sums in doubles, exact for these halves
// over up to 2^21 documents, and this distribution has no scripting to
// split a 64-bit value at query time.
func AppendDocument(dst []byte, p *ingest.Profile) []byte {
	dst = p.AppendJSON(dst)
	h := ingest.SegmentHash(p.Version, p.Digest)
	dst = append(dst[:len(dst)-1], `,"sweep_h0":`...)
	dst = strconv.AppendUint(dst, h&0xFFFFFFFF, 10)
	dst = append(dst, `,"sweep_h1":`...)
	dst = strconv.AppendUint(dst, h>>32, 10)
	return append(dst, '}')
}

type bulkResponse struct {
	Errors bool `json:"errors"`
	Items  []map[string]struct {
		Status int        `json:"status"`
		Error  *bulkError `json:"error"`
	} `json:"items"`
}

type bulkError struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

// Write implements ingest.Derived with one _bulk request: index (or delete,
// for a tombstone) with version_type external, so Elasticsearch keeps the
// newer version; a version conflict means the index already has this
// version or a newer one and counts as stale. Each profile goes to the
// index of every dataset version being written; an item fails when it
// fails in any of them.
func (s *Store) Write(ctx context.Context, batch []*ingest.Profile, out []ingest.WriteResult) error {
	return s.write(ctx, s.versions.Load().Writing, batch, out)
}

// WriteAt is Write to one dataset version's index.
func (s *Store) WriteAt(ctx context.Context, version int, batch []*ingest.Profile, out []ingest.WriteResult) error {
	return s.write(ctx, []int{version}, batch, out)
}

func (s *Store) write(ctx context.Context, versions []int, batch []*ingest.Profile, out []ingest.WriteResult) error {
	// About 1 KiB per profile avoids regrowing the body while it is built.
	body := make([]byte, 0, len(versions)*len(batch)*1024)
	for _, v := range versions {
		body = s.appendBulk(body, s.Index(v), batch)
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
	if len(br.Items) != len(versions)*len(batch) {
		return fmt.Errorf("bulk of %d: %d items in the response", len(versions)*len(batch), len(br.Items))
	}
	conflicts := map[int][]int{} // version index → batch items refused by version
	for k, item := range br.Items {
		for _, r := range item {
			if r.Status == http.StatusConflict {
				conflicts[k/len(batch)] = append(conflicts[k/len(batch)], k%len(batch))
			}
		}
	}
	// A refusal means the document's _version is not below the profile
	// version. Usually the index holds this version or a newer one
	// (stale); but a write by another service through internal
	// versioning (_update, a plain index) raises _version past the profile
	// version in the source, and every later external write would then be
	// refused and lost. Those documents are written with a guard on the
	// exact document read instead.
	overridden := map[int]bool{} // k of items written after all
	for vi, items := range conflicts {
		done, err := s.resolveConflicts(ctx, s.Index(versions[vi]), batch, items)
		if err != nil {
			return fmt.Errorf("bulk of %d: %w", len(batch), err)
		}
		for _, i := range done {
			overridden[vi*len(batch)+i] = true
		}
	}
	for k, item := range br.Items {
		i := k % len(batch)
		for _, r := range item {
			var res ingest.WriteResult
			switch {
			case r.Status == http.StatusConflict && overridden[k]:
			case r.Status == http.StatusConflict:
				res = ingest.WriteResult{Stale: true}
			case r.Status == http.StatusNotFound && batch[i].Deleted:
				// Already absent: the delete is recorded with its version.
			case r.Status == http.StatusBadRequest:
				// The document breaks the index's mapping or limits: it
				// would fail every time. Its reason can quote the value, so
				// only the error type and the field are kept.
				res = ingest.WriteResult{Rejected: rejection(r.Error)}
			case r.Status >= 300:
				reason := ""
				if r.Error != nil {
					reason = r.Error.Type
				}
				res = ingest.WriteResult{Err: fmt.Errorf("elasticsearch item status %d: %s", r.Status, reason)}
			}
			if k < len(batch) || (res.Err != nil && out[i].Err == nil) {
				out[i] = res
			}
		}
	}
	return nil
}

// fieldInReason finds the field an Elasticsearch error names ("failed to
// parse field [updated_at] of type [date_nanos] …").
var fieldInReason = regexp.MustCompile(`field \[([A-Za-z0-9_.\-]{1,128})\]`)

// rejection is the reason kept for a refused document: the error type and
// the field it names, never the store's message (which can quote values).
func rejection(e *bulkError) string {
	if e == nil {
		return "elasticsearch: status 400"
	}
	out := "elasticsearch: " + e.Type
	if m := fieldInReason.FindStringSubmatch(e.Reason); m != nil {
		out += " in field " + m[1]
	}
	return out
}

// resolveConflicts looks at the documents behind version conflicts (items
// of batch) in index and writes those whose source holds an older profile
// version (or none that decodes), guarded by their _seq_no, so a newer
// write made meanwhile wins. It returns the items written.
func (s *Store) resolveConflicts(ctx context.Context, index string, batch []*ingest.Profile, items []int) ([]int, error) {
	ids := make([]int64, len(items))
	for j, i := range items {
		ids[j] = batch[i].UserID
	}
	docs, err := s.readDocs(ctx, index, ids)
	if err != nil {
		return nil, fmt.Errorf("read conflicting documents: %w", err)
	}
	var done []int
	for _, i := range items {
		p := batch[i]
		d, ok := docs[p.UserID]
		if !ok {
			continue // a tombstone refused it: a delete with a newer version, or one made behind triad (kept for index.gc_deletes)
		}
		if d.Profile != nil && d.Profile.Version >= p.Version {
			continue // really stale
		}
		var written bool
		if p.Deleted {
			written, err = s.deleteIn(ctx, index, p.UserID, d.Guard())
		} else {
			written, err = s.indexIn(ctx, index, p, d.Guard(), "")
		}
		if err != nil {
			return nil, err
		}
		if written {
			done = append(done, i)
		}
	}
	return done, nil
}

// indexIn writes p into index only if its document is still at g's
// sequence number and primary term (refresh: "" or "true").
func (s *Store) indexIn(ctx context.Context, index string, p *ingest.Profile, g Guard, refresh string) (bool, error) {
	seq, term := int(g.SeqNo), int(g.PrimaryTerm)
	res, err := esapi.IndexRequest{Index: index, DocumentID: strconv.FormatInt(p.UserID, 10), Body: bytes.NewReader(AppendDocument(nil, p)),
		IfSeqNo: &seq, IfPrimaryTerm: &term, Refresh: refresh}.Do(ctx, s.es)
	if err != nil {
		return false, fmt.Errorf("index %d: %w", p.UserID, err)
	}
	defer drain(res)
	switch {
	case res.StatusCode == http.StatusConflict || res.StatusCode == http.StatusNotFound:
		return false, nil
	case res.IsError():
		return false, fmt.Errorf("index %d: %s: %s", p.UserID, res.Status(), readAll(res))
	}
	return true, nil
}

func (s *Store) deleteIn(ctx context.Context, index string, id int64, g Guard) (bool, error) {
	seq, term := int(g.SeqNo), int(g.PrimaryTerm)
	res, err := esapi.DeleteRequest{Index: index, DocumentID: strconv.FormatInt(id, 10), IfSeqNo: &seq, IfPrimaryTerm: &term}.Do(ctx, s.es)
	if err != nil {
		return false, fmt.Errorf("delete %d: %w", id, err)
	}
	defer drain(res)
	switch {
	case res.StatusCode == http.StatusConflict || res.StatusCode == http.StatusNotFound:
		return false, nil
	case res.IsError():
		return false, fmt.Errorf("delete %d: %s: %s", id, res.Status(), readAll(res))
	}
	return true, nil
}

func (s *Store) appendBulk(body []byte, index string, batch []*ingest.Profile) []byte {
	for _, p := range batch {
		if p.Deleted {
			body = append(body, `{"delete":{"_index":`...)
		} else {
			body = append(body, `{"index":{"_index":`...)
		}
		body = strconv.AppendQuote(body, index)
		body = append(body, `,"_id":"`...)
		body = strconv.AppendInt(body, p.UserID, 10)
		body = append(body, `","version":`...)
		body = strconv.AppendInt(body, p.Version, 10)
		body = append(body, ",\"version_type\":\"external\"}}\n"...)
		if !p.Deleted {
			body = append(AppendDocument(body, p), '\n')
		}
	}
	return body
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

// GetMany reads the documents of ids through the alias with one _mget;
// absent ids are not in the result.
func (s *Store) GetMany(ctx context.Context, ids []int64) (map[int64]*ingest.Profile, error) {
	return s.getMany(ctx, s.Alias(), ids)
}

// GetManyAt is GetMany in one dataset version's index.
func (s *Store) GetManyAt(ctx context.Context, version int, ids []int64) (map[int64]*ingest.Profile, error) {
	return s.getMany(ctx, s.Index(version), ids)
}

func (s *Store) getMany(ctx context.Context, index string, ids []int64) (map[int64]*ingest.Profile, error) {
	body := idsBody(ids)
	res, err := esapi.MgetRequest{Index: index, Body: bytes.NewReader(body)}.Do(ctx, s.es)
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

// idsBody is the _mget body for ids.
func idsBody(ids []int64) []byte {
	body := []byte(`{"ids":[`)
	for i, id := range ids {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, '"')
		body = strconv.AppendInt(body, id, 10)
		body = append(body, '"')
	}
	return append(body, "]}"...)
}

// Head is a document's version and digest (HeadsAt: as stored; Doc.Head:
// recomputed from the content).
type Head struct {
	Version, Digest int64
	Suspect         bool
}

// HeadsAt reads only the version and digest of ids in a dataset version's
// index (one _mget with _source filtering); absent ids are not in the
// result.
func (s *Store) HeadsAt(ctx context.Context, version int, ids []int64) (map[int64]Head, error) {
	body := idsBody(ids)
	res, err := esapi.MgetRequest{Index: s.Index(version), Body: bytes.NewReader(body),
		SourceIncludes: []string{"version", "digest"}, FilterPath: []string{"docs._id", "docs.found", "docs._source"}}.Do(ctx, s.es)
	if err != nil {
		return nil, err
	}
	defer drain(res)
	if res.IsError() {
		return nil, fmt.Errorf("mget: %s: %s", res.Status(), readAll(res))
	}
	var r struct {
		Docs []struct {
			ID     string `json:"_id"`
			Found  bool   `json:"found"`
			Source struct {
				Version *int64 `json:"version"`
				Digest  *int64 `json:"digest"`
			} `json:"_source"`
		} `json:"docs"`
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		return nil, err
	}
	out := make(map[int64]Head, len(r.Docs))
	for _, d := range r.Docs {
		if !d.Found {
			continue
		}
		id, err := strconv.ParseInt(d.ID, 10, 64)
		if err != nil || d.Source.Version == nil || d.Source.Digest == nil {
			return nil, fmt.Errorf("document %q: no version or digest", d.ID)
		}
		out[id] = Head{Version: *d.Source.Version, Digest: *d.Source.Digest}
	}
	return out, nil
}

// Meta is a document's concurrency state for guarded repairs.
type Meta struct {
	Found       bool
	SeqNo       int64
	PrimaryTerm int64
	Version     int64 // the profile version (the external _version)
	Digest      int64
}

// GetMeta reads a document's sequence number, primary term, version and
// digest through the alias.
func (s *Store) GetMeta(ctx context.Context, userID int64) (Meta, error) {
	res, err := esapi.GetRequest{Index: s.Alias(), DocumentID: strconv.FormatInt(userID, 10), SourceIncludes: []string{"version", "digest"}}.Do(ctx, s.es)
	if err != nil {
		return Meta{}, err
	}
	defer drain(res)
	if res.StatusCode == http.StatusNotFound {
		return Meta{}, nil
	}
	if res.IsError() {
		return Meta{}, fmt.Errorf("get %d: %s", userID, res.Status())
	}
	var doc struct {
		Found       bool  `json:"found"`
		SeqNo       int64 `json:"_seq_no"`
		PrimaryTerm int64 `json:"_primary_term"`
		Source      struct {
			Version int64 `json:"version"`
			Digest  int64 `json:"digest"`
		} `json:"_source"`
	}
	if err := json.NewDecoder(res.Body).Decode(&doc); err != nil {
		return Meta{}, err
	}
	return Meta{Found: doc.Found, SeqNo: doc.SeqNo, PrimaryTerm: doc.PrimaryTerm, Version: doc.Source.Version, Digest: doc.Source.Digest}, nil
}

// DeleteIf deletes a document only if it is still at seqNo/primaryTerm;
// ok is false when it changed (or vanished) since.
func (s *Store) DeleteIf(ctx context.Context, userID int64, m Meta) (ok bool, err error) {
	seq, term := int(m.SeqNo), int(m.PrimaryTerm)
	res, err := esapi.DeleteRequest{Index: s.Alias(), DocumentID: strconv.FormatInt(userID, 10),
		IfSeqNo: &seq, IfPrimaryTerm: &term, Refresh: "true"}.Do(ctx, s.es)
	if err != nil {
		return false, err
	}
	defer drain(res)
	switch {
	case res.StatusCode == http.StatusConflict || res.StatusCode == http.StatusNotFound:
		return false, nil
	case res.IsError():
		return false, fmt.Errorf("delete %d: %s: %s", userID, res.Status(), readAll(res))
	}
	return true, nil
}

// IndexVersioned indexes p with its version as the external version; with
// gte, an equal stored version is replaced too (a same-version content
// repair). ok is false when the index holds a newer version.
func (s *Store) IndexVersioned(ctx context.Context, p *ingest.Profile, gte bool) (ok bool, err error) {
	vt := "external"
	if gte {
		vt = "external_gte"
	}
	v := int(p.Version)
	if int64(v) != p.Version {
		return false, fmt.Errorf("version %d does not fit", p.Version)
	}
	res, err := esapi.IndexRequest{Index: s.Alias(), DocumentID: strconv.FormatInt(p.UserID, 10), Body: bytes.NewReader(AppendDocument(nil, p)),
		Version: &v, VersionType: vt, Refresh: "true"}.Do(ctx, s.es)
	if err != nil {
		return false, err
	}
	defer drain(res)
	switch {
	case res.StatusCode == http.StatusConflict:
		return false, nil
	case res.IsError():
		return false, fmt.Errorf("index %d: %s: %s", p.UserID, res.Status(), readAll(res))
	}
	return true, nil
}

// SegmentSums computes, inside Elasticsearch, the ingest.SegmentSum of
// each segment (bounds[i], bounds[i+1]] of user IDs through the alias:
// one search with a filters aggregation (exact range filters) and sums of
// the stored segment hash halves. Documents without them (indexed before
// template version 2) count in Records but not in Hashed.
func (s *Store) SegmentSums(ctx context.Context, bounds []int64) ([]ingest.SegmentSum, error) {
	n := len(bounds) - 1
	if n < 1 {
		return nil, nil
	}
	ranges := make([][2]int64, n)
	for i := range n {
		ranges[i] = [2]int64{bounds[i], bounds[i+1]}
	}
	return s.RangeSums(ctx, ranges)
}

// RangeSums is SegmentSums over any key ranges (lo, hi], in one search:
// the narrowing of dirty segments into sub-ranges.
func (s *Store) RangeSums(ctx context.Context, ranges [][2]int64) ([]ingest.SegmentSum, error) {
	return RangeSums(ctx, s.es, s.Alias(), "user_id", ranges)
}

// RangeSums computes, inside Elasticsearch, the ingest.SegmentSum of each
// range (lo, hi] of the long field key in index (an index or alias): one
// search with a filters aggregation (exact range filters) summing the
// stored segment hash halves sweep_h0 and sweep_h1. Documents without them
// count in Records but not in Hashed. Any entity whose documents carry the
// halves is summed with it (the profile index, configured entities).
func RangeSums(ctx context.Context, es *elasticsearch.Client, index, key string, ranges [][2]int64) ([]ingest.SegmentSum, error) {
	n := len(ranges)
	if n == 0 {
		return nil, nil
	}
	lo, hi := ranges[0][0], ranges[0][1]
	for _, r := range ranges {
		lo, hi = min(lo, r[0]), max(hi, r[1])
	}
	body := make([]byte, 0, 128+80*n)
	body = fmt.Appendf(body, `{"size":0,"query":{"range":{%q:{"gt":%d,"lte":%d}}},"aggs":{"seg":{"filters":{"filters":[`, key, lo, hi)
	for i, r := range ranges {
		if i > 0 {
			body = append(body, ',')
		}
		body = fmt.Appendf(body, `{"range":{%q:{"gt":%d,"lte":%d}}}`, key, r[0], r[1])
	}
	body = append(body, `]},"aggs":{"h0":{"sum":{"field":"sweep_h0"}},"h1":{"sum":{"field":"sweep_h1"}},"n":{"value_count":{"field":"sweep_h0"}}}}}}`...)
	res, err := esapi.SearchRequest{Index: []string{index}, Body: bytes.NewReader(body),
		FilterPath: []string{"aggregations.seg.buckets"}}.Do(ctx, es)
	if err != nil {
		return nil, err
	}
	defer drain(res)
	if res.IsError() {
		return nil, fmt.Errorf("segment sums %s %d..%d: %s: %s", index, lo, hi, res.Status(), readAll(res))
	}
	type value struct {
		Value float64 `json:"value"`
	}
	var r struct {
		Aggregations struct {
			Seg struct {
				Buckets []struct {
					DocCount int64 `json:"doc_count"`
					H0       value `json:"h0"`
					H1       value `json:"h1"`
					N        value `json:"n"`
				} `json:"buckets"`
			} `json:"seg"`
		} `json:"aggregations"`
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("segment sums: %w", err)
	}
	out := make([]ingest.SegmentSum, n)
	if len(r.Aggregations.Seg.Buckets) != n && len(r.Aggregations.Seg.Buckets) != 0 {
		return nil, fmt.Errorf("segment sums: %d buckets for %d ranges", len(r.Aggregations.Seg.Buckets), n)
	}
	for i, b := range r.Aggregations.Seg.Buckets {
		// Sums of 32-bit halves over fewer than 2^21 documents stay below
		// 2^53: exact in the doubles Elasticsearch sums in.
		out[i] = ingest.SegmentSum{Records: b.DocCount, Hashed: int64(b.N.Value), H0: uint64(b.H0.Value), H1: uint64(b.H1.Value)}
	}
	return out, nil
}

// HeadsBetween returns the heads of every document with lo <= user_id <=
// hi, through the alias, from their content: each digest is recomputed
// from the _source (not the stored digest field), and documents that do
// not decode or whose stored labels disagree with their content are
// marked Suspect. Pages of Scan, so a range may hold any number.
func (s *Store) HeadsBetween(ctx context.Context, lo, hi int64) (map[int64]Head, error) {
	out := map[int64]Head{}
	err := s.Scan(ctx, lo, hi, -1, func(docs []Doc) error {
		for _, d := range docs {
			out[d.ID] = d.Head()
		}
		return nil
	})
	return out, err
}

// Head is a document's head for a sweep: the profile version and the
// digest recomputed from its content; Suspect when it does not decode or
// its labels lie.
func (d Doc) Head() Head {
	if d.Err != nil {
		return Head{Suspect: true}
	}
	return Head{Version: d.Profile.Version, Digest: d.Computed, Suspect: d.LabelsLie}
}
