package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
	"time"
)

// NumFields is the number of attribute fields a profile has.
const NumFields = 5

// Attribute fields, in the order of Profile.Fields and of the TSV columns.
const (
	FieldTags      = iota // ["sports", "vip"]: array of strings
	FieldInterests        // {"golf": 730}: topic → weight in per mille (integer 0..1000)
	FieldDevices          // [{"id": "fp-…", "os": "ios", …}]: objects with a string "id"
	FieldBehavior         // [{"action": "view", "item": "sku-1", "ts": 1700000000000}]: recent events, "action" and integer "ts" (ms)
	FieldProps            // {"city": "Lyon"}: string → string
)

// FieldNames are the attribute fields' names (JSON keys, Postgres columns,
// Redis hash fields, Elasticsearch fields).
var FieldNames = [NumFields]string{"tags", "interests", "devices", "behavior", "props"}

// emptyField is each field's value when the input leaves it out.
var emptyField = [NumFields]string{"[]", "{}", "[]", "[]", "{}"}

// Limits on attribute values. Lines over them are quarantined.
const (
	maxItems       = 1000 // elements of one array or members of one object
	maxStringBytes = 4096
	maxWeight      = 1000
)

// Profile is one user profile as triad writes it to every store.
//
// Fields hold canonical JSON (see canonical.go), so two profiles have equal
// fields exactly when their bytes are equal. A Profile is immutable once
// decoded; it is safe to share between goroutines.
type Profile struct {
	// UserID is positive.
	UserID int64
	// Version orders the writes of one user: a store never replaces a
	// version with an older one. Carried by the input (or its updated_at in
	// microseconds), so re-running an input is idempotent.
	Version int64
	// UpdatedAt is in microseconds, UTC; the zero Time when the input has none.
	UpdatedAt time.Time
	// Deleted marks a tombstone: the profile is deleted as of Version.
	Deleted bool
	Fields  [NumFields][]byte
	// Digest is the content digest (DigestVersion) of the fields above.
	Digest int64
}

// DigestVersion names the digest algorithm; a change to the canonical
// document or the hash is a new version, stored beside each digest.
const DigestVersion = 1

// AppendDocument appends the canonical document the digest covers:
//
//	{"tags": …, "props": …, "devices": …, "user_id": N, "version": N,
//	 "behavior": …, "interests": …, "updated_at": µs|null}
//
// which is, byte for byte, what Postgres prints for
// jsonb_build_object('user_id', …, 'updated_at', µs, 'tags', …, …)::text
// (jsonb orders keys by length, then bytewise). Deleted is not covered: a
// tombstone has no content to compare.
func (p *Profile) AppendDocument(dst []byte) []byte {
	dst = append(dst, `{"tags": `...)
	dst = append(dst, p.field(FieldTags)...)
	dst = append(dst, `, "props": `...)
	dst = append(dst, p.field(FieldProps)...)
	dst = append(dst, `, "devices": `...)
	dst = append(dst, p.field(FieldDevices)...)
	dst = append(dst, `, "user_id": `...)
	dst = strconv.AppendInt(dst, p.UserID, 10)
	dst = append(dst, `, "version": `...)
	dst = strconv.AppendInt(dst, p.Version, 10)
	dst = append(dst, `, "behavior": `...)
	dst = append(dst, p.field(FieldBehavior)...)
	dst = append(dst, `, "interests": `...)
	dst = append(dst, p.field(FieldInterests)...)
	dst = append(dst, `, "updated_at": `...)
	if p.UpdatedAt.IsZero() {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendInt(dst, p.UpdatedAt.UnixMicro(), 10)
	}
	return append(dst, '}')
}

func (p *Profile) field(i int) []byte {
	if p.Fields[i] == nil {
		return []byte(emptyField[i])
	}
	return p.Fields[i]
}

// Field returns attribute field i in canonical JSON (its empty value when unset).
func (p *Profile) Field(i int) []byte { return p.field(i) }

// ComputeDigest returns the DigestVersion 1 digest of the profile: the first
// 8 bytes of SHA-256 over AppendDocument, read as a big-endian signed 64-bit
// integer. Postgres computes the same with triad_profile_digest_v1 (see the
// migration 00002_profiles.sql); scratch is reused to avoid allocating.
func (p *Profile) ComputeDigest(scratch []byte) (int64, []byte) {
	scratch = p.AppendDocument(scratch[:0])
	sum := sha256.Sum256(scratch)
	return int64(binary.BigEndian.Uint64(sum[:8])), scratch
}

// SegmentHash is the value a sweep adds up per segment of records to
// compare whole segments across stores: the content digest with the
// version rotated into it (so a stale version with equal content still
// changes the sum). Postgres computes the same from its columns as
// digest # ((version << 32) | ((version >> 32) & 4294967295)) (repair's
// segment aggregate), and the search index stores its two 32-bit halves.
func SegmentHash(version, digest int64) uint64 {
	return uint64(digest) ^ bits.RotateLeft64(uint64(version), 32)
}

// SegmentSum is one store's summary of a segment of records: how many it
// holds, how many of those carry a stored segment hash (Hashed < Records:
// some were written without one, e.g. by an older triad, and must be read
// record by record), and the sums of the two 32-bit halves of their
// SegmentHash. Two stores agree on a segment when all four are equal.
type SegmentSum struct {
	Records, Hashed int64
	H0, H1          uint64
}

// Add adds one record's hash to the sum.
func (s *SegmentSum) Add(h uint64) {
	s.Records++
	s.Hashed++
	s.H0 += h & 0xFFFFFFFF
	s.H1 += h >> 32
}

// AppendRecord appends the profile as one JSONL input line (without the
// newline): the canonical document, plus "deleted": true for tombstones and
// without the attribute fields. Decoding the line gives back an equal Profile,
// which is what the archive stores and replays.
func (p *Profile) AppendRecord(dst []byte) []byte {
	if p.Deleted {
		dst = append(dst, `{"user_id": `...)
		dst = strconv.AppendInt(dst, p.UserID, 10)
		dst = append(dst, `, "deleted": true, "version": `...)
		dst = strconv.AppendInt(dst, p.Version, 10)
		if !p.UpdatedAt.IsZero() {
			dst = append(dst, `, "updated_at": `...)
			dst = strconv.AppendInt(dst, p.UpdatedAt.UnixMicro(), 10)
		}
		return append(dst, '}')
	}
	return p.AppendDocument(dst)
}

// Equal reports whether two profiles carry the same identity, version and content.
func (p *Profile) Equal(q *Profile) bool {
	if p.UserID != q.UserID || p.Version != q.Version || p.Deleted != q.Deleted || !p.UpdatedAt.Equal(q.UpdatedAt) {
		return false
	}
	for i := range p.Fields {
		if !bytes.Equal(p.field(i), q.field(i)) {
			return false
		}
	}
	return true
}

// FieldError says which part of an input line is wrong.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// AppendJSON appends the profile's JSON form, as the search index stores it
// and the profile API answers: identity, version, digest (and its
// version), updated_at as RFC 3339 with microseconds (or null), then the
// canonical attribute fields as they are.
func (p *Profile) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"user_id":`...)
	dst = strconv.AppendInt(dst, p.UserID, 10)
	dst = append(dst, `,"version":`...)
	dst = strconv.AppendInt(dst, p.Version, 10)
	dst = append(dst, `,"digest":`...)
	dst = strconv.AppendInt(dst, p.Digest, 10)
	dst = append(dst, `,"digest_version":`...)
	dst = strconv.AppendInt(dst, DigestVersion, 10)
	dst = append(dst, `,"updated_at":`...)
	if p.UpdatedAt.IsZero() {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst = p.UpdatedAt.AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
		dst = append(dst, '"')
	}
	for f, name := range FieldNames {
		dst = append(dst, ',', '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':')
		dst = append(dst, p.Field(f)...)
	}
	return append(dst, '}')
}
