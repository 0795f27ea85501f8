package server

import (
	"fmt"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/triad-dev/triad/ingest"
)

// maxBatchErrors bounds the per-line errors one batch response lists.
const maxBatchErrors = 1000

type batchResponse struct {
	ingest.Summary
	// Errors lists rejected lines (quarantined, or failed in Postgres), at
	// most 1000; Summary has the full counts.
	Errors []ingest.LineError `json:"errors"`
}

// profileBatch takes NDJSON profile lines (the JSONL input format) and
// answers once Postgres has taken every good line; Redis and Elasticsearch
// follow asynchronously (and through catch-up if they fail).
func (s *Server) profileBatch(c *gin.Context) (any, error) {
	pl := s.profiles.Load()
	if pl == nil {
		return nil, fmt.Errorf("%w: the profile pipeline is not started yet (waiting for migrations and stores)", ErrUnavailable)
	}
	sum, errs, err := pl.Run(c.Request.Context(), c.Request.Body, ingest.RunOptions{
		Source: "request " + c.GetString(requestIDKey), Format: ingest.FormatJSONL, MaxErrors: maxBatchErrors,
	})
	if err != nil {
		return nil, unavailable("", err)
	}
	if errs == nil {
		errs = []ingest.LineError{}
	}
	s.log.Info("profile batch", "lines", sum.Lines, "applied", sum.Applied, "superseded", sum.Superseded,
		"rejected", sum.Quarantined, "by", principal(c).Name)
	return batchResponse{Summary: sum, Errors: errs}, nil
}

// deleteProfile writes a tombstone: ?version=V, or the current time in
// microseconds (the version updated_at-derived inputs use).
func (s *Server) deleteProfile(c *gin.Context) (any, error) {
	pl := s.profiles.Load()
	if pl == nil {
		return nil, fmt.Errorf("%w: the profile pipeline is not started yet (waiting for migrations and stores)", ErrUnavailable)
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, fmt.Errorf("%w: profile id must be a positive 64-bit integer, got %q", ErrBadRequest, c.Param("id"))
	}
	version := time.Now().UnixMicro()
	if v := c.Query("version"); v != "" {
		if version, err = strconv.ParseInt(v, 10, 64); err != nil || version <= 0 {
			return nil, fmt.Errorf("%w: version must be a positive 64-bit integer, got %q", ErrBadRequest, v)
		}
	}
	p := &ingest.Profile{UserID: id, Version: version, Deleted: true}
	p.Digest, _ = p.ComputeDigest(nil)
	type result struct {
		o   ingest.Outcome
		err error
	}
	done := make(chan result, 1)
	if err := pl.Submit(c.Request.Context(), p, func(o ingest.Outcome, err error) { done <- result{o, err} }); err != nil {
		return nil, unavailable("", err)
	}
	var r result
	select {
	case r = <-done:
	case <-c.Request.Context().Done():
		return nil, unavailable("", c.Request.Context().Err())
	}
	if r.err != nil {
		return nil, unavailable("", r.err)
	}
	s.log.Info("profile deleted", "user_id", id, "version", version, "outcome", r.o.String(), "by", principal(c).Name)
	return gin.H{"user_id": id, "version": version, "outcome": r.o.String()}, nil
}
