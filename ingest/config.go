package ingest

import (
	"errors"
	"fmt"
	"time"
)

// Config is the ingest pipeline's configuration (key `ingest`).
type Config struct {
	// Shards is the number of shard writers; a profile goes to shard
	// hash(user_id) % Shards, so one user's writes keep their order.
	Shards int `yaml:"shards"`
	// QueueSize bounds each shard's queue; a full queue blocks the reader.
	QueueSize int `yaml:"queue_size"`
	// BatchSize and BatchDelay cut Postgres batches: whichever comes first.
	BatchSize  int           `yaml:"batch_size"`
	BatchDelay time.Duration `yaml:"batch_delay"`
	// PrimaryRetryFor is how long a failing Postgres batch is retried before
	// the run stops with an error (re-running the input then resumes it).
	PrimaryRetryFor time.Duration `yaml:"primary_retry_for"`
	// DerivedWorkers is the number of writers per derived store (Redis,
	// Elasticsearch), each fed by user hash so per-user order holds.
	DerivedWorkers    int           `yaml:"derived_workers"`
	DerivedBatchSize  int           `yaml:"derived_batch_size"`
	DerivedBatchDelay time.Duration `yaml:"derived_batch_delay"`
	// DerivedAttempts is how many times a failed derived write is tried
	// before it is recorded for catch-up; back-off starts at RetryBackoff.
	DerivedAttempts int           `yaml:"derived_attempts"`
	RetryBackoff    time.Duration `yaml:"retry_backoff"`
	// CatchupInterval is how often recorded failures are replayed.
	CatchupInterval time.Duration `yaml:"catchup_interval"`
	// PrimaryTimeout bounds one Postgres call of the pipeline (a batch,
	// a catch-up record); a Postgres that hangs fails the attempt, which
	// is retried for PrimaryRetryFor.
	PrimaryTimeout time.Duration `yaml:"primary_timeout"`
	// DerivedTimeout bounds one derived-store write. A store that does not
	// answer in time is marked down at once and its writes go to the
	// catch-up log, so a hung store holds the shard writers no longer.
	DerivedTimeout time.Duration `yaml:"derived_timeout"`
	// OutboxGrace is how old an outbox entry must be before any triad
	// moves it to the catch-up log as abandoned (its writer crashed). It
	// must exceed the time a live writer can take to finish a batch:
	// DerivedAttempts × DerivedTimeout plus the back-off.
	OutboxGrace time.Duration `yaml:"outbox_grace"`
	// RedisWatch is how often the leader looks for signs that Redis lost
	// data (a restart: a new run_id; or a flush: the watch's marker key
	// gone); 0 turns the watch off. OnRedisLoss is what it does
	// then, beside alerting (store_data_loss): "rewarm" owes every live
	// profile to Redis through the catch-up log, "sweep" starts a
	// repairing sweep of profiles, "none" only alerts.
	RedisWatch  time.Duration `yaml:"redis_watch"`
	OnRedisLoss string        `yaml:"on_redis_loss"`
	// MaxLineBytes is the longest accepted input line.
	MaxLineBytes int `yaml:"max_line_bytes"`
	// TombstoneRetention is how long Postgres keeps deleted profiles'
	// versions; until then an older write cannot bring a profile back.
	TombstoneRetention time.Duration `yaml:"tombstone_retention"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Shards:             64,
		QueueSize:          256,
		BatchSize:          500,
		BatchDelay:         100 * time.Millisecond,
		PrimaryRetryFor:    2 * time.Minute,
		DerivedWorkers:     4,
		DerivedBatchSize:   1000,
		DerivedBatchDelay:  50 * time.Millisecond,
		DerivedAttempts:    4,
		RetryBackoff:       100 * time.Millisecond,
		CatchupInterval:    2 * time.Second,
		PrimaryTimeout:     30 * time.Second,
		DerivedTimeout:     5 * time.Second,
		OutboxGrace:        time.Minute,
		RedisWatch:         5 * time.Second,
		OnRedisLoss:        "rewarm",
		MaxLineBytes:       DefaultMaxLineBytes,
		TombstoneRetention: 7 * 24 * time.Hour,
	}
}

// Validate reports every invalid key.
func (c Config) Validate() error {
	var errs []error
	positive := func(key string, v int, max int) {
		if v < 1 || v > max {
			errs = append(errs, fmt.Errorf("ingest.%s: must be from 1 to %d, got %d", key, max, v))
		}
	}
	positive("shards", c.Shards, 4096)
	positive("queue_size", c.QueueSize, 1<<20)
	positive("batch_size", c.BatchSize, 100000)
	positive("derived_workers", c.DerivedWorkers, 256)
	positive("derived_batch_size", c.DerivedBatchSize, 100000)
	positive("derived_attempts", c.DerivedAttempts, 100)
	if c.MaxLineBytes < 1024 || c.MaxLineBytes > 64<<20 {
		errs = append(errs, fmt.Errorf("ingest.max_line_bytes: must be from 1024 to 64MiB, got %d", c.MaxLineBytes))
	}
	// A slice, not a map, so errors come out in a stable order.
	for _, kd := range []struct {
		key string
		d   time.Duration
	}{
		{"batch_delay", c.BatchDelay}, {"derived_batch_delay", c.DerivedBatchDelay}, {"retry_backoff", c.RetryBackoff},
		{"catchup_interval", c.CatchupInterval}, {"primary_retry_for", c.PrimaryRetryFor}, {"tombstone_retention", c.TombstoneRetention},
		{"primary_timeout", c.PrimaryTimeout}, {"derived_timeout", c.DerivedTimeout}, {"outbox_grace", c.OutboxGrace},
	} {
		if kd.d <= 0 {
			errs = append(errs, fmt.Errorf("ingest.%s: must be positive, got %s", kd.key, kd.d))
		}
	}
	if c.RedisWatch < 0 {
		errs = append(errs, fmt.Errorf("ingest.redis_watch: must not be negative, got %s", c.RedisWatch))
	}
	switch c.OnRedisLoss {
	case "rewarm", "sweep", "none":
	default:
		errs = append(errs, fmt.Errorf("ingest.on_redis_loss: must be rewarm, sweep or none, got %q", c.OnRedisLoss))
	}
	if worst := time.Duration(c.DerivedAttempts)*c.DerivedTimeout + c.PrimaryTimeout; c.OutboxGrace > 0 && c.OutboxGrace < worst {
		errs = append(errs, fmt.Errorf("ingest.outbox_grace: must be at least derived_attempts × derived_timeout + primary_timeout (%s), got %s: a live writer's entries would be replayed twice", worst, c.OutboxGrace))
	}
	return errors.Join(errs...)
}
