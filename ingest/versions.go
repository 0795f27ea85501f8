package ingest

import (
	"context"
	"strconv"
)

// Versions are the dataset versions a process serves and writes. A dataset
// version is one full copy of the profiles in the derived stores (a Redis
// key prefix and an Elasticsearch index); Postgres has no versions.
type Versions struct {
	// Serving is the version reads use.
	Serving int
	// Writing are the versions writes go to: the serving one, plus one being
	// built and ones kept for rollback. Never empty.
	Writing []int
}

// DefaultVersions is what a process uses before it learns the dataset
// state: version 1, served and written.
func DefaultVersions() *Versions { return &Versions{Serving: 1, Writing: []int{1}} }

func (v Versions) String() string {
	s := "serving v" + strconv.Itoa(v.Serving) + ", writing"
	for i, w := range v.Writing {
		if i > 0 {
			s += ","
		}
		s += " v" + strconv.Itoa(w)
	}
	return s
}

// Change is one write Postgres took, as announced to every replica so their
// read paths learn new IDs and drop stale cache entries.
type Change struct {
	UserID  int64
	Version int64
	Deleted bool
	// Repaired: the cached copy was rewritten or removed by a repair,
	// possibly at the same version; readers drop what they hold of it.
	Repaired bool
}

// Announcer publishes the changes Postgres took, before the writes are
// acknowledged to their callers. Safe for concurrent use.
type Announcer interface {
	Announce(ctx context.Context, changes []Change) error
}
