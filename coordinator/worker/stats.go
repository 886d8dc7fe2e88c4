package worker

import (
	"encoding/json"
	"fmt"
	"math/big"
	"sort"

	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
)

// moments are the exact decrypted totals of one group (or of everything).
type moments struct {
	Count int64
	Sum   *big.Int // exact: over 10^8 rows it passes 2^63
	SumSq *big.Int // only when variance was asked for
	Hist  []int64  // rows per histogram bucket, when asked for
}

// StatsResult is the released shape of aggregate and intersection_stats:
// only the stats asked for; mean and variance both as numbers and as exact
// fractions (from exact Σx, Σx², n) so a check can be exact.
type StatsResult struct {
	Count         *int64   `json:"count,omitempty"`
	Sum           *big.Int `json:"sum,omitempty"` // a JSON number, exact at any size
	Mean          *float64 `json:"mean,omitempty"`
	MeanExact     string   `json:"mean_exact,omitempty"`
	Variance      *float64 `json:"variance,omitempty"`
	VarianceExact string   `json:"variance_exact,omitempty"`
	// Histogram maps bucket labels ("<e0", "[e0,e1)", "≥e") to row counts;
	// a bucket below k is null (suppressed, not rounded).
	Histogram  map[string]*int64       `json:"histogram,omitempty"`
	Groups     map[string]*StatsResult `json:"groups,omitempty"`
	Suppressed string                  `json:"suppressed,omitempty"`
}

// hiddenBuckets marks the buckets below k and, if that is only one, the
// next smallest too: the count less the others would give it away.
func hiddenBuckets(hist []int64, k int) []bool {
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

func has(stats []string, s string) bool {
	for _, x := range stats {
		if x == s {
			return true
		}
	}
	return false
}

// ExactMean is Σx/n as a reduced fraction.
func ExactMean(n int64, sum *big.Int) *big.Rat {
	return new(big.Rat).SetFrac(orZero(sum), big.NewInt(n))
}

// ExactVariance is the population variance Σx²/n − (Σx/n)², exactly.
func ExactVariance(n int64, sum, sumSq *big.Int) *big.Rat {
	m := ExactMean(n, sum)
	sq := new(big.Rat).Mul(m, m)
	return new(big.Rat).Sub(new(big.Rat).SetFrac(orZero(sumSq), big.NewInt(n)), sq)
}

func orZero(x *big.Int) *big.Int {
	if x == nil {
		return new(big.Int)
	}
	return x
}

// render turns totals into the asked-for stats; histogram buckets below
// k are suppressed and named in hidden.
func render(spec *policy.Spec, m moments, k int, where string, hidden *[]string) (*StatsResult, error) {
	stats := spec.Stats
	r := &StatsResult{}
	if has(stats, "histogram") && m.Hist != nil {
		r.Histogram = map[string]*int64{}
		for b, hide := range hiddenBuckets(m.Hist, k) {
			label := spec.BucketLabel(b)
			if hide {
				r.Histogram[label] = nil
				*hidden = append(*hidden, where+"histogram."+label)
				continue
			}
			v := m.Hist[b]
			r.Histogram[label] = &v
		}
	}
	if has(stats, "count") {
		c := m.Count
		r.Count = &c
	}
	if has(stats, "sum") {
		r.Sum = new(big.Int).Set(orZero(m.Sum))
	}
	if m.Count > 0 {
		if has(stats, "mean") {
			q := ExactMean(m.Count, m.Sum)
			f, _ := q.Float64()
			r.Mean, r.MeanExact = &f, q.RatString()
		}
		if has(stats, "variance") {
			if m.SumSq == nil {
				return nil, fmt.Errorf("variance asked for but Σx² was not computed")
			}
			q := ExactVariance(m.Count, m.Sum, m.SumSq)
			f, _ := q.Float64()
			r.Variance, r.VarianceExact = &f, q.RatString()
		}
	}
	return r, nil
}

// statsReview applies disclosure control (k) and builds the review: a
// total below k suppresses everything; a group below k is suppressed (not
// rounded) and named.
func statsReview(spec *policy.Spec, total moments, groups map[string]moments, k int) (*jobs.Review, error) {
	rv := &jobs.Review{}
	if total.Count < int64(k) {
		rv.Result, _ = json.Marshal(StatsResult{Suppressed: fmt.Sprintf("fewer than k = %d rows", k)})
		rv.Suppressed = []string{"all"}
		rv.Checks = append(rv.Checks, jobs.Check{Name: "min_count", Passed: false, Detail: fmt.Sprintf("%d rows in all, below k = %d: everything suppressed", total.Count, k)})
		return rv, nil
	}
	res, err := render(spec, total, k, "", &rv.Suppressed)
	if err != nil {
		return nil, err
	}
	if groups != nil {
		res.Groups = map[string]*StatsResult{}
		names := make([]string, 0, len(groups))
		for g := range groups {
			names = append(names, g)
		}
		sort.Strings(names)
		small := map[string]bool{}
		present := 0
		for _, g := range names {
			if groups[g].Count > 0 {
				present++
				if groups[g].Count < int64(k) {
					small[g] = true
				}
			}
		}
		// Secondary suppression: one hidden group could be recovered as the
		// total minus the others, so then the next smallest is hidden too.
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
			gm := groups[g]
			if gm.Count == 0 {
				continue // absent groups are not reported at all
			}
			if small[g] {
				why := fmt.Sprintf("fewer than k = %d rows", k)
				if gm.Count >= int64(k) {
					why = "hidden so that the one group below k cannot be derived from the total"
				}
				res.Groups[g] = &StatsResult{Suppressed: why}
				rv.Suppressed = append(rv.Suppressed, "groups."+g)
				continue
			}
			gr, err := render(spec, gm, k, "groups."+g+".", &rv.Suppressed)
			if err != nil {
				return nil, err
			}
			res.Groups[g] = gr
		}
	}
	detail := fmt.Sprintf("%d rows ≥ k = %d", total.Count, k)
	if len(rv.Suppressed) > 0 {
		detail += fmt.Sprintf("; %d group(s) below k suppressed: %v", len(rv.Suppressed), rv.Suppressed)
	}
	rv.Checks = append(rv.Checks, jobs.Check{Name: "min_count", Passed: len(rv.Suppressed) == 0, Detail: detail})
	rv.Result, err = json.Marshal(res)
	return rv, err
}
