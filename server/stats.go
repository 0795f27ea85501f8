package server

import (
	"fmt"
	"sort"

	"github.com/gin-gonic/gin"
)

// consistentAfter is Polaris' figure for one derived store: of the writes
// this replica committed to Postgres, the share the store held within
// each time (from triad_ingest_consistent_after_seconds).
type consistentAfter struct {
	Store  string        `json:"store"`
	Writes uint64        `json:"writes"`
	Within []withinShare `json:"within"`
}

type withinShare struct {
	Seconds float64 `json:"seconds"`
	Share   float64 `json:"share"`
}

// getConsistentAfter reads the ingest histogram of seconds from a write's
// Postgres commit until each derived store held it, on this replica since
// it started: the share consistent within 0.1 s, 1 s, 5 s … ("N nines
// within M seconds").
func (s *Server) getConsistentAfter(*gin.Context) (any, error) {
	if s.gatherer == nil {
		return nil, fmt.Errorf("%w: metrics are not configured", ErrUnavailable)
	}
	mfs, err := s.gatherer.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather metrics: %w", err)
	}
	out := []consistentAfter{}
	for _, mf := range mfs {
		if mf.GetName() != "triad_ingest_consistent_after_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			ca := consistentAfter{Writes: h.GetSampleCount(), Within: []withinShare{}}
			for _, l := range m.GetLabel() {
				if l.GetName() == "store" {
					ca.Store = l.GetValue()
				}
			}
			for _, b := range h.GetBucket() {
				share := 0.0
				if ca.Writes > 0 {
					share = float64(b.GetCumulativeCount()) / float64(ca.Writes)
				}
				ca.Within = append(ca.Within, withinShare{Seconds: b.GetUpperBound(), Share: share})
			}
			out = append(out, ca)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Store < out[j].Store })
	return out, nil
}
