package server

import (
	"context"
	"fmt"

	"github.com/gin-gonic/gin"

	"github.com/triad-dev/triad/ingest/dataset"
)

// DatasetAdmin runs dataset operations (ingest/dataset.Manager).
type DatasetAdmin interface {
	State(ctx context.Context) (dataset.State, error)
	AliasVersion(ctx context.Context) (int, error)
	Switch(ctx context.Context, version int, o dataset.VerifyOptions) (dataset.SwitchReport, error)
	Rollback(ctx context.Context, o dataset.VerifyOptions) (dataset.SwitchReport, error)
}

type datasetStatus struct {
	Active       dataset.Active            `json:"active"`
	Serving      int                       `json:"serving"`
	AliasVersion int                       `json:"alias_version"`
	AliasError   string                    `json:"alias_error,omitempty"`
	Versions     map[int]dataset.Info      `json:"versions"`
	Builds       map[int]string            `json:"builds"`
	Members      map[string]dataset.Member `json:"members"`
}

func (s *Server) datasetAdmin() (DatasetAdmin, error) {
	if s.dataset == nil {
		return nil, fmt.Errorf("%w: dataset operations are not configured", ErrUnavailable)
	}
	return s.dataset, nil
}

// getDataset reports the dataset state from etcd.
func (s *Server) getDataset(c *gin.Context) (any, error) {
	d, err := s.datasetAdmin()
	if err != nil {
		return nil, err
	}
	st, err := d.State(c.Request.Context())
	if err != nil {
		return nil, fmt.Errorf("%w: etcd: %w", ErrUnavailable, err)
	}
	out := datasetStatus{Active: st.Active, Serving: st.Serving(), Versions: st.Versions, Builds: st.Builds, Members: st.Members}
	if out.AliasVersion, err = d.AliasVersion(c.Request.Context()); err != nil {
		out.AliasError = err.Error()
	}
	return out, nil
}

type switchRequest struct {
	Version        int  `json:"version"`
	RedisMissingOK bool `json:"redis_missing_ok"`
}

// switchDataset verifies and activates a version, waiting for every
// replica to follow (synchronous: the verification reads every row, so a
// large dataset is better switched with `triad dataset switch`).
func (s *Server) switchDataset(c *gin.Context) (any, error) {
	d, err := s.datasetAdmin()
	if err != nil {
		return nil, err
	}
	var req switchRequest
	const shape = `{"version": N (positive), "redis_missing_ok": bool}`
	if err := decodeJSON(c, &req, shape); err != nil {
		return nil, err
	}
	if req.Version < 1 {
		return nil, fmt.Errorf("%w: body must be %s", ErrBadRequest, shape)
	}
	// A switch that started finishes even if the client goes away.
	rep, err := d.Switch(context.WithoutCancel(c.Request.Context()), req.Version, dataset.VerifyOptions{RedisMissingOK: req.RedisMissingOK})
	if err != nil {
		return nil, err
	}
	s.log.Info("dataset switched", "from", rep.From, "to", rep.To, "lagging", rep.Lagging, "by", principal(c).Name)
	return rep, nil
}

// rollbackDataset switches back to the previous version.
func (s *Server) rollbackDataset(c *gin.Context) (any, error) {
	d, err := s.datasetAdmin()
	if err != nil {
		return nil, err
	}
	var req struct {
		RedisMissingOK bool `json:"redis_missing_ok"`
	}
	if c.Request.ContentLength != 0 {
		if err := decodeJSON(c, &req, `empty or {"redis_missing_ok": bool}`); err != nil {
			return nil, err
		}
	}
	rep, err := d.Rollback(context.WithoutCancel(c.Request.Context()), dataset.VerifyOptions{RedisMissingOK: req.RedisMissingOK})
	if err != nil {
		return nil, err
	}
	s.log.Info("dataset rolled back", "from", rep.From, "to", rep.To, "lagging", rep.Lagging, "by", principal(c).Name)
	return rep, nil
}
