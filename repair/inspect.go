package repair

import (
	"context"
	"encoding/json"
	"fmt"

	redisstore "github.com/triad-dev/triad/ingest/redis"
)

// MaxRawText bounds the raw value an inspection shows of a corrupt copy.
const MaxRawText = 16 << 10

// Inspect checks one key and keeps what each store holds: the counted
// fields as canonical JSON (StoreView.Fields) and a corrupt copy's raw
// value (StoreView.Raw), for a side-by-side view of the record. It counts
// as a check.
func (c *Checker) Inspect(ctx context.Context, entity, key string) (Result, error) {
	e, err := c.Entity(entity)
	if err != nil {
		return Result{}, err
	}
	recs, err := c.read(ctx, e, []string{key})
	if err != nil {
		return Result{}, err
	}
	k := recs.keys[0]
	derived := derivedRecords(recs.derived, k)
	res := Classify(e, k, recs.primary[k], derived)
	c.Metrics.checked(res)
	keep := func(store string, r Record) {
		v := res.Stores[store]
		if len(r.Fields) > 0 && r.Corrupt == "" {
			v.Fields = make(map[string]json.RawMessage, len(r.Fields))
			for name, b := range r.Fields {
				v.Fields[name] = json.RawMessage(b)
			}
		}
		v.Raw = r.RawText
		res.Stores[store] = v
	}
	keep(e.Primary().Store(), recs.primary[k])
	for i, d := range e.Derived() {
		keep(d.Store(), derived[i])
	}
	return res, nil
}

// redisText is a Redis value as an operator reads it: a hash as a JSON
// object of its fields, a string as it is, another type by name.
func redisText(v redisstore.Value) string {
	switch {
	case v.Oversize:
		return fmt.Sprintf("(a %s of about %d bytes, too large to read)", v.Type, v.Bytes)
	case v.Type == "hash":
		b, err := json.Marshal(v.Hash)
		if err != nil {
			return fmt.Sprintf("(a hash of %d fields)", len(v.Hash))
		}
		return clip(string(b), len(b))
	case v.Type == "string":
		return clip(v.Str, len(v.Str))
	}
	return fmt.Sprintf("(a %s of %d bytes)", v.Type, v.Bytes)
}

// clip bounds s to MaxRawText bytes, saying how long the whole was.
func clip(s string, size int) string {
	if len(s) <= MaxRawText {
		return s
	}
	return s[:MaxRawText] + fmt.Sprintf("… (%d bytes in all)", size)
}
