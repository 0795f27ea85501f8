// Package dataset coordinates dataset versions through etcd. A dataset
// version is one full copy of the profiles in the derived stores: a Redis
// key prefix and an Elasticsearch index behind the alias. Postgres, the
// truth, has no versions.
//
// Keys, under <etcd_prefix>dataset/:
//
//	active           {"version":N,"previous":M,...}  persistent; what replicas serve
//	versions/<N>     {"state":"building|ready|active|previous|retired|failed",...}
//	builds/<N>       the builder's name, bound to its lease (a build is live while it exists)
//	members/<id>     each process's report of what it serves and writes, bound to its lease
//	lock             the concurrency.Mutex that build, switch, rollback and gc take
//
// Every process that writes or serves profiles runs a Follower: it reads
// the state, watches the prefix, and applies the versions it computes
// (Plan): serve the active version; write the active version, a live
// build, ready versions waiting for a switch, and the previous version
// until it is retired (so a rollback finds it complete).
package dataset

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	esstore "github.com/triad-dev/triad/ingest/elasticsearch"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/triad-dev/triad/ingest"
)

// Config configures dataset coordination (key `dataset`).
type Config struct {
	// EtcdPrefix prefixes every key triad keeps in etcd.
	EtcdPrefix string `yaml:"etcd_prefix"`
	// SessionTTL is the lease TTL of locks, builds and member reports: how
	// long a dead process's lock and report outlive it.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// ResyncInterval is how often a follower re-reads the state besides
	// watching it (also how fast it notices etcd is unreachable).
	ResyncInterval time.Duration `yaml:"resync_interval"`
	// ConfirmTimeout bounds how long build and switch wait for every live
	// member to report the new version.
	ConfirmTimeout time.Duration `yaml:"confirm_timeout"`
	// LockTimeout bounds how long build, switch and rollback wait for the lock.
	LockTimeout time.Duration `yaml:"lock_timeout"`
	// RetireAfter is how long the previous version is kept (and written)
	// after a switch, for rollback; gc removes it after that.
	RetireAfter time.Duration `yaml:"retire_after"`
	// BuildBatch is how many profiles a build copies per store round trip.
	BuildBatch int `yaml:"build_batch"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{EtcdPrefix: "/triad/", SessionTTL: 10 * time.Second, ResyncInterval: 2 * time.Second,
		ConfirmTimeout: 10 * time.Second, LockTimeout: 30 * time.Second, RetireAfter: 24 * time.Hour, BuildBatch: 1000}
}

// Validate reports every invalid key.
func (c Config) Validate() error {
	var errs []error
	if !strings.HasPrefix(c.EtcdPrefix, "/") || !strings.HasSuffix(c.EtcdPrefix, "/") {
		errs = append(errs, fmt.Errorf("dataset.etcd_prefix: must start and end with /, got %q", c.EtcdPrefix))
	}
	if c.SessionTTL < time.Second {
		errs = append(errs, fmt.Errorf("dataset.session_ttl: must be at least 1s, got %s", c.SessionTTL))
	}
	if c.ResyncInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("dataset.resync_interval: must be at least 100ms, got %s", c.ResyncInterval))
	}
	if c.ConfirmTimeout <= 0 || c.LockTimeout <= 0 {
		errs = append(errs, errors.New("dataset.confirm_timeout and dataset.lock_timeout: must be positive"))
	}
	if c.RetireAfter < 0 {
		errs = append(errs, errors.New("dataset.retire_after: must not be negative"))
	}
	if c.BuildBatch < 1 || c.BuildBatch > 10000 {
		errs = append(errs, fmt.Errorf("dataset.build_batch: must be in [1, 10000], got %d", c.BuildBatch))
	}
	return errors.Join(errs...)
}

// Version states.
const (
	StateBuilding = "building" // being built; written while its build is live
	StateReady    = "ready"    // built and verified; written, waiting for a switch
	StateActive   = "active"   // served
	StatePrevious = "previous" // served before the last switch; written until retired, for rollback
	StateRetired  = "retired"  // no longer written; its data is removed by gc
	StateFailed   = "failed"   // a build that did not complete; removed by gc
	StateRemoved  = "removed"  // gc removed its data
)

// Active is the active-version key's value.
type Active struct {
	Version    int       `json:"version"`
	Previous   int       `json:"previous,omitempty"`
	SwitchedAt time.Time `json:"switched_at"`
	By         string    `json:"by"`
}

// Info is one version's record.
type Info struct {
	Version   int        `json:"version"`
	State     string     `json:"state"`
	CreatedAt time.Time  `json:"created_at"`
	BuiltAt   *time.Time `json:"built_at,omitempty"`
	Rows      int64      `json:"rows,omitempty"`
	RetireAt  *time.Time `json:"retire_at,omitempty"`
	Note      string     `json:"note,omitempty"`
	// Index is the shape of the version's Elasticsearch index as built
	// (zero for a version created before shapes were recorded).
	Index esstore.Shape `json:"index,omitzero"`
}

// Member is one process's report, bound to its lease.
type Member struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"` // serve or ingest
	Addr    string    `json:"addr,omitempty"`
	Serving int       `json:"serving"`
	Writing []int     `json:"writing"`
	Since   time.Time `json:"since"` // when it began serving this version
}

// State is everything under the dataset prefix at one revision.
type State struct {
	Rev      int64
	Active   Active // Version 0: never switched (version 1 is served)
	Versions map[int]Info
	Builds   map[int]string // live builds: version → builder
	Members  map[string]Member
}

// Serving is the version replicas serve.
func (s State) Serving() int { return max(s.Active.Version, 1) }

// Plan is what a process serves and writes in state s.
func Plan(s State) ingest.Versions {
	v := ingest.Versions{Serving: s.Serving(), Writing: []int{s.Serving()}}
	for n, info := range s.Versions {
		if n == v.Serving {
			continue
		}
		switch info.State {
		case StateReady, StatePrevious:
		case StateBuilding:
			if _, live := s.Builds[n]; !live {
				continue
			}
		default:
			continue
		}
		v.Writing = append(v.Writing, n)
	}
	slices.Sort(v.Writing[1:])
	return v
}

// NextVersion is the version a new build gets.
func (s State) NextVersion() int {
	n := s.Serving()
	for v := range s.Versions {
		n = max(n, v)
	}
	return n + 1
}

type keys struct{ root string }

func newKeys(etcdPrefix string) keys { return keys{root: etcdPrefix + "dataset/"} }

func (k keys) active() string          { return k.root + "active" }
func (k keys) lock() string            { return k.root + "lock" }
func (k keys) version(n int) string    { return fmt.Sprintf("%sversions/%08d", k.root, n) }
func (k keys) build(n int) string      { return fmt.Sprintf("%sbuilds/%08d", k.root, n) }
func (k keys) member(id string) string { return k.root + "members/" + id }

// load reads the whole state in one Get.
func load(ctx context.Context, cli *clientv3.Client, k keys) (State, error) {
	res, err := cli.Get(ctx, k.root, clientv3.WithPrefix())
	if err != nil {
		return State{}, err
	}
	st := State{Rev: res.Header.Revision, Versions: map[int]Info{}, Builds: map[int]string{}, Members: map[string]Member{}}
	for _, kv := range res.Kvs {
		name := strings.TrimPrefix(string(kv.Key), k.root)
		var err error
		switch {
		case name == "active":
			err = json.Unmarshal(kv.Value, &st.Active)
		case strings.HasPrefix(name, "versions/"):
			var info Info
			if err = json.Unmarshal(kv.Value, &info); err == nil {
				st.Versions[info.Version] = info
			}
		case strings.HasPrefix(name, "builds/"):
			var n int
			if n, err = strconv.Atoi(strings.TrimPrefix(name, "builds/")); err == nil {
				st.Builds[n] = string(kv.Value)
			}
		case strings.HasPrefix(name, "members/"):
			var m Member
			if err = json.Unmarshal(kv.Value, &m); err == nil {
				st.Members[m.ID] = m
			}
		}
		if err != nil {
			return State{}, fmt.Errorf("etcd key %s: %w", kv.Key, err)
		}
	}
	return st, nil
}

// relevant is whether a changed key can change a Plan (members and the
// lock cannot).
func (k keys) relevant(key []byte) bool {
	name := strings.TrimPrefix(string(key), k.root)
	return !strings.HasPrefix(name, "members/") && !strings.HasPrefix(name, "lock")
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// sortedMembers lists members by ID.
func sortedMembers(m map[string]Member) []Member {
	out := make([]Member, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
