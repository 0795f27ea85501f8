package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triad-dev/triad/cmd/internal/clients"
	"github.com/triad-dev/triad/cmd/internal/config"
	"github.com/triad-dev/triad/ingest"
	"github.com/triad-dev/triad/ingest/archive"
	esstore "github.com/triad-dev/triad/ingest/elasticsearch"
	pgstore "github.com/triad-dev/triad/ingest/postgres"
	redisstore "github.com/triad-dev/triad/ingest/redis"
)

// Pipeline is the profile pipeline with its stores, as serve and the ingest
// commands use it.
type Pipeline struct {
	*ingest.Pipeline
	Postgres *pgstore.Store
	Redis    *redisstore.Store
	ES       *esstore.Store
	archive  *archive.Segments
}

// BuildPipeline applies the Elasticsearch template, opens the archive (when
// archive.dir is set) and starts the pipeline's writers.
func BuildPipeline(ctx context.Context, c config.Config, set *clients.Set, log *slog.Logger, reg prometheus.Registerer) (*Pipeline, error) {
	p := &Pipeline{
		Postgres: pgstore.New(set.Postgres),
		Redis:    redisstore.New(set.Redis, c.ProfileCache, reg),
		ES:       esstore.New(set.Elasticsearch, c.ProfileIndex),
	}
	if err := p.ES.Setup(ctx); err != nil {
		return nil, fmt.Errorf("elasticsearch: %w", err)
	}
	deps := ingest.Deps{Primary: p.Postgres, Derived: []ingest.Derived{p.Redis, p.ES}, Catchup: p.Postgres, Logger: log, Registerer: reg}
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
