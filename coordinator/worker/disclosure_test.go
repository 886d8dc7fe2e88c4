package worker

// The attacks of the disclosure issue (10), run as an analyst (or a
// coordinator, for what it decrypts) would run them, end to end through
// real nodes: each now fails to extract anything.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/coordinator/hefed"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/disclosure"
)

// spyHE records the exact totals the coordinator decrypts — what it sees
// before any reviewer — so that a test can check what the nodes sent.
type spyHE struct {
	HE
	mu    sync.Mutex
	exact map[string]*hefed.Stats // by job id
}

func (s *spyHE) keep(id string, st *hefed.Stats, err error) (*hefed.Stats, error) {
	if err == nil {
		s.mu.Lock()
		cp := *st
		s.exact[id] = &cp
		s.mu.Unlock()
	}
	return st, err
}

func (s *spyHE) Aggregate(ctx context.Context, j hefed.JobRef) (*hefed.Stats, error) {
	st, err := s.HE.Aggregate(ctx, j)
	return s.keep(j.ID, st, err)
}

func (s *spyHE) IntersectionStats(ctx context.Context, j hefed.JobRef, value *nodeapi.Party, positions []int) (*hefed.Stats, error) {
	st, err := s.HE.IntersectionStats(ctx, j, value, positions)
	return s.keep(j.ID, st, err)
}

func (s *spyHE) of(t *testing.T, id string) *hefed.Stats {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.exact[id]
	require.True(t, ok, "no exact totals for job %s", id)
	return st
}

// runOn runs a runner (without homomorphic keys) on a federation.
func runOn(t *testing.T, fed *nodetest.Federation) (jobs.Jobs, *states) {
	t.Helper()
	st := &states{ch: map[string]chan jobs.State{}}
	store := openStore(t, nil)
	r := &Runner{Store: store, Nodes: fed.Clients, Catalog: staticCatalog(fed.Catalog), ChunkSize: 100, OnState: st.on, Worker: "test"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, 1); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return store, st
}

// heFixture is a running federation with the key ceremony done, and a
// runner whose homomorphic side is spied on.
type heFixture struct {
	fed   *nodetest.Federation
	store jobs.Jobs
	st    *states
	spy   *spyHE
}

func setupHE(t *testing.T, rows map[string][]int, customise func(*policy.Dataset)) *heFixture {
	t.Helper()
	fed := nodetest.Start(t, rows, customise)
	key := make([]byte, hefed.StateKeySize)
	_, _ = rand.Read(key)
	c, err := hefed.Open(context.Background(), hefed.Options{Blobs: openStore(t, nil), Key: key, Nodes: fed.Clients})
	require.NoError(t, err)
	_, err = c.Init(context.Background(), len(fed.Clients))
	require.NoError(t, err)
	spy := &spyHE{HE: c, exact: map[string]*hefed.Stats{}}
	st := &states{ch: map[string]chan jobs.State{}}
	store := openStore(t, nil)
	r := &Runner{Store: store, Nodes: fed.Clients, Catalog: staticCatalog(fed.Catalog), HE: spy, ChunkSize: 100, OnState: st.on, Worker: "test"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, 1); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return &heFixture{fed: fed, store: store, st: st, spy: spy}
}

// run submits spec and waits for its review.
func (fx *heFixture) run(t *testing.T, spec policy.Spec) (*jobs.Job, jobs.Review) {
	t.Helper()
	j := submit(t, fx.store, spec)
	fx.st.wait(t, j.ID, jobs.AwaitingReview)
	var rv jobs.Review
	require.NoError(t, json.Unmarshal(mustGet(t, fx.store, j.ID).Review, &rv))
	for _, c := range rv.Checks {
		require.NotEmpty(t, c.Protects, "check %s says what it protects against", c.Name)
	}
	return j, rv
}

func stats(t *testing.T, rv jobs.Review) disclosure.StatsResult {
	t.Helper()
	var res disclosure.StatsResult
	require.NoError(t, json.Unmarshal(rv.Result, &res))
	return res
}

// byResidue lists n row indexes ≡ r (mod 3) below 1000 and m from 1000
// up: nodetest puts row i in district Districts[i%3] with amount i.
func byResidue(r, n, m int) []int {
	var out []int
	for i := r; len(out) < n; i += 3 {
		out = append(out, i)
	}
	for i := 1000; len(out) < n+m; i++ {
		if i%3 == r {
			out = append(out, i)
		}
	}
	return out
}

const outlier = 1_000_000 // a row whose amount is far beyond any value bound

// The federation of the homomorphic attacks: department a holds the
// attacked datasets, department b the partners.
func heAttackRows() map[string][]int {
	linked := append(append(byResidue(0, 30, 3), byResidue(1, 20, 20)...), byResidue(2, 20, 20)...)
	return map[string][]int{
		"a.dp":     rng(0, 300),
		"b.dp":     rng(100, 400),
		"a.clamp":  append(rng(0, 60), outlier),
		"a.rows":   rng(0, 100),
		"a.rows6":  append(rng(0, 100), 500, 500, 500, 500, 500, 500),
		"a.linked": linked,
		"b.all":    append(rng(0, 1100), outlier),
		"a.flag":   rng(0, 300),
		"a.refuse": rng(0, 300),
	}
}

func heAttackPolicy(d *policy.Dataset) {
	switch d.Name {
	case "a.dp", "b.dp":
		d.MaxRowsPerKey = 1
		d.DP = &policy.DP{Epsilon: 1, Budget: 100, ValueBound: 1_000_000}
	case "a.clamp":
		d.DP = &policy.DP{Epsilon: 1, Budget: 100, ValueBound: 100}
	case "a.rows", "a.rows6":
		d.MaxRowsPerKey = 2
		d.DP = &policy.DP{Epsilon: 1, Budget: 100, ValueBound: 1000}
	case "a.linked", "a.refuse":
		d.MinCount = 10
	case "a.flag":
		d.MinCount = 10
		d.Differencing = policy.DifferencingFlag
	}
}

func TestDisclosureAttacksThroughNodes(t *testing.T) {
	fx := setupHE(t, heAttackRows(), heAttackPolicy)
	cat := fx.fed.Catalog

	// Attack 1: DP sums of a horizontal aggregate came back exact (the
	// bound was looked up by the empty value dataset). Attack 4: with
	// group_by, ε was spent on the total and again on every group.
	t.Run("attack1_horizontal_sums_noised_and_epsilon_once", func(t *testing.T) {
		spec := policy.Spec{Type: policy.Aggregate, Purpose: "test", Inputs: []policy.Input{{Dataset: "a.dp"}, {Dataset: "b.dp"}},
			Value: &policy.ColumnRef{Column: "amount"}, Stats: []string{"count", "sum"}, GroupBy: &policy.ColumnRef{Column: "district"}}
		j, rv := fx.run(t, spec)
		exact := fx.spy.of(t, j.ID)
		require.EqualValues(t, 600, exact.Count)
		res := stats(t, rv)
		require.NotNil(t, res.Sum)
		require.NotEqual(t, exact.Sum.String(), res.Sum.String(), "the exact sum is not released (noise of scale 4·10⁶)")
		var groupCounts int64
		for g, gs := range res.Groups {
			require.NotNil(t, gs.Sum, g)
			require.NotEqual(t, exact.Groups[g].Sum.String(), gs.Sum.String(), "group %s: its sum is noised too", g)
			groupCounts += *gs.Count
		}
		// The total is the sum of the noised groups: not noised (nor
		// charged) a second time.
		require.Equal(t, groupCounts, *res.Count)
		plan, vs := disclosure.NewPlan(&spec, cat)
		require.Empty(t, vs)
		require.Equal(t, "2000000", plan.DP.Sums.Sensitivity.String(), "Δ = the bound of every input, not of an empty name")
		require.Equal(t, "2", plan.DP.Counts.Sensitivity.String(), "a person may be in both inputs")
		dp := check(t, rv, disclosure.NameDP)
		require.True(t, dp.Passed)
		require.Contains(t, dp.Detail, "ε = 1.000000 for the job")
		require.Contains(t, dp.Detail, "count Δ = 2, ε = 0.500000")
		require.Contains(t, dp.Detail, "sum Δ = 2000000, ε = 0.500000, scale 4000000.000")
	})

	// Attack 3: value_bound was declared but never enforced, so one
	// outlier moved a sum by far more than the noise assumes. The node
	// clamps before encrypting: the coordinator's exact totals hold the
	// clamped value, in aggregate and intersection_stats alike.
	t.Run("attack3_outlier_clamped_at_node", func(t *testing.T) {
		want := int64(100) // the outlier, clamped to the bound
		for i := range 60 {
			want += int64(min(i, 100))
		}
		agg := policy.Spec{Type: policy.Aggregate, Purpose: "test", Inputs: []policy.Input{{Dataset: "a.clamp"}},
			Value: &policy.ColumnRef{Column: "amount"}, Stats: []string{"count", "sum"}}
		j, _ := fx.run(t, agg)
		require.Equal(t, want, fx.spy.of(t, j.ID).Sum.Int64())
		es, err := fx.fed.Audits["a"].Entries(context.Background(), audit.Filter{Job: j.ID, Action: string(nodeapi.StepHEAggregate)})
		require.NoError(t, err)
		require.Len(t, es, 1)
		require.Equal(t, "1", es[0].Detail["values_clamped"], "the node's audit counts the clamped values (never which)")

		is := policy.Spec{Type: policy.IntersectionStats, Purpose: "test",
			Inputs: []policy.Input{{Dataset: "a.clamp", Key: "id_number"}, {Dataset: "b.all", Key: "id_number"}},
			Value:  &policy.ColumnRef{Dataset: "a.clamp", Column: "amount"}, Stats: []string{"count", "sum"}}
		j, _ = fx.run(t, is)
		require.Equal(t, want, fx.spy.of(t, j.ID).Sum.Int64())
	})

	// Attack 4: a person with several rows moved a count by more than the
	// Δ the noise assumes. With max_rows_per_key 2, a person with 6 rows
	// moves the exact count by 2 = the plan's Δ, in both job types.
	t.Run("attack4_person_rows_capped_at_plan_delta", func(t *testing.T) {
		is := func(ds string) policy.Spec {
			return policy.Spec{Type: policy.IntersectionStats, Purpose: "test",
				Inputs: []policy.Input{{Dataset: ds, Key: "id_number"}, {Dataset: "b.all", Key: "id_number"}},
				Value:  &policy.ColumnRef{Dataset: ds, Column: "amount"}, Stats: []string{"count", "sum"}}
		}
		agg := func(ds string) policy.Spec {
			return policy.Spec{Type: policy.Aggregate, Purpose: "test", Inputs: []policy.Input{{Dataset: ds}},
				Value: &policy.ColumnRef{Column: "amount"}, Stats: []string{"count", "sum"}, GroupBy: &policy.ColumnRef{Column: "district"}}
		}
		for _, mk := range []func(string) policy.Spec{is, agg} {
			without, with := mk("a.rows"), mk("a.rows6")
			plan, vs := disclosure.NewPlan(&with, cat)
			require.Empty(t, vs)
			delta := plan.DP.Counts.Sensitivity.Int64()
			require.EqualValues(t, 2, delta)
			j1, _ := fx.run(t, without)
			j2, _ := fx.run(t, with)
			e1, e2 := fx.spy.of(t, j1.ID), fx.spy.of(t, j2.ID)
			require.Equal(t, delta, e2.Count-e1.Count, "%s: the person's 6 rows count as 2", with.Type)
			d := new(big.Int).Sub(e2.Sum, e1.Sum).Int64()
			require.Equal(t, 2*int64(500), d)
			require.LessOrEqual(t, d, plan.DP.Sums.Sensitivity.Int64())
		}
	})

	// Attack 6: a hidden histogram cell was the group's count minus its
	// other cells (33 − 30 = 3). The attacker reads the released JSON and
	// tries every margin, repeatedly: nothing hidden comes out.
	t.Run("attack6_linked_cell_underivable", func(t *testing.T) {
		spec := policy.Spec{Type: policy.Aggregate, Purpose: "test", Inputs: []policy.Input{{Dataset: "a.linked"}},
			Value: &policy.ColumnRef{Column: "amount"}, Stats: []string{"count", "histogram"}, Bins: []int64{1000},
			GroupBy: &policy.ColumnRef{Column: "district"}}
		j, rv := fx.run(t, spec)
		exact := fx.spy.of(t, j.ID)
		tianhe := exact.Groups[nodetest.Districts[0]]
		require.Equal(t, []int64{30, 3}, tianhe.Histogram, "the data has the issue's shape")
		require.EqualValues(t, 33, tianhe.Count)
		labels := []string{spec.BucketLabel(0), spec.BucketLabel(1)}
		// The attacker finds the leak where only the small cell is hidden,
		// as before: 33 − 30.
		n := func(v int64) *int64 { return &v }
		leaky := disclosure.StatsResult{Count: n(113), Histogram: map[string]*int64{labels[0]: n(70), labels[1]: n(43)}, Groups: map[string]*disclosure.StatsResult{
			nodetest.Districts[0]: {Count: n(33), Histogram: map[string]*int64{labels[0]: n(30), labels[1]: nil}},
			nodetest.Districts[1]: {Count: n(40), Histogram: map[string]*int64{labels[0]: n(20), labels[1]: n(20)}},
			nodetest.Districts[2]: {Count: n(40), Histogram: map[string]*int64{labels[0]: n(20), labels[1]: n(20)}},
		}}
		require.NotEmpty(t, deriveHidden(t, leaky, labels))

		res := stats(t, rv)
		require.NotEmpty(t, rv.Suppressed)
		derived := deriveHidden(t, res, labels)
		require.Empty(t, derived, "cells an analyst derives from the released ones")
		// And the small cell is indeed not in the release.
		if g := res.Groups[nodetest.Districts[0]]; g.Histogram != nil {
			require.Nil(t, g.Histogram[spec.BucketLabel(1)])
		}
	})
	// Attack 5 on aggregates: the node sketches the people of the
	// filtered input at he.groups and he.aggregate too.
	t.Run("attack5_aggregate_differencing", func(t *testing.T) {
		agg := func(ds, filter string, grouped bool) policy.Spec {
			s := policy.Spec{Type: policy.Aggregate, Purpose: "test", Inputs: []policy.Input{{Dataset: ds, Filter: filter}},
				Value: &policy.ColumnRef{Column: "amount"}, Stats: []string{"count", "sum"}}
			if grouped {
				s.GroupBy = &policy.ColumnRef{Column: "district"}
			}
			return s
		}
		for _, grouped := range []bool{false, true} {
			// Refused (the default), at the first step that reads the input.
			first, _ := fx.run(t, agg("a.refuse", fmt.Sprintf("amount > %d", 50+100*btoi(grouped)), grouped))
			second := submit(t, fx.store, agg("a.refuse", fmt.Sprintf("amount > %d AND amount != %d", 50+100*btoi(grouped), 60+100*btoi(grouped)), grouped))
			fx.st.wait(t, second.ID, jobs.Failed)
			got := mustGet(t, fx.store, second.ID)
			require.Contains(t, got.Error, "(403 differencing)")
			require.Contains(t, got.Error, first.ID)

			// Flagged, where the owner says so: withheld without DP.
			first, _ = fx.run(t, agg("a.flag", fmt.Sprintf("amount > %d", 50+100*btoi(grouped)), grouped))
			j, rv := fx.run(t, agg("a.flag", fmt.Sprintf("amount > %d AND amount != %d", 50+100*btoi(grouped), 60+100*btoi(grouped)), grouped))
			c := check(t, rv, disclosure.NameDifferencing)
			require.False(t, c.Passed)
			require.Contains(t, c.Detail, first.ID+": the input a.flag differs by 1 people")
			require.Equal(t, []string{"all"}, rv.Suppressed)
			require.Nil(t, stats(t, rv).Count)
			require.NotNil(t, fx.spy.of(t, j.ID), "the coordinator did compute it: flag mode trusts it to pass the flag on")
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// deriveHidden is the analyst's attack on a released grouped histogram:
// the cells are the groups' buckets and counts and the total's; the
// margins are count = Σ buckets (each row) and total = Σ groups (each
// column). Any margin with one unknown cell gives it away; derived cells
// become known and the margins are tried again until nothing changes. It
// returns the hidden cells derived.
func deriveHidden(t *testing.T, res disclosure.StatsResult, labels []string) []string {
	t.Helper()
	type cell struct {
		known bool
		v     int64
	}
	cols := len(labels) + 1 // buckets, then the count
	row := func(r *disclosure.StatsResult) []cell {
		out := make([]cell, cols)
		if r == nil || r.Suppressed != "" {
			return out
		}
		for b, l := range labels {
			if p := r.Histogram[l]; p != nil {
				out[b] = cell{true, *p}
			}
		}
		if r.Count != nil {
			out[cols-1] = cell{true, *r.Count}
		}
		return out
	}
	names := make([]string, 0, len(res.Groups))
	for g := range res.Groups {
		names = append(names, g)
	}
	slices.Sort(names)
	tab := [][]cell{row(&res)} // row 0: the total
	for _, g := range names {
		tab = append(tab, row(res.Groups[g]))
	}
	var derived []string
	solve := func(cells []*cell, sum *cell, where []string) bool {
		// sum = Σ cells: one unknown among them all is derived.
		unknown := -1
		for i, c := range append(cells, sum) {
			if !c.known {
				if unknown >= 0 {
					return false
				}
				unknown = i
			}
		}
		if unknown < 0 {
			return false
		}
		derived = append(derived, where[unknown])
		if unknown == len(cells) {
			sum.known = true
			return true
		}
		cells[unknown].known = true
		return true
	}
	for changed := true; changed; {
		changed = false
		for r := range tab {
			var cells []*cell
			var where []string
			for b := range labels {
				cells = append(cells, &tab[r][b])
				where = append(where, fmt.Sprintf("row %d bucket %s", r, labels[b]))
			}
			where = append(where, fmt.Sprintf("row %d count", r))
			changed = solve(cells, &tab[r][cols-1], where) || changed
		}
		for c := range cols {
			var cells []*cell
			var where []string
			for r := 1; r < len(tab); r++ {
				cells = append(cells, &tab[r][c])
				where = append(where, fmt.Sprintf("group %s column %d", names[r-1], c))
			}
			where = append(where, fmt.Sprintf("total column %d", c))
			changed = solve(cells, &tab[0][c], where) || changed
		}
	}
	return derived
}

// Attack 5: two psi_cardinality jobs on the same datasets, the second with
// one term added to a filter (the 82/81 pair): subtracting their
// counts tells whether the one person the term removes owns property. The
// node refuses the second job, even after a restart (its sketches are in
// node.db), and says neither the difference nor the count.
func TestAttack5DifferencingRefusedAtNode(t *testing.T) {
	rows := map[string][]int{"a.x": rng(0, 300), "b.y": rng(0, 300)}
	fed := nodetest.Start(t, rows, func(d *policy.Dataset) { d.MinCount = 10 })
	store, st := runOn(t, fed)
	in := func(filter string) policy.Spec {
		return policy.Spec{Type: policy.PSICardinality, Purpose: "audit", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number", Filter: filter}, {Dataset: "b.y", Key: "id_number"}}}
	}
	first := submit(t, store, in("amount > 150"))
	st.wait(t, first.ID, jobs.AwaitingReview)
	_, res := review(t, store, first.ID)
	require.EqualValues(t, 149, res["count"])
	rv, _ := review(t, store, first.ID)
	require.True(t, check(t, rv, disclosure.NameDifferencing).Passed)

	fed.Restart(t, "a")
	second := submit(t, store, in("amount > 150 AND amount != 200"))
	st.wait(t, second.ID, jobs.Failed)
	got := mustGet(t, store, second.ID)
	require.Equal(t, 1, got.Attempt, "refused for good, not retried")
	require.Empty(t, got.Review, "nothing reached a reviewer, nothing was counted")
	require.Contains(t, got.Error, "(403 differencing)")
	require.Contains(t, got.Error, first.ID)
	require.NotContains(t, got.Error, "148")
	require.NotContains(t, got.Error, "by 1 ")
	es, err := fed.Audits["a"].Entries(context.Background(), audit.Filter{Job: second.ID, Action: "psi.refused"})
	require.NoError(t, err)
	require.Len(t, es, 1)
	require.Equal(t, first.ID+" (1)", es[0].Detail["differencing"], "the node's own log says which job and by how much")

	// The same question again says nothing new; a difference of k or more
	// people is a different question.
	for _, f := range []string{"amount > 150", "amount > 100"} {
		j := submit(t, store, in(f))
		st.wait(t, j.ID, jobs.AwaitingReview)
	}
}

// Attack 5 where the dataset's owner chose differencing: flag. The node
// takes part and reports the overlap; the reviewer sees a failing
// differencing check naming the earlier job and the size; without DP the
// count is withheld, with DP it is released noised and flagged.
func TestAttack5DifferencingFlagged(t *testing.T) {
	for _, dp := range []bool{false, true} {
		t.Run(fmt.Sprintf("dp=%v", dp), func(t *testing.T) {
			rows := map[string][]int{"a.x": rng(0, 300), "b.y": rng(0, 300)}
			_, store, st, _ := setup(t, rows, func(d *policy.Dataset) {
				d.MinCount = 10
				d.Differencing = policy.DifferencingFlag
				if dp {
					d.DP = &policy.DP{Epsilon: 1, Budget: 10}
				}
			})
			in := func(filter string) policy.Spec {
				return policy.Spec{Type: policy.PSICardinality, Purpose: "audit", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number", Filter: filter}, {Dataset: "b.y", Key: "id_number"}}}
			}
			first := submit(t, store, in("amount > 150"))
			st.wait(t, first.ID, jobs.AwaitingReview)
			second := submit(t, store, in("amount > 150 AND amount != 200"))
			st.wait(t, second.ID, jobs.AwaitingReview)
			rv, res := review(t, store, second.ID)
			c := check(t, rv, disclosure.NameDifferencing)
			require.False(t, c.Passed)
			require.Contains(t, c.Detail, first.ID)
			require.Contains(t, c.Detail, "the input a.x differs by 1 people")
			require.NotEmpty(t, c.Protects)
			if dp {
				require.NotNil(t, res["count"], "noise bounds what the difference reveals: released, flagged")
				require.Contains(t, c.Detail, "released with noise")
			} else {
				require.Nil(t, res["count"], "withheld: 149 − 148 would name the person")
				require.Equal(t, []string{"count"}, rv.Suppressed)
			}
		})
	}
}

// A job whose spec nearly repeats one of the analyst's recent jobs (found
// at submission) carries a failing differencing check for the reviewer.
func TestSimilarJobsFlaggedForReviewer(t *testing.T) {
	rows := map[string][]int{"a.x": rng(0, 300), "b.y": rng(0, 300)}
	_, store, st, _ := setup(t, rows)
	spec := policy.Spec{Type: policy.PSICardinality, Purpose: "audit", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number", Filter: "amount > 150 AND amount != 200"}, {Dataset: "b.y", Key: "id_number"}}}
	j, _, err := store.Create(context.Background(), &jobs.Job{ID: jobs.NewID(), Spec: spec, Owner: "alice", Department: "a", State: jobs.Queued, CreatedAt: time.Now(),
		Decision: &policy.Decision{Allow: true, Similar: []policy.SimilarJob{{Job: "j_earlier", Why: "filters differ only by a.x: added AND term: amount != 200"}}}}, "")
	require.NoError(t, err)
	st.wait(t, j.ID, jobs.AwaitingReview)
	rv, res := review(t, store, j.ID)
	c := check(t, rv, disclosure.NameDifferencing)
	require.False(t, c.Passed)
	require.Contains(t, c.Detail, "j_earlier")
	require.Contains(t, c.Detail, "amount != 200")
	require.NotNil(t, res["count"], "a similar spec alone is the reviewer's call")
}

// Attack 7: a partner's filter narrowed psi_members to one household and
// the list was released. Now the partner's node refuses an input below k,
// a filter on a column its owner does not allow for filtering is refused,
// and a list of fewer than k members is never sealed, let alone delivered.
func TestAttack7OneMemberListNotReleased(t *testing.T) {
	rows := map[string][]int{"a.x": rng(0, 300), "b.y": rng(299, 600)}
	r, store, st, _ := setup(t, rows, func(d *policy.Dataset) { d.MinCount = 10 })
	members := func(partnerFilter string) *jobs.Job {
		return submit(t, store, policy.Spec{Type: policy.PSIMembers, Purpose: "who", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number"}, {Dataset: "b.y", Key: "id_number", Filter: partnerFilter}}})
	}
	narrowed := members("amount = 300")
	st.wait(t, narrowed.ID, jobs.Failed)
	require.Contains(t, mustGet(t, store, narrowed.ID).Error, "input_below_k")

	byID := members(fmt.Sprintf("id_number = '%s'", nodetest.ID(299)))
	st.wait(t, byID.ID, jobs.Failed)
	require.Contains(t, mustGet(t, store, byID.ID).Error, "policy_violation", "id_number is not a filter column of b.y")

	// Both inputs hold at least k, but they share one person.
	one := members("")
	st.wait(t, one.ID, jobs.AwaitingReview)
	rv, res := review(t, store, one.ID)
	require.Nil(t, res["count"])
	require.NotContains(t, res, "sealed_sha256", "no list was sealed")
	require.Equal(t, []string{"members"}, rv.Suppressed)
	require.False(t, check(t, rv, disclosure.NameMembersK).Passed)
	_, err := r.Deliver(context.Background(), mustGet(t, store, one.ID))
	require.ErrorIs(t, err, ErrNotDeliverable)
	require.False(t, strings.Contains(string(rv.Result), nodetest.ID(299)))
}

// Attack 2: the float sampler lost its noise at realistic value bounds
// (10⁸ fen and up: exp(−ε/Δ) rounded to 1, Δ² overflowed), and 200 of 200
// sums came back exact. Through the worker's review, with crypto/rand as
// in production: every draw is noised, with the variance 2·scale² of the
// plan's discrete Laplace noise (checked statistically: n = 1000 draws,
// sample variance within 35%, about 5 standard deviations).
func TestAttack2NoiseAtRealisticBounds(t *testing.T) {
	spec := policy.Spec{Type: policy.Aggregate, Purpose: "test", Inputs: []policy.Input{{Dataset: "a.x"}, {Dataset: "b.y"}},
		Value: &policy.ColumnRef{Column: "amount"}, Stats: []string{"count", "sum"}}
	j := &jobs.Job{Spec: spec}
	for _, bound := range []int64{1e8, 1e9, 1e12} {
		cat := policy.Catalog{}
		for _, n := range []string{"a.x", "b.y"} {
			d := nodetest.Dataset(n)
			d.MaxRowsPerKey = 1
			d.DP = &policy.DP{Epsilon: 0.5, Budget: 10, ValueBound: bound}
			cat[n] = &d
		}
		plan, vs := disclosure.NewPlan(&spec, cat)
		require.Empty(t, vs)
		scale, _ := plan.DP.Sums.Scale.Float64()
		require.Equal(t, float64(2*bound)/0.25, scale, "Δ = 2 inputs × the bound; ε share 0.25")
		const n, exact = 1000, int64(4_000_000_000_000)
		var sq float64
		for range n {
			rv, err := statsReview(j, plan, &hefed.Stats{Count: 20000, Sum: big.NewInt(exact)}, nil)
			require.NoError(t, err)
			d := stats(t, *rv).Sum.Int64() - exact
			require.NotZero(t, d, "bound %d: a sum came back exact", bound)
			sq += float64(d) * float64(d)
		}
		require.InEpsilon(t, 2*scale*scale, sq/n, 0.35, "bound %d", bound)
	}
}
