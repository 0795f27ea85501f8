// Package postgres stores spans in Postgres (migration 00008): a table
// partitioned by day of start time, resources stored once by hash.
package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/triad-dev/triad/trace"
)

// Store implements trace.Store. Safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// Now is the clock (partition windows); tests may set it.
	Now func() time.Time
	// Window is how far from Now a span's day gets its own partition;
	// spans outside land in the default partition.
	Window time.Duration

	mu        sync.Mutex
	days      map[int64]bool // day partitions known to exist (Unix day)
	resources map[uint64]bool
}

// New returns the store on pool.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, Now: time.Now, Window: 8 * 24 * time.Hour, days: map[int64]bool{}, resources: map[uint64]bool{}}
}

var _ trace.Store = (*Store)(nil)

const day = int64(24 * time.Hour)

// Write implements trace.Store: new resources, then the spans by COPY,
// in one transaction.
func (s *Store) Write(ctx context.Context, spans []trace.Span) error {
	if len(spans) == 0 {
		return nil
	}
	if err := s.partitions(ctx, spans); err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	newRes, err := s.writeResources(ctx, tx, spans)
	if err != nil {
		return rejected(err)
	}
	rows := make([][]any, len(spans))
	for i := range spans {
		sp := &spans[i]
		var parent any
		if !sp.ParentID.IsZero() {
			parent = sp.ParentID[:]
		}
		var attrs, events, links any
		if d := sp.Detail; d != nil {
			attrs, events, links = jsonOrNil(d.Stored.Attributes, d.Attributes, len(d.Attributes)),
				jsonOrNil(d.Stored.Events, d.Events, len(d.Events)), jsonOrNil(d.Stored.Links, d.Links, len(d.Links))
		}
		var dropped any
		if sp.DroppedAttributes+sp.DroppedEvents+sp.DroppedLinks > 0 {
			dropped = []int32{int32(sp.DroppedAttributes), int32(sp.DroppedEvents), int32(sp.DroppedLinks)}
		}
		rows[i] = []any{sp.TraceID[:], sp.SpanID[:], parent, time.Unix(0, sp.Start).UTC(), sp.Start, sp.Duration(),
			sp.Service, sp.Name, int16(sp.Kind), int16(sp.StatusCode), nullString(sp.StatusMessage), int64(sp.ResourceKey),
			nullString(sp.Scope.Name), nullString(sp.Scope.Version), nullString(sp.TraceState), int64(sp.Flags),
			attrs, events, links, dropped}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"spans"}, spanColumns, pgx.CopyFromRows(rows)); err != nil {
		return rejected(fmt.Errorf("copy %d spans: %w", len(spans), err))
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	for _, k := range newRes {
		s.resources[k] = true
	}
	s.mu.Unlock()
	return nil
}

// rejected marks a Postgres data exception (class 22: text it cannot
// hold, a value out of range) as trace.ErrRejected: the spans' content,
// not the store's state, failed the write.
func rejected(err error) error {
	var pge *pgconn.PgError
	if errors.As(err, &pge) && strings.HasPrefix(pge.Code, "22") {
		return fmt.Errorf("%w: %w", trace.ErrRejected, err)
	}
	return err
}

var spanColumns = []string{"trace_id", "span_id", "parent_span_id", "start_time", "start_ns", "duration_ns",
	"service", "name", "kind", "status_code", "status_message", "resource_id",
	"scope_name", "scope_version", "trace_state", "flags", "attributes", "events", "links", "dropped"}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// jsonOrNil is a jsonb column's value: the span's stored JSON (as
// trace.FromOTLP encodes it), else v encoded, with sorted keys; nil when
// there is neither.
func jsonOrNil(stored json.RawMessage, v any, n int) any {
	if len(stored) > 0 {
		return []byte(stored)
	}
	if n == 0 {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return string(b)
}

// writeResources inserts the resources of spans this process has not
// written yet and returns their keys (remembered once the batch commits).
func (s *Store) writeResources(ctx context.Context, tx pgx.Tx, spans []trace.Span) ([]uint64, error) {
	s.mu.Lock()
	if len(s.resources) > 100000 {
		s.resources = map[uint64]bool{} // bounded; re-inserting is harmless
	}
	var ids []int64
	var services, attrs []string
	var keys []uint64
	seen := map[uint64]bool{}
	for i := range spans {
		k := spans[i].ResourceKey
		if s.resources[k] || seen[k] {
			continue
		}
		seen[k] = true
		b, err := json.Marshal(spans[i].Resource)
		if err != nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("resource of %s: %w", spans[i].Service, err)
		}
		keys = append(keys, k)
		ids = append(ids, int64(k))
		services = append(services, spans[i].Service)
		attrs = append(attrs, string(b))
	}
	s.mu.Unlock()
	if len(ids) == 0 {
		return nil, nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO span_resources (id, service, attributes)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::jsonb[]) ON CONFLICT (id) DO NOTHING`, ids, services, attrs)
	if err != nil {
		return nil, fmt.Errorf("write %d resources: %w", len(ids), err)
	}
	return keys, nil
}

// partitions makes sure the day partitions of spans exist (for days
// within Window of now).
func (s *Store) partitions(ctx context.Context, spans []trace.Span) error {
	now := s.Now().UnixNano()
	lo, hi := (now-int64(s.Window))/day, (now+int64(s.Window))/day
	var need []int64
	s.mu.Lock()
	for i := range spans {
		d := floorDiv(spans[i].Start, day)
		if d < lo || d > hi || s.days[d] || slices.Contains(need, d) {
			continue
		}
		need = append(need, d)
	}
	s.mu.Unlock()
	for _, d := range need {
		if err := s.createDay(ctx, d); err != nil {
			return fmt.Errorf("partition for %s: %w", time.Unix(d*day/1e9, 0).UTC().Format(time.DateOnly), err)
		}
		s.mu.Lock()
		s.days[d] = true
		s.mu.Unlock()
	}
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func partitionName(d int64) string {
	return "spans_" + time.Unix(d*day/1e9, 0).UTC().Format("20060102")
}

// createDay creates day d's partition if it is missing. Spans of that day
// already in the default partition (written while the day was outside the
// window) are moved into it first, as attaching requires.
func (s *Store) createDay(ctx context.Context, d int64) error {
	name := partitionName(d)
	from, to := time.Unix(d*day/1e9, 0).UTC(), time.Unix((d+1)*day/1e9, 0).UTC()
	// pg_class is read with the statement's snapshot, not the catalog
	// cache (to_regclass may miss a table another session just created).
	const existsSQL = `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relname = $1 AND n.nspname = current_schema())`
	var exists bool
	if err := s.pool.QueryRow(ctx, existsSQL, name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Concurrent replicas: one creates the partition, the others wait here
	// and find it made.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('triad.spans.partition'))`); err != nil {
		return err
	}
	if err := tx.QueryRow(ctx, existsSQL, name).Scan(&exists); err != nil || exists {
		return err
	}
	id := pgx.Identifier{name}.Sanitize()
	stmts := []string{
		`CREATE TABLE ` + id + ` (LIKE spans INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`,
		`WITH moved AS (DELETE FROM spans_default WHERE start_time >= $1 AND start_time < $2 RETURNING *) INSERT INTO ` + id + ` SELECT * FROM moved`,
		`ALTER TABLE spans ATTACH PARTITION ` + id + ` FOR VALUES FROM ('` + from.Format(time.RFC3339) + `') TO ('` + to.Format(time.RFC3339) + `')`,
	}
	for i, q := range stmts {
		var err error
		if i == 1 {
			_, err = tx.Exec(ctx, q, from, to)
		} else {
			_, err = tx.Exec(ctx, q)
		}
		if err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// Trace implements trace.Store. The details of spans past the first
// `details` are not read (a CASE that is false never detoasts them).
func (s *Store) Trace(ctx context.Context, id trace.TraceID, limit, details int) ([]trace.Span, bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+leanColumns+`,
		CASE WHEN n <= $3 THEN attributes END, CASE WHEN n <= $3 THEN events END, CASE WHEN n <= $3 THEN links END, n > $3, total
		FROM (SELECT *, row_number() OVER (ORDER BY start_ns, span_id) AS n, count(*) OVER () AS total
			FROM spans WHERE trace_id = $1 ORDER BY start_ns, span_id LIMIT $2) s
		ORDER BY start_ns, span_id`, id[:], limit+1, details)
	if err != nil {
		return nil, false, err
	}
	spans, err := s.scan(ctx, rows, limit+1)
	if err != nil {
		return nil, false, err
	}
	more := len(spans) > limit
	if more {
		spans = spans[:limit]
	}
	return spans, more, nil
}

// Services implements trace.Store: a loose scan of the (service,
// start_time) index, one probe per service rather than a read of every
// span in the window.
func (s *Store) Services(ctx context.Context, since time.Time, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `WITH RECURSIVE svc AS (
			(SELECT service FROM spans ORDER BY service LIMIT 1)
			UNION ALL
			SELECT (SELECT service FROM spans WHERE service > svc.service ORDER BY service LIMIT 1) FROM svc WHERE svc.service IS NOT NULL)
		SELECT service FROM svc WHERE service IS NOT NULL
			AND EXISTS (SELECT 1 FROM spans x WHERE x.service = svc.service AND x.start_time >= $1)
		ORDER BY service LIMIT $2`, since, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Operations implements trace.Store.
func (s *Store) Operations(ctx context.Context, service string, since time.Time, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT name FROM spans WHERE service = $1 AND start_time >= $2 ORDER BY name LIMIT $3`,
		service, since, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Calls implements trace.Store: one query over the most recent spans
// (bounded by limit), joined child to parent within the same trace.
func (s *Store) Calls(ctx context.Context, since time.Time, limit int) (trace.Calls, error) {
	out := trace.Calls{Resources: map[string][]map[string]any{}}
	rows, err := s.pool.Query(ctx, `WITH recent AS (
			SELECT trace_id, span_id, parent_span_id, service, status_code, resource_id FROM spans
			WHERE start_time >= $1 ORDER BY start_time DESC LIMIT $2)
		SELECT 'edge', p.service, c.service, count(*), count(*) FILTER (WHERE c.status_code = 2), 0
			FROM recent c JOIN recent p ON p.trace_id = c.trace_id AND p.span_id = c.parent_span_id
			WHERE p.service <> c.service GROUP BY p.service, c.service
		UNION ALL
		SELECT 'res', service, '', 0, 0, resource_id FROM (SELECT DISTINCT service, resource_id FROM recent) r
		UNION ALL
		SELECT 'count', '', '', count(*), 0, 0 FROM recent`, since, limit)
	if err != nil {
		return out, err
	}
	resOf := map[int64][]string{}
	for rows.Next() {
		var kind, from, to string
		var calls, errs, res int64
		if err := rows.Scan(&kind, &from, &to, &calls, &errs, &res); err != nil {
			rows.Close()
			return out, err
		}
		switch kind {
		case "edge":
			out.Edges = append(out.Edges, trace.CallEdge{From: from, To: to, Calls: calls, Errors: errs})
		case "res":
			if len(resOf) < 10_000 {
				resOf[res] = append(resOf[res], from)
			}
		case "count":
			out.Spans = int(calls)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, err
	}
	res, err := s.readResources(ctx, slices.Collect(maps.Keys(resOf)))
	if err != nil {
		return out, err
	}
	for id, m := range res { // one that does not decode names no language
		for _, svc := range resOf[id] {
			if len(out.Resources[svc]) < 8 {
				out.Resources[svc] = append(out.Resources[svc], m)
			}
		}
	}
	slices.SortFunc(out.Edges, func(a, b trace.CallEdge) int {
		return cmp.Or(strings.Compare(a.From, b.From), strings.Compare(a.To, b.To))
	})
	return out, nil
}

// Span implements trace.Store.
func (s *Store) Span(ctx context.Context, id trace.TraceID, span trace.SpanID) (trace.Span, bool, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+leanColumns+`, attributes, events, links, false, 1
		FROM spans WHERE trace_id = $1 AND span_id = $2 LIMIT 1`, id[:], span[:])
	if err != nil {
		return trace.Span{}, false, err
	}
	spans, err := s.scan(ctx, rows, 1)
	if err != nil || len(spans) == 0 {
		return trace.Span{}, false, err
	}
	return spans[0], true, nil
}

// leanColumns are a span's columns but its details; queries follow them
// with attributes, events, links, whether those were left out, and how
// many rows the query matched (scan sizes its answer by it).
const leanColumns = `trace_id, span_id, parent_span_id, start_ns, duration_ns, service, name, kind, status_code,
	coalesce(status_message, ''), resource_id, coalesce(scope_name, ''), coalesce(scope_version, ''), coalesce(trace_state, ''), flags,
	dropped`

// scan reads span rows and attaches their resources (read once each).
// The answer is allocated once, at the size the query reports (at most
// max), and the names spans repeat (service, operation, scope, status)
// are held once each: a 50k-span trace's memory is its spans, not the
// slack of a growing slice and 100k copies of a few names.
func (s *Store) scan(ctx context.Context, rows pgx.Rows, max int) ([]trace.Span, error) {
	defer rows.Close()
	var out []trace.Span
	resIDs := map[int64]bool{}
	names := map[string]string{}
	intern := func(b []byte) string {
		if s, ok := names[string(b)]; ok {
			return s
		}
		s := string(b)
		names[s] = s
		return s
	}
	for rows.Next() {
		var sp trace.Span
		var tid, sid, pid, service, name, message, scope, scopeVersion, state pgtype.DriverBytes
		var dur, resID, flags, total int64
		var kind, code int16
		var attrs, events, links []byte
		var dropped []int32
		if err := rows.Scan(&tid, &sid, &pid, &sp.Start, &dur, &service, &name, &kind, &code,
			&message, &resID, &scope, &scopeVersion, &state, &flags,
			&dropped, &attrs, &events, &links, &sp.Lean, &total); err != nil {
			return nil, err
		}
		if out == nil {
			out = make([]trace.Span, 0, min(int64(max), total))
		}
		sp.Service, sp.Name, sp.StatusMessage = intern(service), intern(name), intern(message)
		sp.Scope.Name, sp.Scope.Version, sp.TraceState = intern(scope), intern(scopeVersion), intern(state)
		copy(sp.TraceID[:], tid)
		copy(sp.SpanID[:], sid)
		copy(sp.ParentID[:], pid)
		sp.End = sp.Start + dur
		sp.Kind, sp.StatusCode, sp.Flags, sp.ResourceKey = int(kind), int(code), uint32(flags), uint64(resID)
		if attrs != nil || events != nil || links != nil {
			sp.Detail = &trace.Detail{Stored: trace.StoredJSON{Attributes: attrs, Events: events, Links: links}}
		}
		if len(dropped) == 3 {
			sp.DroppedAttributes, sp.DroppedEvents, sp.DroppedLinks = uint32(dropped[0]), uint32(dropped[1]), uint32(dropped[2])
		}
		resIDs[resID] = true
		out = append(out, sp)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return out, nil
	}
	res, err := s.readResources(ctx, slices.Collect(maps.Keys(resIDs)))
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Resource = res[int64(out[i].ResourceKey)]
	}
	return out, nil
}

// readResources reads the resources of ids; one whose stored attributes do
// not decode comes back as a note (trace.DecodeResource), never an error.
func (s *Store) readResources(ctx context.Context, ids []int64) (map[int64]map[string]any, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, attributes FROM span_resources WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[int64]map[string]any, len(ids))
	for rows.Next() {
		var id int64
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, err
		}
		out[id] = trace.DecodeResource(id, raw)
	}
	return out, rows.Err()
}

// Search implements trace.Store.
func (s *Store) Search(ctx context.Context, q trace.Query) ([]trace.Found, error) {
	if q.Limit <= 0 {
		q.Limit = 20
	}
	q.Limit = min(q.Limit, trace.MaxSearchLimit)
	to := q.To
	if to.IsZero() {
		to = s.Now()
	}
	from := q.From
	if from.IsZero() {
		from = to.Add(-time.Hour)
	}
	if !from.Before(to) {
		return nil, errors.New("search: from must be before to")
	}
	where := []string{"start_time >= $1", "start_time <= $2"}
	args := []any{from, to}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, strings.ReplaceAll(cond, "?", fmt.Sprintf("$%d", len(args))))
	}
	if q.Service != "" {
		add("service = ?", q.Service)
	}
	if q.Operation != "" {
		add("name = ?", q.Operation)
	}
	if q.MinDuration > 0 {
		add("duration_ns >= ?", q.MinDuration.Nanoseconds())
	}
	if q.MaxDuration > 0 {
		add("duration_ns <= ?", q.MaxDuration.Nanoseconds())
	}
	if q.ErrorsOnly {
		where = append(where, "status_code = 2")
	}
	for k, v := range q.Attributes {
		args = append(args, k, v)
		kn, vn := len(args)-1, len(args)
		where = append(where, fmt.Sprintf(`(attributes->>$%d = $%d OR resource_id IN (SELECT id FROM span_resources WHERE attributes->>$%d = $%d))`, kn, vn, kn, vn))
	}
	args = append(args, q.Limit)
	sql := `WITH hits AS (
		SELECT trace_id, max(start_time) AS last FROM spans WHERE ` + strings.Join(where, " AND ") + `
		GROUP BY trace_id ORDER BY last DESC LIMIT $` + fmt.Sprint(len(args)) + `)
	SELECT s.trace_id, count(*), min(s.start_ns), max(s.start_ns + s.duration_ns),
		count(*) FILTER (WHERE s.status_code = 2), array_agg(DISTINCT s.service),
		(array_agg(s.service ORDER BY s.parent_span_id IS NOT NULL, s.start_ns))[1],
		(array_agg(s.name ORDER BY s.parent_span_id IS NOT NULL, s.start_ns))[1], max(h.last)
	FROM spans s JOIN hits h USING (trace_id)
	GROUP BY s.trace_id ORDER BY max(h.last) DESC`
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []trace.Found
	for rows.Next() {
		var f trace.Found
		var tid []byte
		var end int64
		var last time.Time
		if err := rows.Scan(&tid, &f.Spans, &f.Start, &end, &f.Errors, &f.Services, &f.RootService, &f.RootName, &last); err != nil {
			return nil, err
		}
		var id trace.TraceID
		copy(id[:], tid)
		f.TraceID, f.Duration = id.String(), end-f.Start
		out = append(out, f)
	}
	return out, rows.Err()
}

// Retain implements trace.Store: day partitions wholly before cutoff are
// dropped; the default partition is trimmed row by row.
func (s *Store) Retain(ctx context.Context, cutoff time.Time) (int, int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'spans'::regclass AND c.relname ~ '^spans_[0-9]{8}$'`)
	if err != nil {
		return 0, 0, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, 0, err
	}
	dropped := 0
	for _, n := range names {
		d, err := time.Parse("20060102", strings.TrimPrefix(n, "spans_"))
		if err != nil || d.Add(24*time.Hour).After(cutoff) {
			continue
		}
		if _, err := s.pool.Exec(ctx, `DROP TABLE `+pgx.Identifier{n}.Sanitize()); err != nil {
			return dropped, 0, fmt.Errorf("drop %s: %w", n, err)
		}
		dropped++
		s.mu.Lock()
		delete(s.days, d.UnixNano()/day)
		s.mu.Unlock()
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM spans_default WHERE start_time < $1`, cutoff)
	if err != nil {
		return dropped, 0, err
	}
	return dropped, tag.RowsAffected(), nil
}
