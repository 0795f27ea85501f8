package ingest

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// Generator makes deterministic synthetic profiles: profile n of a seed is
// always the same, whichever range is generated, so runs are repeatable and
// a range can be regenerated to compare against the stores. Sizes follow
// real profiles: most are a few hundred bytes in canonical form, and a
// heavy-tailed behaviour history makes a tail up to several KB.
type Generator struct {
	seed uint64
	// FirstID is the user ID of profile 0.
	FirstID int64
	// Base is the updated_at of profile 0; profile n is Base + n µs, and its
	// version is that time in microseconds.
	Base time.Time
	// Revision shifts every version and time by this many seconds, to
	// generate newer (or older) versions of the same users.
	Revision int64
}

// NewGenerator returns a generator for seed.
func NewGenerator(seed uint64) *Generator {
	return &Generator{seed: seed, FirstID: 1, Base: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

var (
	genTags      = words("vip", "churn-risk", "new", "beta", "newsletter", "premium", "student", "family", "gamer", "traveller", "foodie", "night-owl", "early-adopter", "b2b", "trial", "dormant", "power-user", "mobile-only", "deal-hunter", "loyal")
	genTopics    = words("golf", "jazz", "running", "cooking", "travel", "photography", "cycling", "gardening", "chess", "football", "tennis", "yoga", "movies", "books", "crypto", "fashion", "cars", "hiking", "coffee", "wine", "skiing", "anime", "podcasts", "diy", "pets", "astronomy", "theatre", "poetry", "sailing", "climbing")
	genOS        = words("ios", "android", "web", "macos", "windows")
	genModels    = words("iPhone15,2", "Pixel 8", "SM-S918B", "Chrome 131", "Firefox 133", "MacBookAir10,1")
	genActions   = words("view", "click", "search", "add_to_cart", "purchase", "share", "like", "login")
	genCities    = words("Lyon", "Berlin", "São Paulo", "Toronto", "Osaka", "Nairobi", "Lima", "Kraków", "Austin", "Chennai", "Zürich", "Hà Nội")
	genCountries = words("FR", "DE", "BR", "CA", "JP", "KE", "PE", "PL", "US", "IN", "CH", "VN")
	genLangs     = words("fr", "de", "pt", "en", "ja", "sw", "es", "pl", "hi", "vi")
	genPlans     = words("free", "plus", "pro", "family")
)

func words(w ...string) []string { return w }

// ID returns the user ID of profile n.
func (g *Generator) ID(n int64) int64 { return g.FirstID + n }

// Version returns the version of profile n.
func (g *Generator) Version(n int64) int64 { return g.time(n).UnixMicro() }

func (g *Generator) time(n int64) time.Time {
	return g.Base.Add(time.Duration(n)*time.Microsecond + time.Duration(g.Revision)*time.Second)
}

// AppendJSONL appends profile n as one JSONL input line (no newline).
func (g *Generator) AppendJSONL(dst []byte, n int64) []byte {
	r := rand.New(rand.NewPCG(g.seed, uint64(n)^uint64(g.Revision)<<40))
	dst = fmt.Appendf(dst, `{"user_id": %d, "version": %d, "updated_at": "%s"`, g.ID(n), g.Version(n), g.time(n).Format(time.RFC3339Nano))
	dst = append(dst, `, "tags": [`...)
	for i := range r.IntN(5) {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = strconv.AppendQuote(dst, genTags[r.IntN(len(genTags))])
	}
	dst = append(dst, `], "interests": {`...)
	for i := range r.IntN(6) {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = fmt.Appendf(dst, "%q: %d", genTopics[r.IntN(len(genTopics))], r.IntN(1001))
	}
	dst = append(dst, `}, "devices": [`...)
	for i := range 1 + r.IntN(3)/2 {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		dst = fmt.Appendf(dst, `{"id": "fp-%016x", "os": %q, "model": %q}`, r.Uint64(), genOS[r.IntN(len(genOS))], genModels[r.IntN(len(genModels))])
	}
	dst = append(dst, `], "behavior": [`...)
	// Heavy tail: usually 0-3 events, sometimes dozens.
	events := int(r.ExpFloat64() * 1.1)
	if r.IntN(60) == 0 {
		events += 20 + r.IntN(60)
	}
	ts := g.time(n).UnixMilli()
	for i := range events {
		if i > 0 {
			dst = append(dst, ", "...)
		}
		ts -= int64(r.IntN(3_600_000))
		dst = fmt.Appendf(dst, `{"action": %q, "item": "sku-%d", "ts": %d}`, genActions[r.IntN(len(genActions))], r.IntN(1_000_000), ts)
	}
	c := r.IntN(len(genCities))
	dst = fmt.Appendf(dst, `], "props": {"city": %q, "country": %q, "lang": %q, "plan": %q}}`,
		genCities[c], genCountries[c], genLangs[r.IntN(len(genLangs))], genPlans[r.IntN(len(genPlans))])
	return dst
}

// AppendTSV appends profile n as one TSV input line (no newline).
func (g *Generator) AppendTSV(dst []byte, n int64, scratch *Decoder) ([]byte, error) {
	p, err := scratch.DecodeJSON(g.AppendJSONL(nil, n))
	if err != nil {
		return dst, err
	}
	dst = strconv.AppendInt(dst, p.UserID, 10)
	dst = append(dst, '\t')
	dst = strconv.AppendInt(dst, p.Version, 10)
	dst = append(dst, '\t')
	dst = p.UpdatedAt.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '\t')
	for f := range NumFields {
		dst = append(dst, '\t')
		dst = append(dst, p.Field(f)...)
	}
	return dst, nil
}
