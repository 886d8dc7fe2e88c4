package policy

import "fmt"

// Sizes a homomorphic job can be computed exactly at (compute/he mirrors
// them: he.MaxJobRows and he.MaxValue; a test there keeps them equal).
const (
	// MaxHERows is the most rows one homomorphic result adds, over all of
	// a job's inputs: an aggregate takes at most MaxHERows/len(inputs) rows
	// of each input; an intersection_stats job at most MaxHERows rows of
	// its value input.
	MaxHERows int64 = 1 << 30
	// MaxHEValue is the largest |value| a homomorphic statistic takes.
	MaxHEValue int64 = 1 << 40
)

// HERowShare is the most rows input i of spec may contribute to a
// homomorphic result (0 if it contributes none): MaxHERows split evenly
// among an aggregate's inputs, all of it for an intersection_stats job's
// value input, further bounded by perInputCap when positive (an operator's
// limit, he_max_rows_per_node).
func HERowShare(s *Spec, i int, perInputCap int64) int64 {
	if i < 0 || i >= len(s.Inputs) {
		return 0
	}
	var share int64
	switch s.Type {
	case Aggregate:
		share = MaxHERows / int64(len(s.Inputs))
	case IntersectionStats:
		if s.Inputs[i].Dataset != s.ValueDataset() {
			return 0
		}
		share = MaxHERows
	default:
		return 0
	}
	if perInputCap > 0 {
		share = min(share, perInputCap)
	}
	return share
}

// SizeViolations are the reasons a homomorphic job cannot run on the
// declared sizes of its datasets: an input without a filter whose
// dataset declares more rows (max_rows) than its share of the result
// (HERowShare), or a value dataset whose declared value bound
// (dp.value_bound) passes MaxHEValue. Undeclared sizes, and filtered
// inputs, are checked by the node at run time (on the rows the filter
// leaves). Datasets missing from cat are skipped (a node's own catalog
// holds only its own).
func SizeViolations(cat Catalog, s *Spec, perInputCap int64) []Violation {
	var out []Violation
	if s.Type != Aggregate && s.Type != IntersectionStats {
		return nil
	}
	for i, in := range s.Inputs {
		ds, ok := cat[in.Dataset]
		if !ok {
			continue
		}
		share := HERowShare(s, i, perInputCap)
		if share > 0 && ds.MaxRows > share && in.Filter == "" {
			why := fmt.Sprintf("an intersection_stats job sums at most %d rows of its value input", share)
			if s.Type == Aggregate {
				why = fmt.Sprintf("an aggregate of %d inputs sums at most %d rows of each", len(s.Inputs), share)
				if perInputCap > 0 && share == perInputCap {
					why = fmt.Sprintf("this coordinator sums at most %d rows of each input (he_max_rows_per_node)", share)
				}
			}
			out = append(out, Violation{Rule: "too_many_rows", Dataset: ds.Name,
				Message: fmt.Sprintf("declares up to %d rows (max_rows); %s, so that every total stays exact: filter the input or split the job", ds.MaxRows, why)})
		}
		if col := s.ValueColumn(i); col != "" && ds.DP != nil && ds.DP.ValueBound > MaxHEValue {
			out = append(out, Violation{Rule: "value_range", Dataset: ds.Name, Column: col,
				Message: fmt.Sprintf("declares values up to %d (dp.value_bound); homomorphic statistics take |x| ≤ 2^40 = %d", ds.DP.ValueBound, MaxHEValue)})
		}
	}
	return out
}
