package alert

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// ErrNoSilence is a silence that does not exist.
var ErrNoSilence = errors.New("silence not found")

// Matcher matches one label: equal to Value, or (Regex) fully matching it
// as a regular expression.
type Matcher struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Regex bool   `json:"regex,omitempty"`
}

// Silence mutes the notifications of the alerts every matcher matches,
// from StartsAt until EndsAt (Alertmanager's silences). Expired silences
// are kept and listed.
type Silence struct {
	ID        int64     `json:"id"`
	Matchers  []Matcher `json:"matchers"`
	Comment   string    `json:"comment"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	// ExpiredBy names who ended it early (empty: it ran its course).
	ExpiredBy string `json:"expired_by,omitempty"`
	// ExpireNoticedAt is when the leader noticed it had expired.
	ExpireNoticedAt *time.Time `json:"expire_noticed_at,omitempty"`
	res             []*regexp.Regexp
}

// State is pending (not started), active or expired at now.
func (s Silence) State(now time.Time) string {
	switch {
	case now.Before(s.StartsAt):
		return "pending"
	case now.Before(s.EndsAt):
		return "active"
	}
	return "expired"
}

// Limits of a silence.
const (
	maxMatchers      = 16
	maxSilenceLength = 90 * 24 * time.Hour
)

// Validate checks a new silence and compiles its matchers: at least one,
// label names of letters, digits and _, regular expressions that
// compile, a comment, and an end after its start within 90 days.
func (s *Silence) Validate() error {
	if len(s.Matchers) == 0 || len(s.Matchers) > maxMatchers {
		return fmt.Errorf("%w: a silence has 1 to %d matchers, got %d", ErrInvalid, maxMatchers, len(s.Matchers))
	}
	if strings.TrimSpace(s.Comment) == "" || len(s.Comment) > 1000 {
		return fmt.Errorf("%w: a silence needs a comment (why), at most 1000 characters", ErrInvalid)
	}
	if !s.EndsAt.After(s.StartsAt) || s.EndsAt.Sub(s.StartsAt) > maxSilenceLength {
		return fmt.Errorf("%w: a silence ends after it starts, within %s", ErrInvalid, maxSilenceLength)
	}
	return s.compile()
}

var labelName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

func (s *Silence) compile() error {
	s.res = make([]*regexp.Regexp, len(s.Matchers))
	for i, m := range s.Matchers {
		if !labelName.MatchString(m.Name) {
			return fmt.Errorf("%w: matchers[%d]: label name %q: letters, digits and _", ErrInvalid, i, m.Name)
		}
		if len(m.Value) > 1000 {
			return fmt.Errorf("%w: matchers[%d]: value over 1000 characters", ErrInvalid, i)
		}
		if m.Regex {
			re, err := regexp.Compile("^(?:" + m.Value + ")$")
			if err != nil {
				return fmt.Errorf("%w: matchers[%d]: %w", ErrInvalid, i, err)
			}
			s.res[i] = re
		}
	}
	return nil
}

// Matches reports whether every matcher matches labels (a missing label
// is the empty string, as in Alertmanager).
func (s *Silence) Matches(labels map[string]string) bool {
	if s.res == nil && s.compile() != nil {
		return false
	}
	for i, m := range s.Matchers {
		v := labels[m.Name]
		if re := s.res[i]; re != nil {
			if !re.MatchString(v) {
				return false
			}
		} else if v != m.Value {
			return false
		}
	}
	return true
}

// SilenceStore keeps silences. Safe for concurrent use.
type SilenceStore interface {
	CreateSilence(ctx context.Context, s Silence) (Silence, error)
	// Silences lists silences newest first: every one not expired, and
	// those that expired after expiredSince.
	Silences(ctx context.Context, expiredSince time.Time) ([]Silence, error)
	// ExpireSilence ends a silence now (kept, listed as expired);
	// ErrNoSilence when there is none, or it has already ended.
	ExpireSilence(ctx context.Context, id int64, by string, now time.Time) (Silence, error)
	// NoticeExpired marks the silences that have expired by now and were
	// not noticed yet, and returns them.
	NoticeExpired(ctx context.Context, now time.Time) ([]Silence, error)
}

// silencedBy returns the IDs of the silences active at t that match s.
func silencedBy(ss []Silence, s State, t time.Time) []int64 {
	var ids []int64
	for i := range ss {
		if ss[i].State(t) == "active" && ss[i].Matches(s.Labels) {
			ids = append(ids, ss[i].ID)
		}
	}
	return ids
}

// CreateSilence validates and stores a silence; a zero StartsAt is now.
func (m *Manager) CreateSilence(ctx context.Context, s Silence) (Silence, error) {
	if s.StartsAt.IsZero() {
		s.StartsAt = m.now()
	}
	if err := s.Validate(); err != nil {
		return Silence{}, err
	}
	return m.silences.CreateSilence(ctx, s)
}

// ExpireSilence ends a silence now.
func (m *Manager) ExpireSilence(ctx context.Context, id int64, by string) (Silence, error) {
	return m.silences.ExpireSilence(ctx, id, by, m.now())
}

// Silences lists the silences not expired and those expired in the last
// retention.
func (m *Manager) Silences(ctx context.Context) ([]Silence, error) {
	return m.silences.Silences(ctx, m.now().Add(-m.cfg.Retention))
}

// Preview lists the alerts active now that a silence of these matchers
// would mute.
func (m *Manager) Preview(ctx context.Context, matchers []Matcher) ([]State, error) {
	s := Silence{Matchers: matchers, Comment: "preview", StartsAt: m.now(), EndsAt: m.now().Add(time.Hour)}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	active, err := m.store.ActiveAlerts(ctx)
	if err != nil {
		return nil, err
	}
	out := []State{}
	for _, a := range active {
		if s.Matches(a.Labels) {
			out = append(out, a)
		}
	}
	return out, nil
}

// SilencedAlerts annotates alerts with the active silences that mute
// them (State.SilencedBy).
func (m *Manager) SilencedAlerts(ctx context.Context, alerts []State) error {
	ss, err := m.silences.Silences(ctx, m.now())
	if err != nil {
		return err
	}
	now := m.now()
	for i := range alerts {
		if alerts[i].ResolvedAt == nil {
			alerts[i].SilencedBy = silencedBy(ss, alerts[i], now)
		}
	}
	return nil
}
