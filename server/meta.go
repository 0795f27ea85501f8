package server

import (
	"github.com/gin-gonic/gin"

	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/sweep"
	"github.com/triad-dev/triad/web"
)

// meta is what the dashboard's pages share, from one place: the
// navigation and the enums every filter and legend offers.
type meta struct {
	Pages    []web.Page  `json:"pages"`
	Entities []string    `json:"entities"`
	Stores   []string    `json:"stores"`
	Classes  []classInfo `json:"classes"`
	Outcomes []string    `json:"outcomes"`
	Actions  []string    `json:"actions"`
	Triggers []string    `json:"triggers"`
	// SweepStates, AlertStates and DeliveryStates are the lists' states.
	SweepStates    []string `json:"sweep_states"`
	AlertStates    []string `json:"alert_states"`
	DeliveryStates []string `json:"delivery_states"`
	// Runbooks are the configured runbook URLs by drift class and by
	// alert rule.
	Runbooks runbooks `json:"runbooks"`
}

type runbooks struct {
	Classes map[string]string `json:"classes"`
	Rules   map[string]string `json:"rules"`
}

type classInfo struct {
	Name  string `json:"name"`
	Drift bool   `json:"drift"`
}

// EntityLister names the configured entities (repair.Checker).
type EntityLister interface{ Entities() []string }

func (s *Server) getMeta(*gin.Context) (any, error) {
	m := meta{Pages: web.Pages, Stores: []string{"postgres", "redis", "elasticsearch"},
		Outcomes:    []string{repair.OutcomePlanned, repair.OutcomeRepaired, repair.OutcomeNoop, repair.OutcomeConflict, repair.OutcomeFailed, repair.OutcomeSkipped},
		Actions:     []string{repair.ActionWrite, repair.ActionDelete, repair.ActionNone},
		Triggers:    []string{repair.TriggerSchedule, repair.TriggerAPI, repair.TriggerUI, repair.TriggerCLI},
		Entities:    []string{},
		SweepStates: []string{sweep.Running, sweep.Paused, sweep.Done, sweep.Failed, sweep.Cancelled, sweep.Superseded},
		AlertStates: []string{"firing", "pending", "resolved"}, DeliveryStates: []string{"pending", "delivered", "expired"}}
	for _, c := range repair.Classes {
		m.Classes = append(m.Classes, classInfo{Name: string(c), Drift: c.Drift()})
	}
	if l, ok := s.checks.(EntityLister); ok {
		m.Entities = l.Entities()
	}
	m.Runbooks = runbooks{Classes: map[string]string{}, Rules: map[string]string{}}
	if s.alerts != nil {
		cfg := s.alerts.Config()
		for k, v := range cfg.ClassRunbooks {
			m.Runbooks.Classes[k] = v
		}
		for _, r := range cfg.Rules {
			if r.RunbookURL != "" {
				m.Runbooks.Rules[r.Name] = r.RunbookURL
			}
		}
	}
	return m, nil
}
