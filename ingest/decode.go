package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Format is an input format.
type Format string

// Input formats.
const (
	FormatJSONL Format = "jsonl"
	FormatTSV   Format = "tsv"
)

// ParseFormat checks a format name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatJSONL, FormatTSV:
		return f, nil
	}
	return "", fmt.Errorf("unknown format %q (want jsonl or tsv)", s)
}

// TSVColumns are the TSV input's columns, in order. Nested fields are JSON;
// trailing columns may be left out (empty attributes).
var TSVColumns = []string{"user_id", "version", "updated_at", "deleted", "tags", "interests", "devices", "behavior", "props"}

// ErrInvalidUTF8 reports a line that is not valid UTF-8.
var ErrInvalidUTF8 = errors.New("invalid UTF-8")

// Decoder turns input lines into validated profiles. Its buffers are reused,
// so one Decoder serves one goroutine; the Profiles it returns own their
// memory.
type Decoder struct {
	p       parser
	scratch []byte
	ends    [NumFields]int
}

// Decode decodes one line in format f.
func (d *Decoder) Decode(f Format, line []byte) (*Profile, error) {
	if !utf8.Valid(line) {
		return nil, fmt.Errorf("%w at byte %d", ErrInvalidUTF8, invalidUTF8At(line))
	}
	if f == FormatTSV {
		return d.DecodeTSV(line)
	}
	return d.DecodeJSON(line)
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return -1
}

// DecodeJSON decodes one JSON object:
//
//	{"user_id": 42, "version": 7, "updated_at": "2026-11-23T10:00:00.123456Z",
//	 "tags": [...], "interests": {...}, "devices": [...], "behavior": [...], "props": {...}}
//
// "updated_at" may also be an integer of microseconds since the epoch;
// "version" defaults to updated_at in microseconds; {"user_id": 42,
// "version": 8, "deleted": true} is a tombstone.
func (d *Decoder) DecodeJSON(line []byte) (*Profile, error) {
	root, err := d.p.Parse(line)
	if err != nil {
		return nil, err
	}
	nd := d.p.nodes[root]
	if nd.kind != kindObject {
		return nil, errors.New("line is not a JSON object")
	}
	var (
		pr      Profile
		fields  [NumFields]int32
		have    [NumFields]bool
		version = int64(0)
	)
	for i := nd.start; i < nd.end; i += 2 {
		v := d.p.kids[i+1]
		switch string(d.p.key(i)) { // no allocation for a switch on a converted []byte
		case "user_id":
			if pr.UserID, err = d.positiveInt(v, "user_id"); err != nil {
				return nil, err
			}
		case "version":
			if version, err = d.positiveInt(v, "version"); err != nil {
				return nil, err
			}
		case "updated_at":
			if pr.UpdatedAt, err = d.time(v); err != nil {
				return nil, err
			}
		case "deleted":
			switch d.p.nodes[v].kind {
			case kindTrue:
				pr.Deleted = true
			case kindFalse:
			default:
				return nil, fieldErr("deleted", "must be true or false")
			}
		default:
			f := fieldIndex(d.p.key(i))
			if f < 0 {
				return nil, fieldErr(truncate(string(d.p.key(i)), 64), "unknown field")
			}
			fields[f], have[f] = v, true
		}
	}
	d.scratch = d.scratch[:0]
	for f := range NumFields {
		if have[f] && !pr.Deleted {
			if err := d.validate(f, fields[f]); err != nil {
				return nil, err
			}
			d.scratch = d.p.Append(d.scratch, fields[f])
		}
		d.ends[f] = len(d.scratch)
	}
	return d.finish(&pr, version)
}

// DecodeTSV decodes one TSV line (columns: TSVColumns).
func (d *Decoder) DecodeTSV(line []byte) (*Profile, error) {
	var cells [9][]byte
	n := 0
	for rest := line; ; {
		if n == len(cells) {
			return nil, fmt.Errorf("more than %d columns", len(cells))
		}
		tab := bytes.IndexByte(rest, '\t')
		if tab < 0 {
			cells[n] = rest
			n++
			break
		}
		cells[n], rest = rest[:tab], rest[tab+1:]
		n++
	}
	if n < 2 {
		return nil, errors.New("1 column; need at least user_id and version (or updated_at)")
	}
	var (
		pr      Profile
		version int64
		err     error
	)
	if pr.UserID, err = parsePositive(cells[0], "user_id"); err != nil {
		return nil, err
	}
	if len(cells[1]) > 0 {
		if version, err = parsePositive(cells[1], "version"); err != nil {
			return nil, err
		}
	}
	if len(cells[2]) > 0 {
		if pr.UpdatedAt, err = parseTime(cells[2]); err != nil {
			return nil, err
		}
	}
	switch string(cells[3]) {
	case "", "0", "false":
	case "1", "true":
		pr.Deleted = true
	default:
		return nil, fieldErr("deleted", "must be empty, 0, 1, true or false")
	}
	d.scratch = d.scratch[:0]
	for f := range NumFields {
		cell := cells[4+f]
		if len(bytes.TrimSpace(cell)) > 0 && !pr.Deleted {
			root, err := d.p.Parse(cell)
			if err != nil {
				return nil, fieldErr(FieldNames[f], "%v", err)
			}
			if err := d.validate(f, root); err != nil {
				return nil, err
			}
			d.scratch = d.p.Append(d.scratch, root)
		}
		d.ends[f] = len(d.scratch)
	}
	return d.finish(&pr, version)
}

// finish checks identity and version, copies the fields out of scratch into
// the profile's own memory and computes the digest.
func (d *Decoder) finish(pr *Profile, version int64) (*Profile, error) {
	if pr.UserID == 0 {
		return nil, fieldErr("user_id", "missing")
	}
	switch {
	case version > 0:
		pr.Version = version
	case !pr.UpdatedAt.IsZero() && pr.UpdatedAt.UnixMicro() > 0:
		pr.Version = pr.UpdatedAt.UnixMicro()
	default:
		return nil, fieldErr("version", "missing, and no updated_at after 1970 to derive it from")
	}
	if len(d.scratch) > 0 {
		data := make([]byte, len(d.scratch))
		copy(data, d.scratch)
		start := 0
		for f := range NumFields {
			if d.ends[f] > start {
				pr.Fields[f] = data[start:d.ends[f]:d.ends[f]]
			}
			start = d.ends[f]
		}
	}
	pr.Digest, d.scratch = pr.ComputeDigest(d.scratch)
	return pr, nil
}

func fieldIndex(name []byte) int {
	for i, n := range FieldNames {
		if n == string(name) {
			return i
		}
	}
	return -1
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// integer returns the value of an integer number node.
func (d *Decoder) integer(n int32) (int64, bool) {
	nd := d.p.nodes[n]
	if nd.kind != kindNumber {
		return 0, false
	}
	v, err := strconv.ParseInt(string(d.p.text[nd.start:nd.end]), 10, 64)
	return v, err == nil
}

func (d *Decoder) positiveInt(n int32, field string) (int64, error) {
	v, ok := d.integer(n)
	if !ok || v <= 0 {
		return 0, fieldErr(field, "must be a positive 64-bit integer")
	}
	return v, nil
}

func parsePositive(b []byte, field string) (int64, error) {
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || v <= 0 {
		return 0, fieldErr(field, "must be a positive 64-bit integer, got %q", truncate(string(b), 32))
	}
	return v, nil
}

func (d *Decoder) time(n int32) (time.Time, error) {
	nd := d.p.nodes[n]
	switch nd.kind {
	case kindNull:
		return time.Time{}, nil
	case kindString, kindNumber:
		return parseTime(d.p.text[nd.start:nd.end])
	}
	return time.Time{}, fieldErr("updated_at", "must be an RFC 3339 time or microseconds since the epoch")
}

// The range of updated_at: the search index maps it as date_nanos
// (nanoseconds since the epoch in a signed 64-bit integer), so a time
// outside it would be accepted by Postgres and refused by Elasticsearch.
var (
	minTime = time.Unix(0, 0).UTC()
	maxTime = time.Unix(0, math.MaxInt64).UTC().Truncate(time.Microsecond)
)

// maxFieldDepth is the deepest nesting of objects an attribute field may
// hold: the index's flattened fields refuse more (their depth_limit).
const maxFieldDepth = 20

// parseTime reads RFC 3339 or integer microseconds since the epoch, to
// microsecond precision (finer digits are cut, as triad sends Postgres
// exactly the microseconds it digests).
func parseTime(b []byte) (time.Time, error) {
	var t time.Time
	if us, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		t = time.UnixMicro(us).UTC()
	} else if t, err = time.Parse(time.RFC3339Nano, string(b)); err != nil {
		return time.Time{}, fieldErr("updated_at", "must be an RFC 3339 time or microseconds since the epoch, got %q", truncate(string(b), 40))
	}
	t = t.UTC().Truncate(time.Microsecond)
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, fieldErr("updated_at", "out of range (%s to %s, the search index's date range)", minTime.Format(time.RFC3339), maxTime.Format(time.RFC3339))
	}
	return t, nil
}

// validate checks the shape of attribute field f (node n).
func (d *Decoder) validate(f int, n int32) error {
	name := FieldNames[f]
	nd := d.p.nodes[n]
	if depth := d.depth(n); depth > maxFieldDepth {
		return fieldErr(name, "objects nested %d deep, more than the search index takes (%d)", depth, maxFieldDepth)
	}
	count := int(nd.end - nd.start)
	switch f {
	case FieldTags:
		if nd.kind != kindArray {
			return fieldErr(name, "must be an array of strings")
		}
		if count > maxItems {
			return fieldErr(name, "more than %d items", maxItems)
		}
		for i := nd.start; i < nd.end; i++ {
			if err := d.str(d.p.kids[i], name); err != nil {
				return err
			}
		}
	case FieldInterests:
		if nd.kind != kindObject {
			return fieldErr(name, "must be an object of topic → integer weight")
		}
		if count/2 > maxItems {
			return fieldErr(name, "more than %d items", maxItems)
		}
		for i := nd.start; i < nd.end; i += 2 {
			if err := d.str(d.p.kids[i], name); err != nil {
				return err
			}
			if w, ok := d.integer(d.p.kids[i+1]); !ok || w < 0 || w > maxWeight {
				return fieldErr(name, "weight of %q must be an integer from 0 to %d", truncate(string(d.p.key(i)), 64), maxWeight)
			}
		}
	case FieldDevices, FieldBehavior:
		if nd.kind != kindArray {
			return fieldErr(name, "must be an array of objects")
		}
		if count > maxItems {
			return fieldErr(name, "more than %d items", maxItems)
		}
		for i := nd.start; i < nd.end; i++ {
			el := d.p.nodes[d.p.kids[i]]
			if el.kind != kindObject {
				return fieldErr(name, "item %d is not an object", i-nd.start)
			}
			if err := d.member(el, f, int(i-nd.start)); err != nil {
				return err
			}
		}
	case FieldProps:
		if nd.kind != kindObject {
			return fieldErr(name, "must be an object of string → string")
		}
		if count/2 > maxItems {
			return fieldErr(name, "more than %d items", maxItems)
		}
		for i := nd.start; i < nd.end; i++ {
			if err := d.str(d.p.kids[i], name); err != nil {
				return err
			}
		}
	}
	return nil
}

// depth is how deeply objects nest in node n (an object counts 1, an
// array nothing: the index flattens arrays).
func (d *Decoder) depth(n int32) int {
	nd := d.p.nodes[n]
	deepest := 0
	switch nd.kind {
	case kindObject:
		for i := nd.start + 1; i < nd.end; i += 2 {
			deepest = max(deepest, d.depth(d.p.kids[i]))
		}
		return 1 + deepest
	case kindArray:
		for i := nd.start; i < nd.end; i++ {
			deepest = max(deepest, d.depth(d.p.kids[i]))
		}
	}
	return deepest
}

// member checks the required keys of a device or behaviour item.
func (d *Decoder) member(el node, f, index int) error {
	name := FieldNames[f]
	var haveID, haveAction, haveTS bool
	for j := el.start; j < el.end; j += 2 {
		v := d.p.kids[j+1]
		switch string(d.p.key(j)) {
		case "id":
			if d.p.nodes[v].kind != kindString || d.p.nodes[v].end == d.p.nodes[v].start {
				return fieldErr(name, "item %d: id must be a non-empty string", index)
			}
			haveID = true
		case "action":
			if d.p.nodes[v].kind != kindString {
				return fieldErr(name, "item %d: action must be a string", index)
			}
			haveAction = true
		case "ts":
			if _, ok := d.integer(v); !ok {
				return fieldErr(name, "item %d: ts must be an integer (ms since the epoch)", index)
			}
			haveTS = true
		}
	}
	switch {
	case f == FieldDevices && !haveID:
		return fieldErr(name, "item %d: missing id", index)
	case f == FieldBehavior && (!haveAction || !haveTS):
		return fieldErr(name, "item %d: needs action and ts", index)
	}
	return nil
}

func (d *Decoder) str(n int32, field string) error {
	nd := d.p.nodes[n]
	if nd.kind != kindString {
		return fieldErr(field, "values must be strings")
	}
	if nd.end-nd.start > maxStringBytes {
		return fieldErr(field, "string longer than %d bytes", maxStringBytes)
	}
	return nil
}
