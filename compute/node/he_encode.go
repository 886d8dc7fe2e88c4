package node

// How a homomorphic job's values become plaintext vectors at this node:
// exact per-group (aggregate) or per-key (intersection_stats) totals in
// he.Acc, then residues and floor hints in slots (compute/he, "Exact Σx
// and Σx²"). Rows are read elsewhere (he_aggregate.go, he_layout.go); this
// file only takes values one row at a time, so it does not care how they
// were read.

import (
	"errors"
	"fmt"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/policy"
)

// heValueColumn checks input's value column in the job (its own,
// inputs[i].value, or the spec's value) against this node's dataset ds,
// whatever the coordinator checked (heColumn).
func heValueColumn(ds *policy.Dataset, spec *policy.Spec, input int) (string, error) {
	col := spec.ValueColumn(input)
	if col == "" {
		return "", refuse(KindBadRequest, "bad_request", "the job names no value column for its input %d (%s)", input, ds.Name)
	}
	return heColumn(ds, &policy.ColumnRef{Dataset: ds.Name, Column: col}, policy.UseValue)
}

// rowShare is the most rows this node may add to one result of an
// aggregate of `parties` inputs whose rows are bounded by maxRows in all:
// its equal share, which keeps every total within he.MaxJobRows.
func rowShare(maxRows int64, parties int) (int64, error) {
	if parties < 1 || parties > he.MaxContributors {
		return 0, refuse(KindBadRequest, "bad_request", "an aggregate has 1 to %d inputs, not %d", he.MaxContributors, parties)
	}
	if maxRows < int64(parties) || maxRows > he.MaxJobRows {
		return 0, refuse(KindBadRequest, "bad_request", "max_rows %d must be in [%d, %d]", maxRows, parties, he.MaxJobRows)
	}
	return maxRows / int64(parties), nil
}

// valueRefusal turns an he.Acc refusal of one row into the node's error:
// it names the dataset, the column and the row's position (a CSV line, a
// database row's ordinal in the scan), never the value, which is a record.
func valueRefusal(err error, dataset, col, where string) error {
	switch {
	case errors.Is(err, he.ErrValueRange):
		return refuse(KindBadRequest, "out_of_range",
			"dataset %s, column %s, %s: value out of range: homomorphic statistics take |x| ≤ 2^%d = %d; the column cannot be aggregated as it stands",
			dataset, col, where, he.MaxValueBits, he.MaxValue)
	case errors.Is(err, he.ErrRowRange):
		return refuse(KindBadRequest, "too_many_rows", "dataset %s: more than %d rows in one total", dataset, he.MaxJobRows)
	}
	return err
}

// aggContribution is one node's aggregate, group by group, exactly.
type aggContribution struct {
	spec  *policy.Spec
	value bool // Σx (and the histogram) asked
	sq    bool // Σx² asked
	b     int  // histogram buckets per group
	accs  []he.Acc
	hist  []int64 // group-major bucket counts
}

func newAggContribution(spec *policy.Spec, groups, buckets int, value, squares bool) *aggContribution {
	return &aggContribution{spec: spec, value: value, sq: squares, b: buckets, accs: make([]he.Acc, groups), hist: make([]int64, groups*buckets)}
}

// add adds one row of group g with value x (ignored without a value) to
// the sums, and counts raw (x before clamping to the dataset's value bound)
// in its histogram bucket. It refuses (he.ErrValueRange, he.ErrRowRange)
// and changes nothing.
func (a *aggContribution) add(g int, x, raw int64) error {
	if !a.value {
		return a.accs[g].AddCount()
	}
	if err := a.accs[g].Add(x); err != nil {
		return err
	}
	if a.b > 0 {
		a.hist[g*a.b+a.spec.Bucket(raw)]++
	}
	return nil
}

// aggSlotsPerGroup is how many Sums slots one group takes.
func aggSlotsPerGroup(value bool, buckets int) int {
	if !value {
		return 1
	}
	return 3 + buckets
}

// vectors lays the contribution out (nodeapi.HEAggregateResponse): the
// Sums vector [counts | Σx mod T_s | histogram | ⌊Σx/2^39⌋] and, with the
// squares, the Squares vector [Σx² mod T_q | ⌊Σx²/2^55⌋]. Every slot is
// within ±(T−1)/2: counts and hints by he's bounds, residues by
// definition.
func (a *aggContribution) vectors() (sums, squares []int64) {
	G := len(a.accs)
	if !a.value {
		sums = make([]int64, G)
		for g := range a.accs {
			sums[g] = a.accs[g].N()
		}
		return sums, nil
	}
	ps, pq := he.Sums(), he.Squares()
	sums = make([]int64, G*aggSlotsPerGroup(true, a.b))
	hint := 2*G + G*a.b
	for g := range a.accs {
		acc := &a.accs[g]
		sums[g] = acc.N()
		sums[G+g] = acc.SumMod(ps)
		sums[hint+g] = acc.SumFloor(he.AggregateSumShift)
	}
	copy(sums[2*G:], a.hist)
	if a.sq {
		squares = make([]int64, 2*G)
		for g := range a.accs {
			squares[g] = a.accs[g].SumSqMod(pq)
			squares[G+g] = a.accs[g].SumSqFloor(he.AggregateSquareShift)
		}
	}
	return sums, squares
}

// laneVectors are an intersection_stats chunk's plaintext vectors, one per
// wanted lane (nil otherwise): slot i is lane l of units[i]'s rows.
func laneVectors(units []heUnit, value, squares bool) [he.ISLanes][]int64 {
	var out [he.ISLanes][]int64
	for l := range he.ISLanes {
		if !l.Wanted(value, squares) {
			continue
		}
		v := make([]int64, len(units))
		for i := range units {
			v[i] = l.Slot(&units[i].acc)
		}
		out[l] = v
	}
	return out
}

// checkUnits bounds an intersection_stats layout: at most he.MaxJobRows
// rows in all (each a term of the floor hint's window).
func checkUnits(rows int, dataset string) error {
	if int64(rows) > he.MaxJobRows {
		return refuse(KindBadRequest, "too_many_rows", "dataset %s: %d rows after the filter; one intersection_stats job sums at most %d", dataset, rows, he.MaxJobRows)
	}
	return nil
}

func describeShare(share, maxRows int64) string {
	return fmt.Sprintf("its share (%d) of the job's row bound %d", share, maxRows)
}
