package ingest_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/triad-dev/triad/cmd/stack/stacktest"
	"github.com/triad-dev/triad/ingest"
)

// randomJSON writes a random JSON value meant to exercise every canonical
// rule: key order and duplicates, escapes, non-ASCII, number forms.
func randomJSON(r *rand.Rand, b *strings.Builder, depth int) {
	switch k := r.IntN(10); {
	case depth < 3 && k < 2:
		b.WriteByte('{')
		for i := range r.IntN(5) {
			if i > 0 {
				b.WriteString(" ,")
			}
			keys := []string{"a", "b", "aa", "ab", "z", "é", "user_id", "version", "A", "key with space"}
			fmt.Fprintf(b, "%q:", keys[r.IntN(len(keys))])
			randomJSON(r, b, depth+1)
		}
		b.WriteByte('}')
	case depth < 3 && k < 4:
		b.WriteString("[ ")
		for i := range r.IntN(5) {
			if i > 0 {
				b.WriteByte(',')
			}
			randomJSON(r, b, depth+1)
		}
		b.WriteByte(']')
	case k < 6:
		parts := []string{"plain", `\"`, `\\`, `\/`, `\n`, `\t`, `\b`, `\f`, `\r`, `\u0001`, `\u001F`, `\u00e9`, "é", "日本", `\ud83d\ude00`, "😀", "\x7f", "<&>", " ", "'"}
		b.WriteByte('"')
		for range r.IntN(6) {
			b.WriteString(parts[r.IntN(len(parts))])
		}
		b.WriteByte('"')
	case k < 9:
		if r.IntN(3) == 0 {
			b.WriteByte('-')
		}
		if r.IntN(4) == 0 {
			b.WriteByte('0')
		} else {
			fmt.Fprintf(b, "%d", r.IntN(100000))
		}
		if r.IntN(2) == 0 {
			fmt.Fprintf(b, ".%0*d", 1+r.IntN(4), r.IntN(1000))
		}
		if r.IntN(3) == 0 {
			fmt.Fprintf(b, "%c%s%d", "eE"[r.IntN(2)], []string{"", "+", "-"}[r.IntN(3)], r.IntN(12))
		}
	default:
		b.WriteString([]string{"true", "false", "null"}[r.IntN(3)])
	}
}

// TestCanonicalMatchesPostgres checks the canonical form against what the
// real Postgres prints for the same values as jsonb.
func TestCanonicalMatchesPostgres(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	r := rand.New(rand.NewPCG(1, 2))
	const n = 3000
	inputs, want := make([]string, n), make([]string, n)
	for i := range inputs {
		var b strings.Builder
		randomJSON(r, &b, 0)
		inputs[i] = b.String()
		out, err := ingest.CanonicalJSON(nil, []byte(inputs[i]))
		require.NoError(t, err, inputs[i])
		want[i] = string(out)
	}
	rows, err := ns.Pool().Query(t.Context(), `SELECT v::jsonb::text FROM unnest($1::text[]) WITH ORDINALITY AS t(v, i) ORDER BY i`, inputs)
	require.NoError(t, err)
	var got []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		got = append(got, s)
	}
	require.NoError(t, rows.Err())
	require.Len(t, got, n)
	for i := range got {
		require.Equal(t, got[i], want[i], "input %s", inputs[i])
	}
}

// TestDigestMatchesPostgres checks that the digest Postgres computes in the
// generated column equals the one triad computes, for the fields as any
// service might write them.
func TestDigestMatchesPostgres(t *testing.T) {
	t.Parallel()
	ns := stacktest.New(t)
	ns.Migrate(t)

	lines := []string{
		`{"user_id": 1, "version": 1}`,
		`{"user_id": 2, "version": 5, "updated_at": "2026-11-23T10:00:00.123456Z", "tags": ["b", "a", "é"], "interests": {"golf": 730, "jazz": 0}}`,
		`{"user_id": 3, "updated_at": 1700000000000001, "devices": [{"id": "fp-1", "os": "ios", "seen": 1.50}], "behavior": [{"action": "view", "item": "sku\"1\u0001", "ts": 1700000000000}], "props": {"city": "Lyon", "zz": "日本"}}`,
		`{"user_id": 9223372036854775807, "version": 9223372036854775807, "updated_at": "1970-01-01T00:00:00Z", "props": {"k": "v", "k": "w"}}`,
		`{"user_id": 5, "version": 2, "updated_at": "2262-04-11T23:47:16.854775Z"}`,
	}
	var d ingest.Decoder
	for _, line := range lines {
		p, err := d.DecodeJSON([]byte(line))
		require.NoError(t, err, line)
		var updated *time.Time
		if !p.UpdatedAt.IsZero() {
			updated = &p.UpdatedAt
		}
		var digest int64
		err = ns.Pool().QueryRow(t.Context(), `
			INSERT INTO profiles (user_id, version, updated_at, tags, interests, devices, behavior, props)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING digest`,
			p.UserID, p.Version, updated, string(p.Field(0)), string(p.Field(1)), string(p.Field(2)), string(p.Field(3)), string(p.Field(4))).Scan(&digest)
		require.NoError(t, err, line)
		require.Equal(t, p.Digest, digest, "digest of %s (document %s)", line, p.AppendDocument(nil))
	}
}
