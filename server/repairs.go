package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
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
	format, err := exportFormat(c)
	if err != nil {
		return nil, err
	}
	if format != "" {
		return s.exportRepairs(c, format, f), nil
	}
	entries, next, err := s.repairLog.List(c.Request.Context(), f)
	if err != nil {
		return nil, fmt.Errorf("%w: repair log (postgres): %w", ErrUnavailable, err)
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

// maxExportRows bounds one export of a list; a larger one ends with a
// line saying so (narrow the filter).
const maxExportRows = 1_000_000

var repairColumns = []string{"id", "run_id", "last_at", "entity", "key", "store", "class", "action", "priority",
	"before_version", "before_digest", "after_version", "after_digest", "outcome", "error", "attempts", "fields", "observed", "write_trace"}

// exportRepairs streams the entries f selects, newest first, page by page.
func (s *Server) exportRepairs(c *gin.Context, format string, f repair.LogFilter) exportStream {
	ctx := c.Request.Context()
	return exportStream{format: format, name: "triad-repairs", columns: repairColumns, rows: func(emit emitFunc) error {
		f.Limit = 1000
		for n := 0; ; {
			entries, next, err := s.repairLog.List(ctx, f)
			if err != nil {
				return unavailable("repair log (postgres)", err)
			}
			for _, e := range entries {
				cells := entryCells(e)
				row := append([]string{strconv.FormatInt(e.ID, 10), strconv.FormatInt(e.RunID, 10), e.LastAt.UTC().Format(time.RFC3339Nano)}, cells[:10]...)
				row = append(row, e.Outcome, e.Error, strconv.Itoa(e.Attempts), strings.Join(e.Fields, " "), e.Observed, e.WriteTrace)
				if err := emit(e, row); err != nil {
					return err
				}
			}
			if n += len(entries); next == 0 {
				return nil
			} else if n >= maxExportRows {
				return fmt.Errorf("%w: more than %d entries; narrow the filter", ErrTooLarge, maxExportRows)
			}
			f.After = next
		}
	}}
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
		return nil, fmt.Errorf("%w: repair log (postgres): %w", ErrUnavailable, err)
	}
	if runs == nil {
		runs = []repair.Run{}
	}
	return runs, nil
}

// Repairer repairs records by key (repair.Repairer).
type Repairer interface {
	Repair(ctx context.Context, req repair.Request) (repair.Run, []repair.Entry, error)
}

type repairRequest struct {
	Entity  string            `json:"entity"`
	IDs     []json.RawMessage `json:"ids"`
	DryRun  bool              `json:"dry_run"`
	Budget  int               `json:"budget"`
	Trigger string            `json:"trigger"` // api (default), cli or ui
}

type repairResponse struct {
	Run     repair.Run     `json:"run"`
	Entries []repair.Entry `json:"entries"`
}

// postRepairs repairs records by key from Postgres, or with dry_run plans
// it; every entry goes to the repair log.
func (s *Server) postRepairs(c *gin.Context) (any, error) {
	if s.repairer == nil {
		return nil, fmt.Errorf("%w: repairs are not configured", ErrUnavailable)
	}
	var req repairRequest
	const shape = `{"entity": "profile", "ids": [42], "dry_run": false, "budget": 0}`
	if err := decodeJSON(c, &req, shape); err != nil {
		return nil, err
	}
	if req.Entity == "" || req.Budget < 0 {
		return nil, fmt.Errorf("%w: body must be %s", ErrBadRequest, shape)
	}
	switch req.Trigger {
	case "":
		req.Trigger = repair.TriggerAPI
	case repair.TriggerAPI, repair.TriggerCLI, repair.TriggerUI:
	default:
		return nil, fmt.Errorf("%w: trigger must be api, cli or ui, got %q", ErrBadRequest, req.Trigger)
	}
	keys, err := rawKeys(req.IDs)
	if err != nil {
		return nil, err
	}
	// A repair that started finishes (and is logged) even if the client
	// goes away.
	// A repair that started finishes even if the client goes away, but
	// no later than the request's own deadline would have ended it.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), s.cfg.RequestTimeout)
	defer cancel()
	run, entries, err := s.repairer.Repair(rctx, repair.Request{
		Entity: req.Entity, Keys: keys, DryRun: req.DryRun, Budget: req.Budget, Trigger: req.Trigger, Actor: principal(c).Name,
	})
	switch {
	case err == nil:
	case run.ID != 0: // the run exists and says why it stopped
		return nil, unavailable(fmt.Sprintf("repair run %d", run.ID), err)
	default:
		return nil, unavailable("", err)
	}
	if entries == nil {
		entries = []repair.Entry{}
	}
	s.log.Info("repair run", "run", run.ID, "entity", run.Entity, "dry_run", run.DryRun, "repaired", run.Repaired,
		"planned", run.Planned, "conflicts", run.Conflicts, "failed", run.Failed, "by", principal(c).Name)
	return repairResponse{Run: run, Entries: entries}, nil
}

// rawKeys turns JSON numbers or strings into keys.
func rawKeys(ids []json.RawMessage) ([]string, error) {
	keys := make([]string, len(ids))
	for i, raw := range ids {
		var str string
		if json.Unmarshal(raw, &str) == nil {
			keys[i] = str
			continue
		}
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, fmt.Errorf("%w: ids[%d]: want a number or a string, got %s", ErrBadRequest, i, raw)
		}
		keys[i] = n.String()
	}
	return keys, nil
}

// repairStats counts repair log entries per hour over the last `hours`
// (default 24, at most 720), or with `minutes` (1 to 1440) per minute over
// the last minutes.
func (s *Server) repairStats(c *gin.Context) (any, error) {
	if s.repairLog == nil {
		return nil, fmt.Errorf("%w: the repair log is not configured", ErrUnavailable)
	}
	span, step := 24*time.Hour, time.Hour
	if v := c.Query("hours"); v != "" {
		hours, err := strconv.Atoi(v)
		if err != nil || hours < 1 || hours > 720 {
			return nil, fmt.Errorf("%w: hours must be 1..720, got %q", ErrBadRequest, v)
		}
		span = time.Duration(hours) * time.Hour
	}
	if v := c.Query("minutes"); v != "" {
		minutes, err := strconv.Atoi(v)
		if err != nil || minutes < 1 || minutes > 1440 || c.Query("hours") != "" {
			return nil, fmt.Errorf("%w: minutes must be 1..1440, and not with hours, got %q", ErrBadRequest, v)
		}
		span, step = time.Duration(minutes)*time.Minute, time.Minute
	}
	b, err := s.repairLog.Stats(c.Request.Context(), time.Now().Add(-span).Truncate(step), step)
	if err != nil {
		return nil, fmt.Errorf("%w: repair log (postgres): %w", ErrUnavailable, err)
	}
	if b == nil {
		b = []repair.StatBucket{}
	}
	return b, nil
}
