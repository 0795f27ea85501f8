package trace

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSpeedscopeNestsEveryTrack(t *testing.T) {
	// 2 and 3 run in parallel under 1; 4 under 3; 5 overlaps 2 and 3
	// without nesting in either (a parent whose end was cut short).
	spans := []Span{
		span(1, 0, "go", 0, 100),
		span(2, 1, "py", 10, 60),
		span(3, 1, "scala", 20, 90),
		span(4, 3, "scala", 30, 40),
		span(5, 1, "go", 50, 95),
	}
	v := Assemble(tid, spans, AssembleOptions{}).View()
	var buf bytes.Buffer
	require.NoError(t, Speedscope(&buf, v))
	var f struct {
		Shared struct {
			Frames []struct{ Name string } `json:"frames"`
		} `json:"shared"`
		Profiles []struct {
			Type   string `json:"type"`
			Unit   string `json:"unit"`
			Events []struct {
				Type  string `json:"type"`
				Frame int    `json:"frame"`
				At    int64  `json:"at"`
			} `json:"events"`
		} `json:"profiles"`
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &f))
	require.Greater(t, len(f.Profiles), 1, "parallel spans need more than one track")
	opened := 0
	for _, p := range f.Profiles {
		require.Equal(t, "evented", p.Type)
		require.Equal(t, "nanoseconds", p.Unit)
		var stack []int
		last := int64(-1)
		for _, e := range p.Events {
			require.GreaterOrEqual(t, e.At, last, "events in time order")
			last = e.At
			if e.Type == "O" {
				stack = append(stack, e.Frame)
				opened++
				continue
			}
			require.NotEmpty(t, stack)
			require.Equal(t, stack[len(stack)-1], e.Frame, "a close matches the innermost open")
			stack = stack[:len(stack)-1]
		}
		require.Empty(t, stack, "every open is closed")
	}
	require.Equal(t, 5, opened, "each span once")
}

func TestHTMLKeepsSpanDataInert(t *testing.T) {
	s := span(1, 0, "go", 0, 10)
	s.Name = `</script><script>alert(1)</script>`
	v := Assemble(tid, []Span{s}, AssembleOptions{}).View()
	var buf bytes.Buffer
	require.NoError(t, HTML(&buf, v, []string{"body{}"}, "/* script */"))
	out := buf.String()
	require.NotContains(t, out, `<script>alert(1)`)
	require.Contains(t, out, `\u003c/script\u003e\u003cscript\u003ealert(1)`)
	require.Equal(t, 2, strings.Count(out, "<script"), "the data element and the script, nothing else")
}
