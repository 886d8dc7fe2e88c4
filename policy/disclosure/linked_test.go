package disclosure

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/policy"
)

// testCatalog declares the datasets of the tests (k = 10 unless given).
func testCatalog(dp *policy.DP, k int) policy.Catalog {
	cat := policy.Catalog{}
	for _, n := range []string{"hrss.benefits", "civil.subsidies", "housing.owners"} {
		cat[n] = &policy.Dataset{Name: n, MinCount: k, DP: dp}
	}
	return cat
}

// histSpec is an aggregate over hrss.benefits with bins (B = len+1
// buckets, none when bins is empty) and optionally a group_by.
func histSpec(bins []int64, grouped bool) *policy.Spec {
	s := &policy.Spec{Type: policy.Aggregate, Purpose: "test",
		Inputs: []policy.Input{{Dataset: "hrss.benefits"}},
		Value:  &policy.ColumnRef{Column: "monthly_benefit_fen"},
		Stats:  []string{"count"}}
	if len(bins) > 0 {
		s.Stats = append(s.Stats, "histogram")
		s.Bins = bins
	}
	if grouped {
		s.GroupBy = &policy.ColumnRef{Column: "district"}
	}
	return s
}

// withRows returns a copy of cat whose datasets declare the given
// max_rows_per_key.
func withRows(cat policy.Catalog, rows map[string]int) policy.Catalog {
	out := policy.Catalog{}
	for n, d := range cat {
		dd := *d
		if m, ok := rows[n]; ok {
			dd.MaxRowsPerKey = m
		}
		out[n] = &dd
	}
	return out
}

func mustPlan(t testing.TB, spec *policy.Spec, cat policy.Catalog, rows map[string]int) *Plan {
	p, vs := NewPlan(spec, withRows(cat, rows))
	require.Empty(t, vs)
	require.NotNil(t, p)
	return p
}

// legacy is today's suppression (jobs/runner/stats.go before this
// package), kept here only to show that the attacker finds its leaks.
func legacy(spec *policy.Spec, total Moments, groups map[string]Moments, k int) []byte {
	hiddenBuckets := func(hist []int64) []bool {
		hide := make([]bool, len(hist))
		n := 0
		for b, c := range hist {
			if c > 0 && c < int64(k) {
				hide[b] = true
				n++
			}
		}
		if n == 1 {
			next := -1
			for b, c := range hist {
				if c > 0 && !hide[b] && (next < 0 || c < hist[next]) {
					next = b
				}
			}
			if next >= 0 {
				hide[next] = true
			}
		}
		return hide
	}
	render := func(m Moments) *StatsResult {
		r := &StatsResult{}
		c := m.Count
		r.Count = &c
		if m.Hist != nil {
			r.Histogram = map[string]*int64{}
			for b, hide := range hiddenBuckets(m.Hist) {
				if hide {
					r.Histogram[spec.BucketLabel(b)] = nil
				} else {
					v := m.Hist[b]
					r.Histogram[spec.BucketLabel(b)] = &v
				}
			}
		}
		return r
	}
	if total.Count < int64(k) {
		b, _ := json.Marshal(StatsResult{Suppressed: "fewer than k"})
		return b
	}
	res := render(total)
	if groups != nil {
		res.Groups = map[string]*StatsResult{}
		small := map[string]bool{}
		present := 0
		var names []string
		for g := range groups {
			names = append(names, g)
		}
		sort.Strings(names)
		for _, g := range names {
			if groups[g].Count > 0 {
				present++
				if groups[g].Count < int64(k) {
					small[g] = true
				}
			}
		}
		if len(small) == 1 && present > 1 {
			next := ""
			for _, g := range names {
				if gm := groups[g]; gm.Count > 0 && !small[g] && (next == "" || gm.Count < groups[next].Count) {
					next = g
				}
			}
			small[next] = true
		}
		for _, g := range names {
			switch {
			case groups[g].Count == 0:
			case small[g]:
				res.Groups[g] = &StatsResult{Suppressed: "fewer than k"}
			default:
				res.Groups[g] = render(groups[g])
			}
		}
	}
	b, _ := json.Marshal(res)
	return b
}

// Attack 6, by name: group 天河区 has 33 people, 3 of them in the first
// bucket. Today's code hides that bucket and the group's other one (30),
// but the overall bucket (55) less the other group's (25) gives 30, and
// 33 − 30 = 3. The attacker recovers it from today's release and recovers
// nothing from this package's.
func TestLinkedTables33Minus30(t *testing.T) {
	spec := histSpec([]int64{100000}, true)
	groups := map[string]Moments{
		"天河区": {Count: 33, Hist: []int64{3, 30}},
		"越秀区": {Count: 40, Hist: []int64{15, 25}},
	}
	total := Moments{Count: 73, Hist: []int64{18, 55}}
	labels := []string{"天河区", "越秀区"}

	old, err := readRelease(spec, legacy(spec, total, groups, 10), labels)
	require.NoError(t, err)
	found := old.attack()
	require.Contains(t, found, "cell {0 0} = 3 exactly from the margins", "the attacker must find today's leak")

	rel, err := ReviewStats(spec, mustPlan(t, spec, testCatalog(nil, 10), nil), StatsInput{Total: total, Groups: groups}, nil)
	require.NoError(t, err)
	v, err := readRelease(spec, rel.Result, labels)
	require.NoError(t, err)
	require.Empty(t, v.attack())
	require.Contains(t, rel.Suppressed, "groups.天河区.histogram.<100000")
	require.Contains(t, rel.Suppressed, "groups.越秀区.histogram.<100000", "the other group's bucket in the same column is hidden too")
}

// Two hidden cells that must both be 1 are recovered by bounds alone; the
// package hides a third.
func TestLowerBoundsPin(t *testing.T) {
	spec := histSpec([]int64{10, 20}, false)
	total := Moments{Count: 32, Hist: []int64{1, 1, 30}}
	rel, err := ReviewStats(spec, mustPlan(t, spec, testCatalog(nil, 10), nil), StatsInput{Total: total}, nil)
	require.NoError(t, err)
	require.Equal(t, []string{"histogram.<10", "histogram.[10,20)", "histogram.≥20"}, rel.Suppressed)
	v, err := readRelease(spec, rel.Result, nil)
	require.NoError(t, err)
	require.Empty(t, v.attack())

	// Hiding just the two would not do: the attacker pins both.
	pinned := &view{B: 3, known: map[cellID]int64{{-1, -1}: 32, {-1, 2}: 30}, hidden: map[cellID]int64{{-1, 0}: 1, {-1, 1}: 1}}
	require.Len(t, pinned.attack(), 2)
}

// randomTable draws a table of 1–6 group labels (some absent) or none, 0
// or 2–5 buckets, with counts around k.
func randomTable(r *rand.Rand, k int64) (spec *policy.Spec, total Moments, groups map[string]Moments, labels []string) {
	B := []int{0, 2, 3, 4, 5}[r.IntN(5)]
	bins := []int64{10, 20, 30, 40}[:max(B-1, 0)]
	grouped := r.IntN(8) != 0
	spec = histSpec(bins, grouped)
	cell := func() int64 {
		if r.IntN(4) == 0 {
			return 0
		}
		return 1 + r.Int64N(2*k+5)
	}
	row := func() Moments {
		if r.IntN(6) == 0 {
			return Moments{Hist: make([]int64, B)[:B:B]} // absent
		}
		m := Moments{}
		if B == 0 {
			m.Count = cell()
			return m
		}
		m.Hist = make([]int64, B)
		for b := range m.Hist {
			m.Hist[b] = cell()
			m.Count += m.Hist[b]
		}
		return m
	}
	add := func(to *Moments, m Moments) {
		to.Count += m.Count
		for b := range m.Hist {
			to.Hist[b] += m.Hist[b]
		}
	}
	if B > 0 {
		total.Hist = make([]int64, B)
	}
	if !grouped {
		add(&total, row())
		return spec, total, nil, nil
	}
	groups = map[string]Moments{}
	for g := range 1 + r.IntN(6) {
		l := fmt.Sprintf("g%d", g)
		labels = append(labels, l)
		m := row()
		if B == 0 {
			m.Hist = nil
		}
		groups[l] = m
		add(&total, m)
	}
	return spec, total, groups, labels
}

// The attacker, on 12,000 random tables (a tenth with DP noise), never
// recovers a hidden cell from this package's releases, while it does from
// today's on many of the same tables.
func TestAttackerRecoversNothing(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	noiseSrc := rand.NewChaCha8([32]byte{7})
	const k = 10
	plain := testCatalog(nil, k)
	dp := testCatalog(&policy.DP{Epsilon: 1, Budget: 10}, k)
	tables, suppressed, oldLeaks := 0, 0, 0
	for i := range 12000 {
		spec, total, groups, labels := randomTable(r, k)
		cat := plain
		if i%10 == 0 {
			cat = dp
		}
		rel, err := ReviewStats(spec, mustPlan(t, spec, cat, nil), StatsInput{Total: total, Groups: groups}, noiseSrc)
		require.NoError(t, err, "table %d", i)
		v, err := readRelease(spec, rel.Result, labels)
		require.NoError(t, err, "table %d", i)
		tables++
		if len(rel.Suppressed) > 0 {
			suppressed++
		}
		require.Empty(t, v.attack(), "table %d: %+v / %+v → %s", i, total, groups, rel.Result)

		if i%10 != 0 {
			ov, err := readRelease(spec, legacy(spec, total, groups, k), labels)
			require.NoError(t, err)
			if len(ov.attack()) > 0 {
				oldLeaks++
			}
		}
	}
	t.Logf("%d tables, %d with suppression; today's code leaks a hidden cell in %d", tables, suppressed, oldLeaks)
	require.Greater(t, suppressed, tables/3, "the tables must exercise suppression")
	require.Greater(t, oldLeaks, tables/20, "the attacker must be strong enough to break today's code")
}

// The margin graph's verdict matches exact Gaussian elimination on random
// hidden patterns (without bounds: "not a bridge" iff "not determined"),
// and the simplex on the same patterns (with bounds: "movable" iff the
// least and greatest values differ).
func TestMovableMatchesSolvers(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 3000 {
		G := r.IntN(5)
		B := []int{0, 2, 3, 4}[r.IntN(4)]
		if G == 0 && B == 0 {
			continue
		}
		tb := newTable(G, B)
		// Values consistent with the margins, ≥ 1 everywhere.
		for g := range G + 1 {
			for b := range B + 1 {
				if g < G && b < B || G == 0 && b < B || B == 0 && g < G || G == 0 && B == 0 {
					tb.val[tb.at(g, b)] = 1 + r.Int64N(4)
				}
			}
		}
		for g := range G + 1 {
			if B > 0 && (g < G || G == 0) {
				s := int64(0)
				for b := range B {
					s += tb.val[tb.at(g, b)]
				}
				tb.val[tb.at(g, B)] = s
			}
		}
		if G > 0 {
			for b := range B + 1 {
				s := int64(0)
				for g := range G {
					s += tb.val[tb.at(g, b)]
				}
				tb.val[tb.at(G, b)] = s
			}
		}
		for i := range tb.val {
			if i != tb.grand() && r.IntN(3) == 0 {
				tb.hide[i] = true
			}
		}
		tb.prepare()
		// The same pattern as an attacker's view, with the table's bounds.
		v := &view{G: G, B: B, known: map[cellID]int64{}, hidden: map[cellID]int64{}}
		id := func(i int) cellID {
			g, b := tb.row(i), tb.col(i)
			if g == G {
				g = -1
			}
			if b == B {
				b = -1
			}
			return cellID{g, b}
		}
		for i := range tb.val {
			if tb.hide[i] {
				v.hidden[id(i)] = tb.lower(i)
			} else {
				v.known[id(i)] = tb.val[i]
			}
		}
		vars, A, rhs := v.system()
		det := linearlyDetermined(vars, A, rhs)
		lb := make([]int64, len(vars))
		for j, c := range vars {
			lb[j] = v.hidden[c]
		}
		for i := range tb.val {
			if !tb.hide[i] {
				continue
			}
			c := id(i)
			bridge := !connected(tb, i, tb.colV(tb.col(i)), tb.rowV(tb.row(i)))
			_, d := det[c]
			require.Equal(t, d, bridge, "trial %d cell %v: determined=%v bridge=%v", trial, c, d, bridge)
			j := slices.Index(vars, c)
			lo, hi := boundedRange(vars, A, rhs, lb, j)
			require.Equal(t, hi-lo > 0.5, tb.movable(i), "trial %d cell %v: range [%g, %g]", trial, c, lo, hi)
		}
	}
}

// connected reports whether from and to are joined by hidden cells other
// than skip, in either direction (no bounds): "not a bridge".
func connected(t *table, skip, from, to int) bool {
	seen := map[int]bool{from: true}
	queue := []int{from}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		if x == to {
			return true
		}
		for i := range t.val {
			if i == skip || !t.hide[i] || i == t.grand() {
				continue
			}
			u, v := t.rowV(t.row(i)), t.colV(t.col(i))
			for _, e := range [][2]int{{u, v}, {v, u}} {
				if e[0] == x && !seen[e[1]] {
					seen[e[1]] = true
					queue = append(queue, e[1])
				}
			}
		}
	}
	return false
}

// The column-level search finds paths exactly as cheap as Dijkstra over
// the whole margin graph, on random tables and hidden patterns.
func TestCheapestByColumnsMatchesDijkstra(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	compared := 0
	for range 3000 {
		G, B := 1+r.IntN(6), 2+r.IntN(4)
		tb := newTable(G, B)
		for g := range G {
			for b := range B {
				if r.IntN(4) > 0 {
					tb.val[tb.at(g, b)] = 1 + r.Int64N(30)
				}
				tb.val[tb.at(g, B)] += tb.val[tb.at(g, b)]
				tb.val[tb.at(G, b)] += tb.val[tb.at(g, b)]
			}
			tb.val[tb.at(G, B)] += tb.val[tb.at(g, B)]
		}
		for i := range tb.val {
			if i != tb.grand() && tb.val[i] > 0 && r.IntN(4) == 0 {
				tb.setHidden(i)
			}
		}
		tb.prepare()
		for i := range tb.val {
			if !tb.hide[i] {
				continue
			}
			u, v := tb.rowV(tb.row(i)), tb.colV(tb.col(i))
			up, down := tb.arcs(i, tb.lower(i))
			for _, dir := range []bool{true, false} {
				if dir && !up || !dir && !down {
					continue
				}
				from, to := v, u
				if !dir {
					from, to = u, v
				}
				_, want, okWant := tb.cheapest(from, to, i)
				cells, got, ok := tb.cheapestByColumns(i, dir)
				require.Equal(t, okWant, ok)
				if !ok {
					continue
				}
				compared++
				require.Equal(t, want, got, "G=%d B=%d cell %d up=%v", G, B, i, dir)
				var sum int64
				for _, j := range cells {
					sum += tb.cost(j)
				}
				require.LessOrEqual(t, sum, got, "the cells' own costs add up to at most the path's (a group's buckets can be counted once)")
			}
		}
	}
	require.Greater(t, compared, 1000)
}
