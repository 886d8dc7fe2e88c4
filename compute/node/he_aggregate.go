package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/he/ceremony"
	"github.com/unseen-data/unseen/compute/he/ledger"
	"github.com/unseen-data/unseen/compute/he/release"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
)

// maxRowBound bounds HEAggregateRequest.MaxRows (beyond it no value of any
// size could be summed safely anyway).
const maxRowBound = 1 << 40

// maxGroups is the most groups one aggregate can have: counts and sums of
// every group share one Sums ciphertext, two slots per group.
func maxGroups() int { return he.Sums().Slots() / 2 }

// heNeeds says which vectors a job's stats need.
type heNeeds struct{ value, squares, hist bool }

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
			return n, refuse(http.StatusBadRequest, "unsupported", "stat %q is not computed homomorphically", st)
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
		return "", refuse(http.StatusBadRequest, "bad_request", "the %s column belongs to %s, not to this node's input %s", u, ref.Dataset, ds.Name)
	}
	c, ok := ds.Column(ref.Column)
	if !ok {
		return "", refuse(http.StatusForbidden, "policy_violation", "dataset %s has no column %s", ds.Name, ref.Column)
	}
	if !c.Allows(u) {
		return "", refuse(http.StatusForbidden, "policy_violation", "column %s of %s may not be used as %s", c.Name, ds.Name, u)
	}
	if u == policy.UseValue && c.Kind != policy.KindInt {
		return "", refuse(http.StatusForbidden, "policy_violation", "column %s of %s is not an int column and cannot be a value", c.Name, ds.Name)
	}
	if u == policy.UseGroupBy && c.Kind == policy.KindID {
		return "", refuse(http.StatusForbidden, "policy_violation", "column %s of %s holds ID numbers and cannot be a group: group labels leave the node", c.Name, ds.Name)
	}
	return c.Name, nil
}

// heInput checks a job-bound request against the node's own policy and
// returns the input's table and declaration with the audit detail. Refusals
// are audited.
func (s *Server) heInput(ctx context.Context, step nodeapi.Step, h nodeapi.Header, spec *policy.Spec, req policy.Requester, input int, typ policy.JobType) (*Table, policy.Input, *policy.Dataset, map[string]string, error) {
	detail := s.jobDetail(spec, req, h.Attempt)
	detail["input"] = fmt.Sprint(input)
	if input < 0 || input >= len(spec.Inputs) {
		return nil, policy.Input{}, nil, detail, s.refused(ctx, step, h.Job, nil, detail, refuse(http.StatusBadRequest, "bad_request", "input %d is not in the spec", input))
	}
	in := spec.Inputs[input]
	s.inputDetail(detail, spec, in)
	ds := []string{in.Dataset}
	tbl, ok := s.tables[in.Dataset]
	if !ok {
		return nil, in, nil, detail, s.refused(ctx, step, h.Job, ds, detail, refuse(http.StatusNotFound, "unknown_dataset", "dataset %q is not held by node %s", in.Dataset, s.cfg.Department))
	}
	if spec.Type != typ {
		return nil, in, nil, detail, s.refused(ctx, step, h.Job, ds, detail, refuse(http.StatusForbidden, "unsupported", "job type %s is not served by %s", spec.Type, step))
	}
	// The node's own policy decides, whatever the coordinator checked.
	dec := policy.Decide(s.catalog, spec, req, true)
	if !dec.Allow {
		return nil, in, nil, detail, s.refused(ctx, step, h.Job, ds, detail, refuse(http.StatusForbidden, "policy_violation", "%s", dec.Error()))
	}
	detail["policy_version"] = dec.Versions[in.Dataset]
	return tbl, in, s.catalog[in.Dataset], detail, nil
}

// ---- range checks ---------------------------------------------------------

// checkRange refuses a value that could wrap modulo T once up to maxTerms
// such values are summed (he.CheckRange), naming the dataset, the column
// and the CSV line — never the value, which is a record.
func (t *Table) checkRange(ps *he.ParamSet, rows []int, vals []int64, maxTerms int, dataset, col string) error {
	slots := ps.Slots()
	for off := 0; off < len(vals); off += slots {
		err := ps.CheckRange(vals[off:min(off+slots, len(vals))], maxTerms)
		var re *he.RangeError
		if errors.As(err, &re) {
			return refuse(http.StatusBadRequest, "out_of_range",
				"dataset %s, column %s, line %d: value out of range: |x| must be at most %d so that a sum over up to %d rows cannot wrap modulo the plaintext modulus; the column cannot be aggregated as it stands",
				dataset, col, t.t.Line(rows[off+re.Index]), re.Limit, maxTerms)
		}
		if err != nil {
			return refuse(http.StatusBadRequest, "out_of_range", "dataset %s, column %s: %v", dataset, col, err)
		}
	}
	return nil
}

func isqrt(n int64) int64 {
	if n <= 0 {
		return 0
	}
	r := int64(math.Sqrt(float64(n))) // n ≤ 2^62 here: no overflow below
	for r*r > n {
		r--
	}
	for (r+1)*(r+1) <= n {
		r++
	}
	return r
}

// squares returns x² for the variance, refusing (before squaring, so that
// nothing overflows int64) any x whose square could wrap modulo T of ps in a
// sum over maxTerms rows.
func (t *Table) squares(ps *he.ParamSet, rows []int, xs []int64, maxTerms int, dataset, col string) ([]int64, error) {
	lim, err := ps.InputLimit(maxTerms)
	if err != nil {
		return nil, err
	}
	root := isqrt(lim)
	out := make([]int64, len(xs))
	for i, x := range xs {
		if x > root || x < -root {
			return nil, refuse(http.StatusBadRequest, "out_of_range",
				"dataset %s, column %s, line %d: value out of range for the variance: |x| must be at most %d so that a sum of squares over up to %d rows cannot wrap modulo the plaintext modulus; the column cannot be aggregated as it stands",
				dataset, col, t.t.Line(rows[i]), root, maxTerms)
		}
		out[i] = x * x
	}
	return out, t.checkRange(ps, rows, out, maxTerms, dataset, col+" (squared)")
}

// encryptSealed encrypts each vector under keys' collective key (each
// goroutine with its own ShallowCopy of the encryptor) and envelopes it.
// maxTerms is passed to Encrypt's own range check.
func (s *Server) encryptSealed(keys *ceremony.NodeKeys, vecs [][]int64, maxTerms int) ([][]byte, error) {
	enc, err := he.NewEncryptor(keys.PublicKey())
	if err != nil {
		return nil, err
	}
	cer := keys.Setup().CeremonyID()
	out := make([][]byte, len(vecs))
	g := new(errgroup.Group)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range vecs {
		if vecs[i] == nil {
			continue
		}
		g.Go(func() error {
			ct, err := enc.ShallowCopy().Encrypt(vecs[i], maxTerms)
			if err != nil {
				return err
			}
			out[i], err = s.he.sealCiphertext(ct, cer)
			return err
		})
	}
	return out, g.Wait()
}

// ---- aggregate ------------------------------------------------------------

func distinctSorted(v []string) []string {
	out := slices.Clone(v)
	slices.Sort(out)
	return slices.Compact(out)
}

func (s *Server) heGroups(r *http.Request) (any, error) {
	var req nodeapi.HEGroupsRequest
	if err := decode(r, &req, nodeapi.StepHEGroups, &req.Header); err != nil {
		return nil, err
	}
	ctx := r.Context()
	tbl, in, ds, detail, err := s.heInput(ctx, nodeapi.StepHEGroups, req.Header, &req.Spec, req.Requester, req.Input, policy.Aggregate)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (any, error) {
		return nil, s.refused(ctx, nodeapi.StepHEGroups, req.Job, []string{ds.Name}, detail, err)
	}
	if req.Spec.GroupBy == nil {
		return fail(refuse(http.StatusBadRequest, "bad_request", "the job has no group_by"))
	}
	col, err := heColumn(ds, req.Spec.GroupBy, policy.UseGroupBy)
	if err != nil {
		return fail(err)
	}
	rows, err := tbl.Select(in.Filter)
	if err != nil {
		return fail(refuse(http.StatusBadRequest, "bad_input", "%v", err))
	}
	labels, err := tbl.t.Strings(rows, col)
	if err != nil {
		return fail(refuse(http.StatusBadRequest, "bad_input", "%s: %v", ds.Name, err))
	}
	groups := distinctSorted(labels)
	if len(groups) > maxGroups() {
		return fail(refuse(http.StatusBadRequest, "too_many_groups", "column %s of %s has more than %d groups", col, ds.Name, maxGroups()))
	}
	detail["group_by"] = col
	detail["groups"] = fmt.Sprint(len(groups))
	if _, err := s.record(ctx, string(nodeapi.StepHEGroups), req.Job, []string{ds.Name}, detail); err != nil {
		return nil, err
	}
	return nodeapi.HEGroupsResponse{Groups: groups}, nil
}

func (s *Server) heAggregate(r *http.Request) (any, error) {
	var req nodeapi.HEAggregateRequest
	if err := decode(r, &req, nodeapi.StepHEAggregate, &req.Header); err != nil {
		return nil, err
	}
	ctx := r.Context()
	tbl, in, ds, detail, err := s.heInput(ctx, nodeapi.StepHEAggregate, req.Header, &req.Spec, req.Requester, req.Input, policy.Aggregate)
	if err != nil {
		return nil, err
	}
	dsn := []string{ds.Name}
	fail := func(err error) (any, error) {
		return nil, s.refused(ctx, nodeapi.StepHEAggregate, req.Job, dsn, detail, err)
	}
	need, err := statNeeds(&req.Spec)
	if err != nil {
		return fail(err)
	}
	parties := int64(len(req.Spec.Inputs))
	if req.MaxRows < parties || req.MaxRows > maxRowBound {
		return fail(refuse(http.StatusBadRequest, "bad_request", "max_rows %d must be in [%d, %d]", req.MaxRows, parties, int64(maxRowBound)))
	}
	var valueCol, groupCol string
	if need.value {
		if valueCol, err = heColumn(ds, req.Spec.Value, policy.UseValue); err != nil {
			return fail(err)
		}
	}
	groups := []string{""}
	if req.Spec.GroupBy != nil {
		if groupCol, err = heColumn(ds, req.Spec.GroupBy, policy.UseGroupBy); err != nil {
			return fail(err)
		}
		if len(req.Groups) == 0 || len(req.Groups) > maxGroups() || !slices.IsSorted(req.Groups) || len(slices.Compact(slices.Clone(req.Groups))) != len(req.Groups) {
			return fail(refuse(http.StatusBadRequest, "bad_request", "groups must be 1..%d distinct sorted labels", maxGroups()))
		}
		groups = req.Groups
	} else if len(req.Groups) != 0 {
		return fail(refuse(http.StatusBadRequest, "bad_request", "groups given for a job without group_by"))
	}
	B := 0 // histogram buckets per group, after the counts and sums
	if need.hist {
		B = req.Spec.Buckets()
		if len(groups)*(2+B) > he.Sums().Slots() {
			return fail(refuse(http.StatusBadRequest, "too_many_groups", "%d groups × %d histogram buckets do not fit one ciphertext", len(groups), B))
		}
	}
	rows, err := tbl.Select(in.Filter)
	if err != nil {
		return fail(refuse(http.StatusBadRequest, "bad_input", "%v", err))
	}
	// Each node may hold at most its share of the job's row bound, so that
	// the bound the values are checked against holds for the total.
	share := req.MaxRows / parties
	if int64(len(rows)) > share {
		return fail(refuse(http.StatusBadRequest, "too_many_rows", "dataset %s has more rows after the filter than its share (%d) of the job's row bound %d", ds.Name, share, req.MaxRows))
	}
	maxTerms := int(req.MaxRows)
	gidx := make([]int, len(rows))
	if groupCol != "" {
		labels, err := tbl.t.Strings(rows, groupCol)
		if err != nil {
			return fail(refuse(http.StatusBadRequest, "bad_input", "%s: %v", ds.Name, err))
		}
		for k, l := range labels {
			g, ok := slices.BinarySearch(groups, l)
			if !ok {
				return fail(refuse(http.StatusBadRequest, "unknown_group", "a row of %s (line %d) has a group that is not in the job's group list", ds.Name, tbl.t.Line(rows[k])))
			}
			gidx[k] = g
		}
	}
	var xs, xx []int64
	if valueCol != "" {
		if xs, err = tbl.t.Ints(rows, valueCol); err != nil {
			return fail(refuse(http.StatusBadRequest, "bad_input", "%s: %v", ds.Name, err))
		}
		if err := tbl.checkRange(he.Sums(), rows, xs, maxTerms, ds.Name, valueCol); err != nil {
			return fail(err)
		}
		if need.squares {
			if xx, err = tbl.squares(he.Squares(), rows, xs, maxTerms, ds.Name, valueCol); err != nil {
				return fail(err)
			}
		}
	}
	G := len(groups)
	sums := make([]int64, 2*G+G*B) // counts, then Σx, then bucket counts group-major
	var sq []int64
	if need.squares {
		sq = make([]int64, G)
	}
	for k, g := range gidx {
		sums[g]++
		if xs != nil {
			sums[G+g] += xs[k]
		}
		if B > 0 {
			sums[2*G+g*B+req.Spec.Bucket(xs[k])]++
		}
		if sq != nil {
			sq[g] += xx[k]
		}
	}
	if !need.value {
		sums = sums[:G]
	}
	sumsKeys, err := s.he.keysFor(he.NameSums)
	if err != nil {
		return fail(err)
	}
	var sqKeys *ceremony.NodeKeys
	if need.squares {
		if sqKeys, err = s.he.keysFor(he.NameSquares); err != nil {
			return fail(err)
		}
	}
	detail["rows"] = fmt.Sprint(len(rows))
	detail["groups"] = fmt.Sprint(G)
	detail["max_rows"] = fmt.Sprint(req.MaxRows)
	detail["ceremony"] = sumsKeys.Setup().CeremonyID()
	if _, err := s.record(ctx, string(nodeapi.StepHEAggregate), req.Job, dsn, detail); err != nil {
		return nil, err
	}
	// Each slot is this node's part of a total over len(inputs) nodes.
	out := nodeapi.HEAggregateResponse{BelowK: len(rows) < ds.EffectiveMinCount()}
	cts, err := s.encryptSealed(sumsKeys, [][]int64{sums}, int(parties))
	if err != nil {
		return nil, err
	}
	out.Sums = cts[0]
	if sqKeys != nil {
		if cts, err = s.encryptSealed(sqKeys, [][]int64{sq}, int(parties)); err != nil {
			return nil, err
		}
		out.Squares = cts[0]
	}
	return out, nil
}

// ---- intersection_stats: the value node -----------------------------------

// heUnit is one slot: the rows of one key (one PSI position) in one group.
type heUnit struct {
	pos        int
	n, sum, sq int64
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

// layout returns the cached layout of a session, or computes and caches it.
func (s *Server) layout(ss *session, tbl *Table, ds *policy.Dataset, valueCol, groupCol string, squares bool) (*heLayout, error) {
	h := s.he
	h.mu.Lock()
	l, ok := h.layouts[ss]
	h.mu.Unlock()
	if ok && l.squares == squares {
		return l, nil
	}
	l, err := s.valueLayout(ss, tbl, ds, valueCol, groupCol, squares)
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
func (s *Server) valueLayout(ss *session, tbl *Table, ds *policy.Dataset, valueCol, groupCol string, squares bool) (*heLayout, error) {
	in := ss.spec.Inputs[ss.input]
	rows, err := tbl.Select(in.Filter)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "bad_input", "%v", err)
	}
	n, _ := ss.party.Len(context.Background())
	posOf := make(map[string]int, n)
	for p := range n {
		posOf[string(ss.party.IDAt(p))] = p
	}
	used := make([]int, 0, len(rows))
	pos := make([]int, 0, len(rows))
	for _, i := range rows {
		v, err := tbl.t.Value(i, in.Key)
		if err != nil {
			return nil, refuse(http.StatusBadRequest, "bad_input", "%s: %v", ds.Name, err)
		}
		if v.IsNull() { // not in the PSI list either
			continue
		}
		p, ok := posOf[v.Str()]
		if !ok {
			return nil, errors.New("node: a filtered row's key is missing from the prepared PSI list")
		}
		used = append(used, i)
		pos = append(pos, p)
	}
	// The value node alone contributes, so the exact row count bounds every
	// total (count, Σx, Σx² over any subset of rows).
	maxTerms := max(1, len(used))
	var xs, xx []int64
	if valueCol != "" {
		if xs, err = tbl.t.Ints(used, valueCol); err != nil {
			return nil, refuse(http.StatusBadRequest, "bad_input", "%s: %v", ds.Name, err)
		}
		if err := tbl.checkRange(he.Sums(), used, xs, maxTerms, ds.Name, valueCol); err != nil {
			return nil, err
		}
		if squares {
			if xx, err = tbl.squares(he.Squares(), used, xs, maxTerms, ds.Name, valueCol); err != nil {
				return nil, err
			}
		}
	}
	labels := make([]string, len(used))
	if groupCol != "" {
		if labels, err = tbl.t.Strings(used, groupCol); err != nil {
			return nil, refuse(http.StatusBadRequest, "bad_input", "%s: %v", ds.Name, err)
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
		u.n++
		if xs != nil {
			u.sum += xs[k]
		}
		if xx != nil {
			u.sq += xx[k]
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

func (s *Server) heValues(r *http.Request) (any, error) {
	var req nodeapi.HEValuesRequest
	if err := decode(r, &req, nodeapi.StepHEValues, &req.Header); err != nil {
		return nil, err
	}
	ss, err := s.lookup(req.Header)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	spec := ss.spec
	detail := map[string]string{"purpose": spec.Purpose, "attempt": fmt.Sprint(req.Attempt), "offset": fmt.Sprint(req.Offset), "count": fmt.Sprint(req.Count), "squares": fmt.Sprint(req.Squares)}
	dsn := []string{ss.dataset}
	fail := func(err error) (any, error) {
		return nil, s.refused(ctx, nodeapi.StepHEValues, req.Job, dsn, detail, err)
	}
	if spec.Type != policy.IntersectionStats {
		return fail(refuse(http.StatusForbidden, "unsupported", "job %s is not an intersection_stats job", req.Job))
	}
	valueDS := spec.Inputs[0].Dataset // count only: rows of the first input
	if spec.Value != nil {
		valueDS = spec.Value.Dataset
	}
	if ss.dataset != valueDS {
		return fail(refuse(http.StatusForbidden, "not_value_input", "job %s takes its values from %s, not from this node's input %s", req.Job, valueDS, ss.dataset))
	}
	need, err := statNeeds(&spec)
	if err != nil {
		return fail(err)
	}
	if req.Squares && !need.squares {
		return fail(refuse(http.StatusForbidden, "not_asked", "squares are computed only when the job asks for the variance"))
	}
	ds := s.catalog[ss.dataset]
	tbl := s.tables[ss.dataset]
	var valueCol, groupCol string
	if need.value {
		if valueCol, err = heColumn(ds, spec.Value, policy.UseValue); err != nil {
			return fail(err)
		}
	}
	if spec.GroupBy != nil {
		if groupCol, err = heColumn(ds, spec.GroupBy, policy.UseGroupBy); err != nil {
			return fail(err)
		}
	}
	layout, err := s.layout(ss, tbl, ds, valueCol, groupCol, req.Squares)
	if err != nil {
		return fail(err)
	}
	total := len(layout.chunks)
	if req.Offset < 0 || req.Offset > total || req.Count < 0 || req.Count > nodeapi.MaxValuesChunks {
		return fail(refuse(http.StatusBadRequest, "bad_range", "chunks [%d, +%d) outside the %d chunks (at most %d per request)", req.Offset, req.Count, total, nodeapi.MaxValuesChunks))
	}
	end := min(req.Offset+req.Count, total)
	sumsKeys, err := s.he.keysFor(he.NameSums)
	if err != nil {
		return fail(err)
	}
	var sqKeys *ceremony.NodeKeys
	if req.Squares {
		if sqKeys, err = s.he.keysFor(he.NameSquares); err != nil {
			return fail(err)
		}
	}
	detail["total"] = fmt.Sprint(total)
	detail["groups"] = fmt.Sprint(len(layout.groups))
	if _, err := s.record(ctx, string(nodeapi.StepHEValues), req.Job, dsn, detail); err != nil {
		return nil, err
	}
	out := nodeapi.HEValuesResponse{Total: total, Groups: layout.groups, Chunks: []nodeapi.HEValuesChunk{}}
	var sumVecs, sqVecs [][]int64
	for c := req.Offset; c < end; c++ {
		ch := layout.chunks[c]
		hc := nodeapi.HEValuesChunk{Index: c, Group: ch.group, Positions: make([]int, len(ch.units))}
		counts, vals, sqs := make([]int64, len(ch.units)), make([]int64, len(ch.units)), make([]int64, len(ch.units))
		for i, u := range ch.units {
			hc.Positions[i], counts[i], vals[i], sqs[i] = u.pos, u.n, u.sum, u.sq
		}
		// Slots past the units are zero padding; the coordinator's mask is
		// 0 there too (position −1 is implied by the map's length).
		sumVecs = append(sumVecs, counts)
		if need.value {
			sumVecs = append(sumVecs, vals)
		} else {
			sumVecs = append(sumVecs, nil)
		}
		if sqKeys != nil {
			sqVecs = append(sqVecs, sqs)
		}
		out.Chunks = append(out.Chunks, hc)
	}
	// The row-level range check above bounds every total; each slot is a sum
	// of rows of one key, so Encrypt's own check needs only |slot| ≤ (T−1)/2.
	sumCts, err := s.encryptSealed(sumsKeys, sumVecs, 1)
	if err != nil {
		return nil, err
	}
	var sqCts [][]byte
	if sqKeys != nil {
		if sqCts, err = s.encryptSealed(sqKeys, sqVecs, 1); err != nil {
			return nil, err
		}
	}
	for i := range out.Chunks {
		out.Chunks[i].Counts, out.Chunks[i].Values = sumCts[2*i], sumCts[2*i+1]
		if sqCts != nil {
			out.Chunks[i].Squares = sqCts[i]
		}
	}
	return out, nil
}

// ---- zero-sum masks and release --------------------------------------------

func (s *Server) heZeroMask(r *http.Request) (any, error) {
	var req nodeapi.HEZeroMaskRequest
	if err := decode(r, &req, nodeapi.StepHEZeroMask, &req.Header); err != nil {
		return nil, err
	}
	ctx := r.Context()
	detail := map[string]string{"params": req.Params, "count": fmt.Sprint(req.Count), "attempt": fmt.Sprint(req.Attempt)}
	fail := func(err error) (any, error) {
		return nil, s.refused(ctx, nodeapi.StepHEZeroMask, req.Job, nil, detail, err)
	}
	ps, err := he.ParamsByName(req.Params)
	if err != nil {
		return fail(refuse(http.StatusBadRequest, "bad_request", "%v", err))
	}
	if req.Count < 1 || req.Count > nodeapi.MaxZeroMasks {
		return fail(refuse(http.StatusBadRequest, "bad_range", "count %d not in [1, %d]", req.Count, nodeapi.MaxZeroMasks))
	}
	keys, err := s.he.keysFor(ps.Name())
	if err != nil {
		return fail(err)
	}
	if _, err := s.record(ctx, string(nodeapi.StepHEZeroMask), req.Job, nil, detail); err != nil {
		return nil, err
	}
	enc, err := he.NewEncryptor(keys.PublicKey())
	if err != nil {
		return nil, err
	}
	cer := keys.Setup().CeremonyID()
	out := nodeapi.HEZeroMaskResponse{Masks: make([][]byte, req.Count)}
	g := new(errgroup.Group)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range req.Count {
		g.Go(func() error {
			ct, err := enc.ShallowCopy().EncryptZeroSumMask(ps.Slots())
			if err != nil {
				return err
			}
			out.Masks[i], err = s.he.sealCiphertext(ct, cer)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Server) heRelease(r *http.Request) (any, error) {
	var req nodeapi.HEReleaseRequest
	if err := decode(r, &req, nodeapi.StepHERelease, &req.Header); err != nil {
		return nil, err
	}
	ctx := r.Context()
	detail := map[string]string{"params": req.Params, "active": strings.Join(req.Active, ","), "level": fmt.Sprint(req.Level), "attempt": fmt.Sprint(req.Attempt)}
	fail := func(err error) (any, error) {
		return nil, s.refused(ctx, nodeapi.StepHERelease, req.Job, nil, detail, err)
	}
	ps, err := he.ParamsByName(req.Params)
	if err != nil {
		return fail(refuse(http.StatusBadRequest, "bad_request", "%v", err))
	}
	keys, err := s.he.keysFor(ps.Name())
	if err != nil {
		return fail(err)
	}
	setup := keys.Setup()
	cer := setup.CeremonyID()
	detail["ceremony"] = cer
	if len(req.Active) != setup.Threshold() {
		return fail(refuse(http.StatusBadRequest, "bad_active_set", "the active set has %d nodes; this ceremony needs exactly %d", len(req.Active), setup.Threshold()))
	}
	if !slices.Contains(req.Active, s.cfg.Department) {
		return fail(refuse(http.StatusForbidden, "not_active", "node %s is not in the active set", s.cfg.Department))
	}
	active := make([]ceremony.NodeID, len(req.Active))
	for i, id := range req.Active {
		active[i] = ceremony.NodeID(id)
	}
	if _, err := release.NewActiveSet(setup, active); err != nil {
		return fail(refuse(http.StatusBadRequest, "bad_active_set", "%v", err))
	}
	p, err := s.he.open(ps, cer, he.LabelCiphertext, req.Level, req.Ciphertext, "ciphertext")
	if err != nil {
		return fail(err)
	}
	ct, err := ps.UnmarshalCiphertext(p, req.Level)
	if err != nil {
		return fail(refuse(http.StatusBadRequest, "bad_payload", "ciphertext: %v", err))
	}
	if p, err = s.he.open(ps, cer, he.LabelPublicKey, ps.MaxLevel(), req.ReleaseKey, "release key"); err != nil {
		return fail(err)
	}
	target, err := ps.UnmarshalPublicKey(p)
	if err != nil {
		return fail(refuse(http.StatusBadRequest, "bad_payload", "release key: %v", err))
	}
	id, err := ct.Hash()
	if err != nil {
		return nil, err
	}
	detail["ciphertext_sha256"] = hex.EncodeToString(id[:])
	detail["noise_terms"] = fmt.Sprint(ct.Noise().Terms)
	detail["noise_masked"] = fmt.Sprint(ct.Noise().Masked)
	l, err := s.he.openLedger()
	if err != nil {
		s.log.Error("decryption ledger unavailable; refusing to release", "err", err)
		return fail(refuse(http.StatusServiceUnavailable, "ledger_unavailable", "the node cannot open its decryption ledger, so it decrypts nothing"))
	}
	if done, err := l.Contains(id); err != nil || done {
		return fail(refuse(http.StatusConflict, "already_decrypted", "this node has already helped decrypt ciphertext %s once and never does so twice; re-run the job to compute from fresh encryptions", hex.EncodeToString(id[:8])))
	}
	// Audited before the share exists (fail closed); the ledger records the
	// ciphertext before the share is computed (release.Node.Share).
	if _, err := s.record(ctx, string(nodeapi.StepHERelease), req.Job, nil, detail); err != nil {
		return nil, err
	}
	rn, err := release.NewNode(keys, l)
	if err != nil {
		return nil, err
	}
	sh, err := rn.Share(active, ct, target)
	switch {
	case errors.Is(err, ledger.ErrAlreadyDecrypted):
		return fail(refuse(http.StatusConflict, "already_decrypted", "this node has already helped decrypt ciphertext %s once and never does so twice; re-run the job to compute from fresh encryptions", hex.EncodeToString(id[:8])))
	case errors.Is(err, release.ErrActiveSet), errors.Is(err, ceremony.ErrActive):
		return fail(refuse(http.StatusForbidden, "not_active", "%v", err))
	case errors.Is(err, he.ErrSmudging):
		return fail(refuse(http.StatusBadRequest, "cannot_release", "%v", err))
	case err != nil:
		return fail(err)
	}
	b, err := sh.MarshalBinary()
	if err != nil {
		return nil, err
	}
	msg, err := s.he.seal(ps, cer, release.LabelShare, req.Level, b)
	if err != nil {
		return nil, err
	}
	return nodeapi.HEReleaseResponse{Share: msg}, nil
}
