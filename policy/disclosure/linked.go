package disclosure

import (
	"math"
	"slices"
)

// table is the linked table of one stats job's counts: a row per present
// group and a last row for the total; a column per histogram bucket and a
// last column for the row's count (one column, the counts, without a
// histogram; one row, the total, without group_by). The margins are
//
//	total(g) = Σ_b cell(g, b)       (each row, with buckets)
//	cell(T, c) = Σ_g cell(g, c)     (each column, with groups)
//
// which are all the sums a released result lets anyone form: the grand
// total is the sum of the groups and of the overall buckets, a group's count
// the sum of its buckets, an overall bucket the sum of the groups' buckets.
// A group's Σx and Σx² travel with its count cell (they are hidden with it,
// and their only margin, the total, is one of the count's), so protecting
// the counts protects them.
//
// Groups that are absent (count 0) are not reported, and an analyst who
// knows the labels reads their absence as an exact 0; leaving them out of
// the table is exactly substituting that known 0. Zero cells of a present
// row are released as 0 and never hidden on their own, so an analyst also
// knows that a hidden cell is at least 1, unless it is a bucket of a hidden
// group (which may be 0).
type table struct {
	G, B int     // groups present, buckets (0: no histogram)
	val  []int64 // (G+1)·(B+1), row-major; row G is the total, column B a row's count
	hide []bool

	// The margin graph and traversal scratch, set up by suppress.
	adj   [][]link
	seen  []uint32
	gen   uint32
	stack []int
	dist  []int64
	prev  []int
	via   []link
	queue []item
	// Per-row prices for cheapestByColumns, valid until a cell of the row
	// is hidden (prices depend only on the row's own cells).
	rowIn, rowOut [][]int64
}

func newTable(G, B int) *table {
	n := (G + 1) * (B + 1)
	return &table{G: G, B: B, val: make([]int64, n), hide: make([]bool, n)}
}

func (t *table) at(r, c int) int { return r*(t.B+1) + c }
func (t *table) row(i int) int   { return i / (t.B + 1) }
func (t *table) col(i int) int   { return i % (t.B + 1) }
func (t *table) grand() int      { return t.at(t.G, t.B) }

// Vertices of the margin graph: a row's equation (only with buckets), a
// column's equation (only with groups), and "ground" standing for the side
// that has no equations. Each cell is an edge between its row's and its
// column's vertex; with the signs of sign() every vertex's edges sum to 0.
func (t *table) rowV(r int) int {
	if t.B == 0 {
		return t.ground()
	}
	return r
}

func (t *table) colV(c int) int {
	if t.G == 0 {
		return t.ground()
	}
	return t.G + 1 + c
}

func (t *table) ground() int   { return t.G + t.B + 2 }
func (t *table) vertices() int { return t.G + t.B + 3 }

// sign is +1 for inner cells and the grand total, −1 for the margins: then
// every row and every column of signed cells sums to 0.
func (t *table) sign(i int) int {
	if (t.row(i) == t.G) == (t.col(i) == t.B) {
		return 1
	}
	return -1
}

// lower is the least value an analyst knows a hidden cell has.
func (t *table) lower(i int) int64 {
	r, c := t.row(i), t.col(i)
	if r < t.G && c < t.B && t.hide[t.at(r, t.B)] {
		return 0 // a bucket of a hidden group may be empty
	}
	return 1
}

// arcs says in which directions a hidden (or to-be-hidden, with the lower
// bound of 1) cell can carry a change along a cycle of the margin graph.
// Moving y = sign·x by +d on the way row→column and −d on the way back
// keeps every margin; a cell whose x would go down needs slack above its
// lower bound.
func (t *table) arcs(i int, lb int64) (up, down bool) {
	slack := t.val[i] > lb
	s := t.sign(i)
	return s > 0 || slack, s < 0 || slack
}

// prepare builds the margin graph and the traversal scratch.
func (t *table) prepare() {
	t.adj = t.links()
	t.seen = make([]uint32, len(t.adj))
	t.rowIn, t.rowOut = make([][]int64, t.G+1), make([][]int64, t.G+1)
}

// prices returns row r's cells' prices into and out of the row.
func (t *table) prices(r int) (in, out []int64) {
	if t.rowIn[r] == nil {
		C := t.B + 1
		in, out = make([]int64, C), make([]int64, C)
		for c := range C {
			in[c], out[c] = t.price(t.at(r, c), false), t.price(t.at(r, c), true)
		}
		t.rowIn[r], t.rowOut[r] = in, out
	}
	return t.rowIn[r], t.rowOut[r]
}

// link is one end of a cell's edge in the margin graph: leaving vertex
// "from" through cell to vertex to, in direction up (row→column) or down.
type link struct {
	to, cell int
	up       bool
}

// links returns, for each vertex, the links leaving it (every cell but the
// grand total, in both directions); which may be used is decided at each
// step from the current state, so the graph is built once.
func (t *table) links() [][]link {
	g := make([][]link, t.vertices())
	for i := range t.val {
		if i == t.grand() {
			continue
		}
		u, v := t.rowV(t.row(i)), t.colV(t.col(i))
		g[u] = append(g[u], link{to: v, cell: i, up: true})
		g[v] = append(g[v], link{to: u, cell: i, up: false})
	}
	return g
}

// usable says whether a link may carry a change: a hidden cell by its
// bounds, and with candidates also a released non-zero cell as if hidden.
func (t *table) usable(l link, candidates bool) bool {
	i := l.cell
	lb := t.lower(i)
	if !t.hide[i] {
		if !candidates || t.val[i] == 0 {
			return false
		}
		lb = 1
	}
	up, down := t.arcs(i, lb)
	return l.up && up || !l.up && down
}

// cost is the information lost by hiding released cell i: its count, and
// for a group's count also the buckets that go with it.
func (t *table) cost(i int) int64 {
	c := t.val[i]
	if r := t.row(i); r < t.G && t.col(i) == t.B {
		for b := range t.B {
			if j := t.at(r, b); !t.hide[j] {
				c += t.val[j]
			}
		}
	}
	return c
}

// reach reports whether from reaches to through hidden cells other than
// skip.
func (t *table) reach(from, to, skip int) bool {
	t.gen++
	t.stack = append(t.stack[:0], from)
	t.seen[from] = t.gen
	for len(t.stack) > 0 {
		u := t.stack[len(t.stack)-1]
		t.stack = t.stack[:len(t.stack)-1]
		if u == to {
			return true
		}
		for _, l := range t.adj[u] {
			if l.cell != skip && t.seen[l.to] != t.gen && t.hide[l.cell] && t.usable(l, false) {
				t.seen[l.to] = t.gen
				t.stack = append(t.stack, l.to)
			}
		}
	}
	return false
}

// movable reports whether hidden cell i can take more than one value
// consistent with the released cells, every margin, and the known lower
// bounds: whether it lies on a cycle of the margin graph along which it can
// move. Without the bounds this is "i is not a bridge", i.e. i is not
// determined by the margin equations (a cell outside every cycle is); with
// them, a cell the equations leave free but the bounds pin (two hidden
// cells that must both be 1) is caught too. (A change along any feasible
// direction splits into such cycles, conformally, so none is missed.)
func (t *table) movable(i int) bool {
	u, v := t.rowV(t.row(i)), t.colV(t.col(i))
	up, down := t.arcs(i, t.lower(i))
	return up && t.reach(v, u, i) || down && t.reach(u, v, i)
}

// setHidden hides cell i, and with a group's count the group's buckets.
func (t *table) setHidden(i int) {
	t.hide[i] = true
	if t.rowIn != nil {
		t.rowIn[t.row(i)], t.rowOut[t.row(i)] = nil, nil
	}
	if r := t.row(i); r < t.G && t.col(i) == t.B {
		for b := range t.B {
			t.hide[t.at(r, b)] = true
		}
	}
}

// cheapest returns the released cells on the cheapest path from one
// vertex to another through hidden cells (free) and released ones (priced),
// avoiding skip (Dijkstra; ties broken by vertex and link order, so the
// outcome is deterministic), or ok false if there is none.
func (t *table) cheapest(from, to, skip int) (cells []int, cost int64, ok bool) {
	n := len(t.adj)
	if len(t.dist) != n {
		t.dist, t.prev, t.via = make([]int64, n), make([]int, n), make([]link, n)
	}
	for i := range t.dist {
		t.dist[i], t.prev[i] = math.MaxInt64, -1
	}
	t.dist[from] = 0
	q := append(t.queue[:0], item{v: from})
	for len(q) > 0 {
		var it item
		it, q = popItem(q)
		if it.d != t.dist[it.v] {
			continue
		}
		if it.v == to {
			break
		}
		for _, l := range t.adj[it.v] {
			if l.cell == skip || !t.usable(l, true) {
				continue
			}
			c := int64(0)
			if !t.hide[l.cell] {
				c = t.cost(l.cell)
			}
			if nd := it.d + c; nd < t.dist[l.to] {
				t.dist[l.to], t.via[l.to], t.prev[l.to] = nd, l, it.v
				q = pushItem(q, item{d: nd, v: l.to})
			}
		}
	}
	t.queue = q
	if t.dist[to] == math.MaxInt64 {
		return nil, 0, false
	}
	for v := to; v != from; v = t.prev[v] {
		if c := t.via[v].cell; !t.hide[c] {
			cells = append(cells, c)
		}
	}
	return cells, t.dist[to], true
}

// repair hides the cheapest set of released cells that puts hidden cell i
// on a cycle along which it can move. It returns false if none exists.
func (t *table) repair(i int) bool {
	u, v := t.rowV(t.row(i)), t.colV(t.col(i))
	up, down := t.arcs(i, t.lower(i))
	search := t.cheapest
	if t.G > 0 && t.B > 0 {
		search = func(from, to, skip int) ([]int, int64, bool) { return t.cheapestByColumns(skip, from == v) }
	}
	var best []int
	bestCost, found := int64(0), false
	if up {
		if c, cost, ok := search(v, u, i); ok {
			best, bestCost, found = c, cost, true
		}
	}
	if down {
		if c, cost, ok := search(u, v, i); ok && (!found || cost < bestCost) {
			best, found = c, true
		}
	}
	if !found || len(best) == 0 {
		return false
	}
	for _, j := range best {
		t.setHidden(j)
	}
	return t.movable(i)
}

// price is what hiding cell j costs now (0 if hidden), or −1 if j cannot
// carry a change in the direction asked (up: row→column).
func (t *table) price(j int, up bool) int64 {
	if j == t.grand() || !t.usable(link{cell: j, up: up}, true) {
		return -1
	}
	if t.hide[j] {
		return 0
	}
	return t.cost(j)
}

// cheapestByColumns is cheapest for a table with groups and buckets, where
// every path alternates rows and columns and there are few columns (≤ 34):
// it prices each column-to-column step through the cheapest row, then runs
// Dijkstra over the columns. It returns the cells to hide for a cycle
// through cell i, closed from i's column back to its row (fromCol) or from
// its row to its column. It finds the same cost as cheapest: a walk that
// passes i's row early can stop there, so that row is not a step.
func (t *table) cheapestByColumns(i int, fromCol bool) (cells []int, cost int64, ok bool) {
	const inf = math.MaxInt64
	C := t.B + 1
	r0, c0 := t.row(i), t.col(i)
	W := make([]int64, C*C)
	via := make([]int, C*C)
	for k := range W {
		W[k], via[k] = inf, -1
	}
	for r := range t.G + 1 {
		if r == r0 {
			continue
		}
		in, out := t.prices(r)
		for c1 := range C {
			if in[c1] < 0 {
				continue
			}
			for c2 := range C {
				if c2 != c1 && out[c2] >= 0 {
					if w := in[c1] + out[c2]; w < W[c1*C+c2] {
						W[c1*C+c2], via[c1*C+c2] = w, r
					}
				}
			}
		}
	}
	// Dijkstra over the columns, from c0 or from the columns i's row
	// reaches through its other cells.
	D, prev, first := make([]int64, C), make([]int, C), make([]int, C)
	done := make([]bool, C)
	for c := range C {
		D[c], prev[c], first[c] = inf, -1, -1
	}
	if fromCol {
		D[c0] = 0
	} else {
		for c := range C {
			if j := t.at(r0, c); j != i {
				if p := t.price(j, true); p >= 0 {
					D[c], first[c] = p, j
				}
			}
		}
	}
	for {
		x := -1
		for c := range C {
			if !done[c] && D[c] != inf && (x < 0 || D[c] < D[x]) {
				x = c
			}
		}
		if x < 0 {
			break
		}
		done[x] = true
		for c := range C {
			if w := W[x*C+c]; w != inf && !done[c] && D[x]+w < D[c] {
				D[c], prev[c] = D[x]+w, x
			}
		}
	}
	end, last := c0, -1
	if fromCol {
		// Close into i's row through one of its other cells.
		end, cost = -1, inf
		for c := range C {
			if j := t.at(r0, c); j != i && D[c] != inf {
				if p := t.price(j, false); p >= 0 && D[c]+p < cost {
					end, last, cost = c, j, D[c]+p
				}
			}
		}
		if end < 0 {
			return nil, 0, false
		}
	} else if cost = D[c0]; cost == inf {
		return nil, 0, false
	}
	addCell := func(j int) {
		if j >= 0 && !t.hide[j] && !slices.Contains(cells, j) {
			cells = append(cells, j)
		}
	}
	addCell(last)
	c := end
	for prev[c] >= 0 {
		p := prev[c]
		r := via[p*C+c]
		addCell(t.at(r, p))
		addCell(t.at(r, c))
		c = p
	}
	if !fromCol {
		addCell(first[c])
	}
	return cells, cost, true
}

// suppress hides every cell below minRows (primary suppression) and then
// as few other cells as it cheaply can (secondary suppression) so that no
// hidden cell can be derived from the released ones, exactly or by the
// lower bounds. It returns all = true when the grand total itself is below
// minRows, or when no set of cells short of the grand total protects the
// hidden ones: then nothing is released.
func (t *table) suppress(minRows int64) (all bool) {
	if t.val[t.grand()] < minRows {
		return true
	}
	t.prepare()
	for i, v := range t.val {
		if i != t.grand() && v > 0 && v < minRows {
			t.setHidden(i)
		}
	}
	// Hiding only ever adds cycles and slack, so a cell that can move stays
	// movable, and each repair hides at least one more cell: this ends. A
	// pass can hide cells it has already passed (a group's buckets go with
	// its count), so passes repeat until one changes nothing.
	for {
		changed := false
		verdict := t.quick()
		for i := range t.val {
			if !t.hide[i] || verdict[i] > 0 {
				continue
			}
			// After a repair in this pass the quick verdicts may be stale
			// (only ever towards movable): look again.
			if (verdict[i] == 0 || changed) && t.movable(i) {
				continue
			}
			if !t.repair(i) {
				return true
			}
			changed = true
		}
		if !changed {
			return false
		}
	}
}

// quick decides most hidden cells' movability with two linear passes over
// the margin graph: +1 movable, −1 not, 0 undecided (see movable).
//   - A cell with slack in both directions ("free") that lies on a cycle of
//     free cells can move around it: it is not a bridge of the undirected
//     graph of free cells.
//   - A cell that can move in one direction only is movable iff the arc's
//     ends are in one strongly connected component of the graph of usable
//     arcs (a path back cannot use the cell itself).
//   - Any cell whose ends are in different components is not movable.
func (t *table) quick() []int8 {
	n := len(t.adj)
	verdict := make([]int8, len(t.val))
	dirs := func(i int) (up, down bool) { return t.arcs(i, t.lower(i)) }
	free := func(i int) bool {
		if !t.hide[i] {
			return false
		}
		up, down := dirs(i)
		return up && down
	}

	// Bridges of the free cells (Tarjan, by cell so parallel cells count).
	disc, low := make([]int, n), make([]int, n)
	bridge := make([]bool, len(t.val))
	timer := 0
	var walk func(u, via int)
	walk = func(u, via int) {
		timer++
		disc[u], low[u] = timer, timer
		for _, l := range t.adj[u] {
			if l.cell == via || !free(l.cell) {
				continue
			}
			if disc[l.to] == 0 {
				walk(l.to, l.cell)
				low[u] = min(low[u], low[l.to])
				if low[l.to] > disc[u] {
					bridge[l.cell] = true
				}
			} else {
				low[u] = min(low[u], disc[l.to])
			}
		}
	}
	for u := range n {
		if disc[u] == 0 {
			walk(u, -1)
		}
	}

	// Strongly connected components of the usable arcs (Tarjan).
	index, lowl, comp := make([]int, n), make([]int, n), make([]int, n)
	on := make([]bool, n)
	for i := range index {
		index[i], comp[i] = -1, -1
	}
	var stack []int
	next, ncomp := 0, 0
	var strong func(u int)
	strong = func(u int) {
		index[u], lowl[u] = next, next
		next++
		stack = append(stack, u)
		on[u] = true
		for _, l := range t.adj[u] {
			if !t.hide[l.cell] || !t.usable(l, false) {
				continue
			}
			if index[l.to] < 0 {
				strong(l.to)
				lowl[u] = min(lowl[u], lowl[l.to])
			} else if on[l.to] {
				lowl[u] = min(lowl[u], index[l.to])
			}
		}
		if lowl[u] == index[u] {
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				on[w] = false
				comp[w] = ncomp
				if w == u {
					break
				}
			}
			ncomp++
		}
	}
	for u := range n {
		if index[u] < 0 {
			strong(u)
		}
	}

	for i := range t.val {
		if !t.hide[i] || i == t.grand() {
			continue
		}
		u, v := t.rowV(t.row(i)), t.colV(t.col(i))
		up, down := dirs(i)
		switch {
		case comp[u] != comp[v]:
			verdict[i] = -1
		case up && down && !bridge[i]:
			verdict[i] = 1
		case up != down:
			verdict[i] = 1
		}
	}
	return verdict
}

type item struct {
	d int64
	v int
}

func (a item) less(b item) bool { return a.d < b.d || a.d == b.d && a.v < b.v }

// pushItem and popItem keep q a binary min-heap (typed: no boxing).
func pushItem(q []item, it item) []item {
	q = append(q, it)
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q[i].less(q[p]) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
	return q
}

func popItem(q []item) (item, []item) {
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q = q[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(q) && q[l].less(q[m]) {
			m = l
		}
		if r < len(q) && q[r].less(q[m]) {
			m = r
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	return top, q
}
