package disclosure

import (
	"errors"

	"github.com/unseen-data/unseen/policy"
)

// Limits are what a node enforces on its own rows of one dataset, after
// the job's filter and before anything is encrypted: the assumptions the
// noise's sensitivity rests on.
type Limits struct {
	// ValueBound is the declared dp.value_bound (0: none): every value that
	// goes into Σx or Σx² is clamped to [−ValueBound, ValueBound].
	// Histogram buckets use the raw value (a count's sensitivity does not
	// depend on it).
	ValueBound int64
	// MaxRowsPerKey is the cap on rows per person (CapPerKey), ≥ 1.
	MaxRowsPerKey int
}

// LimitsFor returns the limits of a node's own dataset. A node applies them
// to every job (DP or not), so that the coordinator's plan, which assumes
// them, holds whatever the job.
func LimitsFor(ds *policy.Dataset) Limits {
	l := Limits{MaxRowsPerKey: 1}
	if ds == nil {
		return l
	}
	l.MaxRowsPerKey = ds.RowsPerKey()
	if ds.DP != nil && ds.DP.ValueBound > 0 {
		l.ValueBound = ds.DP.ValueBound
	}
	return l
}

// PersonKey is the column naming the person a row of ds is about, for the
// per-person row cap and the differencing sketch of an aggregate's input:
// the declared person_key, else the first id column; "" when ds has no id
// column (each row is then its own person).
func PersonKey(ds *policy.Dataset) string {
	if ds == nil {
		return ""
	}
	if ds.PersonKey != "" {
		return ds.PersonKey
	}
	for _, c := range ds.Columns {
		if c.Kind == policy.KindID {
			return c.Name
		}
	}
	return ""
}

// Clamp returns x limited to [−bound, bound]. A bound ≤ 0 (none declared)
// clamps to 0: a value with no declared bound contributes nothing to a
// noised sum. (NewPlan refuses DP jobs that would sum such values.)
func Clamp(x, bound int64) int64 {
	if bound <= 0 {
		return 0
	}
	switch {
	case x > bound:
		return bound
	case x < -bound:
		return -bound
	}
	return x
}

// ClampAll clamps xs in place to [−bound, bound] and returns how many
// values were changed (for the node's audit: never which, nor by how much).
func ClampAll(xs []int64, bound int64) (int, error) {
	if bound <= 0 {
		return 0, errors.New("disclosure: a value bound must be positive")
	}
	n := 0
	for i, x := range xs {
		if c := Clamp(x, bound); c != x {
			xs[i] = c
			n++
		}
	}
	return n, nil
}

// CapPerKey returns the indices of the rows to keep so that no key has more
// than max of them: the first max rows of each key, in the given (file)
// order, so that the choice is deterministic and independent of values.
// keys[i] is row i's person key; max < 1 is taken as 1.
func CapPerKey[K comparable](keys []K, max int) []int {
	if max < 1 {
		max = 1
	}
	seen := make(map[K]int, len(keys))
	keep := make([]int, 0, len(keys))
	for i, k := range keys {
		if seen[k] < max {
			seen[k]++
			keep = append(keep, i)
		}
	}
	return keep
}
