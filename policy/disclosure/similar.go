package disclosure

import (
	"fmt"
	"slices"
	"strings"

	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/filter"
)

// NearDuplicate reports whether two specs ask nearly the same question of
// nearly the same rows, so that subtracting their results could isolate
// the few rows in between (differencing): the same type, the same inputs
// (datasets and keys), the same value and group_by columns, and filters
// that differ only by added or removed terms (conjuncts, or disjuncts) or
// by changed literals, in at least one input; or the same rows cut into
// different histogram bins. why says what differs, for the reviewer.
//
// It only looks at the specs: whether the rows really differ by few people
// is for the nodes' input sketches to say (iblt).
func NearDuplicate(a, b policy.Spec) (near bool, why string) {
	if a.Type != b.Type {
		return false, "different job types"
	}
	if !sameRef(a.Value, b.Value) || !sameRef(a.GroupBy, b.GroupBy) {
		return false, "different value or group_by columns"
	}
	ins := func(s policy.Spec) map[string]policy.Input {
		m := make(map[string]policy.Input, len(s.Inputs))
		for _, in := range s.Inputs {
			m[in.Dataset] = in
		}
		return m
	}
	ia, ib := ins(a), ins(b)
	if len(ia) != len(ib) {
		return false, "different inputs"
	}
	var diffs []string
	names := make([]string, 0, len(ia))
	for n := range ia {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		x, ok := ib[n]
		if !ok || x.Key != ia[n].Key {
			return false, "different inputs"
		}
		fa, err1 := filter.Parse(ia[n].Filter)
		fb, err2 := filter.Parse(x.Filter)
		if err1 != nil || err2 != nil {
			return false, "a filter does not parse"
		}
		if str(fa) == str(fb) {
			continue
		}
		d, ok := filterDiff(fa, fb)
		if !ok {
			return false, fmt.Sprintf("the filters on %s differ in more than added, removed or changed terms", n)
		}
		if d != "" { // "" : the same terms in another order
			diffs = append(diffs, n+": "+d)
		}
	}
	if len(diffs) == 0 {
		if has(a.Stats, "histogram") && has(b.Stats, "histogram") && !slices.Equal(a.Bins, b.Bins) {
			return true, "the same rows with different histogram bins"
		}
		return false, "the same question"
	}
	return true, "filters differ only by " + strings.Join(diffs, "; ")
}

func sameRef(a, b *policy.ColumnRef) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func str(e filter.Expr) string {
	if e == nil {
		return ""
	}
	return e.String()
}

// filterDiff compares two filters as sets of top-level conjuncts, and
// failing that as sets of top-level disjuncts.
func filterDiff(a, b filter.Expr) (string, bool) {
	if d, ok := termDiff(terms(a, true), terms(b, true), "AND"); ok {
		return d, true
	}
	return termDiff(terms(a, false), terms(b, false), "OR")
}

// terms splits e at its top-level AND (or OR); nil has no terms.
func terms(e filter.Expr, and bool) []filter.Expr {
	switch x := e.(type) {
	case nil:
		return nil
	case filter.And:
		if and {
			return x.Terms
		}
	case filter.Or:
		if !and {
			return x.Terms
		}
	}
	return []filter.Expr{e}
}

// termDiff matches the terms of a and b: equal terms, then pairs that
// differ only in literals; what is left must all be on one side.
func termDiff(a, b []filter.Expr, op string) (string, bool) {
	left := map[string]int{}
	for _, t := range a {
		left[t.String()]++
	}
	var onlyB []filter.Expr
	for _, t := range b {
		if left[t.String()] > 0 {
			left[t.String()]--
		} else {
			onlyB = append(onlyB, t)
		}
	}
	var onlyA []filter.Expr
	for _, t := range a {
		if left[t.String()] > 0 {
			left[t.String()]--
			onlyA = append(onlyA, t)
		}
	}
	var parts []string
	// Pair terms of the same shape: a changed literal.
	for i := 0; i < len(onlyA); i++ {
		for j := 0; j < len(onlyB); j++ {
			if shape(onlyA[i]) == shape(onlyB[j]) {
				parts = append(parts, fmt.Sprintf("changed literal: %s → %s", onlyA[i], onlyB[j]))
				onlyA = slices.Delete(onlyA, i, i+1)
				onlyB = slices.Delete(onlyB, j, j+1)
				i--
				break
			}
		}
	}
	if len(onlyA) > 0 && len(onlyB) > 0 {
		return "", false
	}
	for _, t := range onlyA {
		parts = append(parts, fmt.Sprintf("removed %s term: %s", op, t))
	}
	for _, t := range onlyB {
		parts = append(parts, fmt.Sprintf("added %s term: %s", op, t))
	}
	return strings.Join(parts, ", "), true
}

// shape is an expression's canonical form with every literal replaced by
// "?" (an IN list by its length), so that two terms differing only in
// literals have the same shape.
func shape(e filter.Expr) string {
	switch x := e.(type) {
	case filter.Compare:
		return x.Column + " " + x.Op.String() + " ?"
	case filter.In:
		return fmt.Sprintf("%s IN (%d)", x.Column, len(x.Values))
	case filter.Not:
		return "NOT (" + shape(x.X) + ")"
	case filter.And:
		p := make([]string, len(x.Terms))
		for i, t := range x.Terms {
			p[i] = shape(t)
		}
		return "(" + strings.Join(p, " AND ") + ")"
	case filter.Or:
		p := make([]string, len(x.Terms))
		for i, t := range x.Terms {
			p[i] = shape(t)
		}
		return "(" + strings.Join(p, " OR ") + ")"
	}
	return "?"
}
