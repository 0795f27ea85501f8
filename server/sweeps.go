package server

import (
	"context"
	"fmt"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/sweep"
)

// SweepAdmin starts and controls sweeps (cmd/internal/app's sweep runner).
type SweepAdmin interface {
	StartSweep(ctx context.Context, rec sweep.Record) (sweep.Record, error)
	GetSweep(ctx context.Context, id int64) (sweep.Record, error)
	SweepRanges(ctx context.Context, id int64) ([]sweep.Range, error)
	ListSweeps(ctx context.Context, limit int) ([]sweep.Record, error)
	SetSweepState(ctx context.Context, id int64, to string) (sweep.Record, error)
	SweepFindings(ctx context.Context, id int64, limit int) ([]sweep.Finding, error)
}

func (s *Server) sweepAdmin() (SweepAdmin, error) {
	if s.sweeps == nil {
		return nil, fmt.Errorf("%w: sweeps are not configured", ErrUnavailable)
	}
	return s.sweeps, nil
}

type sweepRequest struct {
	Entity      string `json:"entity"`
	Repair      bool   `json:"repair"`
	DryRun      bool   `json:"dry_run"`
	SegmentSize int    `json:"segment_size"`
	Mode        string `json:"mode"`
	Rate        int    `json:"rate"`
	Trigger     string `json:"trigger"`
}

// startSweep starts a sweep on this replica and answers at once (201);
// follow it with GET /api/v1/sweeps/{id}.
func (s *Server) startSweep(c *gin.Context) (any, error) {
	sa, err := s.sweepAdmin()
	if err != nil {
		return nil, err
	}
	var req sweepRequest
	const shape = `{"entity": "profile", "repair": false, "dry_run": false, "segment_size": 1000 (at most 5000), "mode": "auto" (auto, digest, records, or labels: the quick mode, not content-true), "rate": 0 (records/s per replica, 0 unlimited)}`
	if err := decodeJSON(c, &req, shape); err != nil {
		return nil, err
	}
	if req.Entity == "" || req.SegmentSize < 0 || req.SegmentSize > repair.MaxSegmentRows || !sweep.ValidMode(req.Mode) || req.Rate < 0 {
		return nil, fmt.Errorf("%w: body must be %s", ErrBadRequest, shape)
	}
	if req.DryRun && !req.Repair {
		return nil, fmt.Errorf("%w: dry_run needs repair: true", ErrBadRequest)
	}
	if req.SegmentSize == 0 {
		req.SegmentSize = 1000
	}
	switch req.Trigger {
	case "":
		req.Trigger = repair.TriggerAPI
	case repair.TriggerAPI, repair.TriggerCLI, repair.TriggerUI:
	default:
		return nil, fmt.Errorf("%w: trigger must be api, cli or ui, got %q", ErrBadRequest, req.Trigger)
	}
	rec, err := sa.StartSweep(c.Request.Context(), sweep.Record{Entity: req.Entity, Repair: req.Repair, DryRun: req.DryRun,
		SegmentSize: req.SegmentSize, Mode: req.Mode, Rate: req.Rate, Trigger: req.Trigger, Actor: principal(c).Name})
	if err != nil {
		return nil, unavailable("sweeps (postgres)", err)
	}
	s.log.Info("sweep started", "sweep", rec.ID, "entity", rec.Entity, "mode", rec.Mode, "repair", rec.Repair, "by", principal(c).Name)
	created(c)
	return rec, nil
}

func sweepID(c *gin.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%w: sweep id must be a positive integer, got %q", ErrBadRequest, c.Param("id"))
	}
	return id, nil
}

type sweepDetail struct {
	sweep.Record
	FindingsList []sweep.Finding `json:"findings_list"`
	// RangesList is each range's progress (the dashboard's per-range bar).
	RangesList []sweep.Range `json:"ranges_list"`
}

// getSweep reports a sweep's progress and, once done, its findings (up
// to 1000).
func (s *Server) getSweep(c *gin.Context) (any, error) {
	sa, err := s.sweepAdmin()
	if err != nil {
		return nil, err
	}
	id, err := sweepID(c)
	if err != nil {
		return nil, err
	}
	rec, err := sa.GetSweep(c.Request.Context(), id)
	if err != nil {
		return nil, unavailable("sweeps (postgres)", err)
	}
	fs, err := sa.SweepFindings(c.Request.Context(), id, 1000)
	if err != nil {
		return nil, unavailable("sweeps (postgres)", err)
	}
	if fs == nil {
		fs = []sweep.Finding{}
	}
	rs, err := sa.SweepRanges(c.Request.Context(), id)
	if err != nil {
		return nil, unavailable("sweeps (postgres)", err)
	}
	if rs == nil {
		rs = []sweep.Range{}
	}
	return sweepDetail{Record: rec, FindingsList: fs, RangesList: rs}, nil
}

// listSweeps lists sweeps newest first.
func (s *Server) listSweeps(c *gin.Context) (any, error) {
	sa, err := s.sweepAdmin()
	if err != nil {
		return nil, err
	}
	limit, _ := strconv.Atoi(c.Query("limit"))
	format, err := exportFormat(c)
	if err != nil {
		return nil, err
	}
	if format != "" && limit == 0 {
		limit = 1000
	}
	recs, err := sa.ListSweeps(c.Request.Context(), limit)
	if err != nil {
		return nil, unavailable("sweeps (postgres)", err)
	}
	if recs == nil {
		recs = []sweep.Record{}
	}
	// The dashboard's filters (entity, state) narrow the page it shows.
	if e, st := c.Query("entity"), c.Query("state"); e != "" || st != "" {
		kept := recs[:0]
		for _, r := range recs {
			if (e == "" || r.Entity == e) && (st == "" || r.State == st) {
				kept = append(kept, r)
			}
		}
		recs = kept
	}
	if format != "" {
		return pagedExport(format, "triad-sweeps", sweepColumns, sweepCells, onePage(recs, nil)), nil
	}
	return recs, nil
}

// sweepControl pauses, resumes or cancels a sweep; runners obey after
// their current batch of segments.
func (s *Server) sweepControl(to string) handlerFunc {
	return func(c *gin.Context) (any, error) {
		sa, err := s.sweepAdmin()
		if err != nil {
			return nil, err
		}
		id, err := sweepID(c)
		if err != nil {
			return nil, err
		}
		rec, err := sa.SetSweepState(c.Request.Context(), id, to)
		if err != nil {
			return nil, unavailable("sweeps (postgres)", err)
		}
		s.log.Info("sweep state", "sweep", id, "state", to, "by", principal(c).Name)
		return rec, nil
	}
}

// scheduleView is a configured sweep schedule as the API shows it.
type scheduleView struct {
	Name        string `json:"name"`
	Entity      string `json:"entity"`
	Every       string `json:"every,omitempty"`
	Cron        string `json:"cron,omitempty"`
	Mode        string `json:"mode"`
	Repair      bool   `json:"repair"`
	DryRun      bool   `json:"dry_run"`
	SegmentSize int    `json:"segment_size"`
	Rate        int    `json:"rate"`
}

// listSchedules lists the configured sweep schedules (repair.schedules);
// the sweeps they started carry their name.
func (s *Server) listSchedules(*gin.Context) (any, error) {
	out := make([]scheduleView, 0, len(s.schedules))
	for _, sc := range s.schedules {
		v := scheduleView{Name: sc.Name, Entity: sc.Entity, Cron: sc.Cron, Mode: sc.Mode, Repair: sc.Repair, DryRun: sc.DryRun, SegmentSize: sc.SegmentSize, Rate: sc.Rate}
		if sc.Every > 0 {
			v.Every = sc.Every.String()
		}
		if v.Mode == "" {
			v.Mode = sweep.ModeAuto
		}
		out = append(out, v)
	}
	return out, nil
}

var sweepColumns = []string{"id", "entity", "mode", "content_true", "state", "trigger", "actor", "created_at", "finished_at", "records", "findings", "repaired", "error"}

func sweepCells(r sweep.Record) []string {
	return []string{itoa(r.ID), r.Entity, r.Mode, strconv.FormatBool(r.ContentTrue), r.State, r.Trigger, r.Actor, timeCell(&r.CreatedAt), timeCell(r.FinishedAt),
		itoa(r.Records), strconv.Itoa(r.Findings), strconv.Itoa(r.Repaired), r.Error}
}
