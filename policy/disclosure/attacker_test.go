package disclosure

// An attacker of released stats results, written independently of the
// suppression code: it reads only the released JSON and what an analyst
// knows (the spec, the group labels that exist, that suppression never
// hides a zero on its own), writes every margin equation in the cells'
// own terms, and tries
//   - exact linear derivation: big.Rat Gaussian elimination over all the
//     equations with the released cells substituted; a hidden cell is
//     recovered iff the equations determine it;
//   - derivation with bounds: the least and greatest value of each hidden
//     cell over all solutions with the known lower bounds (a float64
//     simplex), recovered iff they meet.

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"

	"github.com/unseen-data/unseen/policy"
)

// cellID names one cell of a released table: group −1 is the total, bucket
// −1 a row's count.
type cellID struct{ g, b int }

// view is what the attacker has: the values of released cells and the
// lower bounds of the hidden ones.
type view struct {
	G, B   int // the group labels an analyst knows to exist; buckets
	known  map[cellID]int64
	hidden map[cellID]int64 // lower bound
}

// readRelease turns a released result into a view. labels are all group
// labels (absent ones are known zeros), nil without group_by.
func readRelease(spec *policy.Spec, raw []byte, labels []string) (*view, error) {
	var res StatsResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, err
	}
	if res.Suppressed != "" {
		return nil, nil // nothing released
	}
	B := 0
	if has(spec.Stats, "histogram") {
		B = spec.Buckets()
	}
	v := &view{G: len(labels), B: B, known: map[cellID]int64{}, hidden: map[cellID]int64{}}
	row := func(g int, r *StatsResult) error {
		if r == nil { // absent: an exact, known zero everywhere
			v.known[cellID{g, -1}] = 0
			for b := range B {
				v.known[cellID{g, b}] = 0
			}
			return nil
		}
		if r.Suppressed != "" {
			v.hidden[cellID{g, -1}] = 1 // a present group has someone
			for b := range B {
				v.hidden[cellID{g, b}] = 0 // its buckets may be empty
			}
			return nil
		}
		if r.Count == nil {
			return fmt.Errorf("row %d: no count", g)
		}
		v.known[cellID{g, -1}] = *r.Count
		for b := range B {
			p, ok := r.Histogram[spec.BucketLabel(b)]
			if !ok {
				return fmt.Errorf("row %d: bucket %d missing", g, b)
			}
			if p == nil {
				v.hidden[cellID{g, b}] = 1 // zeros are shown
			} else {
				v.known[cellID{g, b}] = *p
			}
		}
		return nil
	}
	if err := row(-1, &res); err != nil {
		return nil, err
	}
	for g, l := range labels {
		r, ok := res.Groups[l]
		if !ok {
			r = nil
		}
		if err := row(g, r); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// equations returns every margin as a list of cells summing to a cell:
// grand = Σ groups, grand = Σ overall buckets, each group = Σ its buckets,
// each overall bucket = Σ the groups' buckets.
func (v *view) equations() [][2][]cellID {
	var eqs [][2][]cellID
	sum := func(lhs cellID, rhs []cellID) { eqs = append(eqs, [2][]cellID{{lhs}, rhs}) }
	if v.G > 0 {
		var gs []cellID
		for g := range v.G {
			gs = append(gs, cellID{g, -1})
		}
		sum(cellID{-1, -1}, gs)
	}
	if v.B > 0 {
		for g := -1; g < v.G; g++ {
			var bs []cellID
			for b := range v.B {
				bs = append(bs, cellID{g, b})
			}
			sum(cellID{g, -1}, bs)
		}
		if v.G > 0 {
			for b := range v.B {
				var gs []cellID
				for g := range v.G {
					gs = append(gs, cellID{g, b})
				}
				sum(cellID{-1, b}, gs)
			}
		}
	}
	return eqs
}

// system writes the equations over the hidden cells: rows of coefficients
// (in the order of vars) and right-hand sides.
func (v *view) system() (vars []cellID, A [][]int64, rhs []int64) {
	index := map[cellID]int{}
	for g := -1; g < v.G; g++ {
		for b := -1; b < v.B; b++ {
			c := cellID{g, b}
			if _, ok := v.hidden[c]; ok {
				index[c] = len(vars)
				vars = append(vars, c)
			}
		}
	}
	for _, e := range v.equations() {
		row := make([]int64, len(vars))
		var r int64
		term := func(c cellID, sign int64) {
			if i, ok := index[c]; ok {
				row[i] += sign
			} else {
				r -= sign * v.known[c]
			}
		}
		term(e[0][0], 1)
		for _, c := range e[1] {
			term(c, -1)
		}
		A, rhs = append(A, row), append(rhs, r)
	}
	return vars, A, rhs
}

// linearlyDetermined returns the hidden cells the equations determine,
// with their values (exact Gaussian elimination over the rationals).
func linearlyDetermined(vars []cellID, A [][]int64, rhs []int64) map[cellID]*big.Rat {
	n := len(vars)
	M := make([][]*big.Rat, len(A))
	for i := range A {
		M[i] = make([]*big.Rat, n+1)
		for j := range n {
			M[i][j] = big.NewRat(A[i][j], 1)
		}
		M[i][n] = big.NewRat(rhs[i], 1)
	}
	pivots := []int{}
	r := 0
	for c := 0; c < n && r < len(M); c++ {
		p := -1
		for i := r; i < len(M); i++ {
			if M[i][c].Sign() != 0 {
				p = i
				break
			}
		}
		if p < 0 {
			continue
		}
		M[r], M[p] = M[p], M[r]
		inv := new(big.Rat).Inv(M[r][c])
		for j := range M[r] {
			M[r][j].Mul(M[r][j], inv)
		}
		for i := range M {
			if i != r && M[i][c].Sign() != 0 {
				f := new(big.Rat).Set(M[i][c])
				for j := range M[i] {
					M[i][j].Sub(M[i][j], new(big.Rat).Mul(f, M[r][j]))
				}
			}
		}
		pivots = append(pivots, c)
		r++
	}
	out := map[cellID]*big.Rat{}
	for i, c := range pivots {
		alone := true
		for j := range n {
			if j != c && M[i][j].Sign() != 0 {
				alone = false
			}
		}
		if alone {
			out[vars[c]] = M[i][n]
		}
	}
	return out
}

// boundedRange returns the least and greatest value of hidden cell k over
// all real solutions with every hidden cell at least its lower bound.
func boundedRange(vars []cellID, A [][]int64, rhs []int64, lb []int64, k int) (lo, hi float64) {
	n := len(vars)
	// y = x − lb ≥ 0: A·y = rhs − A·lb.
	Af := make([][]float64, len(A))
	bf := make([]float64, len(A))
	for i := range A {
		Af[i] = make([]float64, n)
		s := float64(rhs[i])
		for j := range n {
			Af[i][j] = float64(A[i][j])
			s -= float64(A[i][j] * lb[j])
		}
		bf[i] = s
	}
	c := make([]float64, n)
	c[k] = 1
	hi = lpMax(Af, bf, c) + float64(lb[k])
	c[k] = -1
	lo = -lpMax(Af, bf, c) + float64(lb[k])
	return lo, hi
}

const tol = 1e-9

// lpMax maximises c·y subject to A·y = b, y ≥ 0 (a two-phase tableau
// simplex with Bland's rule). It returns +Inf if unbounded and NaN if
// infeasible.
func lpMax(A [][]float64, b []float64, c []float64) float64 {
	m, n := len(A), len(c)
	w := n + m + 1 // columns: y, artificials, rhs
	T := make([][]float64, m)
	basis := make([]int, m)
	for i := range m {
		T[i] = make([]float64, w)
		s := 1.0
		if b[i] < 0 {
			s = -1
		}
		for j := range n {
			T[i][j] = s * A[i][j]
		}
		T[i][n+i] = 1
		T[i][w-1] = s * b[i]
		basis[i] = n + i
	}
	alive := make([]bool, m)
	for i := range alive {
		alive[i] = true
	}
	obj := make([]float64, w)
	pivot := func(r, col int) {
		p := T[r][col]
		for j := range w {
			T[r][j] /= p
		}
		for i := range m {
			if i != r && alive[i] && T[i][col] != 0 {
				f := T[i][col]
				for j := range w {
					T[i][j] -= f * T[r][j]
				}
			}
		}
		if f := obj[col]; f != 0 {
			for j := range w {
				obj[j] -= f * T[r][j]
			}
		}
		basis[r] = col
	}
	// run maximises with obj as the row z − Σ c_j y_j = 0; columns at or
	// beyond limit never enter.
	run := func(limit int) bool {
		for {
			col := -1
			for j := range limit {
				if obj[j] < -tol {
					col = j
					break
				}
			}
			if col < 0 {
				return true
			}
			r := -1
			best := math.Inf(1)
			for i := range m {
				if !alive[i] || T[i][col] <= tol {
					continue
				}
				q := T[i][w-1] / T[i][col]
				if q < best-tol || (q < best+tol && r >= 0 && basis[i] < basis[r]) {
					best, r = q, i
				}
			}
			if r < 0 {
				return false
			}
			pivot(r, col)
		}
	}
	// Phase 1: maximise −Σ artificials.
	for i := range m {
		for j := range w {
			if j < n || j == w-1 {
				obj[j] -= T[i][j]
			}
		}
	}
	run(n + m)
	if obj[w-1] < -1e-7 {
		return math.NaN()
	}
	for i := range m {
		if basis[i] < n {
			continue
		}
		col := -1
		for j := range n {
			if math.Abs(T[i][j]) > tol {
				col = j
				break
			}
		}
		if col < 0 {
			alive[i] = false // a redundant equation
			continue
		}
		pivot(i, col)
	}
	// Phase 2.
	for j := range w {
		obj[j] = 0
	}
	for j := range n {
		obj[j] = -c[j]
	}
	for i := range m {
		if alive[i] && obj[basis[i]] != 0 {
			f := obj[basis[i]]
			for j := range w {
				obj[j] -= f * T[i][j]
			}
		}
	}
	if !run(n) {
		return math.Inf(1)
	}
	return obj[w-1]
}

// attack returns the hidden cells the attacker recovers, with how.
func (v *view) attack() []string {
	if v == nil || len(v.hidden) == 0 {
		return nil
	}
	vars, A, rhs := v.system()
	var found []string
	for c, val := range linearlyDetermined(vars, A, rhs) {
		found = append(found, fmt.Sprintf("cell %v = %s exactly from the margins", c, val.RatString()))
	}
	if len(found) > 0 {
		return found
	}
	lb := make([]int64, len(vars))
	for i, c := range vars {
		lb[i] = v.hidden[c]
	}
	for k, c := range vars {
		lo, hi := boundedRange(vars, A, rhs, lb, k)
		if math.IsNaN(lo) || math.IsNaN(hi) {
			found = append(found, fmt.Sprintf("cell %v: infeasible view (attacker bug or inconsistent release)", c))
			continue
		}
		if hi-lo < 0.5 {
			found = append(found, fmt.Sprintf("cell %v = %.0f from the margins and lower bounds", c, lo))
		}
	}
	return found
}
