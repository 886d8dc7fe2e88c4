package disclosure

import (
	"fmt"
	"maps"
	"math/big"
	"slices"

	"github.com/unseen-data/unseen/policy"
)

// rowsPerKey is m of one dataset: its max_rows_per_key with the default
// (1) applied; a dataset the catalog does not know has the default.
func rowsPerKey(cat policy.Catalog, name string) int64 {
	if d, ok := cat[name]; ok && d.MaxRowsPerKey > 0 {
		return int64(d.MaxRowsPerKey)
	}
	return 1
}

// Plan is what a job may release and how it is protected, computed from
// its spec and the declarations of its datasets. It is the same at the
// coordinator (noise, suppression, budget charge) and at a node (what to
// clamp and cap), so both sides agree on what the sensitivity assumes.
type Plan struct {
	Type policy.JobType
	// K is the number of people below which nothing is released: the
	// largest min_count of the job's datasets (the default for one the
	// catalog does not know: never less strict than declared).
	K int
	// RowsPerPerson (M) is the most rows one person can add to one count of
	// this job: 1 for the PSI jobs (keys are distinct), the value dataset's
	// max_rows_per_key for intersection_stats, and the sum over the inputs
	// for a horizontal aggregate (a person may be in every input).
	RowsPerPerson int64
	// MinRows is the smallest count of rows released: (K−1)·M + 1 rows
	// hold at least K people. It is K when M = 1.
	MinRows int64
	// Inputs are the per-input limits each node enforces, in input order.
	Inputs []InputLimits
	// DP is nil when no dataset of the job asks for differential privacy.
	DP *DPPlan
}

// InputLimits are the limits of one input, enforced by its node.
type InputLimits struct {
	Dataset string
	// ValueBound is the |value| the node clamps to before summing (0: the
	// job's sums do not use this input's values, or it declares no bound).
	ValueBound int64
	// MaxRowsPerKey is the cap on rows per person (≥ 1).
	MaxRowsPerKey int64
}

// DPPlan is the noise of a differentially private job.
type DPPlan struct {
	// Epsilon is the ε the job spends: the smallest ε of its DP datasets
	// (the strictest owner wins), exactly MicroEpsilon/10⁶.
	Epsilon      *big.Rat
	MicroEpsilon int64
	// Charges is the ε (in micro-units, policy.MicroEpsilon) charged to each
	// DP dataset of the job: the analyst's budget on it and its total
	// budget. Every DP dataset is charged the job's ε, which is what its
	// people lose, not its own declared ε.
	Charges map[string]int64
	// Counts, Sums and Squares are the noised quantities. Each gets an
	// equal share of ε (sequential composition over quantities); within a
	// quantity the noise is calibrated to a person's L1 effect on all its
	// cells together (groups and buckets), which covers both disjoint groups
	// (parallel composition) and a person whose rows fall in several.
	// Totals are derived from the noised cells, not noised again.
	Counts  Quantity
	Sums    *Quantity // Σx (for sum, mean, variance); nil when not released
	Squares *Quantity // Σx² (for variance); nil when not released
}

// Quantity is one noised quantity of a job.
type Quantity struct {
	Name string // "count", "sum" or "sum_of_squares"
	// Sensitivity (Δ) is the most one person can change the quantity, in L1
	// over all its cells: M for counts, Σ m_i·V_i for Σx, Σ m_i·V_i² for Σx².
	Sensitivity *big.Int
	Epsilon     *big.Rat // this quantity's share of ε
	Scale       *big.Rat // Δ/ε share: the discrete Laplace scale
}

// Quantities lists the noised quantities in a stable order.
func (p *DPPlan) Quantities() []Quantity {
	q := []Quantity{p.Counts}
	if p.Sums != nil {
		q = append(q, *p.Sums)
	}
	if p.Squares != nil {
		q = append(q, *p.Squares)
	}
	return q
}

// needs says which sums a spec's stats need.
func needs(spec *policy.Spec) (sums, squares bool) {
	for _, st := range spec.Stats {
		switch st {
		case "sum", "mean":
			sums = true
		case "variance":
			sums, squares = true, true
		}
	}
	return sums, squares
}

// valueInputs are the inputs whose values a job sums: every input of a
// horizontal aggregate (value.dataset empty), else the value dataset only.
// Never the empty name: that lookup gave a sum bound of 0 (no noise).
func valueInputs(spec *policy.Spec) []string {
	if spec.Value == nil {
		return nil
	}
	if spec.Type == policy.Aggregate && spec.Value.Dataset == "" {
		out := make([]string, len(spec.Inputs))
		for i, in := range spec.Inputs {
			out[i] = in.Dataset
		}
		return out
	}
	return []string{spec.Value.Dataset}
}

// NewPlan computes a job's plan from its spec and the declarations of its
// datasets in the catalog (max_rows_per_key, min_count, dp). A job that
// cannot be protected as its datasets require gets violations and no plan;
// the coordinator refuses it at submission (see CheckDP).
func NewPlan(spec *policy.Spec, cat policy.Catalog) (*Plan, []policy.Violation) {
	var vs []policy.Violation
	add := func(rule, ds, col, format string, args ...any) {
		vs = append(vs, policy.Violation{Rule: rule, Dataset: ds, Column: col, Message: fmt.Sprintf(format, args...)})
	}
	if err := spec.Validate(); err != nil {
		add("spec", "", "", "%v", err)
		return nil, vs
	}
	p := &Plan{Type: spec.Type}
	for _, name := range spec.Datasets() {
		k := policy.DefaultMinCount
		if d, ok := cat[name]; ok {
			k = d.EffectiveMinCount()
		}
		p.K = max(p.K, k)
	}
	for _, name := range spec.Datasets() {
		if d, ok := cat[name]; ok && d.MaxRowsPerKey < 0 {
			add("max_rows_per_key", name, "", "max_rows_per_key must not be negative")
		}
	}

	sums, squares := needs(spec)
	summed := map[string]bool{}
	if sums {
		for _, name := range valueInputs(spec) {
			summed[name] = true
		}
	}
	bound := func(name string) int64 {
		if d, ok := cat[name]; ok && d.DP != nil {
			return d.DP.ValueBound
		}
		return 0
	}
	for _, in := range spec.Inputs {
		lim := InputLimits{Dataset: in.Dataset, MaxRowsPerKey: rowsPerKey(cat, in.Dataset)}
		if summed[in.Dataset] {
			lim.ValueBound = bound(in.Dataset)
		}
		p.Inputs = append(p.Inputs, lim)
	}

	// M: how many rows of one person can reach one count.
	switch spec.Type {
	case policy.PSICardinality, policy.PSIMembers:
		p.RowsPerPerson = 1
	case policy.IntersectionStats:
		// The rows counted and summed are the value dataset's.
		primary := spec.Inputs[0].Dataset
		if spec.Value != nil {
			primary = spec.Value.Dataset
		}
		p.RowsPerPerson = rowsPerKey(cat, primary)
	case policy.Aggregate:
		for _, in := range p.Inputs {
			p.RowsPerPerson += in.MaxRowsPerKey
		}
	}
	p.MinRows = int64(p.K-1)*p.RowsPerPerson + 1

	// Differential privacy: on when any dataset of the job declares it.
	micro := int64(0)
	var dpSets []string
	for _, name := range spec.Datasets() {
		d, ok := cat[name]
		if !ok || d.DP == nil {
			continue
		}
		dpSets = append(dpSets, name)
		m := policy.MicroEpsilon(d.DP.Epsilon)
		if m <= 0 {
			add("dp_epsilon", name, "", "dp.epsilon %g is below 10⁻⁶, the unit budgets are counted in", d.DP.Epsilon)
			continue
		}
		if micro == 0 || m < micro {
			micro = m
		}
	}
	if len(dpSets) == 0 {
		if len(vs) > 0 {
			return nil, vs
		}
		return p, nil
	}
	if spec.Type == policy.PSIMembers {
		for _, name := range dpSets {
			add("dp", name, "", "dataset requires differential privacy, which a member list cannot have; counts and statistics are allowed")
		}
	}
	for _, name := range spec.Datasets() {
		if _, ok := cat[name]; !ok {
			add("dp_unknown_dataset", name, "", "a differentially private job needs every dataset's declaration to size its noise; %s is not in the catalog", name)
		}
	}
	col := ""
	if spec.Value != nil {
		col = spec.Value.Column
	}
	for _, name := range slices.Sorted(maps.Keys(summed)) {
		if bound(name) <= 0 {
			add("dp_value_bound", name, col, "this differentially private job sums the values of %s, which declares no dp.value_bound: noise cannot be sized without it (only count is allowed)", name)
		}
	}
	if len(vs) > 0 || micro == 0 {
		return nil, vs
	}

	dp := &DPPlan{Epsilon: big.NewRat(micro, 1_000_000), MicroEpsilon: micro, Charges: map[string]int64{}}
	for _, name := range dpSets {
		dp.Charges[name] = micro
	}
	n := int64(1)
	if sums {
		n++
	}
	if squares {
		n++
	}
	share := new(big.Rat).Quo(dp.Epsilon, big.NewRat(n, 1))
	quantity := func(name string, delta *big.Int) Quantity {
		return Quantity{Name: name, Sensitivity: delta, Epsilon: share,
			Scale: new(big.Rat).Quo(new(big.Rat).SetInt(delta), share)}
	}
	dp.Counts = quantity("count", big.NewInt(p.RowsPerPerson))
	if sums {
		ds, dq := new(big.Int), new(big.Int)
		for _, in := range p.Inputs {
			if !summed[in.Dataset] {
				continue
			}
			m := big.NewInt(in.MaxRowsPerKey)
			v := big.NewInt(in.ValueBound)
			ds.Add(ds, new(big.Int).Mul(m, v))
			dq.Add(dq, new(big.Int).Mul(m, new(big.Int).Mul(v, v)))
		}
		q := quantity("sum", ds)
		dp.Sums = &q
		if squares {
			q := quantity("sum_of_squares", dq)
			dp.Squares = &q
		}
	}
	p.DP = dp
	return p, nil
}

// CheckDP returns the violations that make a job impossible to protect as
// its datasets require (a DP job summing an input with no value bound,
// for every input of a horizontal aggregate; a DP member list; an ε below
// the budget unit), for refusal at submission.
func CheckDP(spec *policy.Spec, cat policy.Catalog) []policy.Violation {
	_, vs := NewPlan(spec, cat)
	return vs
}

// WithinBudget reports whether a charge of chargeMicro micro-ε fits a
// budget of budget ε of which spentMicro is spent: counted in integers, so
// that a sum of many charges never rounds past the budget.
func WithinBudget(spentMicro, chargeMicro int64, budget float64) bool {
	return spentMicro+chargeMicro <= policy.MicroEpsilon(budget)
}
