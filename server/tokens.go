package server

import (
	"fmt"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/triad-dev/triad/server/auth"
)

func (s *Server) whoami(c *gin.Context) (any, error) {
	p := principal(c)
	return gin.H{"name": p.Name, "role": p.Role.String(), "token_id": p.TokenID}, nil
}

func (s *Server) listTokens(c *gin.Context) (any, error) {
	return s.tokens.List(c.Request.Context(), c.Query("all") == "true")
}

type createTokenRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// TTL is a Go duration such as 720h; empty means no expiry.
	TTL string `json:"ttl"`
}

type createTokenResponse struct {
	auth.Token
	// Secret is shown once; only its hash is stored.
	Secret string `json:"secret"`
}

func (s *Server) createToken(c *gin.Context) (any, error) {
	var req createTokenRequest
	if err := decodeJSON(c, &req, `{"name", "role", "ttl"}`); err != nil {
		return nil, err
	}
	role, err := auth.ParseRole(req.Role)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	var ttl time.Duration
	if req.TTL != "" {
		if ttl, err = time.ParseDuration(req.TTL); err != nil {
			return nil, fmt.Errorf("%w: ttl: %w", ErrBadRequest, err)
		}
	}
	secret, tok, err := s.tokens.Create(c.Request.Context(), req.Name, role, ttl)
	if err != nil {
		return nil, err
	}
	s.log.Info("token created", "token_id", tok.ID, "name", tok.Name, "role", tok.Role, "by", principal(c).Name)
	created(c)
	return createTokenResponse{Token: tok, Secret: secret}, nil
}

func (s *Server) revokeToken(c *gin.Context) (any, error) {
	// By ID only: a name is reused after a revoke, and a name that looks
	// like an ID ("9") must never revoke another token.
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return nil, fmt.Errorf("%w: a token is revoked by its ID (a positive integer; GET /api/v1/tokens lists them), got %.40q", ErrBadRequest, c.Param("id"))
	}
	tok, err := s.tokens.Revoke(c.Request.Context(), id)
	if err != nil {
		return nil, err
	}
	s.authn.Forget()
	s.log.Info("token revoked", "token_id", tok.ID, "name", tok.Name, "by", principal(c).Name)
	return tok, nil
}
