package trace

import (
	"bufio"
	"encoding/json"
	"io"
)

// CompareRow is one position in two traces' structure: the row of the
// position it hangs under (its chain of service and operation names from
// the root is read by following Parent), how many spans each trace has
// there, and their summed durations. A position is named by its parent
// row, not by a path string: a path grows with depth, so a deep chain's
// paths would grow with the square of its length.
type CompareRow struct {
	Parent    int    `json:"parent"` // index in rows; -1 at the top
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
	var c Comparer
	c.Add(a)
	c.Add(b)
	return c.Result()
}

// Comparer builds a Comparison one trace at a time (A, then B), so a
// caller can let go of A before reading B: what it keeps is a row per
// position, not the traces.
type Comparer struct {
	c     Comparison
	sides int
	index map[position]int
}

// position is a row's key: its parent's row and its own service and
// operation (the path string is built once per row, not per span).
type position struct {
	parent        int
	service, name string
}

// Add folds t in as A (the first call) or B (the second).
func (c *Comparer) Add(t *Assembled) {
	if c.index == nil {
		c.index = map[position]int{}
	}
	side := c.sides
	c.sides++
	if side == 0 {
		c.c.A = t.Summary
	} else {
		c.c.B = t.Summary
	}
	rowOf := make([]int, len(t.Nodes))
	for i := range t.Nodes {
		n := &t.Nodes[i]
		k := position{parent: -1, service: n.Service, name: n.Name}
		if n.Placeholder {
			k.service = ""
		}
		if n.Parent >= 0 {
			k.parent = rowOf[n.Parent]
		}
		at, ok := c.index[k]
		if !ok {
			at = len(c.c.Rows)
			c.index[k] = at
			depth := 0
			if k.parent >= 0 {
				depth = c.c.Rows[k.parent].Depth + 1
			}
			c.c.Rows = append(c.c.Rows, CompareRow{Parent: k.parent, Depth: depth, Service: k.service, Name: k.name})
		}
		rowOf[i] = at
		r := &c.c.Rows[at]
		if side == 0 {
			r.CountA++
			r.DurationA += n.Duration()
		} else {
			r.CountB++
			r.DurationB += n.Duration()
		}
	}
}

// Result is the comparison of the traces added.
func (c *Comparer) Result() Comparison {
	out := c.c
	out.OnlyA, out.OnlyB = 0, 0
	for _, r := range out.Rows {
		switch {
		case r.CountB == 0:
			out.OnlyA += r.CountA
		case r.CountA == 0:
			out.OnlyB += r.CountB
		}
	}
	return out
}

// WriteJSON writes c as JSON row by row, never holding its whole
// encoding (a comparison of two 50k-span traces has up to 100k rows).
func (c *Comparison) WriteJSON(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	head := struct {
		A     Summary `json:"a"`
		B     Summary `json:"b"`
		OnlyA int     `json:"only_a_spans"`
		OnlyB int     `json:"only_b_spans"`
	}{c.A, c.B, c.OnlyA, c.OnlyB}
	b, err := json.Marshal(head)
	if err != nil {
		return err
	}
	_, _ = bw.Write(b[:len(b)-1]) // the object left open for rows
	_, _ = bw.WriteString(`,"rows":[`)
	for i := range c.Rows {
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		if err := enc.Encode(&c.Rows[i]); err != nil {
			return err
		}
	}
	_, _ = bw.WriteString("]}")
	return bw.Flush()
}
