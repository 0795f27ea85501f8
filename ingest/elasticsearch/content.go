package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"golang.org/x/sync/errgroup"

	"github.com/triad-dev/triad/ingest"
)

// Doc is one profile document as Elasticsearch holds it, whoever wrote it:
// its concurrency state (_seq_no, _primary_term, the _version), and the
// profile its _source decodes to, or why it does not (Err: a missing,
// extra or undecodable field). Other writers' updates (internally
// versioned: _update, a plain index, a re-index) raise _version past the
// profile version in the source; that alone is not drift, but repairs of
// such documents are guarded by _seq_no instead of the external version.
type Doc struct {
	ID          int64
	SeqNo       int64
	PrimaryTerm int64
	ESVersion   int64 // _version
	Bytes       int   // the _source's size
	Profile     *ingest.Profile
	Err         error
	// Source is the raw _source when Err is set: what an operator
	// inspects of a document that is not a valid profile.
	Source []byte
	// Computed is the digest recomputed from the content (0 with Err).
	Computed int64
	// LabelsLie: the stored digest or segment hash halves do not match
	// the content (a writer changed fields and kept triad's labels).
	LabelsLie bool
}

// Guard is what a guarded write of a document checks: the exact document
// a reader observed.
type Guard struct{ SeqNo, PrimaryTerm, ESVersion int64 }

// Guard returns the document's guard.
func (d Doc) Guard() Guard {
	return Guard{SeqNo: d.SeqNo, PrimaryTerm: d.PrimaryTerm, ESVersion: d.ESVersion}
}

// sourceFields are the fields a profile document may have.
var sourceFields = func() map[string]bool {
	m := map[string]bool{"user_id": true, "version": true, "digest": true, "digest_version": true, "updated_at": true, "sweep_h0": true, "sweep_h1": true}
	for _, n := range ingest.FieldNames {
		m[n] = true
	}
	return m
}()

// DecodeDoc decodes a document's _source strictly: every field triad
// writes must be there with its type, nothing else, attribute fields are
// re-canonicalised (Elasticsearch keeps _source as each writer sent it,
// and its own _update re-serialises it). The second result is whether the
// stored labels (digest, segment hash halves) match the content.
func DecodeDoc(id int64, src []byte) (p *ingest.Profile, computed int64, labelsLie bool, err error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(src, &obj); err != nil {
		return nil, 0, false, fmt.Errorf("_source is not a JSON object: %w", err)
	}
	var extra []string
	for k := range obj {
		if !sourceFields[k] {
			extra = append(extra, clip(k))
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return nil, 0, false, fmt.Errorf("unknown fields %v", extra)
	}
	p = &ingest.Profile{}
	for _, f := range []struct {
		name string
		dst  *int64
	}{{"user_id", &p.UserID}, {"version", &p.Version}, {"digest", &p.Digest}} {
		raw, ok := obj[f.name]
		if !ok {
			return nil, 0, false, fmt.Errorf("field %s: missing", f.name)
		}
		if err := json.Unmarshal(raw, f.dst); err != nil {
			return nil, 0, false, fmt.Errorf("field %s: not an integer: %s", f.name, clip(string(raw)))
		}
	}
	if p.UserID != id {
		return nil, 0, false, fmt.Errorf("field user_id: %d in document %d", p.UserID, id)
	}
	if p.Version <= 0 {
		return nil, 0, false, fmt.Errorf("field version: %d is not positive", p.Version)
	}
	raw, ok := obj["updated_at"]
	if !ok {
		return nil, 0, false, fmt.Errorf("field updated_at: missing")
	}
	if string(raw) != "null" {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, 0, false, fmt.Errorf("field updated_at: not a string: %s", clip(string(raw)))
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, 0, false, fmt.Errorf("field updated_at: not RFC 3339: %q", clip(s))
		}
		p.UpdatedAt = t.UTC()
	}
	for f, name := range ingest.FieldNames {
		raw, ok := obj[name]
		if !ok {
			return nil, 0, false, fmt.Errorf("field %s: missing", name)
		}
		c, err := ingest.CanonicalJSON(nil, raw)
		if err != nil {
			return nil, 0, false, fmt.Errorf("field %s: %w", name, err)
		}
		p.Fields[f] = c
	}
	computed, _ = p.ComputeDigest(nil)
	labelsLie = computed != p.Digest
	h := ingest.SegmentHash(p.Version, p.Digest)
	var h0, h1 uint64
	_, has0 := obj["sweep_h0"]
	_, has1 := obj["sweep_h1"]
	if has0 || has1 {
		if json.Unmarshal(obj["sweep_h0"], &h0) != nil || json.Unmarshal(obj["sweep_h1"], &h1) != nil || h0 != h&0xFFFFFFFF || h1 != h>>32 {
			labelsLie = true
		}
	}
	return p, computed, labelsLie, nil
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

type hit struct {
	ID          string          `json:"_id"`
	Found       *bool           `json:"found"`
	Version     int64           `json:"_version"`
	SeqNo       int64           `json:"_seq_no"`
	PrimaryTerm int64           `json:"_primary_term"`
	Source      json.RawMessage `json:"_source"`
	Sort        []any           `json:"sort"`
}

func (h hit) doc() (Doc, bool) {
	id, err := strconv.ParseInt(h.ID, 10, 64)
	if err != nil {
		return Doc{}, false // not a profile document's id: nothing a profile key reaches
	}
	d := Doc{ID: id, SeqNo: h.SeqNo, PrimaryTerm: h.PrimaryTerm, ESVersion: h.Version, Bytes: len(h.Source)}
	d.Profile, d.Computed, d.LabelsLie, d.Err = DecodeDoc(id, h.Source)
	if d.Err != nil {
		d.Profile, d.Computed, d.LabelsLie, d.Source = nil, 0, false, h.Source
	}
	return d, true
}

// ReadDocs reads the documents of ids through the alias with one _mget,
// whatever they hold; absent ids are not in the result.
func (s *Store) ReadDocs(ctx context.Context, ids []int64) (map[int64]Doc, error) {
	return s.readDocs(ctx, s.Alias(), ids)
}

func (s *Store) readDocs(ctx context.Context, index string, ids []int64) (map[int64]Doc, error) {
	out := make(map[int64]Doc, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	res, err := esapi.MgetRequest{Index: index, Body: bytes.NewReader(idsBody(ids))}.Do(ctx, s.es)
	if err != nil {
		return nil, fmt.Errorf("mget %d: %w", len(ids), err)
	}
	defer drain(res)
	if res.IsError() {
		return nil, fmt.Errorf("mget %d: %s: %s", len(ids), res.Status(), readAll(res))
	}
	var r struct {
		Docs []hit `json:"docs"`
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("mget %d: decode: %w", len(ids), err)
	}
	for _, h := range r.Docs {
		if h.Found == nil || !*h.Found {
			continue
		}
		if d, ok := h.doc(); ok {
			out[d.ID] = d
		}
	}
	return out, nil
}

// scanPage is how many documents one page of a range scan holds.
const scanPage = 1000

// Scan reads every document with lo <= user_id <= hi through the alias,
// in user_id order, a page at a time (search_after, so a range may hold
// more than index.max_result_window documents), and hands each page to fn.
// With since >= 0 only documents whose _seq_no is above since come back:
// the documents written (by anyone) since a checkpoint.
func (s *Store) Scan(ctx context.Context, lo, hi, since int64, fn func([]Doc) error) error {
	var after int64
	first := true
	for {
		var q strings.Builder
		fmt.Fprintf(&q, `{"size":%d,"seq_no_primary_term":true,"version":true,"sort":[{"user_id":"asc"}],"query":{"bool":{"filter":[{"range":{"user_id":{"gte":%d,"lte":%d}}}`, scanPage, lo, hi)
		if since >= 0 {
			fmt.Fprintf(&q, `,{"range":{"_seq_no":{"gt":%d}}}`, since)
		}
		q.WriteString(`]}}`)
		if !first {
			fmt.Fprintf(&q, `,"search_after":[%d]`, after)
		}
		q.WriteString(`}`)
		hits, docs, err := s.searchPage(ctx, esapi.SearchRequest{Index: []string{s.Alias()}, Body: strings.NewReader(q.String())})
		if err != nil {
			return fmt.Errorf("scan %d..%d: %w", lo, hi, err)
		}
		if len(docs) > 0 {
			if err := fn(docs); err != nil {
				return err
			}
		}
		if len(hits) < scanPage {
			return nil
		}
		last := hits[len(hits)-1]
		if len(last.Sort) != 1 {
			return fmt.Errorf("scan %d..%d: no sort value", lo, hi)
		}
		v, ok := last.Sort[0].(float64)
		if !ok {
			return fmt.Errorf("scan %d..%d: sort value %v", lo, hi, last.Sort[0])
		}
		// Sort values of longs come back as JSON numbers; user IDs above
		// 2^53 lose precision as float64, so resume from the document's
		// own id (which is its user_id for every decodable document).
		if id, err := strconv.ParseInt(last.ID, 10, 64); err == nil {
			after = id
		} else {
			after = int64(v)
		}
		first = false
	}
}

// Unkeyed lists the documents behind the alias that a range scan by
// user_id cannot see, whoever wrote them: those without a user_id. It
// returns up to max of their ids and how many there are in all (one
// search; the strict mapping refuses a user_id of another type, so a
// missing one is the only way a document escapes the scans).
func (s *Store) Unkeyed(ctx context.Context, max int) (ids []string, total int64, err error) {
	body := fmt.Sprintf(`{"size":%d,"track_total_hits":true,"_source":false,"sort":["_doc"],"query":{"bool":{"must_not":[{"exists":{"field":"user_id"}}]}}}`, max)
	res, err := esapi.SearchRequest{Index: []string{s.Alias()}, Body: strings.NewReader(body),
		FilterPath: []string{"hits.total.value", "hits.hits._id"}}.Do(ctx, s.es)
	if err != nil {
		return nil, 0, err
	}
	defer drain(res)
	if res.IsError() {
		return nil, 0, fmt.Errorf("documents without a user_id: %s: %s", res.Status(), readAll(res))
	}
	var r struct {
		Hits struct {
			Total struct {
				Value int64 `json:"value"`
			} `json:"total"`
			Hits []struct {
				ID string `json:"_id"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		return nil, 0, fmt.Errorf("documents without a user_id: decode: %w", err)
	}
	for _, h := range r.Hits.Hits {
		ids = append(ids, h.ID)
	}
	return ids, r.Hits.Total.Value, nil
}

// Checkpoint is a point in an index's history: every operation on any of
// its primary shards up to SeqNo (the smallest global checkpoint among
// them) is durable and, after a refresh, visible. Documents not written
// since keep their _seq_no at or below it.
type Checkpoint struct {
	Index string `json:"index"` // the concrete index behind the alias
	UUID  string `json:"uuid"`  // a re-created index has another
	SeqNo int64  `json:"seq_no"`
	// Shards is the number of primary shards (each numbers its writes).
	Shards int `json:"shards"`
}

// Checkpoint reads the current checkpoint of the index behind the alias.
// Take it before reading what it is meant to cover, then refresh.
func (s *Store) Checkpoint(ctx context.Context) (Checkpoint, error) {
	res, err := esapi.IndicesStatsRequest{Index: []string{s.Alias()}, Level: "shards",
		FilterPath: []string{"indices.*.uuid", "indices.*.shards.*.routing.primary", "indices.*.shards.*.seq_no.global_checkpoint"}}.Do(ctx, s.es)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("index stats: %w", err)
	}
	defer drain(res)
	if res.IsError() {
		return Checkpoint{}, fmt.Errorf("index stats: %s: %s", res.Status(), readAll(res))
	}
	var r struct {
		Indices map[string]struct {
			UUID   string `json:"uuid"`
			Shards map[string][]struct {
				Routing struct {
					Primary bool `json:"primary"`
				} `json:"routing"`
				SeqNo struct {
					GlobalCheckpoint int64 `json:"global_checkpoint"`
				} `json:"seq_no"`
			} `json:"shards"`
		} `json:"indices"`
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		return Checkpoint{}, fmt.Errorf("index stats: %w", err)
	}
	if len(r.Indices) != 1 {
		return Checkpoint{}, fmt.Errorf("index stats: alias %s points at %d indices", s.Alias(), len(r.Indices))
	}
	for name, ix := range r.Indices {
		cp := Checkpoint{Index: name, UUID: ix.UUID, SeqNo: -1, Shards: len(ix.Shards)}
		first := true
		for _, copies := range ix.Shards {
			for _, c := range copies {
				if c.Routing.Primary && (first || c.SeqNo.GlobalCheckpoint < cp.SeqNo) {
					cp.SeqNo, first = c.SeqNo.GlobalCheckpoint, false
				}
			}
		}
		if first {
			return Checkpoint{}, fmt.Errorf("index stats: %s has no started primary shard", name)
		}
		return cp, nil
	}
	return Checkpoint{}, nil
}

// IndexIf writes p's document only if the document is still the one
// observed (its _seq_no and _primary_term): the repair of a document
// another writer changed with internal versioning, whose _version no
// longer follows the profile version. ok is false when it changed since
// (or was deleted); nothing was written then.
func (s *Store) IndexIf(ctx context.Context, p *ingest.Profile, g Guard) (ok bool, err error) {
	return s.indexIn(ctx, s.Alias(), p, g, "true")
}

// DeleteDocIf deletes a document only if it is still the one observed.
func (s *Store) DeleteDocIf(ctx context.Context, id int64, g Guard) (ok bool, err error) {
	return s.DeleteIf(ctx, id, Meta{Found: true, SeqNo: g.SeqNo, PrimaryTerm: g.PrimaryTerm})
}

// Changed reads every document of index written after seqNo, whoever
// wrote it (an update, a plain index, a re-index, triad's own writes: each
// gets a new _seq_no; a deleted document is gone and shows as missing in
// the segment sums instead), each shard in _seq_no order, a page at a
// time, and hands each page to fn. The shards are read in parallel (up to
// changedShards at once: each is a sequential walk of its own numbers, so
// an index of several shards is read in the time of its largest), and fn
// is called for one page at a time. Documents with no user_id, or another
// one than their _id, are read too: they decode with an error. It returns
// how many documents it read.
func (s *Store) Changed(ctx context.Context, index string, shards int, seqNo int64, fn func([]Doc) error) (int64, error) {
	var mu sync.Mutex // fn is called for one page at a time
	var n int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(changedShards)
	for shard := range max(shards, 1) {
		g.Go(func() error {
			after := seqNo
			for {
				q := fmt.Sprintf(`{"size":%d,"seq_no_primary_term":true,"version":true,"sort":[{"_seq_no":"asc"}],"query":{"range":{"_seq_no":{"gt":%d}}}}`, scanPage, after)
				req := esapi.SearchRequest{Index: []string{index}, Body: strings.NewReader(q)}
				if shards > 1 {
					// _seq_no counts per shard: page through one at a time.
					req.Preference = "_shards:" + strconv.Itoa(shard)
				}
				hits, docs, err := s.searchPage(gctx, req)
				if err != nil {
					return fmt.Errorf("shard %d: documents since seq_no %d: %w", shard, seqNo, err)
				}
				for _, h := range hits {
					after = max(after, h.SeqNo)
				}
				mu.Lock()
				n += int64(len(hits))
				var ferr error
				if len(docs) > 0 {
					ferr = fn(docs)
				}
				mu.Unlock()
				if ferr != nil {
					return ferr
				}
				if len(hits) < scanPage {
					return nil
				}
			}
		})
	}
	err := g.Wait()
	return n, err
}

// changedShards bounds the shards Changed reads at once.
const changedShards = 4

// CreateIfAbsent writes p's document only if there is none (op_type
// create, internal versioning): the repair of a document another writer
// deleted with internal versioning, whose tombstone refuses the external
// version for index.gc_deletes. ok is false when a document appeared
// meanwhile; nothing was written then. The document's _version is then
// Elasticsearch's own; later versioned writes are resolved by _seq_no.
func (s *Store) CreateIfAbsent(ctx context.Context, p *ingest.Profile) (ok bool, err error) {
	res, err := esapi.CreateRequest{Index: s.Alias(), DocumentID: strconv.FormatInt(p.UserID, 10), Body: bytes.NewReader(AppendDocument(nil, p)),
		Refresh: "true"}.Do(ctx, s.es)
	if err != nil {
		return false, fmt.Errorf("create %d: %w", p.UserID, err)
	}
	defer drain(res)
	switch {
	case res.StatusCode == 409:
		return false, nil
	case res.IsError():
		return false, fmt.Errorf("create %d: %s: %s", p.UserID, res.Status(), readAll(res))
	}
	return true, nil
}

// searchPage runs one page of a document scan (req without FilterPath)
// and decodes its hits and the profile documents among them.
func (s *Store) searchPage(ctx context.Context, req esapi.SearchRequest) ([]hit, []Doc, error) {
	req.FilterPath = []string{"hits.hits._id", "hits.hits._version", "hits.hits._seq_no", "hits.hits._primary_term", "hits.hits._source", "hits.hits.sort"}
	res, err := req.Do(ctx, s.es)
	if err != nil {
		return nil, nil, err
	}
	defer drain(res)
	if res.IsError() {
		return nil, nil, fmt.Errorf("%s: %s", res.Status(), readAll(res))
	}
	var r struct {
		Hits struct {
			Hits []hit `json:"hits"`
		} `json:"hits"`
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		return nil, nil, fmt.Errorf("decode: %w", err)
	}
	docs := make([]Doc, 0, len(r.Hits.Hits))
	for _, h := range r.Hits.Hits {
		if d, ok := h.doc(); ok {
			docs = append(docs, d)
		}
	}
	return r.Hits.Hits, docs, nil
}
