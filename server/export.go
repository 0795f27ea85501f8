package server

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

// Exports: a list asked for with ?format=csv or ?format=ndjson is
// streamed page by page under the list's own filter, never held whole.

// exportFormat is the export ?format asks for: "" (the JSON envelope),
// "csv" or "ndjson".
func exportFormat(c *gin.Context) (string, error) {
	switch f := c.Query("format"); f {
	case "", "json":
		return "", nil
	case "csv", "ndjson":
		return f, nil
	default:
		return "", fmt.Errorf("%w: format must be json, csv or ndjson, got %q", ErrBadRequest, f)
	}
}

// emitFunc writes one row: obj as an NDJSON line, or cells as a CSV
// record (in the export's columns).
type emitFunc func(obj any, cells []string) error

// exportStream is handler data written as a CSV or NDJSON attachment:
// rows calls emit for each row, fetching page after page.
type exportStream struct {
	format  string
	name    string // the file name's stem
	columns []string
	rows    func(emit emitFunc) error
}

// write streams the export. A failure after the first byte cannot change
// the status: a last line says the export is incomplete and why.
func (x exportStream) write(w http.ResponseWriter) error {
	h := w.Header()
	if x.format == "csv" {
		h["Content-Type"] = []string{"text/csv; charset=utf-8"}
	} else {
		h["Content-Type"] = []string{"application/x-ndjson"}
	}
	h["Content-Disposition"] = []string{fmt.Sprintf(`attachment; filename="%s.%s"`, x.name, x.format)}
	w.WriteHeader(http.StatusOK)
	var emit emitFunc
	var flush func() error
	if x.format == "csv" {
		cw := csv.NewWriter(w)
		if err := cw.Write(x.columns); err != nil {
			return err
		}
		emit = func(_ any, cells []string) error { return cw.Write(cells) }
		flush = func() error { cw.Flush(); return cw.Error() }
	} else {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		emit = func(obj any, _ []string) error { return enc.Encode(obj) }
		flush = func() error { return nil }
	}
	err := x.rows(emit)
	if err != nil {
		st, code := statusOf(err)
		msg := "export incomplete: " + publicMessage(err, st, code)
		if x.format == "csv" {
			_ = emit(nil, []string{"# " + msg})
		} else {
			_ = emit(map[string]string{"error": msg}, nil)
		}
	}
	if ferr := flush(); err == nil {
		err = ferr
	}
	return err
}

// pagedExport streams a list page by page: next returns the page after
// cursor (0: the first) and the cursor of the page after it (0: it was
// the last). At most maxExportRows rows go out.
func pagedExport[T any](format, name string, columns []string, cells func(T) []string, next func(cursor int64) ([]T, int64, error)) exportStream {
	return exportStream{format: format, name: name, columns: columns, rows: func(emit emitFunc) error {
		var cursor int64
		for n := 0; ; {
			page, more, err := next(cursor)
			if err != nil {
				return err
			}
			for _, row := range page {
				if err := emit(row, cells(row)); err != nil {
					return err
				}
			}
			if n += len(page); more == 0 {
				return nil
			} else if n >= maxExportRows {
				return fmt.Errorf("%w: more than %d rows; narrow the filter", ErrTooLarge, maxExportRows)
			}
			cursor = more
		}
	}}
}

// keyset pages a newest-first list by a "before" ID cursor for
// pagedExport: list reads the page below before (0: from the newest); a
// full page of limit continues below its last row's ID.
func keyset[T any](limit int, list func(before int64) ([]T, error), id func(T) int64) func(int64) ([]T, int64, error) {
	return func(before int64) ([]T, int64, error) {
		page, err := list(before)
		if err != nil || len(page) < limit {
			return page, 0, err
		}
		return page, id(page[len(page)-1]), nil
	}
}

// onePage is a list read in one page (the lists that have no cursor).
func onePage[T any](rows []T, err error) func(int64) ([]T, int64, error) {
	return func(int64) ([]T, int64, error) { return rows, 0, err }
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func timeCell(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
