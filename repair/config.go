package repair

import (
	"fmt"
	"time"
)

// Config configures the consistency engine (key `repair`).
type Config struct {
	// LogRetention is how long repair log entries and finished runs are
	// kept; the leader purges older ones daily. 0 keeps them forever.
	LogRetention time.Duration `yaml:"log_retention"`
	// Entities are checked besides the built-in profile (default: order).
	Entities []EntityConfig `yaml:"entities"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{LogRetention: 90 * 24 * time.Hour,
		Entities: []EntityConfig{OrderEntity()}}
}

// Validate reports an invalid key.
func (c Config) Validate() error {
	if c.LogRetention < 0 {
		return fmt.Errorf("repair.log_retention: must not be negative, got %s", c.LogRetention)
	}
	entities := map[string]bool{"profile": true}
	for i, e := range c.Entities {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("repair.entities[%d]: %w", i, err)
		}
		if entities[e.Name] {
			return fmt.Errorf("repair.entities[%d]: entity %q is defined twice", i, e.Name)
		}
		entities[e.Name] = true
	}
	return nil
}

// EntityNames are the names of every entity checked: profile, then the
// configured ones.
func (c Config) EntityNames() []string {
	names := []string{"profile"}
	for _, e := range c.Entities {
		names = append(names, e.Name)
	}
	return names
}
