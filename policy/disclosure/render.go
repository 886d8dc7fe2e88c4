package disclosure

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strings"

	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/disclosure/noise"
)

// Moments are the exact decrypted totals of one group (or of everything).
type Moments struct {
	Count int64
	Sum   *big.Int // exact at any size (nil: 0)
	SumSq *big.Int // only when variance was asked for
	Hist  []int64  // rows per histogram bucket, when asked for
}

// StatsResult is the released shape of aggregate and intersection_stats:
// only the stats asked for; mean and variance both as numbers and as exact
// fractions (from Σx, Σx², n) so a check can be exact.
type StatsResult struct {
	Count         *int64   `json:"count,omitempty"`
	Sum           *big.Int `json:"sum,omitempty"` // a JSON number, exact at any size
	Mean          *float64 `json:"mean,omitempty"`
	MeanExact     string   `json:"mean_exact,omitempty"`
	Variance      *float64 `json:"variance,omitempty"`
	VarianceExact string   `json:"variance_exact,omitempty"`
	// Histogram maps bucket labels ("<e0", "[e0,e1)", "≥e") to row counts;
	// a suppressed bucket is null (suppressed, not rounded).
	Histogram  map[string]*int64       `json:"histogram,omitempty"`
	Groups     map[string]*StatsResult `json:"groups,omitempty"`
	Suppressed string                  `json:"suppressed,omitempty"`
}

// Release is what a finished job hands the reviewer: the result that would
// be released, the paths withheld from it, and the checks (the shape of
// jobs.Review, with Check.Protects added).
type Release struct {
	Result     json.RawMessage `json:"result"`
	Checks     []Check         `json:"checks"`
	Suppressed []string        `json:"suppressed,omitempty"`
}

// StatsInput is a stats job's decrypted totals and what the nodes said.
type StatsInput struct {
	Total Moments
	// Groups is nil without group_by; it must add up to Total exactly.
	Groups map[string]Moments
	// BelowK names the inputs whose node said its filter leaves fewer than
	// the dataset's k people (input isolation).
	BelowK []string
	// Overlaps are earlier jobs whose inputs nearly match this one's.
	Overlaps []Overlap
}

// Overlap is an earlier job that nearly matches this one: from the nodes'
// input sketches (Difference > 0: the filtered inputs of Dataset differ by
// that many people, fewer than k) or from the specs alone (Difference 0,
// see NearDuplicate).
type Overlap struct {
	Job        string `json:"job"`
	Dataset    string `json:"dataset,omitempty"`
	Difference int    `json:"difference,omitempty"`
	Why        string `json:"why,omitempty"`
}

// ExactMean is Σx/n as a reduced fraction.
func ExactMean(n, sum int64) *big.Rat { return new(big.Rat).SetFrac64(sum, n) }

// ExactVariance is the population variance Σx²/n − (Σx/n)², exactly.
func ExactVariance(n, sum, sumSq int64) *big.Rat {
	return variance(big.NewInt(n), big.NewInt(sum), big.NewInt(sumSq))
}

func variance(n, sum, sq *big.Int) *big.Rat {
	m := new(big.Rat).SetFrac(sum, n)
	m.Mul(m, m)
	return new(big.Rat).Sub(new(big.Rat).SetFrac(sq, n), m)
}

func has(stats []string, s string) bool { return slices.Contains(stats, s) }

// cellv is one group's (or the total's) values as released: big integers,
// since noise of a large scale can take Σx² beyond int64.
type cellv struct {
	n    int64
	sum  *big.Int
	sq   *big.Int // nil without variance
	hist []int64  // nil without histogram
}

func (c *cellv) add(o cellv) {
	c.n += o.n
	c.sum.Add(c.sum, o.sum)
	if c.sq != nil {
		c.sq.Add(c.sq, o.sq)
	}
	for b := range c.hist {
		c.hist[b] += o.hist[b]
	}
}

func (c cellv) equal(o cellv) bool {
	if c.n != o.n || c.sum.Cmp(o.sum) != 0 || (c.sq == nil) != (o.sq == nil) || c.sq != nil && c.sq.Cmp(o.sq) != 0 {
		return false
	}
	return slices.Equal(c.hist, o.hist)
}

func zeroCell(squares bool, buckets int) cellv {
	c := cellv{sum: new(big.Int)}
	if squares {
		c.sq = new(big.Int)
	}
	if buckets > 0 {
		c.hist = make([]int64, buckets)
	}
	return c
}

func toCell(m Moments, squares bool, buckets int, where string) (cellv, error) {
	c := cellv{n: m.Count, sum: new(big.Int)}
	if m.Sum != nil {
		c.sum.Set(m.Sum)
	}
	if m.Count < 0 {
		return c, fmt.Errorf("disclosure: %s: negative count", where)
	}
	if squares {
		if m.SumSq == nil {
			return c, fmt.Errorf("disclosure: %s: variance asked for but Σx² was not computed", where)
		}
		c.sq = new(big.Int).Set(m.SumSq)
	}
	if buckets > 0 {
		if len(m.Hist) != buckets {
			return c, fmt.Errorf("disclosure: %s: %d histogram buckets, the spec has %d", where, len(m.Hist), buckets)
		}
		var sum int64
		for _, h := range m.Hist {
			if h < 0 {
				return c, fmt.Errorf("disclosure: %s: negative bucket count", where)
			}
			sum += h
		}
		if sum != m.Count {
			return c, fmt.Errorf("disclosure: %s: buckets add up to %d, the count is %d", where, sum, m.Count)
		}
		c.hist = slices.Clone(m.Hist)
	}
	return c, nil
}

// noiser adds a plan's noise to cells.
type noiser struct {
	r  io.Reader
	dp *DPPlan
}

func (z noiser) draw(q *Quantity) (*big.Int, error) { return noise.Laplace(z.r, q.Scale) }

func (z noiser) count(n int64) (int64, error) {
	y, err := z.draw(&z.dp.Counts)
	if err != nil {
		return 0, err
	}
	y.Add(y, big.NewInt(n))
	if y.Sign() < 0 {
		return 0, nil // post-processing: a count is never negative
	}
	if !y.IsInt64() {
		return 0, errors.New("disclosure: noised count beyond int64")
	}
	return y.Int64(), nil
}

// cell noises the finest cells of c (its buckets, or its count without a
// histogram), Σx and Σx², and derives its count from the noised buckets.
func (z noiser) cell(c *cellv) error {
	var err error
	if c.hist != nil {
		c.n = 0
		for b, h := range c.hist {
			if c.hist[b], err = z.count(h); err != nil {
				return err
			}
			c.n += c.hist[b]
		}
	} else if c.n, err = z.count(c.n); err != nil {
		return err
	}
	if z.dp.Sums != nil {
		y, err := z.draw(z.dp.Sums)
		if err != nil {
			return err
		}
		c.sum.Add(c.sum, y)
	}
	if c.sq != nil && z.dp.Squares != nil {
		y, err := z.draw(z.dp.Squares)
		if err != nil {
			return err
		}
		if c.sq.Add(c.sq, y); c.sq.Sign() < 0 {
			c.sq.SetInt64(0)
		}
	}
	return nil
}

func statsJob(t policy.JobType) bool { return t == policy.Aggregate || t == policy.IntersectionStats }

// ReviewStats applies disclosure control to an aggregate or
// intersection_stats job's totals and returns what the reviewer sees.
//
// With DP, the finest cells (each group's buckets or count, Σx, Σx²) get
// exact discrete Laplace noise from rnd (nil: crypto/rand) and the totals
// are derived from them. Then every cell below plan.MinRows is suppressed,
// and further cells so that none can be derived from the released ones
// along any margin; a total below it suppresses everything. A small
// differencing overlap withholds everything unless the job is DP.
func ReviewStats(spec *policy.Spec, plan *Plan, in StatsInput, rnd io.Reader) (*Release, error) {
	if plan == nil || !statsJob(spec.Type) || plan.Type != spec.Type {
		return nil, errors.New("disclosure: ReviewStats needs a stats job and its plan")
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	B := 0
	if has(spec.Stats, "histogram") {
		B = spec.Buckets()
	}
	_, squares := needs(spec)
	total, err := toCell(in.Total, squares, B, "total")
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(in.Groups))
	for g := range in.Groups {
		names = append(names, g)
	}
	slices.Sort(names)
	groups := make(map[string]*cellv, len(names))
	if in.Groups != nil {
		sum := zeroCell(squares, B)
		for _, g := range names {
			c, err := toCell(in.Groups[g], squares, B, "group "+g)
			if err != nil {
				return nil, err
			}
			groups[g] = &c
			sum.add(c)
		}
		if !sum.equal(total) {
			return nil, errors.New("disclosure: the groups do not add up to the total")
		}
	}
	if plan.DP != nil {
		z := noiser{r: rnd, dp: plan.DP}
		if in.Groups == nil {
			if err := z.cell(&total); err != nil {
				return nil, err
			}
		} else {
			total = zeroCell(squares, B)
			for _, g := range names {
				if err := z.cell(groups[g]); err != nil {
					return nil, err
				}
				total.add(*groups[g])
			}
		}
	}

	rel := &Release{}
	diffCheck, withhold := differencingCheck(plan, in.Overlaps)
	if withhold {
		rel.Result, _ = json.Marshal(StatsResult{Suppressed: withheldNote})
		rel.Suppressed = []string{"all"}
		rel.Checks = append(rel.Checks, diffCheck, isolationCheck(in.BelowK))
		return rel, nil
	}

	// The linked table of the groups present.
	var present []string
	for _, g := range names {
		if groups[g].n > 0 {
			present = append(present, g)
		}
	}
	t := newTable(len(present), B)
	put := func(r int, c *cellv) {
		for b := range B {
			t.val[t.at(r, b)] = c.hist[b]
		}
		t.val[t.at(r, B)] = c.n
	}
	for r, g := range present {
		put(r, groups[g])
	}
	put(len(present), &total)

	var checks []Check
	if t.suppress(plan.MinRows) {
		rel.Result, _ = json.Marshal(StatsResult{Suppressed: fmt.Sprintf("fewer than %s in all", kNote(plan))})
		rel.Suppressed = []string{"all"}
		checks = append(checks, check(NameMinCount, false, "%d rows in all, below %s: everything suppressed", total.n, kPhrase(plan)))
	} else {
		res, err := render(spec, total, t, len(present), "", &rel.Suppressed)
		if err != nil {
			return nil, err
		}
		if in.Groups != nil {
			res.Groups = map[string]*StatsResult{}
			for r, g := range present {
				if t.hide[t.at(r, B)] {
					res.Groups[g] = &StatsResult{Suppressed: hiddenNote(plan)}
					rel.Suppressed = append(rel.Suppressed, "groups."+g)
					continue
				}
				if res.Groups[g], err = render(spec, *groups[g], t, r, "groups."+g+".", &rel.Suppressed); err != nil {
					return nil, err
				}
			}
		}
		if rel.Result, err = json.Marshal(res); err != nil {
			return nil, err
		}
		primary, hidden := 0, 0
		for i, h := range t.hide {
			if h {
				hidden++
				if t.val[i] > 0 && t.val[i] < plan.MinRows {
					primary++
				}
			}
		}
		detail := fmt.Sprintf("%d rows ≥ %s", total.n, kPhrase(plan))
		if len(rel.Suppressed) > 0 {
			detail += fmt.Sprintf("; %d cell(s) below it, %d suppressed in all: %s", primary, hidden, strings.Join(rel.Suppressed, ", "))
		}
		checks = append(checks, check(NameMinCount, len(rel.Suppressed) == 0, "%s", detail),
			check(NameLinked, true, "no suppressed cell is determined by the released ones along any margin (total = Σ groups = Σ buckets, group = Σ its buckets, bucket = Σ groups' buckets), even knowing that counts are ≥ 1; %d cell(s) hidden beyond those below k", hidden-primary))
	}
	if plan.DP != nil {
		checks = append(checks, dpCheck(plan, "every released count, bucket and sum"))
	}
	rel.Checks = append(checks, isolationCheck(in.BelowK), diffCheck)
	return rel, nil
}

const withheldNote = "withheld: an earlier job's input differs from this one's by only a few people, so the two results could be subtracted"

func kNote(p *Plan) string {
	if p.RowsPerPerson <= 1 {
		return fmt.Sprintf("k = %d rows", p.K)
	}
	return fmt.Sprintf("k = %d people", p.K)
}

// hiddenNote is the same for a cell below k and for one hidden to protect
// it: telling them apart would tell an analyst which side of k each is on.
func hiddenNote(p *Plan) string {
	return fmt.Sprintf("suppressed: fewer than %s here, or hidden so that such a cell cannot be derived from the totals", kNote(p))
}

// render turns one row of the table into the asked-for stats; hidden
// buckets are null and named in hidden.
func render(spec *policy.Spec, c cellv, t *table, r int, where string, hidden *[]string) (*StatsResult, error) {
	stats := spec.Stats
	res := &StatsResult{}
	if t.B > 0 {
		res.Histogram = map[string]*int64{}
		for b := range t.B {
			label := spec.BucketLabel(b)
			if t.hide[t.at(r, b)] {
				res.Histogram[label] = nil
				*hidden = append(*hidden, where+"histogram."+label)
				continue
			}
			v := c.hist[b]
			res.Histogram[label] = &v
		}
	}
	if has(stats, "count") {
		n := c.n
		res.Count = &n
	}
	if has(stats, "sum") {
		res.Sum = new(big.Int).Set(c.sum)
	}
	if c.n > 0 {
		n := big.NewInt(c.n)
		if has(stats, "mean") {
			q := new(big.Rat).SetFrac(c.sum, n)
			f, _ := q.Float64()
			res.Mean, res.MeanExact = &f, q.RatString()
		}
		if has(stats, "variance") {
			if c.sq == nil {
				return nil, errors.New("disclosure: variance asked for but Σx² was not computed")
			}
			q := variance(n, c.sum, c.sq)
			if q.Sign() < 0 {
				q.SetInt64(0) // only noise can make it negative: post-processing
			}
			f, _ := q.Float64()
			res.Variance, res.VarianceExact = &f, q.RatString()
		}
	}
	return res, nil
}

// differencingCheck says what the overlaps mean for the release, and
// whether it must be withheld: a small input difference is withheld unless
// DP noise bounds what the difference can reveal.
func differencingCheck(p *Plan, overlaps []Overlap) (Check, bool) {
	var small, similar []string
	for _, o := range overlaps {
		if o.Difference > 0 {
			small = append(small, fmt.Sprintf("job %s: the input %s differs by %d people (< k)", o.Job, o.Dataset, o.Difference))
		} else {
			similar = append(similar, fmt.Sprintf("job %s: %s", o.Job, o.Why))
		}
	}
	switch {
	case len(small) > 0 && p.DP == nil:
		return check(NameDifferencing, false, "withheld: %s", strings.Join(append(small, similar...), "; ")), true
	case len(small) > 0:
		return check(NameDifferencing, false, "released with noise, which bounds what subtracting can reveal: %s", strings.Join(append(small, similar...), "; ")), false
	case len(similar) > 0:
		return check(NameDifferencing, false, "nearly the same question as %s: the nodes found no small difference in the inputs, but look before approving", strings.Join(similar, "; ")), false
	}
	return check(NameDifferencing, true, "no earlier job's input was reported to differ from this one's by fewer than k people"), false
}

// ReviewCardinality applies disclosure control to a psi_cardinality count:
// noise with DP, suppression below k, withholding on a small differencing
// overlap (unless DP).
func ReviewCardinality(plan *Plan, count int64, belowK []string, overlaps []Overlap, rnd io.Reader) (*Release, error) {
	if plan == nil || plan.Type != policy.PSICardinality {
		return nil, errors.New("disclosure: ReviewCardinality needs a psi_cardinality plan")
	}
	if count < 0 {
		return nil, errors.New("disclosure: negative count")
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	rel := &Release{}
	diffCheck, withhold := differencingCheck(plan, overlaps)
	if withhold {
		rel.Result, _ = json.Marshal(map[string]any{"count": nil, "suppressed": withheldNote})
		rel.Suppressed = []string{"count"}
		rel.Checks = []Check{diffCheck, isolationCheck(belowK)}
		return rel, nil
	}
	var checks []Check
	if plan.DP != nil {
		n, err := noiser{r: rnd, dp: plan.DP}.count(count)
		if err != nil {
			return nil, err
		}
		count = n
	}
	if count < plan.MinRows {
		rel.Result, _ = json.Marshal(map[string]any{"count": nil, "suppressed": fmt.Sprintf("below k = %d", plan.K)})
		rel.Suppressed = []string{"count"}
		checks = append(checks, check(NameMinCount, false, "intersection below k = %d: count suppressed", plan.K))
	} else {
		rel.Result, _ = json.Marshal(map[string]any{"count": count})
		checks = append(checks, check(NameMinCount, true, "intersection %d ≥ k = %d", count, plan.K))
	}
	if plan.DP != nil {
		checks = append(checks, dpCheck(plan, "the count"))
	}
	rel.Checks = append(checks, isolationCheck(belowK), diffCheck)
	return rel, nil
}

// MembersVerdict says whether a psi_members list may be released.
type MembersVerdict struct {
	Release bool
	// Withheld is the result to publish instead when Release is false.
	Withheld   json.RawMessage
	Suppressed []string
	Checks     []Check
}

// ReviewMembers decides a psi_members release: the list is withheld when
// it has fewer than k members, when a filter narrowed an input below k
// (input isolation), or when an earlier job's input differs from this one's
// by fewer than k people. A member list cannot carry noise, so none of
// these is left to the reviewer.
func ReviewMembers(plan *Plan, count int64, belowK []string, overlaps []Overlap) MembersVerdict {
	v := MembersVerdict{Release: true}
	iso := isolationCheck(belowK)
	if !iso.Passed {
		iso.Detail += "; the member list is withheld"
		v.Release = false
	}
	k := check(NameMembersK, true, "%d members ≥ k = %d; the list is sealed to the requester", count, plan.K)
	if count < int64(plan.K) {
		k = check(NameMembersK, false, "fewer than k = %d members: the list is withheld", plan.K)
		v.Release = false
	}
	diff, withhold := differencingCheck(&Plan{}, overlaps)
	if withhold {
		v.Release = false
	}
	v.Checks = []Check{k, iso, diff}
	if !v.Release {
		why := withheldNote
		switch {
		case !k.Passed:
			why = fmt.Sprintf("fewer than k = %d members", plan.K)
		case !iso.Passed:
			why = "withheld: a filter narrows an input to fewer than k people"
		}
		v.Withheld, _ = json.Marshal(map[string]any{"count": nil, "suppressed": why})
		v.Suppressed = []string{"members"}
	}
	return v
}
