package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/triad-dev/triad/ingest/lookup"
)

// ProfileReader answers profile lookups (ingest/lookup.Reader).
type ProfileReader interface {
	Get(ctx context.Context, id int64) (lookup.Result, error)
	GetMany(ctx context.Context, ids []int64) ([]lookup.Result, error)
	// Serving is the dataset version answers come from.
	Serving() int
	MaxBatch() int
}

// Response headers of profile reads.
const (
	HeaderTier           = "X-Triad-Tier"            // filter, cache, redis or postgres
	HeaderProfileVersion = "X-Triad-Profile-Version" // the profile's version
	HeaderDataset        = "X-Triad-Dataset-Version" // the dataset version served
)

var tierHeader = map[lookup.Tier][]string{
	lookup.TierFilter: {string(lookup.TierFilter)}, lookup.TierCache: {string(lookup.TierCache)},
	lookup.TierRedis: {string(lookup.TierRedis)}, lookup.TierPostgres: {string(lookup.TierPostgres)},
}

// rawJSON is handler data already encoded as JSON; wrap writes it as the
// envelope's data without re-encoding.
type rawJSON []byte

func parseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: profile id must be a positive 64-bit integer, got %q", ErrBadRequest, s)
	}
	return id, nil
}

func (s *Server) reader() (ProfileReader, error) {
	if s.lookup == nil {
		return nil, fmt.Errorf("%w: the profile read path is not configured", ErrUnavailable)
	}
	return s.lookup, nil
}

// getProfile answers one profile: Bloom filter, in-process cache, Redis,
// then Postgres.
func (s *Server) getProfile(c *gin.Context) (any, error) {
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	id, err := parseID(c.Param("id"))
	if err != nil {
		return nil, err
	}
	one, err := r.Get(c.Request.Context(), id)
	if err != nil {
		return nil, fmt.Errorf("%w: profile store: %w", ErrUnavailable, err)
	}
	res := [1]lookup.Result{one}
	// The header keys are canonical already; assigning the map directly
	// skips canonicalising them on every read.
	h := c.Writer.Header()
	h[HeaderTier] = tierHeader[res[0].Tier]
	h[HeaderDataset] = []string{strconv.Itoa(r.Serving())}
	if !res[0].Found {
		return nil, fmt.Errorf("%w: profile %d", ErrNotFound, id)
	}
	h[HeaderProfileVersion] = []string{strconv.FormatInt(res[0].Version, 10)}
	if s.redact.applies(c) {
		body, err := s.redact.Profile(res[0].Body)
		if err != nil {
			return nil, err
		}
		return rawJSON(body), nil
	}
	return rawJSON(res[0].Body), nil
}

type lookupRequest struct {
	IDs []json.Number `json:"ids"`
}

// lookupProfiles answers many profiles at once: {"ids": [...]} →
// {"profiles": [...], "missing": [...], "tiers": {...}}.
func (s *Server) lookupProfiles(c *gin.Context) (any, error) {
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	var req lookupRequest
	if err := decodeJSON(c, &req, `{"ids": [positive integers]}`); err != nil {
		return nil, err
	}
	if len(req.IDs) == 0 || len(req.IDs) > r.MaxBatch() {
		return nil, fmt.Errorf("%w: ids must hold 1 to %d IDs, got %d", ErrBadRequest, r.MaxBatch(), len(req.IDs))
	}
	ids := make([]int64, len(req.IDs))
	for i, n := range req.IDs {
		if ids[i], err = parseID(n.String()); err != nil {
			return nil, fmt.Errorf("ids[%d]: %w", i, err)
		}
	}
	res, err := r.GetMany(c.Request.Context(), ids)
	if err != nil {
		return nil, fmt.Errorf("%w: profile store: %w", ErrUnavailable, err)
	}
	c.Header(HeaderDataset, strconv.Itoa(r.Serving()))
	redact := s.redact.applies(c)
	var b bytes.Buffer
	b.WriteString(`{"dataset_version":`)
	b.WriteString(strconv.Itoa(r.Serving()))
	b.WriteString(`,"profiles":[`)
	tiers := map[lookup.Tier]int{}
	var missing []int64
	n := 0
	for _, x := range res {
		tiers[x.Tier]++
		if !x.Found {
			missing = append(missing, x.UserID)
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		b.WriteString(`{"tier":"`)
		b.WriteString(string(x.Tier))
		b.WriteString(`","profile":`)
		body := x.Body
		if redact {
			if body, err = s.redact.Profile(body); err != nil {
				return nil, err
			}
		}
		b.Write(body)
		b.WriteByte('}')
	}
	b.WriteString(`],"missing":[`)
	for i, id := range missing {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	b.WriteString(`],"tiers":{`)
	for i, t := range []lookup.Tier{lookup.TierFilter, lookup.TierCache, lookup.TierRedis, lookup.TierPostgres} {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%d", t, tiers[t])
	}
	b.WriteString(`}}`)
	return rawJSON(b.Bytes()), nil
}
