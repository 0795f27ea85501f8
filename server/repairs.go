package server

import (
	"fmt"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/triad-dev/triad/repair"
)

type repairLogPage struct {
	Entries []repair.Entry `json:"entries"`
	// Next is the `after` of the next page; empty on the last one.
	Next string `json:"next,omitempty"`
}

// listRepairs lists repair log entries newest first, filtered by entity,
// key, store, class, outcome, run, since and until (RFC 3339), in pages of
// limit (at most 1000) continued with after.
func (s *Server) listRepairs(c *gin.Context) (any, error) {
	if s.repairLog == nil {
		return nil, fmt.Errorf("%w: the repair log is not configured", ErrUnavailable)
	}
	f := repair.LogFilter{Entity: c.Query("entity"), Key: c.Query("key"), Store: c.Query("store"), Class: c.Query("class"), Outcome: c.Query("outcome")}
	var err error
	intParam := func(name string, dst *int64) {
		if v := c.Query(name); v != "" && err == nil {
			if *dst, err = strconv.ParseInt(v, 10, 64); err != nil || *dst < 0 {
				err = fmt.Errorf("%w: %s must be a non-negative integer, got %q", ErrBadRequest, name, v)
			}
		}
	}
	timeParam := func(name string, dst *time.Time) {
		if v := c.Query(name); v != "" && err == nil {
			if *dst, err = time.Parse(time.RFC3339, v); err != nil {
				err = fmt.Errorf("%w: %s must be an RFC 3339 time, got %q", ErrBadRequest, name, v)
			}
		}
	}
	var limit int64
	intParam("run", &f.RunID)
	intParam("after", &f.After)
	intParam("limit", &limit)
	timeParam("since", &f.Since)
	timeParam("until", &f.Until)
	if err != nil {
		return nil, err
	}
	if limit > 1000 {
		return nil, fmt.Errorf("%w: limit must be at most 1000, got %d", ErrBadRequest, limit)
	}
	f.Limit = int(limit)
	entries, next, err := s.repairLog.List(c.Request.Context(), f)
	if err != nil {
		return nil, fmt.Errorf("%w: repair log: %w", ErrUnavailable, err)
	}
	page := repairLogPage{Entries: entries}
	if page.Entries == nil {
		page.Entries = []repair.Entry{}
	}
	if next > 0 {
		page.Next = strconv.FormatInt(next, 10)
	}
	return page, nil
}

// listRepairRuns lists repair runs newest first (limit, before).
func (s *Server) listRepairRuns(c *gin.Context) (any, error) {
	if s.repairLog == nil {
		return nil, fmt.Errorf("%w: the repair log is not configured", ErrUnavailable)
	}
	limit, _ := strconv.Atoi(c.Query("limit"))
	before, err := strconv.ParseInt(c.DefaultQuery("before", "0"), 10, 64)
	if err != nil || limit < 0 || limit > 1000 {
		return nil, fmt.Errorf("%w: limit must be 0-1000 and before an integer", ErrBadRequest)
	}
	runs, err := s.repairLog.Runs(c.Request.Context(), limit, before)
	if err != nil {
		return nil, fmt.Errorf("%w: repair log: %w", ErrUnavailable, err)
	}
	if runs == nil {
		runs = []repair.Run{}
	}
	return runs, nil
}
