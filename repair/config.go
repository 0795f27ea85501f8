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
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config { return Config{LogRetention: 90 * 24 * time.Hour} }

// Validate reports an invalid key.
func (c Config) Validate() error {
	if c.LogRetention < 0 {
		return fmt.Errorf("repair.log_retention: must not be negative, got %s", c.LogRetention)
	}
	return nil
}
