package trace

import (
	"cmp"
	"slices"
)

// Node is one span of an assembled trace, or a placeholder standing for
// a span that never arrived (or for the trace, over several roots).
type Node struct {
	*Span
	// Parent is the index of the parent node in Assembled.Nodes (-1 for
	// the top); Children are indexes, by start time.
	Parent   int
	Children []int
	Depth    int
	Language string
	// LanguageFrom says how Language was decided: config, attribute, sdk,
	// heuristic ("" when unknown).
	LanguageFrom string
	// Placeholder: not a received span. A missing parent keeps the span ID
	// its children name; the trace placeholder (several roots) has none.
	Placeholder bool
	// Orphan: its parent never arrived; it hangs under a placeholder.
	Orphan bool
	// Critical: on the critical path (the chain of work the trace's end
	// waited for).
	Critical bool
	// SkewNs is the shift applied to this span (and its subtree) by
	// clock-skew adjustment; 0 when none.
	SkewNs int64
}

// Summary describes an assembled trace.
type Summary struct {
	TraceID   string   `json:"trace_id"`
	Spans     int      `json:"spans"`
	Services  []string `json:"services"`
	Languages []string `json:"languages"`
	Start     int64    `json:"start_unix_nano"`
	End       int64    `json:"end_unix_nano"`
	Duration  int64    `json:"duration_ns"`
	Errors    int      `json:"errors"`
	// Roots counts received spans without a parent; more than one means
	// the trace is shown under a placeholder.
	Roots int `json:"roots"`
	// Orphans counts spans whose parent never arrived; MissingParents the
	// distinct parents they name (one placeholder each).
	Orphans        int `json:"orphans"`
	MissingParents int `json:"missing_parents"`
	// Duplicates counts spans received more than once (same span ID),
	// shown once.
	Duplicates   int  `json:"duplicates"`
	SkewAdjusted int  `json:"skew_adjusted"`
	CriticalPath int  `json:"critical_path_spans"`
	Partial      bool `json:"partial"`
	// Status is "complete", or says what is missing from a partial view.
	Status string `json:"status"`
}

// Assembled is a trace as a tree: Nodes in depth-first order (a parent
// before its children, siblings by start time), so a renderer can draw
// rows by depth in one pass.
type Assembled struct {
	Summary Summary
	Nodes   []Node
}

// AssembleOptions tune assembly.
type AssembleOptions struct {
	Languages Languages
	// AdjustSkew shifts a child span of another service into its parent's
	// time when it starts before or ends after it (clocks of two hosts
	// disagree): the child is centred in the parent and its subtree moves
	// with it. Off by default; marked on every shifted node.
	AdjustSkew bool
}

// Assemble builds the tree of one trace's spans (any order; duplicates
// are dropped and counted).
func Assemble(id TraceID, spans []Span, o AssembleOptions) *Assembled {
	a := &Assembled{Summary: Summary{TraceID: id.String(), Status: "complete"}}
	byID := make(map[SpanID]int, len(spans))
	nodes := make([]Node, 0, len(spans)+1)
	for i := range spans {
		s := &spans[i]
		if _, dup := byID[s.SpanID]; dup {
			a.Summary.Duplicates++
			continue
		}
		byID[s.SpanID] = len(nodes)
		nodes = append(nodes, Node{Span: s, Parent: -1})
	}
	// Parents, placeholders for the missing ones.
	missing := map[SpanID]int{}
	var top []int
	for i := range nodes {
		n := &nodes[i]
		if n.ParentID.IsZero() || n.ParentID == n.SpanID {
			top = append(top, i)
			a.Summary.Roots++
			continue
		}
		if p, ok := byID[n.ParentID]; ok {
			n.Parent = p
			continue
		}
		p, ok := missing[n.ParentID]
		if !ok {
			p = len(nodes)
			missing[n.ParentID] = p
			nodes = append(nodes, Node{Span: &Span{TraceID: id, SpanID: n.ParentID, Name: "(missing span)", Start: n.Start, End: n.End}, Parent: -1, Placeholder: true})
			n = &nodes[i] // nodes may have moved
			top = append(top, p)
		}
		n.Orphan, n.Parent = true, p
		a.Summary.Orphans++
		ph := nodes[p].Span
		ph.Start, ph.End = min(ph.Start, n.Start), max(ph.End, n.End)
	}
	a.Summary.MissingParents = len(missing)
	for i := range nodes {
		if p := nodes[i].Parent; p >= 0 {
			nodes[p].Children = append(nodes[p].Children, i)
		}
	}
	// Spans in a parent cycle are reached from no top: the earliest of
	// each cycle is cut loose and shown as an orphan at the top.
	reached := make([]bool, len(nodes))
	mark := func(from int) {
		stack := []int{from}
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if reached[x] {
				continue
			}
			reached[x] = true
			stack = append(stack, nodes[x].Children...)
		}
	}
	for _, t := range top {
		mark(t)
	}
	for i := range nodes {
		if reached[i] {
			continue
		}
		if p := nodes[i].Parent; p >= 0 {
			nodes[p].Children = slices.DeleteFunc(nodes[p].Children, func(c int) bool { return c == i })
		}
		nodes[i].Parent, nodes[i].Orphan = -1, true
		a.Summary.Orphans++
		top = append(top, i)
		mark(i)
	}
	byStart := func(x, y int) int {
		return cmp.Or(cmp.Compare(nodes[x].Start, nodes[y].Start), cmp.Compare(x, y))
	}
	if len(top) > 1 {
		// One tree: a placeholder for the trace over every top node.
		t := &Span{TraceID: id, Name: "(trace with several roots or missing parents)"}
		t.Start, t.End = nodes[top[0]].Start, nodes[top[0]].End
		for _, x := range top {
			t.Start, t.End = min(t.Start, nodes[x].Start), max(t.End, nodes[x].End)
		}
		root := len(nodes)
		nodes = append(nodes, Node{Span: t, Parent: -1, Placeholder: true, Children: top})
		for _, x := range top {
			nodes[x].Parent = root
		}
		top = []int{root}
	}
	for i := range nodes {
		slices.SortFunc(nodes[i].Children, byStart)
	}
	// Depth-first order; the old index → new index map rewrites links.
	order := make([]int, 0, len(nodes))
	stack := slices.Clone(top)
	slices.Reverse(stack)
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		order = append(order, x)
		ch := nodes[x].Children
		for j := len(ch) - 1; j >= 0; j-- {
			stack = append(stack, ch[j])
		}
	}
	pos := make([]int, len(nodes))
	for newIdx, old := range order {
		pos[old] = newIdx
	}
	// The nodes move into that order in place (one cycle of the
	// permutation at a time): a 50k-span trace is never held twice.
	done := make([]bool, len(nodes))
	for start := range nodes {
		if done[start] {
			continue
		}
		tmp := nodes[start]
		j := start
		for {
			done[j] = true
			k := order[j] // the node that belongs at j
			if k == start {
				nodes[j] = tmp
				break
			}
			nodes[j] = nodes[k]
			j = k
		}
	}
	for i := range nodes {
		n := &nodes[i]
		if n.Parent >= 0 {
			n.Parent = pos[n.Parent]
			n.Depth = nodes[n.Parent].Depth + 1
		}
		for j, c := range n.Children {
			n.Children[j] = pos[c]
		}
	}
	a.Nodes = nodes
	if o.AdjustSkew {
		a.adjustSkew()
	}
	a.languages(o.Languages)
	a.criticalPath()
	a.summarise()
	return a
}

// adjustSkew moves, top-down, each span of another service than its
// parent that does not fit in its parent's time into the middle of it.
// Spans are copied before they move: the caller's spans stay as stored.
func (a *Assembled) adjustSkew() {
	shift := make([]int64, len(a.Nodes)) // what each node's subtree moved by
	for i := range a.Nodes {
		n := &a.Nodes[i]
		if n.Parent < 0 {
			continue
		}
		inherited := shift[n.Parent]
		if inherited != 0 {
			moved := *n.Span
			moved.Start += inherited
			moved.End += inherited
			n.Span = &moved
		}
		shift[i] = inherited
		p := &a.Nodes[n.Parent]
		if p.Placeholder || n.Placeholder || p.Service == n.Service {
			continue
		}
		d, pd := n.Duration(), p.Duration()
		if d > pd || (n.Start >= p.Start && n.End <= p.End) {
			continue
		}
		delta := p.Start + (pd-d)/2 - n.Start
		moved := *n.Span
		moved.Start += delta
		moved.End += delta
		n.Span = &moved
		n.SkewNs = delta
		shift[i] += delta
		a.Summary.SkewAdjusted++
	}
}

// languages names each span's language, once per service and resource,
// from every instrumentation scope that process used in the trace (a
// Scala service's JDBC spans are Scala's too).
func (a *Assembled) languages(l Languages) {
	type key struct {
		service string
		res     uint64
	}
	type lang struct{ name, how string }
	scopes := map[key][]string{}
	for i := range a.Nodes {
		n := &a.Nodes[i]
		if n.Placeholder {
			continue
		}
		k := key{n.Service, n.ResourceKey}
		if sc := n.Scope.Name; sc != "" && !slices.Contains(scopes[k], sc) && len(scopes[k]) < 64 {
			scopes[k] = append(scopes[k], sc)
		}
	}
	seen := map[key]lang{}
	for i := range a.Nodes {
		n := &a.Nodes[i]
		if n.Placeholder {
			continue
		}
		k := key{n.Service, n.ResourceKey}
		v, ok := seen[k]
		if !ok {
			v.name, v.how = l.Language(n.Service, n.Resource, scopes[k]...)
			seen[k] = v
		}
		n.Language, n.LanguageFrom = v.name, v.how
	}
}

// criticalPath marks the chain the trace's end waited for, as Jaeger
// defines it: from a span's end walk back, taking the child that finished
// last before the cursor, mark it and its own path, move the cursor to
// that child's start, and repeat; the span's remaining time is its own.
// Children are clipped to their parent's end (one that outlives its parent
// is waited for only up to it), and a child that starts after its parent
// ended (asynchronous, FOLLOWS_FROM-like work the parent did not wait
// for) is never on the parent's path. A child ending exactly at the
// cursor counts as finished before it (sequential calls often touch).
func (a *Assembled) criticalPath() {
	if len(a.Nodes) == 0 {
		return
	}
	type item struct {
		node int
		end  int64 // the cursor: where in this span the walk starts
	}
	work := []item{{0, a.Nodes[0].End}}
	var byEnd []int
	for len(work) > 0 {
		it := work[len(work)-1]
		work = work[:len(work)-1]
		n := &a.Nodes[it.node]
		n.Critical = true
		clipped := func(c int) int64 { return min(a.Nodes[c].End, n.End) }
		byEnd = byEnd[:0]
		for _, c := range n.Children {
			if a.Nodes[c].Start < n.End {
				byEnd = append(byEnd, c)
			}
		}
		slices.SortFunc(byEnd, func(x, y int) int { return cmp.Compare(clipped(y), clipped(x)) })
		t := it.end
		for _, c := range byEnd {
			e := clipped(c)
			if e > t {
				continue // still running at the cursor: not what this point waited for
			}
			work = append(work, item{c, e})
			t = a.Nodes[c].Start
		}
	}
}

func (a *Assembled) summarise() {
	s := &a.Summary
	services, langs := map[string]bool{}, map[string]bool{}
	first := true
	for i := range a.Nodes {
		n := &a.Nodes[i]
		if n.Critical && !n.Placeholder {
			s.CriticalPath++
		}
		if n.Placeholder {
			continue
		}
		s.Spans++
		services[n.Service] = true
		if n.Language != "" {
			langs[n.Language] = true
		}
		if n.StatusCode == StatusError {
			s.Errors++
		}
		if first {
			s.Start, s.End, first = n.Start, n.End, false
		}
		s.Start, s.End = min(s.Start, n.Start), max(s.End, n.End)
	}
	s.Duration = max(0, s.End-s.Start)
	s.Services = sortedKeys(services)
	s.Languages = sortedKeys(langs)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
