// Package migrations holds triad's numbered Postgres migrations, embedded in
// the binary, and applies them with goose: under a Postgres advisory lock (so
// concurrent replicas migrate once), each file in its own transaction.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed *.sql
var files embed.FS

// Migrator applies the embedded migrations to the schema the pool's
// search_path names.
type Migrator struct {
	db       *sql.DB
	provider *goose.Provider
}

// New returns a Migrator over pool. lockKey distinguishes advisory locks of
// independent schemas on one server (tests); use "" in production.
func New(pool *pgxpool.Pool, lockKey string, log *slog.Logger) (*Migrator, error) {
	h := fnv.New64a()
	_, _ = h.Write([]byte("triad-migrations:" + lockKey))
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64() >> 1)))
	if err != nil {
		return nil, err
	}
	db := stdlib.OpenDBFromPool(pool)
	p, err := goose.NewProvider(goose.DialectPostgres, db, files,
		goose.WithSessionLocker(locker),
		goose.WithTableName("triad_schema_migrations"),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(log.With("component", "migrations")),
	)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return &Migrator{db: db, provider: p}, nil
}

// ErrNoSchema is returned by EnsureSchema when the configured schema does
// not exist and may not be created.
var ErrNoSchema = errors.New("postgres schema does not exist")

// EnsureSchema checks that schema (postgres.schema; "" means the
// database's default search_path, which is not checked) exists, and
// creates it when create is set. Without it every migration fails with
// "relation triad_schema_migrations does not exist", which names neither
// the schema nor the fix.
func EnsureSchema(ctx context.Context, pool *pgxpool.Pool, schema string, create bool) error {
	if schema == "" {
		return nil
	}
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: look for schema %q: %w", schema, err)
	}
	if exists {
		return nil
	}
	if !create {
		return fmt.Errorf("%w: %q (postgres.schema): create it (CREATE SCHEMA %s), or set postgres.create_schema (TRIAD_POSTGRES_CREATE_SCHEMA=true) for `triad migrate up` and `triad serve --migrate` to create it",
			ErrNoSchema, schema, pgx.Identifier{schema}.Sanitize())
	}
	if _, err := pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("postgres: create schema %q: %w", schema, err)
	}
	return nil
}

// Result is one applied or rolled-back migration.
type Result struct {
	Version   int64  `json:"version"`
	Name      string `json:"name"`
	Direction string `json:"direction"`
	Duration  string `json:"duration"`
}

func results(rs ...*goose.MigrationResult) []Result {
	var out []Result
	for _, r := range rs {
		if r == nil || r.Source == nil {
			continue
		}
		out = append(out, Result{Version: r.Source.Version, Name: r.Source.Path, Direction: r.Direction, Duration: r.Duration.String()})
	}
	return out
}

// Up applies every pending migration.
func (m *Migrator) Up(ctx context.Context) ([]Result, error) {
	rs, err := m.provider.Up(ctx)
	return results(rs...), err
}

// Down rolls back the newest applied migration.
func (m *Migrator) Down(ctx context.Context) ([]Result, error) {
	r, err := m.provider.Down(ctx)
	return results(r), err
}

// DownTo rolls back every migration newer than version (0: all of them).
func (m *Migrator) DownTo(ctx context.Context, version int64) ([]Result, error) {
	rs, err := m.provider.DownTo(ctx, version)
	return results(rs...), err
}

// Status is one migration's state.
type Status struct {
	Version int64  `json:"version"`
	Name    string `json:"name"`
	Applied bool   `json:"applied"`
	At      string `json:"applied_at,omitempty"`
}

// Status lists every known migration and whether it is applied.
func (m *Migrator) Status(ctx context.Context) ([]Status, error) {
	st, err := m.provider.Status(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(st))
	for _, s := range st {
		x := Status{Version: s.Source.Version, Name: s.Source.Path, Applied: s.State == goose.StateApplied}
		if x.Applied {
			x.At = s.AppliedAt.UTC().Format("2006-01-02T15:04:05Z")
		}
		out = append(out, x)
	}
	return out, nil
}

// Close releases the database handle (not the pool).
func (m *Migrator) Close() error { return m.provider.Close() }
