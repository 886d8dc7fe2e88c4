package node

// What a homomorphic job may read at this node and how its values are laid
// out in slots: which stats need which vectors, the columns the node's own
// policy allows, and the value node's slot layout for intersection_stats
// (range checks and the slot values themselves: he_encode.go).

import (
	"context"
	"errors"
	"slices"
	"sort"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/disclosure"
)

// maxGroups is the most groups one aggregate can have: counts and sums of
// every group share one Sums ciphertext, two slots per group.
func maxGroups() int { return he.Sums().Slots() / 2 }

// heNeeds says which vectors a job's stats need.
type heNeeds struct{ value, squares, hist bool }

// statNeeds is the node's reading of a job's stats (the coordinator has its
// own, in coordinator/hefed; the node trusts only this one).
func statNeeds(spec *policy.Spec) (heNeeds, error) {
	var n heNeeds
	for _, st := range spec.Stats {
		switch st {
		case "count":
		case "sum", "mean":
			n.value = true
		case "variance":
			n.value, n.squares = true, true
		case "histogram":
			n.value, n.hist = true, spec.Type == policy.Aggregate
		default:
			return n, refuse(KindBadRequest, "unsupported", "stat %q is not computed homomorphically", st)
		}
	}
	return n, nil
}

// heColumn checks that ref names a column of this node's dataset ds that its
// owner allows for use u, whatever the coordinator checked: a value must be
// an int column; a group-by column must not be an id column, since group
// labels leave the node.
func heColumn(ds *policy.Dataset, ref *policy.ColumnRef, u policy.Use) (string, error) {
	if ref.Dataset != "" && ref.Dataset != ds.Name {
		return "", refuse(KindBadRequest, "bad_request", "the %s column belongs to %s, not to this node's input %s", u, ref.Dataset, ds.Name)
	}
	c, ok := ds.Column(ref.Column)
	if !ok {
		return "", refuse(KindForbidden, "policy_violation", "dataset %s has no column %s", ds.Name, ref.Column)
	}
	if !c.Allows(u) {
		return "", refuse(KindForbidden, "policy_violation", "column %s of %s may not be used as %s", c.Name, ds.Name, u)
	}
	if u == policy.UseValue && c.Kind != policy.KindInt {
		return "", refuse(KindForbidden, "policy_violation", "column %s of %s is not an int column and cannot be a value", c.Name, ds.Name)
	}
	if u == policy.UseGroupBy && c.Kind == policy.KindID {
		return "", refuse(KindForbidden, "policy_violation", "column %s of %s holds ID numbers and cannot be a group: group labels leave the node", c.Name, ds.Name)
	}
	return c.Name, nil
}

func distinctSorted(v []string) []string {
	out := slices.Clone(v)
	slices.Sort(out)
	return slices.Compact(out)
}

// ---- intersection_stats: the value node's layout --------------------------

// heUnit is one slot: the rows of one key (one PSI position) in one group,
// totalled exactly (he_encode.go lays the totals out in lanes).
type heUnit struct {
	pos int
	acc he.Acc
}

type heChunk struct {
	group int
	units []heUnit
}

// heLayout is the value node's slot layout: group-major, each group filling
// whole ciphertexts, keys in PSI-list order within a group.
type heLayout struct {
	groups  []string
	chunks  []heChunk
	squares bool // whether units carry Σx²
}

// maxLayouts bounds the cached he/values layouts (a new PSI session, e.g. a
// new attempt, gets its own entry; old ones are evicted).
const maxLayouts = 8

// layout returns the cached layout of a session, or computes and caches it.
func (s *Service) layout(ss *session, tbl *Table, ds *policy.Dataset, valueCol, groupCol string, squares bool) (*heLayout, error) {
	h := s.he
	h.mu.Lock()
	l, ok := h.layouts[ss]
	h.mu.Unlock()
	if ok && l.squares == squares {
		return l, nil
	}
	l, err := valueLayout(ss, tbl, ds, valueCol, groupCol, squares)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for k := range h.layouts {
		if len(h.layouts) < maxLayouts {
			break
		}
		delete(h.layouts, k)
	}
	h.layouts[ss] = l
	return l, nil
}

// valueLayout derives the layout of an intersection_stats job from the
// prepared PSI list and the input's rows. It is a function of the data and
// the list order only, so every page of a request sees the same layout.
func valueLayout(ss *session, tbl *Table, ds *policy.Dataset, valueCol, groupCol string, squares bool) (*heLayout, error) {
	in := ss.spec.Inputs[ss.input]
	ctx := context.Background()
	// The input's selected rows with the key, value and group columns only
	// (O(rows) for the step); the list stays on disk.
	rs, err := tbl.rows(ctx, in.Filter, disclosure.PersonKey(ds), in.Key, valueCol, groupCol)
	if err != nil {
		return nil, jobError(err)
	}
	// Disclosure control (disclosure.go): at most max_rows_per_key rows per
	// person (the join key names the person).
	rows, _, err := capRows(rs, ds, rs.all(), in.Key)
	if err != nil {
		return nil, err
	}
	// Each row's position in the PSI list: its key's, found by one pass
	// over the list on disk against the rows' distinct keys.
	posOf := make(map[string]int, len(rows))
	for _, i := range rows {
		if v, _ := rs.Value(i, in.Key); !v.IsNull() {
			posOf[v.Str()] = -1
		}
	}
	if err := ss.party.EachID(ctx, func(p int, id []byte) error {
		if _, ok := posOf[string(id)]; ok {
			posOf[string(id)] = p
		}
		return nil
	}); err != nil {
		return nil, internal(err)
	}
	used := make([]int, 0, len(rows))
	pos := make([]int, 0, len(rows))
	for _, i := range rows {
		v, err := rs.Value(i, in.Key)
		if err != nil {
			return nil, refuse(KindBadRequest, "bad_input", "%s: %v", ds.Name, err)
		}
		if v.IsNull() { // not in the PSI list either
			continue
		}
		p := posOf[v.Str()]
		if p < 0 {
			return nil, errors.New("node: a filtered row's key is missing from the prepared PSI list")
		}
		used = append(used, i)
		pos = append(pos, p)
	}
	// The value node alone contributes: its rows bound every total.
	if err := checkUnits(len(used), ds.Name); err != nil {
		return nil, err
	}
	var xs []int64
	if valueCol != "" {
		if xs, err = rs.Ints(used, valueCol); err != nil {
			return nil, refuse(KindBadRequest, "bad_input", "%s: %v", ds.Name, err)
		}
		// Disclosure control (disclosure.go): clamped to dp.value_bound.
		xs, _ = clampValues(ds, xs)
	}
	labels := make([]string, len(used))
	if groupCol != "" {
		if labels, err = rs.Strings(used, groupCol); err != nil {
			return nil, refuse(KindBadRequest, "bad_input", "%s: %v", ds.Name, err)
		}
	}
	groups := distinctSorted(labels)
	if len(groups) == 0 {
		groups = []string{""}
	}
	type key struct{ g, pos int }
	idx := map[key]int{}
	units := make([][]heUnit, len(groups))
	for k := range used {
		g, _ := slices.BinarySearch(groups, labels[k])
		kk := key{g, pos[k]}
		j, ok := idx[kk]
		if !ok {
			j = len(units[g])
			idx[kk] = j
			units[g] = append(units[g], heUnit{pos: pos[k]})
		}
		u := &units[g][j]
		if xs == nil {
			err = u.acc.AddCount()
		} else {
			err = u.acc.Add(xs[k])
		}
		if err != nil {
			return nil, valueRefusal(err, ds.Name, valueCol, rs.Where(used[k]))
		}
	}
	slots := he.Sums().Slots()
	l := &heLayout{groups: groups, squares: squares}
	for g, us := range units {
		sort.Slice(us, func(a, b int) bool { return us[a].pos < us[b].pos })
		for off := 0; off < len(us); off += slots {
			l.chunks = append(l.chunks, heChunk{group: g, units: us[off:min(off+slots, len(us))]})
		}
	}
	return l, nil
}
