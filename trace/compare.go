package trace

import "strings"

// CompareRow is one position in two traces' structure: the chain of
// service and operation names from the root down to it, how many spans
// each trace has there, and their summed durations.
type CompareRow struct {
	Path      string `json:"path"`
	Depth     int    `json:"depth"`
	Service   string `json:"service"`
	Name      string `json:"name"`
	CountA    int    `json:"count_a"`
	CountB    int    `json:"count_b"`
	DurationA int64  `json:"duration_a_ns"`
	DurationB int64  `json:"duration_b_ns"`
}

// Comparison sets two traces side by side: their summaries, and their
// structure position by position (A's order first, then what only B
// has). OnlyA and OnlyB count the spans at positions the other trace
// lacks.
type Comparison struct {
	A     Summary      `json:"a"`
	B     Summary      `json:"b"`
	Rows  []CompareRow `json:"rows"`
	OnlyA int          `json:"only_a_spans"`
	OnlyB int          `json:"only_b_spans"`
}

// Compare lines up two assembled traces by position: a span's position is
// the service and operation of every span from the root down to it, so
// the same call path in two runs of a request meets in one row however
// its span IDs and times differ.
func Compare(a, b *Assembled) Comparison {
	c := Comparison{A: a.Summary, B: b.Summary}
	index := map[string]int{}
	add := func(t *Assembled, side int) {
		paths := make([]string, len(t.Nodes))
		for i := range t.Nodes {
			n := &t.Nodes[i]
			name, service := n.Name, n.Service
			if n.Placeholder {
				service = ""
			}
			p := service + " " + name
			if n.Parent >= 0 {
				p = paths[n.Parent] + " > " + p
			}
			paths[i] = p
			at, ok := index[p]
			if !ok {
				at = len(c.Rows)
				index[p] = at
				c.Rows = append(c.Rows, CompareRow{Path: p, Depth: strings.Count(p, " > "), Service: service, Name: name})
			}
			r := &c.Rows[at]
			if side == 0 {
				r.CountA++
				r.DurationA += n.Duration()
			} else {
				r.CountB++
				r.DurationB += n.Duration()
			}
		}
	}
	add(a, 0)
	add(b, 1)
	for _, r := range c.Rows {
		switch {
		case r.CountB == 0:
			c.OnlyA += r.CountA
		case r.CountA == 0:
			c.OnlyB += r.CountB
		}
	}
	return c
}
