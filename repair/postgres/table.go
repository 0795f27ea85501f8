package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/triad-dev/triad/ingest"
	pgstore "github.com/triad-dev/triad/ingest/postgres"
	"github.com/triad-dev/triad/repair"
)

// TableRows is a configured entity's table (repair.TableRows): rows by
// key with the digest Postgres computes from their content (digest
// version 1: the first 8 bytes of SHA-256 over the jsonb text of
// {version, fields...}), ranges, segment sums and version-guarded
// upserts. Safe for concurrent use.
type TableRows struct {
	pool      *pgxpool.Pool
	cfg       repair.EntityConfig
	table     string // quoted
	digestSQL string // the digest as a SQL expression over the row
	liveSQL   string // a WHERE condition: the row is live
	deleted   string // the tombstone column, or false
}

var _ repair.TableRows = (*TableRows)(nil)

// NewTableRows returns the rows of a configured entity.
func NewTableRows(pool *pgxpool.Pool, cfg repair.EntityConfig) (*TableRows, error) {
	// The names are written into SQL: only validated identifiers.
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("entity %s: %w", cfg.Name, err)
	}
	r := &TableRows{pool: pool, cfg: cfg, table: pgx.Identifier{cfg.Postgres.Table}.Sanitize(), liveSQL: "true", deleted: "false"}
	if cfg.Postgres.Deleted != "" {
		r.liveSQL, r.deleted = "NOT "+cfg.Postgres.Deleted, cfg.Postgres.Deleted
	}
	parts := []string{"'version'", cfg.Postgres.Version}
	for _, f := range cfg.Fields {
		parts = append(parts, "'"+f.Name+"'", column(f))
	}
	r.digestSQL = `('x' || left(encode(sha256(convert_to(jsonb_build_object(` + strings.Join(parts, ", ") + `)::text, 'UTF8')), 'hex'), 16))::bit(64)::bigint`
	return r, nil
}

// column is the SQL expression of a field's canonical value.
func column(f repair.FieldConfig) string {
	if f.Type == "time" {
		return "(extract(epoch from " + f.Name + ") * 1000000)::bigint"
	}
	return f.Name
}

// Rows implements repair.TableRows.
func (r *TableRows) Rows(ctx context.Context, ids []int64) ([]repair.Row, error) {
	parts := make([]string, 0, 2*len(r.cfg.Fields))
	for _, f := range r.cfg.Fields {
		parts = append(parts, "'"+f.Name+"'", column(f))
	}
	rows, err := r.pool.Query(ctx, fmt.Sprintf(`SELECT %s, %s, %s, %s, jsonb_build_object(%s)::text FROM %s WHERE %s = ANY($1)`,
		r.cfg.Postgres.Key, r.cfg.Postgres.Version, r.deleted, r.digestSQL, strings.Join(parts, ", "), r.table, r.cfg.Postgres.Key), ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []repair.Row
	for rows.Next() {
		var row repair.Row
		var fields string
		if err := rows.Scan(&row.ID, &row.Version, &row.Deleted, &row.Digest, &fields); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(fields), &row.Fields); err != nil {
			return nil, fmt.Errorf("row %d: %w", row.ID, err)
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// Bounds implements repair.TableRows.
func (r *TableRows) Bounds(ctx context.Context, after, hi int64, size, n int) ([]int64, error) {
	k := pgx.Identifier{r.cfg.Postgres.Key}.Sanitize()
	rows, err := r.pool.Query(ctx, fmt.Sprintf(`SELECT %[1]s FROM (
	    SELECT %[1]s, row_number() OVER (ORDER BY %[1]s) AS rn
	    FROM (SELECT %[1]s FROM %[2]s WHERE %[1]s > $1 AND %[1]s <= $4 ORDER BY %[1]s LIMIT $2) s) x
	WHERE rn %% $3 = 0 ORDER BY %[1]s`, k, r.table), after, size*n, size, hi)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// Heads implements repair.TableRows.
func (r *TableRows) Heads(ctx context.Context, lo, hi int64) (map[int64]repair.Head, error) {
	rows, err := r.pool.Query(ctx, fmt.Sprintf(`SELECT %s, %s, %s, %s FROM %s WHERE %s BETWEEN $1 AND $2`,
		r.cfg.Postgres.Key, r.cfg.Postgres.Version, r.deleted, r.digestSQL, r.table, r.cfg.Postgres.Key), lo, hi)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]repair.Head{}
	for rows.Next() {
		var id int64
		h := repair.Head{Present: true}
		if err := rows.Scan(&id, &h.Version, &h.Deleted, &h.Digest); err != nil {
			return nil, err
		}
		out[id] = h
	}
	return out, rows.Err()
}

// Keys implements repair.TableRows.
func (r *TableRows) Keys(ctx context.Context, fn func(keys []int64) error) error {
	return pgstore.StreamIDs(ctx, r.pool, fmt.Sprintf(`SELECT %s FROM %s`, r.cfg.Postgres.Key, r.table), fn)
}

// Sums implements repair.TableRows: live rows only, in one query.
func (r *TableRows) Sums(ctx context.Context, b []int64) ([]ingest.SegmentSum, error) {
	n := len(b) - 1
	if n < 1 {
		return nil, nil
	}
	thresholds := make([]int64, n)
	for i := range thresholds {
		thresholds[i] = b[i] + 1
	}
	k := r.cfg.Postgres.Key
	rows, err := r.pool.Query(ctx, fmt.Sprintf(`SELECT width_bucket(k, $1::bigint[]), count(*), sum(h & 4294967295)::bigint, sum((h >> 32) & 4294967295)::bigint
	FROM (SELECT %s AS k, d # ((v << 32) | ((v >> 32) & 4294967295)) AS h
	      FROM (SELECT %s, %s AS v, %s AS d FROM %s WHERE %s > $2 AND %s <= $3 AND %s) r) t
	GROUP BY 1`, k, k, r.cfg.Postgres.Version, r.digestSQL, r.table, k, k, r.liveSQL), thresholds, b[0], b[n])
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]ingest.SegmentSum, n)
	for rows.Next() {
		var j int
		var s ingest.SegmentSum
		var h0, h1 int64
		if err := rows.Scan(&j, &s.Records, &h0, &h1); err != nil {
			return nil, err
		}
		if j < 1 || j > n {
			return nil, fmt.Errorf("segment sums: bucket %d outside 1..%d", j, n)
		}
		s.Hashed, s.H0, s.H1 = s.Records, uint64(h0), uint64(h1)
		out[j-1] = s
	}
	return out, rows.Err()
}

// Upsert implements repair.TableRows: one INSERT ... ON CONFLICT that
// applies a document only over an older version (a tombstoned row comes
// back to life).
func (r *TableRows) Upsert(ctx context.Context, docs [][]byte) ([]int64, error) {
	cols := []string{r.cfg.Postgres.Key, r.cfg.Postgres.Version}
	for _, f := range r.cfg.Fields {
		cols = append(cols, f.Name)
	}
	set := make([]string, 0, len(cols))
	for _, c := range cols[1:] {
		set = append(set, c+" = excluded."+c)
	}
	if r.cfg.Postgres.Deleted != "" {
		set = append(set, r.cfg.Postgres.Deleted+" = false")
	}
	arr := append([]byte{'['}, bytes.Join(docs, []byte{','})...)
	arr = append(arr, ']')
	rows, err := r.pool.Query(ctx, fmt.Sprintf(`INSERT INTO %[1]s AS t (%[2]s) SELECT %[2]s FROM jsonb_populate_recordset(null::%[1]s, $1::jsonb)
		ON CONFLICT (%[3]s) DO UPDATE SET %[4]s WHERE t.%[5]s < excluded.%[5]s RETURNING %[3]s`,
		r.table, strings.Join(cols, ", "), r.cfg.Postgres.Key, strings.Join(set, ", "), r.cfg.Postgres.Version), string(arr))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}
