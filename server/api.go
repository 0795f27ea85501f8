package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/triad-dev/triad/ingest/dataset"
	"github.com/triad-dev/triad/repair"
	"github.com/triad-dev/triad/repair/alert"
	"github.com/triad-dev/triad/repair/sweep"
	"github.com/triad-dev/triad/server/auth"
)

// Errors handlers return; statusOf maps them to HTTP statuses in one place.
var (
	ErrBadRequest   = errors.New("bad request")
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrForbidden    = errors.New("forbidden")
	ErrUnauthorized = errors.New("unauthorized")
	ErrTooLarge     = errors.New("request body too large")
	ErrUnavailable  = errors.New("unavailable")
	ErrRateLimited  = errors.New("rate limited")
)

// apiError is the error half of the envelope.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// envelope is every /api response body.
type envelope struct {
	Status    string    `json:"status"` // success or error
	Data      any       `json:"data,omitempty"`
	Error     *apiError `json:"error,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
}

// statuses is the one place errors become HTTP statuses: each condition's
// error is declared by the package that owns it and listed here once. The
// first row that matches wins, so the conditions a store-backed part
// reports itself (an unknown sweep, a bad key, a state conflict) come
// before ErrUnavailable, which wraps whatever else a store said.
var statuses = []struct {
	errs   []error
	status int
	code   string
}{
	{[]error{ErrTooLarge}, http.StatusRequestEntityTooLarge, "too_large"},
	{[]error{ErrBadRequest, auth.ErrInvalidInput, repair.ErrBadKey, repair.ErrTooMany, sweep.ErrBadOption, alert.ErrInvalid},
		http.StatusBadRequest, "bad_request"},
	{[]error{ErrNotFound, auth.ErrNotFound, repair.ErrUnknownEntity, repair.ErrPlanNotFound, sweep.ErrNoSweep, alert.ErrNotFound, alert.ErrNoSilence},
		http.StatusNotFound, "not_found"},
	{[]error{ErrConflict, repair.ErrPlanApplied, repair.ErrPlanEmpty, auth.ErrNameTaken, dataset.ErrBusy, dataset.ErrState, dataset.ErrIncomplete, sweep.ErrState, alert.ErrNameUsed},
		http.StatusConflict, "conflict"},
	{[]error{dataset.ErrLostLock}, http.StatusServiceUnavailable, "unavailable"},
	{[]error{ErrUnauthorized, auth.ErrNoToken, auth.ErrInvalidToken}, http.StatusUnauthorized, "unauthorized"},
	{[]error{ErrForbidden}, http.StatusForbidden, "forbidden"},
	{[]error{ErrUnavailable}, http.StatusServiceUnavailable, "unavailable"},
	{[]error{ErrRateLimited}, http.StatusTooManyRequests, "rate_limited"},
	{[]error{context.DeadlineExceeded}, http.StatusServiceUnavailable, "timeout"},
}

// statusOf maps an error to its HTTP status and a stable code (statuses,
// then the body limit and Postgres's own codes); anything else is 500.
func statusOf(err error) (int, string) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, "too_large"
	}
	for _, row := range statuses {
		for _, e := range row.errs {
			if errors.Is(err, e) {
				return row.status, row.code
			}
		}
	}
	var pge *pgconn.PgError
	if errors.As(err, &pge) {
		switch {
		case pge.Code == "57014": // query_canceled: statement_timeout
			return http.StatusServiceUnavailable, "timeout"
		case strings.HasPrefix(pge.Code, "22"), strings.HasPrefix(pge.Code, "54"): // data exception, program limit
			return http.StatusBadRequest, "bad_request"
		}
	}
	return http.StatusInternalServerError, "internal"
}

// unavailable is a store-backed part's failure: 503, naming the part
// (what, e.g. "sweeps (postgres)"; "" when err names it already). A
// caller's condition statusOf maps by itself (a bad key, an unknown sweep,
// a conflict: any 4xx) is returned as it is; nil stays nil.
func unavailable(what string, err error) error {
	if err == nil {
		return nil
	}
	if st, _ := statusOf(err); st < http.StatusInternalServerError {
		return err
	}
	if what == "" {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
}

// publicMessage is what a client is told of err: the server's own text
// for its own errors, never a store's (a Postgres message can quote other
// rows, and a store's raw text is not an API).
func publicMessage(err error, status int, code string) string {
	var pge *pgconn.PgError
	switch {
	case code == "timeout":
		var what string
		if errors.As(err, &pge) {
			what = "postgres: the statement ran past its timeout"
		} else {
			what = namePostgres(err)
		}
		return "the request ran out of time: " + what
	case errors.As(err, &pge) && status == http.StatusBadRequest:
		return "bad request: a value the store cannot take (Postgres " + pge.Code + ")"
	case status == http.StatusServiceUnavailable:
		return namePostgres(err)
	}
	return err.Error()
}

// namePostgres is err's text, saying "postgres" when the failure came
// from the Postgres client and the text does not already name it (a
// handler's wrapping names what it was doing, not the store).
func namePostgres(err error) string {
	msg := err.Error()
	var ce *pgconn.ConnectError
	var pge *pgconn.PgError
	if (pgconn.Timeout(err) || errors.As(err, &ce) || errors.As(err, &pge)) && !strings.Contains(msg, "postgres") {
		return "postgres: " + msg
	}
	return msg
}

// handlerFunc returns data for a success envelope, or an error.
type handlerFunc func(c *gin.Context) (any, error)

// wrap turns a handlerFunc into a gin handler that writes the envelope.
// Internal errors are logged with the request ID and not shown to clients.
func (s *Server) wrap(h handlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		data, err := h(c)
		if err != nil {
			s.writeError(c, err)
			return
		}
		if rb, ok := data.(rawBody); ok {
			c.Data(http.StatusOK, rb.contentType, rb.body)
			return
		}
		if x, ok := data.(exportStream); ok {
			if err := x.write(c.Writer); err != nil {
				s.log.Error("export not written whole", "path", c.FullPath(), "request_id", requestID(c), "err", err)
			}
			return
		}
		if stream, ok := data.(jsonStream); ok {
			// Encoded as it is written: a large answer is never held
			// whole. A failure mid-way cannot change the status any more;
			// the client sees a truncated body, and the log says why.
			c.Writer.Header()["Content-Type"] = jsonContentType
			c.Status(http.StatusOK)
			_, _ = c.Writer.Write(envelopeHead)
			if err := stream(c.Writer); err != nil {
				s.log.Error("answer not written whole", "path", c.FullPath(), "request_id", requestID(c), "err", err)
				return
			}
			_, _ = c.Writer.Write(envelopeTail)
			return
		}
		if raw, ok := data.(rawJSON); ok {
			// Written in three parts into the response buffer: no copy of
			// the body (net/http still sets Content-Length for small ones).
			c.Writer.Header()["Content-Type"] = jsonContentType
			c.Status(http.StatusOK)
			_, _ = c.Writer.Write(envelopeHead)
			_, _ = c.Writer.Write(raw)
			_, _ = c.Writer.Write(envelopeTail)
			return
		}
		status := http.StatusOK
		if c.Request.Method == http.MethodPost {
			if code, ok := c.Get(createdKey); ok && code.(bool) {
				status = http.StatusCreated
			}
		}
		c.JSON(status, envelope{Status: "success", Data: data})
	}
}

const createdKey = "triad.created"

// jsonStream is handler data written into the success envelope as it is
// encoded.
type jsonStream func(w io.Writer) error

// rawBody is handler data written as is, without the envelope (an
// export in another format).
type rawBody struct {
	contentType string
	body        []byte
}

var (
	jsonContentType = []string{"application/json; charset=utf-8"}
	envelopeHead    = []byte(`{"status":"success","data":`)
	envelopeTail    = []byte(`}`)
)

// created marks the response of a POST as 201 Created.
func created(c *gin.Context) { c.Set(createdKey, true) }

func (s *Server) writeError(c *gin.Context, err error) {
	status, code := statusOf(err)
	msg := publicMessage(err, status, code)
	if status == http.StatusInternalServerError {
		s.log.Error("request failed", "request_id", requestID(c), "path", c.FullPath(), "err", err)
		msg = "internal error; see the server log for request " + requestID(c)
	}
	if status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="triad"`)
	}
	if ra, ok := errors.AsType[retryAfter](err); ok {
		c.Header("Retry-After", retryAfterSeconds(ra.wait))
	}
	c.AbortWithStatusJSON(status, envelope{Status: "error", Error: &apiError{Code: code, Message: msg}, RequestID: requestID(c)})
}
