package trace

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRenderTextDeepTree: a 200-deep chain prints every span's service and
// operation; indentation stops at maxIndent levels and deeper rows carry
// their depth.
func TestRenderTextDeepTree(t *testing.T) {
	var spans []Span
	for i := range 200 {
		s := Span{TraceID: tid, SpanID: SpanID{8, 8, 8, 8, 8, 8, byte(i >> 8), byte(i) + 1}, Service: "svc",
			Name: fmt.Sprintf("op-%03d-with-a-longish-operation-name", i), Start: int64(i), End: int64(1000 - i)}
		if i > 0 {
			s.ParentID = SpanID{8, 8, 8, 8, 8, 8, byte((i - 1) >> 8), byte(i-1) + 1}
		}
		spans = append(spans, s)
	}
	var out bytes.Buffer
	require.NoError(t, RenderText(&out, Assemble(tid, spans, AssembleOptions{}).View(), TextOptions{Width: 20}))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 2+200+1, "header, column titles, one row per span, legend")
	rows := lines[2 : 2+200]
	width := len([]rune(rows[0]))
	for i, row := range rows {
		require.Contains(t, row, fmt.Sprintf("svc op-%03d-with-a-longish-operation-name", i), "row %d names its span", i)
		require.Equal(t, width, len([]rune(row)), "row %d: the columns line up", i)
		indent := len(row) - len(strings.TrimLeft(row, " "))
		require.LessOrEqual(t, indent, 2*maxIndent, "row %d", i)
		if i > maxIndent {
			require.Contains(t, row, fmt.Sprintf("↳%d ", i), "row %d says its depth", i)
		} else {
			require.NotContains(t, row, "↳")
		}
	}
	require.NotContains(t, out.String(), "…", "no name is cut at this length")
}

// TestWriteViewIsTheView: the streamed answer decodes to the same View as
// the one built whole, lean or not.
func TestWriteViewIsTheView(t *testing.T) {
	d := FromOTLP(SyntheticTrace(tid, 500, time.Now()), DefaultLimits())
	a := Assemble(tid, d.Spans, AssembleOptions{})
	// A filter sees each part alone; one that re-encodes changes nothing,
	// one that rewrites a key rewrites it everywhere.
	reencode := func(b []byte) ([]byte, error) {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber() // nanoseconds do not survive float64
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		return json.Marshal(v)
	}
	var buf bytes.Buffer
	require.NoError(t, a.WriteView(&buf, false, func(b []byte) ([]byte, error) {
		return bytes.ReplaceAll(b, []byte(`"item":`), []byte(`"ITEM":`)), nil
	}))
	require.NotContains(t, buf.String(), `"item":`)
	require.Equal(t, 500, strings.Count(buf.String(), `"ITEM":`))
	for _, tc := range []struct {
		lean   bool
		filter func([]byte) ([]byte, error)
	}{{false, nil}, {true, nil}, {false, reencode}, {true, reencode}} {
		lean := tc.lean
		var buf bytes.Buffer
		require.NoError(t, a.WriteView(&buf, lean, tc.filter))
		var got, want View
		require.NoError(t, json.Unmarshal(buf.Bytes(), &got))
		v := a.View()
		if lean {
			v.Lean()
		}
		b, err := json.Marshal(v)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &want))
		require.Equal(t, want, got)
		require.Len(t, got.Spans, 500)
	}
}
