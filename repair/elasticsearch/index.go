// Package elasticsearch is the index of a configured entity (repair's
// Table, such as order): documents by key with their sequence numbers for
// guarded writes, range reads and segment sums over the key field,
// external-version writes and bulk loads.
package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/triad-dev/triad/ingest"
	esstore "github.com/triad-dev/triad/ingest/elasticsearch"
)

// Index is a configured entity's Elasticsearch index (or alias):
// documents by key, their sequence numbers for guarded writes, range
// reads and segment sums over the key field. Safe for concurrent use.
type Index struct {
	es    *elasticsearch.Client
	index string
	key   string // the key field
	shape esstore.Shape
	// made: the index is known to exist (Bulk makes it first, with shape).
	made atomic.Bool
}

// New returns the index of a configured entity; an index Bulk has to
// create gets shape's shards and replicas (the profile index's), not
// Elasticsearch's defaults (one replica: yellow on a single node).
func New(es *elasticsearch.Client, index, keyField string, shape esstore.Shape) *Index {
	return &Index{es: es, index: index, key: keyField, shape: shape}
}

// ensure creates the index with its shape unless it exists (an alias of
// that name counts). Once it has seen it, it does not ask again.
func (x *Index) ensure(ctx context.Context) error {
	if x.made.Load() {
		return nil
	}
	res, err := esapi.IndicesCreateRequest{Index: x.index, Body: strings.NewReader(x.shape.IndexBody())}.Do(ctx, x.es)
	if err != nil {
		return fmt.Errorf("create index %s: %w", x.index, err)
	}
	defer res.Body.Close()
	if res.IsError() && res.StatusCode != http.StatusBadRequest {
		return esError(res, "create index "+x.index)
	}
	if res.StatusCode == http.StatusBadRequest {
		// Only "it exists already" is fine (an index, or an alias).
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		if !bytes.Contains(body, []byte("resource_already_exists_exception")) && !bytes.Contains(body, []byte("invalid_index_name_exception")) {
			return fmt.Errorf("create index %s: %s: %s", x.index, res.Status(), body)
		}
	}
	x.made.Store(true)
	return nil
}

// Name is the index or alias.
func (x *Index) Name() string { return x.index }

// Meta is what a guarded write of a document needs: its sequence number
// and primary term (if_seq_no), and its _version.
type Meta struct {
	SeqNo       int64
	PrimaryTerm int64
	Version     int64 // _version
}

// Doc is a document as stored.
type Doc struct {
	Source map[string]json.RawMessage
	Meta   Meta
	Size   int // bytes, about
}

func sourceSize(src map[string]json.RawMessage) int {
	n := 2
	for k, v := range src {
		n += len(k) + len(v) + 4
	}
	return n
}

func esError(res *esapi.Response, what string) error {
	return fmt.Errorf("%s: %s: %s", what, res.Status(), esstore.ErrorBody(res))
}

func (x *Index) Get(ctx context.Context, ids []int64) (map[int64]Doc, error) {
	var body bytes.Buffer
	body.WriteString(`{"ids":[`)
	for i, id := range ids {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `"%d"`, id)
	}
	body.WriteString(`]}`)
	res, err := esapi.MgetRequest{Index: x.index, Body: &body}.Do(ctx, x.es)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusNotFound {
		return map[int64]Doc{}, nil
	}
	if res.IsError() {
		return nil, esError(res, "mget "+x.index)
	}
	var r struct {
		Docs []struct {
			ID          string                     `json:"_id"`
			Found       bool                       `json:"found"`
			Version     int64                      `json:"_version"`
			SeqNo       int64                      `json:"_seq_no"`
			PrimaryTerm int64                      `json:"_primary_term"`
			Source      map[string]json.RawMessage `json:"_source"`
		} `json:"docs"`
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		return nil, err
	}
	out := make(map[int64]Doc, len(r.Docs))
	for _, d := range r.Docs {
		if !d.Found {
			continue
		}
		id, err := strconv.ParseInt(d.ID, 10, 64)
		if err != nil {
			continue
		}
		out[id] = Doc{Source: d.Source, Meta: Meta{SeqNo: d.SeqNo, PrimaryTerm: d.PrimaryTerm, Version: d.Version}, Size: sourceSize(d.Source)}
	}
	return out, nil
}

func (x *Index) Between(ctx context.Context, lo, hi int64, max int) (map[int64]Doc, error) {
	body := fmt.Sprintf(`{"size":%d,"track_total_hits":true,"seq_no_primary_term":true,"version":true,"query":{"range":{%q:{"gte":%d,"lte":%d}}}}`, max, x.key, lo, hi)
	res, err := esapi.SearchRequest{Index: []string{x.index}, Body: strings.NewReader(body)}.Do(ctx, x.es)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.IsError() {
		return nil, esError(res, fmt.Sprintf("search %s %d..%d", x.index, lo, hi))
	}
	var r struct {
		Hits struct {
			Total struct {
				Value int `json:"value"`
			} `json:"total"`
			Hits []struct {
				ID          string                     `json:"_id"`
				Version     int64                      `json:"_version"`
				SeqNo       int64                      `json:"_seq_no"`
				PrimaryTerm int64                      `json:"_primary_term"`
				Source      map[string]json.RawMessage `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Hits.Total.Value > max {
		return nil, fmt.Errorf("search %s %d..%d: %d documents, more than %d", x.index, lo, hi, r.Hits.Total.Value, max)
	}
	out := make(map[int64]Doc, len(r.Hits.Hits))
	for _, h := range r.Hits.Hits {
		id, err := strconv.ParseInt(h.ID, 10, 64)
		if err != nil {
			continue
		}
		out[id] = Doc{Source: h.Source, Meta: Meta{SeqNo: h.SeqNo, PrimaryTerm: h.PrimaryTerm, Version: h.Version}, Size: sourceSize(h.Source)}
	}
	return out, nil
}

func (x *Index) Sums(ctx context.Context, ranges [][2]int64) ([]ingest.SegmentSum, error) {
	return esstore.RangeSums(ctx, x.es, x.index, x.key, ranges)
}

// put writes a document at the record's version through external
// versioning (gte: the same version may be rewritten), so it never
// replaces a newer version; ok is false when the index holds one.
func (x *Index) Put(ctx context.Context, id int64, doc []byte, version int64, gte bool) (bool, error) {
	v := int(version)
	req := esapi.IndexRequest{Index: x.index, DocumentID: strconv.FormatInt(id, 10), Body: bytes.NewReader(doc), Version: &v, VersionType: "external"}
	if gte {
		req.VersionType = "external_gte"
	}
	res, err := req.Do(ctx, x.es)
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusConflict:
		return false, nil
	case res.IsError():
		return false, esError(res, fmt.Sprintf("index %s/%d", x.index, id))
	}
	return true, nil
}

// bulk writes documents at their versions (external versioning: an
// older version is refused and counted in stale).
func (x *Index) Bulk(ctx context.Context, ids, versions []int64, docs [][]byte) (stale int, err error) {
	if err := x.ensure(ctx); err != nil {
		return 0, err
	}
	var body bytes.Buffer
	for i, doc := range docs {
		fmt.Fprintf(&body, `{"index":{"_index":%q,"_id":"%d","version":%d,"version_type":"external"}}`+"\n", x.index, ids[i], versions[i])
		body.Write(doc)
		body.WriteByte('\n')
	}
	res, err := esapi.BulkRequest{Body: &body}.Do(ctx, x.es)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.IsError() {
		return 0, esError(res, "bulk "+x.index)
	}
	var r struct {
		Items []map[string]struct {
			Status int `json:"status"`
			Error  *struct {
				Reason string `json:"reason"`
			} `json:"error"`
		} `json:"items"`
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		return 0, err
	}
	for i, it := range r.Items {
		for _, v := range it {
			switch {
			case v.Status == http.StatusConflict:
				stale++
			case v.Status >= 300:
				reason := ""
				if v.Error != nil {
					reason = v.Error.Reason
				}
				return stale, fmt.Errorf("bulk %s: document %d: %d %s", x.index, ids[i], v.Status, reason)
			}
		}
	}
	return stale, nil
}

func (x *Index) Delete(ctx context.Context, id int64, m Meta) (bool, error) {
	seq, term := int(m.SeqNo), int(m.PrimaryTerm)
	res, err := esapi.DeleteRequest{Index: x.index, DocumentID: strconv.FormatInt(id, 10), IfSeqNo: &seq, IfPrimaryTerm: &term}.Do(ctx, x.es)
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusConflict, res.StatusCode == http.StatusNotFound:
		return false, nil
	case res.IsError():
		return false, esError(res, fmt.Sprintf("delete %s/%d", x.index, id))
	}
	return true, nil
}

func (x *Index) Refresh(ctx context.Context) error {
	res, err := esapi.IndicesRefreshRequest{Index: []string{x.index}}.Do(ctx, x.es)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.IsError() && res.StatusCode != http.StatusNotFound {
		return esError(res, "refresh "+x.index)
	}
	return nil
}

// putIf indexes a document only if it is still the one read (its
// _seq_no and _primary_term). ok is false when it changed or vanished.
func (x *Index) PutIf(ctx context.Context, id int64, doc []byte, m Meta) (bool, error) {
	seq, term := int(m.SeqNo), int(m.PrimaryTerm)
	res, err := esapi.IndexRequest{Index: x.index, DocumentID: strconv.FormatInt(id, 10), Body: bytes.NewReader(doc),
		IfSeqNo: &seq, IfPrimaryTerm: &term, Refresh: "true"}.Do(ctx, x.es)
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusConflict || res.StatusCode == http.StatusNotFound:
		return false, nil
	case res.IsError():
		return false, esError(res, fmt.Sprintf("index %s %d", x.index, id))
	}
	return true, nil
}
