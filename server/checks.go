package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/triad-dev/triad/repair"
)

// Checker checks records by key across the stores (repair.Checker).
type Checker interface {
	Check(ctx context.Context, entity string, keys []string) ([]repair.Result, error)
	// Inspect checks one key and keeps each copy's fields and raw value.
	Inspect(ctx context.Context, entity, key string) (repair.Result, error)
}

func (s *Server) checker() (Checker, error) {
	if s.checks == nil {
		return nil, fmt.Errorf("%w: checks are not configured", ErrUnavailable)
	}
	return s.checks, nil
}

type checkRequest struct {
	Entity string            `json:"entity"`
	IDs    []json.RawMessage `json:"ids"`
}

type checkResponse struct {
	Checked      int             `json:"checked"`
	Inconsistent int             `json:"inconsistent"`
	Results      []repair.Result `json:"results"`
}

// postChecks checks up to 1000 keys of one entity: {"entity", "ids"}; IDs
// may be JSON numbers or strings.
func (s *Server) postChecks(c *gin.Context) (any, error) {
	ch, err := s.checker()
	if err != nil {
		return nil, err
	}
	var req checkRequest
	const shape = `{"entity": "profile", "ids": [42, 43]}`
	if err := decodeJSON(c, &req, shape); err != nil {
		return nil, err
	}
	if req.Entity == "" {
		return nil, fmt.Errorf("%w: body must be %s", ErrBadRequest, shape)
	}
	keys, err := rawKeys(req.IDs)
	if err != nil {
		return nil, err
	}
	return s.runCheck(c, ch, req.Entity, keys)
}

// getCheck checks one key: GET /api/v1/checks/{entity}/{id}; with
// ?fields=true each store's copy comes with its fields and, when it is
// not a valid record, its raw value (the side-by-side view). Viewers get
// the configured personal fields redacted, and no raw values.
func (s *Server) getCheck(c *gin.Context) (any, error) {
	ch, err := s.checker()
	if err != nil {
		return nil, err
	}
	if c.Query("fields") == "true" {
		res, err := ch.Inspect(c.Request.Context(), c.Param("entity"), c.Param("id"))
		if err != nil {
			return nil, unavailable("", err)
		}
		c.Header("X-Triad-Inconsistent", map[bool]string{true: "0", false: "1"}[res.Consistent])
		if s.redact.applies(c) {
			for name, v := range res.Stores {
				if v.Raw != "" {
					v.Raw = Redacted
				}
				if v.Fields, err = s.redact.Fields(v.Fields); err != nil {
					return nil, err
				}
				res.Stores[name] = v
			}
		}
		return res, nil
	}
	res, err := s.runCheck(c, ch, c.Param("entity"), []string{c.Param("id")})
	if err != nil {
		return nil, err
	}
	return res.Results[0], nil
}

func (s *Server) runCheck(c *gin.Context, ch Checker, entity string, keys []string) (checkResponse, error) {
	res, err := ch.Check(c.Request.Context(), entity, keys)
	if err != nil { // a store could not be read: say which, do not guess
		return checkResponse{}, unavailable("", err)
	}
	out := checkResponse{Checked: len(res), Results: res}
	for _, r := range res {
		if !r.Consistent {
			out.Inconsistent++
		}
	}
	c.Header("X-Triad-Inconsistent", strconv.Itoa(out.Inconsistent))
	return out, nil
}
