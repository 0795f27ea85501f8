package server

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/triad-dev/triad/repair"
)

// Planner makes, keeps and applies reviewed repair plans
// (repair.Planner).
type Planner interface {
	Create(ctx context.Context, req repair.PlanRequest) (repair.SavedPlan, error)
	Apply(ctx context.Context, id int64, trigger, actor string) (repair.Run, []repair.Entry, error)
	Store() repair.PlanStore
}

func (s *Server) planner() (Planner, error) {
	if s.plans == nil {
		return nil, fmt.Errorf("%w: repair plans are not configured", ErrUnavailable)
	}
	return s.plans, nil
}

// planFilter selects repair-log entries whose records a plan covers.
type planFilter struct {
	Store   string `json:"store"`
	Class   string `json:"class"`
	Outcome string `json:"outcome"`
	Key     string `json:"key"`
	Run     int64  `json:"run"`
	Since   string `json:"since"`
	Until   string `json:"until"`
}

type planRequest struct {
	Entity  string            `json:"entity"`
	IDs     []json.RawMessage `json:"ids"`
	Sweep   int64             `json:"sweep"`
	Filter  *planFilter       `json:"filter"`
	Trigger string            `json:"trigger"`
}

// postPlan dry-runs a repair of the records named by IDs, a sweep's
// findings or a repair-log filter (one of them), and saves it as a plan.
func (s *Server) postPlan(c *gin.Context) (any, error) {
	pl, err := s.planner()
	if err != nil {
		return nil, err
	}
	var req planRequest
	const shape = `{"entity": "profile", "ids": [42]} or {"sweep": 12} or {"entity": "profile", "filter": {"store": "redis", "class": "stale"}}`
	if err := decodeJSON(c, &req, shape); err != nil {
		return nil, err
	}
	trigger, err := triggerOf(req.Trigger)
	if err != nil {
		return nil, err
	}
	sources := 0
	for _, set := range []bool{len(req.IDs) > 0, req.Sweep > 0, req.Filter != nil} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return nil, fmt.Errorf("%w: give exactly one of ids, sweep or filter: %s", ErrBadRequest, shape)
	}
	ctx := c.Request.Context()
	var keys []string
	var source string
	switch {
	case len(req.IDs) > 0:
		if keys, err = rawKeys(req.IDs); err != nil {
			return nil, err
		}
		source = fmt.Sprintf("%d IDs", len(keys))
	case req.Sweep > 0:
		sa, err := s.sweepAdmin()
		if err != nil {
			return nil, err
		}
		rec, err := sa.GetSweep(ctx, req.Sweep)
		if err != nil {
			return nil, unavailable("sweeps (postgres)", err)
		}
		if req.Entity == "" {
			req.Entity = rec.Entity
		}
		fs, err := sa.SweepFindings(ctx, req.Sweep, repair.MaxPlanKeys)
		if err != nil {
			return nil, unavailable("sweeps (postgres)", err)
		}
		for _, f := range fs {
			keys = append(keys, f.Key)
		}
		source = fmt.Sprintf("sweep %d's findings", req.Sweep)
		if len(fs) == repair.MaxPlanKeys {
			source = fmt.Sprintf("sweep %d's first %d findings (it has more: plan the rest after this one)", req.Sweep, repair.MaxPlanKeys)
		}
	default:
		if keys, source, err = s.filterKeys(ctx, req.Entity, *req.Filter); err != nil {
			return nil, err
		}
	}
	if req.Entity == "" {
		return nil, fmt.Errorf("%w: entity is required: %s", ErrBadRequest, shape)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: %s names no records", ErrConflict, source)
	}
	// Planned to the end even if the client goes away, within the
	// request's deadline.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RequestTimeout)
	defer cancel()
	p, err := pl.Create(pctx, repair.PlanRequest{Entity: req.Entity, Keys: keys, Source: source, Trigger: trigger, Actor: principal(c).Name})
	if err != nil {
		return nil, unavailable("", err)
	}
	s.log.Info("repair plan saved", "plan", p.ID, "entity", p.Entity, "source", p.Source, "entries", p.Entries, "by", principal(c).Name)
	c.Set(createdKey, true)
	return p, nil
}

// filterKeys collects the distinct keys of the repair-log entries a
// filter selects, newest first, up to repair.MaxPlanKeys.
func (s *Server) filterKeys(ctx context.Context, entity string, f planFilter) ([]string, string, error) {
	if s.repairLog == nil {
		return nil, "", fmt.Errorf("%w: the repair log is not configured", ErrUnavailable)
	}
	lf := repair.LogFilter{Entity: entity, Store: f.Store, Class: f.Class, Outcome: f.Outcome, Key: f.Key, RunID: f.Run, Limit: 1000}
	var parts []string
	for _, kv := range [][2]string{{"store", f.Store}, {"class", f.Class}, {"outcome", f.Outcome}, {"key", f.Key}, {"since", f.Since}, {"until", f.Until}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	if f.Run > 0 {
		parts = append(parts, "run="+strconv.FormatInt(f.Run, 10))
	}
	for _, t := range []struct {
		v   string
		dst *time.Time
	}{{f.Since, &lf.Since}, {f.Until, &lf.Until}} {
		if t.v == "" {
			continue
		}
		var err error
		if *t.dst, err = time.Parse(time.RFC3339, t.v); err != nil {
			return nil, "", fmt.Errorf("%w: filter times must be RFC 3339, got %q", ErrBadRequest, t.v)
		}
	}
	seen := map[string]bool{}
	var keys []string
	for page := 0; page < 100 && len(keys) < repair.MaxPlanKeys; page++ {
		entries, next, err := s.repairLog.List(ctx, lf)
		if err != nil {
			return nil, "", unavailable("repair log (postgres)", err)
		}
		for _, e := range entries {
			if !seen[e.Key] && len(keys) < repair.MaxPlanKeys {
				seen[e.Key] = true
				keys = append(keys, e.Key)
			}
		}
		if next == 0 {
			break
		}
		lf.After = next
	}
	sort.Strings(keys)
	source := "repair log " + strings.Join(parts, " ")
	if len(keys) == repair.MaxPlanKeys {
		source += fmt.Sprintf(" (the newest %d records of more)", repair.MaxPlanKeys)
	}
	return keys, source, nil
}

// triggerOf validates a request's trigger (api by default).
func triggerOf(t string) (string, error) {
	switch t {
	case "":
		return repair.TriggerAPI, nil
	case repair.TriggerAPI, repair.TriggerCLI, repair.TriggerUI:
		return t, nil
	}
	return "", fmt.Errorf("%w: trigger must be api, cli or ui, got %q", ErrBadRequest, t)
}

// planParam is the planner and the plan ID the route names (:id): 503
// when plans are off, 400 for an ID that is not one.
func (s *Server) planParam(c *gin.Context) (Planner, int64, error) {
	pl, err := s.planner()
	if err != nil {
		return nil, 0, err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return nil, 0, fmt.Errorf("%w: a plan ID is a positive integer, got %q", ErrBadRequest, c.Param("id"))
	}
	return pl, id, nil
}

// listPlans lists plans newest first (limit, before).
func (s *Server) listPlans(c *gin.Context) (any, error) {
	pl, err := s.planner()
	if err != nil {
		return nil, err
	}
	limit, _ := strconv.Atoi(c.Query("limit"))
	before, err := strconv.ParseInt(c.DefaultQuery("before", "0"), 10, 64)
	if err != nil || limit < 0 || limit > 1000 {
		return nil, fmt.Errorf("%w: limit must be 0-1000 and before an integer", ErrBadRequest)
	}
	ps, err := pl.Store().ListPlans(c.Request.Context(), limit, before)
	if err != nil {
		return nil, unavailable("repair plans (postgres)", err)
	}
	if ps == nil {
		ps = []repair.SavedPlan{}
	}
	return ps, nil
}

// getPlan is a plan for review: counts by store, class and action, and
// its first 20 entries.
func (s *Server) getPlan(c *gin.Context) (any, error) {
	pl, id, err := s.planParam(c)
	if err != nil {
		return nil, err
	}
	p, err := pl.Store().GetPlan(c.Request.Context(), id, 20)
	return p, unavailable("repair plans (postgres)", err)
}

var planColumns = []string{"entity", "key", "store", "class", "action", "priority", "before_version", "before_digest", "after_version", "after_digest", "observed"}

// planEntries is a plan's whole list: JSON pages (after, limit), or the
// whole of it streamed as CSV or NDJSON (?format=).
func (s *Server) planEntries(c *gin.Context) (any, error) {
	pl, id, err := s.planParam(c)
	if err != nil {
		return nil, err
	}
	format, err := exportFormat(c)
	if err != nil {
		return nil, err
	}
	ctx := c.Request.Context()
	if _, err := pl.Store().GetPlan(ctx, id, 0); err != nil {
		return nil, unavailable("repair plans (postgres)", err)
	}
	if format == "" {
		after, _ := strconv.Atoi(c.DefaultQuery("after", "0"))
		limit, _ := strconv.Atoi(c.DefaultQuery("limit", "1000"))
		if after < 0 || limit < 1 || limit > 1000 {
			return nil, fmt.Errorf("%w: after must be ≥ 0 and limit 1-1000", ErrBadRequest)
		}
		es, err := pl.Store().PlanEntries(ctx, id, after, limit)
		if es == nil {
			es = []repair.Entry{}
		}
		return es, unavailable("repair plans (postgres)", err)
	}
	return exportStream{format: format, name: fmt.Sprintf("triad-plan-%d", id), columns: planColumns, rows: func(emit emitFunc) error {
		for after := 0; ; {
			page, err := pl.Store().PlanEntries(ctx, id, after, 1000)
			if err != nil {
				return unavailable("repair plans (postgres)", err)
			}
			for _, e := range page {
				if err := emit(e, entryCells(e)); err != nil {
					return err
				}
			}
			if len(page) < 1000 {
				return nil
			}
			after += len(page)
		}
	}}, nil
}

func entryCells(e repair.Entry) []string {
	st := func(s *repair.State) (string, string) {
		if s == nil {
			return "", ""
		}
		return strconv.FormatInt(s.Version, 10), strconv.FormatInt(s.Digest, 10)
	}
	bv, bd := st(e.Before)
	av, ad := st(e.After)
	return []string{e.Entity, e.Key, e.Store, string(e.Class), e.Action, e.Priority, bv, bd, av, ad, e.Observed}
}

type planApplied struct {
	Run repair.Run `json:"run"`
	// NotWritten are the entries the run did not write (skipped because
	// the record changed since review, conflicts, failures), at most 1000.
	NotWritten []repair.Entry `json:"not_written"`
}

// applyPlan writes exactly a plan's entries, once.
func (s *Server) applyPlan(c *gin.Context) (any, error) {
	pl, id, err := s.planParam(c)
	if err != nil {
		return nil, err
	}
	trigger, err := triggerOf(c.Query("trigger"))
	if err != nil {
		return nil, err
	}
	// Like a repair: finishes (and is logged) if the client goes away.
	actx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), s.cfg.RequestTimeout)
	defer cancel()
	run, entries, err := pl.Apply(actx, id, trigger, principal(c).Name)
	if err != nil {
		if run.ID != 0 {
			return nil, unavailable(fmt.Sprintf("plan %d, repair run %d", id, run.ID), err)
		}
		return nil, unavailable("", err)
	}
	out := planApplied{Run: run, NotWritten: []repair.Entry{}}
	for _, e := range entries {
		if e.Outcome != repair.OutcomeRepaired && len(out.NotWritten) < 1000 {
			out.NotWritten = append(out.NotWritten, e)
		}
	}
	s.log.Info("repair plan applied", "plan", id, "run", run.ID, "repaired", run.Repaired, "skipped", run.Skipped,
		"conflicts", run.Conflicts, "failed", run.Failed, "by", principal(c).Name)
	return out, nil
}
