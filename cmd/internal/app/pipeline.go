package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/triad-dev/triad/repair"
	repaires "github.com/triad-dev/triad/repair/elasticsearch"
	repairpg "github.com/triad-dev/triad/repair/postgres"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triad-dev/triad/cmd/internal/clients"
	"github.com/triad-dev/triad/cmd/internal/config"
	"github.com/triad-dev/triad/ingest"
	"github.com/triad-dev/triad/ingest/archive"
	"github.com/triad-dev/triad/ingest/dataset"
	esstore "github.com/triad-dev/triad/ingest/elasticsearch"
	pgstore "github.com/triad-dev/triad/ingest/postgres"
	redisstore "github.com/triad-dev/triad/ingest/redis"
)

// Stores are the profile stores, built once per process (the Redis store
// registers redis_pipeline_latency_ms).
type Stores struct {
	Postgres *pgstore.Store
	Redis    *redisstore.Store
	ES       *esstore.Store
}

// NewStores builds the profile stores on set's clients.
func NewStores(c config.Config, set *clients.Set, reg prometheus.Registerer) *Stores {
	return &Stores{
		Postgres: pgstore.New(set.Postgres),
		Redis:    redisstore.New(set.Redis, c.ProfileCache, reg),
		ES:       esstore.New(set.Elasticsearch, c.ProfileIndex),
	}
}

// SetVersions points the derived stores at dataset versions.
func (s *Stores) SetVersions(v ingest.Versions) {
	s.Redis.SetVersions(v)
	s.ES.SetVersions(v)
}

// Manager returns the dataset manager over these stores.
func (s *Stores) Manager(c config.Config, set *clients.Set, log *slog.Logger) *dataset.Manager {
	m := dataset.NewManager(c.Dataset, set.Etcd, s.Postgres, s.Redis, s.ES, log)
	m.Name = MemberID()
	return m
}

// Entities returns every entity the consistency engine checks: the
// built-in profile and the configured ones (repair.entities), whose Redis
// keys and indices take the profile stores' prefixes.
func (s *Stores) Entities(c config.Config, set *clients.Set) ([]repair.Entity, error) {
	out := []repair.Entity{repair.NewProfile(s.Postgres, s.Redis, s.ES)}
	for _, ec := range c.Repair.Entities {
		var idx *repaires.Index
		if ec.Elasticsearch.Index != "" {
			idx = repaires.New(set.Elasticsearch, c.ProfileIndex.IndexPrefix+ec.Elasticsearch.Index, ec.Postgres.Key, c.ProfileIndex.Shape)
		}
		rows, err := repairpg.NewTableRows(set.Postgres, ec)
		if err != nil {
			return nil, err
		}
		t, err := repair.NewTable(ec, rows, set.Redis, c.ProfileCache.KeyPrefix, idx)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// MemberID names this process in etcd: host and pid.
func MemberID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// Pipeline is the profile pipeline with its stores, as serve and the ingest
// commands use it.
type Pipeline struct {
	*ingest.Pipeline
	*Stores
	archive *archive.Segments
}

// BuildPipeline applies the Elasticsearch template, opens the archive (when
// archive.dir is set) and starts the pipeline's writers. Writes are
// announced on the Redis change feed.
func BuildPipeline(ctx context.Context, c config.Config, st *Stores, log *slog.Logger, reg prometheus.Registerer) (*Pipeline, error) {
	p := &Pipeline{Stores: st}
	if err := p.ES.Setup(ctx); err != nil {
		return nil, fmt.Errorf("elasticsearch: %w", err)
	}
	deps := ingest.Deps{Primary: p.Postgres, Derived: []ingest.Derived{p.Redis, p.ES}, Catchup: p.Postgres,
		Announcer: p.Redis, Logger: log, Registerer: reg}
	if c.Archive.Dir != "" {
		a, err := archive.Open(c.Archive, archive.NewMetrics(reg))
		if err != nil {
			return nil, err
		}
		p.archive, deps.Archive = a, a
	}
	pl, err := ingest.New(c.Ingest, deps)
	if err != nil {
		if p.archive != nil {
			_ = p.archive.Close()
		}
		return nil, err
	}
	p.Pipeline = pl
	return p, nil
}

// Close drains the pipeline, then closes the archive.
func (p *Pipeline) Close() error {
	err := p.Pipeline.Close()
	if p.archive != nil {
		err = errors.Join(err, p.archive.Close())
	}
	return err
}
