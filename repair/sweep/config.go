package sweep

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/triad-dev/triad/repair"
)

// Config configures how every replica runs sweeps (key `repair.sweep`).
type Config struct {
	// Recheck is how long a sweep waits before it reads its suspects
	// again, so records written during the sweep are not reported.
	Recheck time.Duration `yaml:"recheck"`
	// RangeSegments is how many segments make a range, the unit one
	// replica claims (under an etcd lease) and saves progress for.
	RangeSegments int `yaml:"range_segments"`
	// StuckAfter flags a running sweep with no progress for this long.
	StuckAfter time.Duration `yaml:"stuck_after"`
}

// Schedule starts a sweep of an entity on an interval or a cron
// expression (one of the two), unless one of that entity is still
// running.
type Schedule struct {
	Name   string        `yaml:"name"`
	Entity string        `yaml:"entity"`
	Every  time.Duration `yaml:"every"`
	// Cron is a standard 5-field expression (minute hour dom month dow)
	// or a descriptor such as @daily, in UTC.
	Cron        string `yaml:"cron"`
	Mode        string `yaml:"mode"`
	Repair      bool   `yaml:"repair"`
	DryRun      bool   `yaml:"dry_run"`
	SegmentSize int    `yaml:"segment_size"`
	// Rate limits each runner to this many records per second (0: none).
	Rate int `yaml:"rate"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Recheck: 2 * time.Second, RangeSegments: 32, StuckAfter: 5 * time.Minute}
}

// Validate reports an invalid key.
func (c Config) Validate() error {
	if c.Recheck < 0 || c.Recheck > time.Hour {
		return fmt.Errorf("repair.sweep.recheck: must be between 0 and 1h, got %s", c.Recheck)
	}
	if c.RangeSegments < 1 || c.RangeSegments > 10000 {
		return fmt.Errorf("repair.sweep.range_segments: must be between 1 and 10000, got %d", c.RangeSegments)
	}
	if c.StuckAfter < 10*time.Second {
		return fmt.Errorf("repair.sweep.stuck_after: must be at least 10s, got %s", c.StuckAfter)
	}
	return nil
}

// ValidateSchedules reports an invalid schedule (key `repair.schedules`)
// of the named entities.
func ValidateSchedules(schedules []Schedule, entities []string) error {
	names := map[string]bool{}
	for i, s := range schedules {
		if err := s.validate(); err != nil {
			return fmt.Errorf("repair.schedules[%d]: %w", i, err)
		}
		if !slices.Contains(entities, s.Entity) {
			return fmt.Errorf("repair.schedules[%d]: unknown entity %q", i, s.Entity)
		}
		if names[s.Name] {
			return fmt.Errorf("repair.schedules[%d]: name %q is used twice", i, s.Name)
		}
		names[s.Name] = true
	}
	return nil
}

func (s Schedule) validate() error {
	switch {
	case s.Name == "":
		return errors.New("name: required")
	case s.Entity == "":
		return errors.New("entity: required")
	case (s.Every > 0) == (s.Cron != ""):
		return errors.New("give exactly one of every and cron")
	case s.Every < 0 || (s.Every > 0 && s.Every < time.Minute):
		return fmt.Errorf("every: at least 1m, got %s", s.Every)
	case !ValidMode(s.Mode):
		return fmt.Errorf("mode: auto, digest, records or labels, got %q", s.Mode)
	case s.SegmentSize < 0 || s.SegmentSize > repair.MaxSegmentRows:
		return fmt.Errorf("segment_size: between 1 and %d, got %d", repair.MaxSegmentRows, s.SegmentSize)
	case s.Rate < 0:
		return fmt.Errorf("rate: must not be negative, got %d", s.Rate)
	case s.DryRun && !s.Repair:
		return errors.New("dry_run: only with repair")
	}
	if s.Cron != "" {
		if _, err := cronParser.Parse(s.Cron); err != nil {
			return fmt.Errorf("cron %q: %w", s.Cron, err)
		}
	}
	return nil
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
