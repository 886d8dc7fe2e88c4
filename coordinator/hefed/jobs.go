package hefed

import (
	"context"
	"fmt"
	"math/big"
	"slices"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/he/ceremony"
	"github.com/unseen-data/unseen/compute/he/release"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/policy/disclosure"
)

// JobRef is the job a computation belongs to, as the nodes see it: every
// node binds ID to Spec's hash, checks Spec against its own policy for
// Requester (with the owners' signed Consents for its conditional
// datasets), and binds its audit entries to ID and Attempt.
type JobRef struct {
	ID        string
	Attempt   int
	Spec      policy.Spec
	Requester policy.Requester
	Consents  []attest.SignedConsent
}

// header is the node request header of the job's step for party i.
func (j *JobRef) header(i int, step nodeapi.Step) nodeapi.Header {
	return nodeapi.Header{Job: j.ID, SpecHash: j.Spec.Hash(), Step: step, Attempt: j.Attempt, Party: i}
}

// Stats are exact totals; mean and variance follow from them (Moments).
// Σx and Σx² are big integers: over 10^8 rows of |x| ≤ 2^40 they pass
// 2^63 (compute/he, "Exact Σx and Σx²").
type Stats struct {
	Count int64
	Sum   *big.Int // 0 when no value is asked
	SumSq *big.Int // when the variance is asked
	// Histogram counts rows per bucket of Spec.Bins (stat histogram).
	Histogram []int64
	// Groups is nil without group_by.
	Groups map[string]GroupStats
	// Overlaps are what the input nodes of an aggregate reported of
	// differencing (datasets in flag mode): earlier jobs whose input of a
	// dataset differs from this one's by fewer than k people.
	Overlaps []disclosure.Overlap
}

// GroupStats are one group's totals.
type GroupStats struct {
	Count     int64
	Sum       *big.Int
	SumSq     *big.Int
	Histogram []int64
}

// Moments converts the totals for he.Moments' exact mean and variance.
func (s *Stats) Moments() he.Moments {
	return he.Moments{N: s.Count, Sum: s.Sum, SumSq: s.SumSq}
}

// Moments converts a group's totals for he.Moments.
func (g GroupStats) Moments() he.Moments {
	return he.Moments{N: g.Count, Sum: g.Sum, SumSq: g.SumSq}
}

type needs struct{ value, squares, hist bool }

// releaseConcurrency bounds the result ciphertexts released at once.
const releaseConcurrency = 4

func statNeeds(spec *policy.Spec) (needs, error) {
	var n needs
	for _, st := range spec.Stats {
		switch st {
		case "count":
		case "sum", "mean":
			n.value = true
		case "variance":
			n.value, n.squares = true, true
		case "histogram":
			if spec.Type != policy.Aggregate {
				return n, fmt.Errorf("%w: histograms are computed for aggregate jobs", ErrJob)
			}
			n.value, n.hist = true, true
		default:
			return n, fmt.Errorf("%w: stat %q is not computed homomorphically", ErrJob, st)
		}
	}
	return n, nil
}

func (j *JobRef) check(typ policy.JobType) error {
	if j.Spec.Type != typ {
		return fmt.Errorf("%w: %s job given to the %s computation", ErrJob, j.Spec.Type, typ)
	}
	if j.ID == "" || j.Attempt < 1 {
		return fmt.Errorf("%w: a job id and a positive attempt are required", ErrJob)
	}
	return j.Spec.Validate()
}

func (c *Coordinator) client(dataset string) (*nodeapi.Client, error) {
	cl, ok := c.nodes[policy.Department(dataset)]
	if !ok {
		return nil, fmt.Errorf("%w: no node is configured for department %q (dataset %s)", ErrJob, policy.Department(dataset), dataset)
	}
	return cl, nil
}

// involved lists the departments of the job's inputs (sorted) with the
// party index of each one's first input.
func (c *Coordinator) involved(spec *policy.Spec) ([]string, map[string]int, error) {
	first := map[string]int{}
	var out []string
	for i, in := range spec.Inputs {
		if _, err := c.client(in.Dataset); err != nil {
			return nil, nil, err
		}
		d := policy.Department(in.Dataset)
		if _, ok := first[d]; !ok {
			first[d] = i
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out, first, nil
}

// ---- aggregate ------------------------------------------------------------

// Aggregate computes an `aggregate` job: every input's node checks the job
// against its own policy (and refuses an input below its k), aggregates its
// filtered rows per group in the clear, encrypts the vector and signs it;
// the coordinator adds the ciphertexts and has t nodes release the sums,
// each node recomputing the sum itself from the signed contributions it is
// shown. Per-group totals are returned; the caller applies the disclosure
// checks (k, suppression).
func (c *Coordinator) Aggregate(ctx context.Context, j JobRef) (*Stats, error) {
	if err := j.check(policy.Aggregate); err != nil {
		return nil, err
	}
	ep, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	need, err := statNeeds(&j.Spec)
	if err != nil {
		return nil, err
	}
	depts, _, err := c.involved(&j.Spec)
	if err != nil {
		return nil, err
	}
	sums, squares := ep.sets[he.NameSums], ep.sets[he.NameSquares]
	n := len(j.Spec.Inputs)
	hdr := j.header

	// The common slot layout: the union of the groups present anywhere.
	var groups []string
	if j.Spec.GroupBy != nil {
		var mu sync.Mutex
		err := c.eachInput(ctx, &j.Spec, func(ctx context.Context, i int, cl *nodeapi.Client) error {
			resp, err := cl.HEGroups(ctx, &nodeapi.HEGroupsRequest{Header: hdr(i, nodeapi.StepHEGroups), Spec: j.Spec, Requester: j.Requester, Input: i, Consents: j.Consents})
			if err != nil {
				return err
			}
			mu.Lock()
			groups = append(groups, resp.Groups...)
			mu.Unlock()
			return nil
		})
		if err != nil {
			return nil, err
		}
		slices.Sort(groups)
		groups = slices.Compact(groups)
		if per := slotsPerGroup(need, j.Spec.Buckets()); len(groups) > sums.ps.Slots()/per {
			return nil, fmt.Errorf("%w: %d groups exceed the %d one aggregate can hold", ErrJob, len(groups), sums.ps.Slots()/per)
		}
		if len(groups) == 0 { // no rows anywhere
			return &Stats{Groups: map[string]GroupStats{}, Sum: new(big.Int), SumSq: zeroIf(need.squares)}, nil
		}
	}
	G := max(1, len(groups))

	maxRows := c.rowBound(n)
	sumCts := make([]*he.Ciphertext, n)
	sqCts := make([]*he.Ciphertext, n)
	// Every input's signed contributions: the releasing nodes decrypt only
	// the sum they compute themselves of exactly these.
	sumCons := make([]contribution, n)
	sqCons := make([]contribution, n)
	overlaps := make([][]disclosure.Overlap, n)
	err = c.eachInput(ctx, &j.Spec, func(ctx context.Context, i int, cl *nodeapi.Client) error {
		resp, err := cl.HEAggregate(ctx, &nodeapi.HEAggregateRequest{Header: hdr(i, nodeapi.StepHEAggregate), Spec: j.Spec, Requester: j.Requester, Input: i, Groups: groups, MaxRows: maxRows, Consents: j.Consents})
		if err != nil {
			return err
		}
		overlaps[i] = resp.Overlaps
		var p []byte
		if sumCts[i], p, err = openCiphertextRaw(cl, sums, resp.Sums); err != nil {
			return err
		}
		sumCons[i] = contribution{input: i, payload: p, sig: resp.SumsSignature}
		if need.squares {
			if sqCts[i], p, err = openCiphertextRaw(cl, squares, resp.Squares); err != nil {
				return err
			}
			sqCons[i] = contribution{input: i, payload: p, sig: resp.SquaresSignature}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sumCt, err := he.Sum(he.NewEvaluator(sums.ps), sumCts, c.workers())
	if err != nil {
		return nil, err
	}
	var sqCt *he.Ciphertext
	if need.squares {
		if sqCt, err = he.Sum(he.NewEvaluator(squares.ps), sqCts, c.workers()); err != nil {
			return nil, err
		}
	}

	rel, err := c.newReleaser(ctx, ep, j, depts, "")
	if err != nil {
		return nil, err
	}
	res, err := rel.decrypt(ctx, sums, sumCt, output{index: 0, contributions: sumCons})
	if err != nil {
		return nil, err
	}
	v := res.Values()
	var vq []int64
	if sqCt != nil {
		r2, err := rel.decrypt(ctx, squares, sqCt, output{index: 1, contributions: sqCons})
		if err != nil {
			return nil, err
		}
		vq = r2.Values()
	}
	B := 0
	if need.hist {
		B = j.Spec.Buckets()
	}
	// Decode the slots (nodeapi.HEAggregateResponse): each Σx from its
	// residue mod T_s and the nodes' floor hints, each Σx² likewise mod T_q.
	per := make([]GroupStats, G)
	for g := range per {
		per[g].Count = v[g]
		per[g].Sum = new(big.Int)
		if need.value {
			if per[g].Sum, err = he.AggregateSum(v[G+g], v[2*G+G*B+g], n); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrRelease, err)
			}
		}
		if B > 0 {
			per[g].Histogram = slices.Clone(v[2*G+g*B : 2*G+(g+1)*B])
		}
		if vq != nil {
			if per[g].SumSq, err = he.AggregateSumSq(vq[g], vq[G+g], n); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrRelease, err)
			}
		}
	}
	st, err := c.assemble(groups, per, need.squares)
	if err != nil {
		return nil, err
	}
	st.Overlaps = slices.Concat(overlaps...)
	return st, nil
}

// slotsPerGroup is how many Sums slots one group of an aggregate takes:
// the count and, with a value, Σx mod T_s, its hint and the histogram.
func slotsPerGroup(need needs, buckets int) int {
	if !need.value {
		return 1
	}
	if !need.hist {
		buckets = 0
	}
	return 3 + buckets
}

// rowBound is the most rows an aggregate of n inputs sums (each node its
// equal share): he.MaxJobRows, or less under the operator's
// MaxRowsPerNode.
func (c *Coordinator) rowBound(n int) int64 {
	b := he.MaxJobRows
	if c.MaxRowsPerNode > 0 && c.MaxRowsPerNode*int64(n) < b {
		b = c.MaxRowsPerNode * int64(n)
	}
	return b
}

// eachInput runs fn for every input of spec (party i) concurrently and
// returns the first error; the others run to their end (see each).
func (c *Coordinator) eachInput(ctx context.Context, spec *policy.Spec, fn func(ctx context.Context, i int, cl *nodeapi.Client) error) error {
	cls := make([]*nodeapi.Client, len(spec.Inputs))
	for i, in := range spec.Inputs {
		cl, err := c.client(in.Dataset)
		if err != nil {
			return err
		}
		cls[i] = cl
	}
	var g errgroup.Group
	for i, cl := range cls {
		g.Go(func() error { return fn(ctx, i, cl) })
	}
	return g.Wait()
}

func zeroIf(b bool) *big.Int {
	if !b {
		return nil
	}
	return new(big.Int)
}

// assemble totals the groups and sanity-checks them: a negative count or
// sum of squares can only come from a total that wrapped modulo T.
func (c *Coordinator) assemble(groups []string, per []GroupStats, squares bool) (*Stats, error) {
	st := &Stats{Sum: new(big.Int), SumSq: zeroIf(squares)}
	if groups != nil {
		st.Groups = make(map[string]GroupStats, len(groups))
	}
	for g, gs := range per {
		if gs.Count < 0 || gs.Count > he.MaxJobRows || gs.SumSq != nil && gs.SumSq.Sign() < 0 {
			return nil, fmt.Errorf("%w: a decrypted total is out of range (it wrapped modulo the plaintext modulus)", ErrRelease)
		}
		st.Count += gs.Count
		if gs.Sum == nil {
			gs.Sum = new(big.Int)
		}
		st.Sum.Add(st.Sum, gs.Sum)
		if gs.Histogram != nil {
			if st.Histogram == nil {
				st.Histogram = make([]int64, len(gs.Histogram))
			}
			for b, x := range gs.Histogram {
				if x < 0 {
					return nil, fmt.Errorf("%w: a decrypted bucket count is out of range", ErrRelease)
				}
				st.Histogram[b] += x
			}
		}
		if gs.SumSq != nil && st.SumSq != nil {
			st.SumSq.Add(st.SumSq, gs.SumSq)
		}
		if groups != nil {
			st.Groups[groups[g]] = gs
		}
	}
	return st, nil
}

// ---- intersection_stats ---------------------------------------------------

// IntersectionStats computes an `intersection_stats` job after the runner's
// PSI, run with the value input (Spec.Value.Dataset; for a count-only job,
// the first input) as primary: value is that input's party and positions
// are the matched positions of its list (psi.Result.Positions). Count is
// over rows, so a key with several rows counts each. The value node encrypts
// its rows one key per slot, group-major, and signs its layout; the
// coordinator multiplies each ciphertext by the 0/1 match mask and adds per
// group; every input's node adds a zero-sum mask to each result; t nodes
// release the totals, each at most once per output g·he.ISLanes+l and each
// adding its own zero-sum vector to its share. Σx and Σx² are decoded
// exactly from their lanes (compute/he, "Exact Σx and Σx²").
func (c *Coordinator) IntersectionStats(ctx context.Context, j JobRef, value *nodeapi.Party, positions []int) (*Stats, error) {
	if err := j.check(policy.IntersectionStats); err != nil {
		return nil, err
	}
	if value == nil || value.Client == nil {
		return nil, fmt.Errorf("%w: no value party", ErrJob)
	}
	if value.Header.Job != j.ID || value.Header.Attempt != j.Attempt {
		return nil, fmt.Errorf("%w: the value party belongs to job %s attempt %d", ErrJob, value.Header.Job, value.Header.Attempt)
	}
	ep, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	need, err := statNeeds(&j.Spec)
	if err != nil {
		return nil, err
	}
	depts, first, err := c.involved(&j.Spec)
	if err != nil {
		return nil, err
	}
	matched := make([]bool, value.N)
	for _, p := range positions {
		if p < 0 || p >= value.N || matched[p] {
			return nil, fmt.Errorf("%w: matched position %d is out of range or repeated", ErrJob, p)
		}
		matched[p] = true
	}
	sums, squares := ep.sets[he.NameSums], ep.sets[he.NameSquares]

	// Stream the value node's chunks, masking and adding them per group as
	// they arrive so that memory stays bounded by one page.
	vh := value.Header
	vh.SpecHash = j.Spec.Hash()
	acc, groups, layout, err := c.maskedSums(ctx, value.Client, vh, value.N, matched, need, sums, squares)
	if err != nil {
		return nil, err
	}
	G := len(groups)

	// One result ciphertext per group and lane (he.ISLane: the count, Σx
	// mod T_s and mod T_q, Σx² mod T_s and mod T_q and its floor hint) —
	// output g·he.ISLanes+l of the job at the releasing nodes, which
	// decrypt each once.
	type result struct {
		ks   *keySet
		lane he.ISLane
		g    int
		ct   *he.Ciphertext
	}
	var results []*result
	for g := range G {
		for l := range he.ISLanes {
			if acc[l][g] != nil {
				results = append(results, &result{ks: ep.sets[l.Params()], lane: l, g: g, ct: acc[l][g]})
			}
		}
	}
	// Zero-sum masks from every input's node, one per result ciphertext.
	for _, ks := range []*keySet{sums, squares} {
		var mine []*result
		for _, r := range results {
			if r.ks == ks {
				mine = append(mine, r)
			}
		}
		if len(mine) == 0 {
			continue
		}
		masks, err := c.zeroMasks(ctx, j, depts, first, ks, len(mine))
		if err != nil {
			return nil, err
		}
		ev := he.NewEvaluator(ks.ps)
		for i, r := range mine {
			terms := []*he.Ciphertext{r.ct}
			for _, d := range depts {
				terms = append(terms, masks[d][i])
			}
			if r.ct, err = he.Sum(ev, terms, 1); err != nil {
				return nil, err
			}
		}
	}

	// totals[g][l] is lane l's decrypted total for group g.
	totals := make([][he.ISLanes]int64, G)
	if len(results) > 0 {
		rel, err := c.newReleaser(ctx, ep, j, depts, policy.Department(j.Spec.ValueDataset()))
		if err != nil {
			return nil, err
		}
		// Results are released concurrently (a few at a time): each is its
		// own ciphertext with its own combiner, and the nodes' shares are
		// independent, so only the round trips would add up otherwise.
		got := make([]int64, len(results))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(releaseConcurrency)
		for i := range results {
			g.Go(func() error {
				r := results[i]
				res, err := rel.decrypt(gctx, r.ks, r.ct, output{index: int(he.ISLanes)*r.g + int(r.lane), layout: layout})
				if err == nil {
					got[i] = res.Total()
				}
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		for i, r := range results {
			totals[r.g][r.lane] = got[i]
		}
	}
	per := make([]GroupStats, G)
	for g := range per {
		t := totals[g]
		per[g].Count = t[he.ISCount]
		per[g].Sum = new(big.Int)
		if need.value {
			if per[g].Sum, err = he.IntersectionSum(t[he.ISSumS], t[he.ISSumQ]); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrRelease, err)
			}
		}
		if need.squares {
			if per[g].SumSq, err = he.IntersectionSumSq(t[he.ISSqS], t[he.ISSqQ], t[he.ISSqHint]); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrRelease, err)
			}
		}
	}
	var labels []string
	if j.Spec.GroupBy != nil {
		labels = groups
	}
	return c.assemble(labels, per, need.squares)
}

// maskedSums fetches the value node's encrypted chunks page by page,
// multiplies each lane by its match mask and adds them per group. acc[l][g]
// is the sum for lane l (he.ISLane) of group g, nil where none; the layout
// is the value node's signed one (of the first page).
func (c *Coordinator) maskedSums(ctx context.Context, cl *nodeapi.Client, vh nodeapi.Header, listLen int, matched []bool, need needs, sums, squares *keySet) ([he.ISLanes][]*he.Ciphertext, []string, *nodeapi.HELayout, error) {
	var acc [he.ISLanes][]*he.Ciphertext
	var layout *nodeapi.HELayout
	var evs [he.ISLanes]*he.Evaluator
	var sets [he.ISLanes]*keySet
	for l := range he.ISLanes {
		sets[l] = sums
		if l.Params() == he.NameSquares {
			sets[l] = squares
		}
		evs[l] = he.NewEvaluator(sets[l].ps)
	}
	var groups []string
	total := -1
	page := nodeapi.MaxValuesChunks
	if c.pageChunks > 0 {
		page = min(page, c.pageChunks)
	}
	type fetched struct {
		resp *nodeapi.HEValuesResponse
		err  error
	}
	fetch := func(offset int) <-chan fetched {
		ch := make(chan fetched, 1)
		go func() {
			resp, err := cl.HEValues(ctx, &nodeapi.HEValuesRequest{Header: vh, Offset: offset, Count: page, Squares: need.squares})
			ch <- fetched{resp, err}
		}()
		return ch
	}
	// One page ahead: the node encrypts the next page while the
	// coordinator masks this one. Memory stays bounded by two pages.
	next := fetch(0)
	defer func() {
		if next != nil {
			<-next // never leave a request running past the call
		}
	}()
	for offset := 0; total < 0 || offset < total; {
		f := <-next
		next = nil
		resp, err := f.resp, f.err
		if err != nil {
			return acc, nil, nil, err
		}
		if resp.Total > 0 && offset+len(resp.Chunks) < resp.Total && len(resp.Chunks) > 0 {
			next = fetch(offset + len(resp.Chunks))
		}
		if total < 0 {
			total, groups = resp.Total, resp.Groups
			if total < 0 || len(groups) == 0 || len(groups) > total+1 {
				return acc, nil, nil, fmt.Errorf("node %s: implausible layout (%d chunks, %d groups)", cl.Department, total, len(groups))
			}
			for l := range acc {
				acc[l] = make([]*he.Ciphertext, len(groups))
			}
			layout = &nodeapi.HELayout{Groups: len(groups), Chunks: total, Signature: resp.LayoutSignature}
		} else if resp.Total != total || !slices.Equal(resp.Groups, groups) {
			return acc, nil, nil, fmt.Errorf("node %s: the slot layout changed between pages", cl.Department)
		}
		if total == 0 {
			break
		}
		if len(resp.Chunks) == 0 || len(resp.Chunks) > page {
			return acc, nil, nil, fmt.Errorf("node %s: %d chunks in a page", cl.Department, len(resp.Chunks))
		}
		// masked[l][i]: chunk i's lane l, masked (nil where absent).
		var masked [he.ISLanes][]*he.Ciphertext
		for l := range masked {
			masked[l] = make([]*he.Ciphertext, len(resp.Chunks))
		}
		n := int(he.ISLanes)
		g := new(errgroup.Group)
		g.SetLimit(c.workers())
		for w := range len(resp.Chunks) * n {
			g.Go(func() error {
				i, l := w/n, he.ISLane(w%n)
				ch := &resp.Chunks[i]
				if ch.Index != offset+i || ch.Group < 0 || ch.Group >= len(groups) {
					return fmt.Errorf("node %s: chunk %d out of order or of an unknown group", cl.Department, ch.Index)
				}
				if !l.Wanted(need.value, need.squares) {
					return nil
				}
				if len(ch.Lanes) != n {
					return fmt.Errorf("node %s: chunk %d has %d lanes, want %d", cl.Department, ch.Index, len(ch.Lanes), n)
				}
				ks := sets[l]
				if len(ch.Positions) > ks.ps.Slots() || len(ch.Positions) > sums.ps.Slots() {
					return fmt.Errorf("node %s: chunk %d maps %d slots", cl.Department, ch.Index, len(ch.Positions))
				}
				bits := make([]bool, len(ch.Positions))
				for s, p := range ch.Positions {
					if p < -1 || p >= listLen {
						return fmt.Errorf("node %s: chunk %d slot %d maps to position %d of a list of %d", cl.Department, ch.Index, s, p, len(matched))
					}
					bits[s] = p >= 0 && matched[p]
				}
				ct, err := openCiphertext(cl, ks, ch.Lanes[l])
				if err != nil {
					return err
				}
				m, err := ks.ps.NewMask(bits, ct.Level())
				if err != nil {
					return err
				}
				masked[l][i], err = evs[l].ShallowCopy().MulMask(ct, m)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return acc, nil, nil, err
		}
		// Add this page into the per-group sums.
		for l := range masked {
			byGroup := map[int][]*he.Ciphertext{}
			for i, ct := range masked[l] {
				if ct != nil {
					byGroup[resp.Chunks[i].Group] = append(byGroup[resp.Chunks[i].Group], ct)
				}
			}
			for g, cts := range byGroup {
				if acc[l][g] != nil {
					cts = append(cts, acc[l][g])
				}
				if acc[l][g], err = he.Sum(evs[l], cts, c.workers()); err != nil {
					return acc, nil, nil, err
				}
			}
		}
		offset += len(resp.Chunks)
	}
	return acc, groups, layout, nil
}

// zeroMasks asks every department for count zero-sum masks under ks.
func (c *Coordinator) zeroMasks(ctx context.Context, j JobRef, depts []string, first map[string]int, ks *keySet, count int) (map[string][]*he.Ciphertext, error) {
	out := map[string][]*he.Ciphertext{}
	var mu sync.Mutex
	err := c.each(ctx, depts, func(ctx context.Context, d string, cl *nodeapi.Client) error {
		var got []*he.Ciphertext
		for len(got) < count {
			k := min(count-len(got), nodeapi.MaxZeroMasks)
			resp, err := cl.HEZeroMask(ctx, &nodeapi.HEZeroMaskRequest{Header: j.header(first[d], nodeapi.StepHEZeroMask), Params: ks.ps.Name(), Count: k})
			if err != nil {
				return err
			}
			if len(resp.Masks) != k {
				return fmt.Errorf("node %s sent %d masks, want %d", d, len(resp.Masks), k)
			}
			for _, m := range resp.Masks {
				ct, err := openCiphertext(cl, ks, m)
				if err != nil {
					return err
				}
				got = append(got, ct)
			}
		}
		mu.Lock()
		out[d] = got
		mu.Unlock()
		return nil
	})
	return out, err
}

// ---- release --------------------------------------------------------------

// releaser decrypts a job's results with one active set, fixed before any
// share is asked for.
type releaser struct {
	c      *Coordinator
	job    JobRef
	active []string
}

// newReleaser picks the active set: exactly t nodes of the roster that
// answer a health check and report holding the current keys, the job's own
// departments first, and must (if not empty) among them: an
// intersection_stats result is decrypted only with its value node, whose
// ledger allows each output once.
func (c *Coordinator) newReleaser(ctx context.Context, ep *epoch, j JobRef, prefer []string, must string) (*releaser, error) {
	ok := make([]bool, len(ep.nodes))
	var g errgroup.Group // a probe that fails leaves its node out
	for i, n := range ep.nodes {
		cl, configured := c.nodes[n]
		if !configured {
			continue
		}
		g.Go(func() error {
			pctx, cancel := context.WithTimeout(ctx, c.probeTimeout())
			defer cancel()
			ok[i], _ = holdsKeys(pctx, cl, ep)
			return nil
		})
	}
	_ = g.Wait()
	var first, rest []string
	if must != "" {
		i := slices.Index(ep.nodes, must)
		if i < 0 || !ok[i] {
			return nil, fmt.Errorf("%w: the value node %s must take part in decrypting, and it does not answer or hold the current keys", ErrRelease, must)
		}
		first = append(first, must)
	}
	for i, n := range ep.nodes {
		switch {
		case !ok[i] || n == must:
		case slices.Contains(prefer, n):
			first = append(first, n)
		default:
			rest = append(rest, n)
		}
	}
	cand := append(first, rest...)
	if len(cand) < ep.threshold {
		return nil, fmt.Errorf("%w: only %d of the %d nodes needed to decrypt answer and hold the current keys", ErrRelease, len(cand), ep.threshold)
	}
	active := slices.Clone(cand[:ep.threshold])
	slices.Sort(active)
	c.log.Info("release active set fixed", "job", j.ID, "attempt", j.Attempt, "active", active)
	return &releaser{c: c, job: j, active: active}, nil
}

// contribution is one input's signed contribution to an aggregate output:
// the ciphertext's payload (re-enveloped for each releasing node) and the
// contributing node's signature over it.
type contribution struct {
	input        int
	payload, sig []byte
}

// output is what the releasing nodes are shown of one output of the job:
// its index, and every input's signed contribution (aggregate: each node
// sums them itself) or the value node's signed layout (intersection_stats:
// the nodes are sent the result ciphertext).
type output struct {
	index         int
	contributions []contribution
	layout        *nodeapi.HELayout
}

// decrypt has every active node produce its share of output out of the
// job, whose ciphertext is ct, towards the coordinator's release key. Any
// failure fails the job: the nodes that did answer have burnt the output in
// their ledgers, and it is never decrypted again.
func (r *releaser) decrypt(ctx context.Context, ks *keySet, ct *he.Ciphertext, out output) (*release.Result, error) {
	ids := make([]ceremony.NodeID, len(r.active))
	for i, n := range r.active {
		ids[i] = ceremony.NodeID(n)
	}
	as, err := release.NewActiveSet(ks.setup, ids)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRelease, err)
	}
	cmb, err := release.NewCombiner(ks.setup, as, ct, ks.rk)
	if err != nil {
		return nil, err
	}
	ctb, err := ct.MarshalBinary()
	if err != nil {
		return nil, err
	}
	pkb, err := ks.rk.PublicKey().MarshalBinary()
	if err != nil {
		return nil, err
	}
	ps, cer, level := ks.ps, ks.setup.CeremonyID(), ct.Level()
	shares := make([]*release.Share, len(r.active))
	err = r.c.each(ctx, r.active, func(ctx context.Context, n string, cl *nodeapi.Client) error {
		req := &nodeapi.HEReleaseRequest{
			Header: r.job.header(0, nodeapi.StepHERelease), Spec: r.job.Spec, Requester: r.job.Requester,
			Output: out.index, Params: ps.Name(), Active: r.active, Level: level, Layout: out.layout,
		}
		var err error
		if out.contributions != nil {
			for _, con := range out.contributions {
				env, err := seal(cl, ps, cer, he.LabelCiphertext, ps.MaxLevel(), con.payload)
				if err != nil {
					return err
				}
				req.Contributions = append(req.Contributions, nodeapi.HEContribution{Input: con.input, Ciphertext: env, Signature: con.sig})
			}
		} else if req.Ciphertext, err = seal(cl, ps, cer, he.LabelCiphertext, level, ctb); err != nil {
			return err
		}
		if req.ReleaseKey, err = seal(cl, ps, cer, he.LabelPublicKey, ps.MaxLevel(), pkb); err != nil {
			return err
		}
		resp, err := cl.HERelease(ctx, req)
		if err != nil {
			return err
		}
		p, err := open(cl, ps, cer, release.LabelShare, level, resp.Share)
		if err != nil {
			return err
		}
		sh, err := release.UnmarshalShare(ps, p, level)
		if err != nil {
			return fmt.Errorf("node %s: decryption share: %w", n, err)
		}
		shares[slices.Index(r.active, n)] = sh
		return nil
	})
	if err != nil {
		r.c.log.Warn("release failed; the job must be re-run", "job", r.job.ID, "attempt", r.job.Attempt, "params", ps.Name(), "active", r.active, "err", err)
		return nil, fmt.Errorf("%w: decrypting output %d (%s) with nodes %v: %w — the output is not offered again (each output of a job is decrypted at most once, ever); submit the job anew to compute it again", ErrRelease, out.index, ps.Name(), r.active, err)
	}
	for i, n := range r.active {
		if err := cmb.Add(ceremony.NodeID(n), shares[i]); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrRelease, err)
		}
	}
	res, err := cmb.Decrypt()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRelease, err)
	}
	return res, nil
}
