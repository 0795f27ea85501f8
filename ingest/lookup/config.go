package lookup

import (
	"errors"
	"fmt"
	"time"
)

// Config configures the read path (key `lookup`).
type Config struct {
	// BloomFalsePositive is the filter's false-positive budget: the share of
	// unknown IDs it lets through to the stores.
	BloomFalsePositive float64 `yaml:"bloom_false_positive"`
	// BloomMinCapacity is the least number of IDs a filter is sized for.
	BloomMinCapacity int64 `yaml:"bloom_min_capacity"`
	// BloomHeadroom sizes a filter for this many times the table's rows, so
	// it can take new IDs before it is rebuilt; it is rebuilt larger once
	// more IDs than its capacity were added (past that, its false-positive
	// rate exceeds the budget). At 1 the filter is full at build time and
	// answers at exactly its budget.
	BloomHeadroom float64 `yaml:"bloom_headroom"`
	// BloomRebuildInterval rebuilds the filter from Postgres periodically
	// (dropping purged IDs, and covering writers outside triad); 0 never.
	BloomRebuildInterval time.Duration `yaml:"bloom_rebuild_interval"`
	// CacheMaxBytes bounds the in-process cache by the size of the
	// responses it holds; 0 turns the cache off.
	CacheMaxBytes int64 `yaml:"cache_max_bytes"`
	// CacheTTL is how long an entry may be served after it was filled; a
	// safety net, since the change feed invalidates entries within
	// milliseconds.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// FeedPingInterval pings an idle change-feed subscription; a dead one
	// is noticed within about twice this.
	FeedPingInterval time.Duration `yaml:"feed_ping_interval"`
	// MaxBatch is the most IDs one lookup request may ask for.
	MaxBatch int `yaml:"max_batch"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		BloomFalsePositive: 0.01, BloomMinCapacity: 1_000_000, BloomHeadroom: 2, BloomRebuildInterval: time.Hour,
		CacheMaxBytes: 256 << 20, CacheTTL: 5 * time.Minute, FeedPingInterval: time.Second, MaxBatch: 1000,
	}
}

// Validate reports every invalid key.
func (c Config) Validate() error {
	var errs []error
	if c.BloomFalsePositive <= 0 || c.BloomFalsePositive >= 0.5 {
		errs = append(errs, fmt.Errorf("lookup.bloom_false_positive: must be in (0, 0.5), got %g", c.BloomFalsePositive))
	}
	if c.BloomMinCapacity < 1000 {
		errs = append(errs, fmt.Errorf("lookup.bloom_min_capacity: must be at least 1000, got %d", c.BloomMinCapacity))
	}
	if c.BloomHeadroom < 1 || c.BloomHeadroom > 100 {
		errs = append(errs, fmt.Errorf("lookup.bloom_headroom: must be in [1, 100], got %g", c.BloomHeadroom))
	}
	if c.BloomRebuildInterval < 0 {
		errs = append(errs, errors.New("lookup.bloom_rebuild_interval: must not be negative"))
	}
	if c.CacheMaxBytes < 0 {
		errs = append(errs, errors.New("lookup.cache_max_bytes: must not be negative"))
	}
	if c.CacheTTL <= 0 {
		errs = append(errs, fmt.Errorf("lookup.cache_ttl: must be positive, got %s", c.CacheTTL))
	}
	if c.FeedPingInterval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("lookup.feed_ping_interval: must be at least 10ms, got %s", c.FeedPingInterval))
	}
	if c.MaxBatch < 1 || c.MaxBatch > 100_000 {
		errs = append(errs, fmt.Errorf("lookup.max_batch: must be in [1, 100000], got %d", c.MaxBatch))
	}
	return errors.Join(errs...)
}
