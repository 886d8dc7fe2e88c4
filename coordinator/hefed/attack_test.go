package hefed

// Attacks by a malicious coordinator on the homomorphic release, run as it
// would run them: against real nodes (nodetest: node.Service behind
// nodehttp), with everything a coordinator holds — the nodes' envelope
// keys, every ciphertext and signature it was sent, its own release and
// signing keys, the collective public keys — and nothing it does not (the
// nodes' signing keys and key shares). Each attack is refused with the
// node's own code, and the honest release still works afterwards with
// exact results: a refusal burns nothing.

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"math/big"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/he/ceremony"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// collect runs he/aggregate of job j at every input's node, as the
// coordinator does, and returns the homomorphic sum of one parameter set's
// vectors and every input's signed contribution to it.
func collect(t *testing.T, fx *fixture, j JobRef, params string) (*he.Ciphertext, []contribution) {
	t.Helper()
	ctx := context.Background()
	ep, err := fx.c.epoch()
	require.NoError(t, err)
	ks := ep.sets[params]
	n := len(j.Spec.Inputs)
	cts, cons := make([]*he.Ciphertext, n), make([]contribution, n)
	for i, in := range j.Spec.Inputs {
		cl := fx.f.Clients[policy.Department(in.Dataset)]
		resp, err := cl.HEAggregate(ctx, &nodeapi.HEAggregateRequest{Header: j.header(i, nodeapi.StepHEAggregate), Spec: j.Spec, Requester: j.Requester, Input: i, MaxRows: fx.c.rowBound(n), Consents: j.Consents})
		require.NoError(t, err)
		env, sig := resp.Sums, resp.SumsSignature
		if params == he.NameSquares {
			env, sig = resp.Squares, resp.SquaresSignature
		}
		ct, p, err := openCiphertextRaw(cl, ks, env)
		require.NoError(t, err)
		cts[i], cons[i] = ct, contribution{input: i, payload: p, sig: sig}
	}
	sum, err := he.Sum(he.NewEvaluator(ks.ps), cts, 1)
	require.NoError(t, err)
	return sum, cons
}

// releaseRequest is the request the coordinator's releaser sends node cl
// for output `index` of an aggregate, with these contributions.
func releaseRequest(t *testing.T, cl *nodeapi.Client, ks *keySet, j JobRef, index int, cons []contribution, active []string) *nodeapi.HEReleaseRequest {
	t.Helper()
	ps, cer := ks.ps, ks.setup.CeremonyID()
	pkb, err := ks.rk.PublicKey().MarshalBinary()
	require.NoError(t, err)
	r := &nodeapi.HEReleaseRequest{Header: j.header(0, nodeapi.StepHERelease), Spec: j.Spec, Requester: j.Requester, Output: index, Params: ps.Name(), Active: active, Level: ps.MaxLevel()}
	r.ReleaseKey, err = seal(cl, ps, cer, he.LabelPublicKey, ps.MaxLevel(), pkb)
	require.NoError(t, err)
	for _, con := range cons {
		env, err := seal(cl, ps, cer, he.LabelCiphertext, ps.MaxLevel(), con.payload)
		require.NoError(t, err)
		r.Contributions = append(r.Contributions, nodeapi.HEContribution{Input: con.input, Ciphertext: env, Signature: con.sig})
	}
	return r
}

// encryptAsCoordinator encrypts values under the collective key, as anyone
// holding it (the coordinator) can, and returns the wire payload.
func encryptAsCoordinator(t *testing.T, ks *keySet, values []int64) *he.Ciphertext {
	t.Helper()
	enc, err := he.NewEncryptor(ks.pk)
	require.NoError(t, err)
	ct, err := enc.Encrypt(values, 1)
	require.NoError(t, err)
	return ct
}

func payload(t *testing.T, ct *he.Ciphertext) []byte {
	t.Helper()
	b, err := ct.MarshalBinary()
	require.NoError(t, err)
	return b
}

func add(t *testing.T, a, b *he.Ciphertext) *he.Ciphertext {
	t.Helper()
	s, err := he.NewEvaluator(a.ParamSet()).Add(a, b)
	require.NoError(t, err)
	return s
}

// An aggregate is decrypted only as the sum, computed by each releasing
// node itself, of exactly one signed contribution per input of the job.
func TestAttackAggregateRelease(t *testing.T) {
	ctx := context.Background()
	fx := start(t, 2, nodetest.Options{})
	c, f := fx.c, fx.f
	ep, err := c.epoch()
	require.NoError(t, err)
	sums, squares := ep.sets[he.NameSums], ep.sets[he.NameSquares]
	j := JobRef{ID: "agg-target", Attempt: 1, Spec: aggregateSpec([]string{"count", "sum", "variance"}, false), Requester: alice}
	sum, cons := collect(t, fx, j, he.NameSums)
	sqSum, sqCons := collect(t, fx, j, he.NameSquares)
	// Another job of the same spec, and another attempt of this one: their
	// contributions are as real as this job's.
	other := JobRef{ID: "agg-other", Attempt: 1, Spec: j.Spec, Requester: alice}
	_, otherCons := collect(t, fx, other, he.NameSums)
	again := j
	again.Attempt = 2
	_, againCons := collect(t, fx, again, he.NameSums)
	// Plain aggregate job without the variance: it has one output.
	plainJob := JobRef{ID: "agg-plain", Attempt: 1, Spec: aggregateSpec([]string{"sum"}, false), Requester: alice}
	_, plainCons := collect(t, fx, plainJob, he.NameSums)

	zero := encryptAsCoordinator(t, sums, []int64{0})
	mine := encryptAsCoordinator(t, sums, []int64{-1000, 1})
	withPayload := func(con contribution, p []byte) contribution { con.payload = p; return con }
	withInput := func(con contribution, i int) contribution { con.input = i; return con }
	opened := func(con contribution) *he.Ciphertext {
		ct, err := sums.ps.UnmarshalCiphertext(con.payload, sums.ps.MaxLevel())
		require.NoError(t, err)
		return ct
	}
	forged := func(con contribution, signer string) contribution {
		st := nodeapi.ContributionStatement{JobRef: j.header(0, "").Ref(), Input: con.input, Params: he.NameSums, Payload: nodeapi.DigestOf(con.payload)}
		if signer != "" {
			con.sig = attest.Sign(nodetest.PrivateKey(signer), st.Message())
		} else {
			con.sig = nil
		}
		return con
	}
	spec2 := j.Spec
	spec2.Inputs = append([]policy.Input{}, j.Spec.Inputs...)
	spec2.Inputs[0].Filter = "amount != 17" // one person fewer

	cl := f.Clients["a"]
	active := []string{"a", "b"}
	for _, a := range []struct {
		name   string
		mod    func(r *nodeapi.HEReleaseRequest)
		status int
		code   string
	}{
		{"one department's contribution alone", func(r *nodeapi.HEReleaseRequest) { r.Contributions = r.Contributions[:1] }, 403, "bad_contributions"},
		{"a contribution missing", func(r *nodeapi.HEReleaseRequest) { r.Contributions = r.Contributions[:2] }, 403, "bad_contributions"},
		{"a contribution twice", func(r *nodeapi.HEReleaseRequest) { r.Contributions[2] = r.Contributions[1] }, 403, "bad_contributions"},
		{"no contributions", func(r *nodeapi.HEReleaseRequest) { r.Contributions = nil }, 403, "bad_contributions"},
		{"b's contribution relabelled as c's input", func(r *nodeapi.HEReleaseRequest) {
			r.Contributions[2] = releaseRequest(t, cl, sums, j, 0, []contribution{withInput(cons[1], 2)}, active).Contributions[0]
		}, 403, "bad_contribution"},
		{"altered: the coordinator's own ciphertext added", func(r *nodeapi.HEReleaseRequest) {
			r.Contributions[0] = releaseRequest(t, cl, sums, j, 0, []contribution{withPayload(cons[0], payload(t, add(t, opened(cons[0]), mine)))}, active).Contributions[0]
		}, 403, "bad_contribution"},
		{"re-randomised contribution (ct + Enc(0))", func(r *nodeapi.HEReleaseRequest) {
			r.Contributions[0] = releaseRequest(t, cl, sums, j, 0, []contribution{withPayload(cons[0], payload(t, add(t, opened(cons[0]), zero)))}, active).Contributions[0]
		}, 403, "bad_contribution"},
		{"the coordinator's ciphertext in a's name, signed with the coordinator's key", func(r *nodeapi.HEReleaseRequest) {
			r.Contributions[0] = releaseRequest(t, cl, sums, j, 0, []contribution{forged(withPayload(cons[0], payload(t, mine)), "coordinator")}, active).Contributions[0]
		}, 403, "bad_contribution"},
		{"a contribution signed by another department", func(r *nodeapi.HEReleaseRequest) {
			r.Contributions[0] = releaseRequest(t, cl, sums, j, 0, []contribution{forged(cons[0], "node-b")}, active).Contributions[0]
		}, 403, "bad_contribution"},
		{"an unsigned contribution", func(r *nodeapi.HEReleaseRequest) {
			r.Contributions[0] = releaseRequest(t, cl, sums, j, 0, []contribution{forged(cons[0], "")}, active).Contributions[0]
		}, 403, "bad_contribution"},
		{"another job's contribution in this job's sum", func(r *nodeapi.HEReleaseRequest) {
			r.Contributions[1] = releaseRequest(t, cl, sums, j, 0, otherCons[1:2], active).Contributions[0]
		}, 403, "bad_contribution"},
		{"another job's whole sum as this job's output", func(r *nodeapi.HEReleaseRequest) {
			r.Contributions = releaseRequest(t, cl, sums, j, 0, otherCons, active).Contributions
		}, 403, "bad_contribution"},
		{"another attempt's contributions", func(r *nodeapi.HEReleaseRequest) {
			r.Contributions = releaseRequest(t, cl, sums, j, 0, againCons, active).Contributions
		}, 403, "bad_contribution"},
		{"the sums as the squares output", func(r *nodeapi.HEReleaseRequest) { r.Output = 1 }, 403, "not_an_output"},
		{"over the output count", func(r *nodeapi.HEReleaseRequest) { r.Output = 2 }, 403, "not_an_output"},
		{"a negative output", func(r *nodeapi.HEReleaseRequest) { r.Output = -1 }, 403, "not_an_output"},
		{"the coordinator's own sum to decrypt", func(r *nodeapi.HEReleaseRequest) {
			var err error
			r.Ciphertext, err = seal(cl, sums.ps, sums.setup.CeremonyID(), he.LabelCiphertext, sums.ps.MaxLevel(), payload(t, sum))
			require.NoError(t, err)
		}, 400, "bad_request"},
		{"the spec narrowed under the job id", func(r *nodeapi.HEReleaseRequest) {
			r.Spec = spec2
			r.SpecHash = spec2.Hash()
		}, 403, "spec_conflict"},
		{"another requester under the job id", func(r *nodeapi.HEReleaseRequest) {
			r.Requester = policy.Requester{User: "mallory", Department: "a"}
		}, 403, "spec_conflict"},
		{"a header naming another spec hash", func(r *nodeapi.HEReleaseRequest) { r.SpecHash = spec2.Hash() }, 400, "spec_hash_mismatch"},
	} {
		r := releaseRequest(t, cl, sums, j, 0, cons, active)
		a.mod(r)
		_, err := cl.HERelease(ctx, r)
		requireRemote(t, err, a.status, a.code)
		t.Logf("%s: refused (%s)", a.name, a.code)
	}
	// An aggregate without the variance has one output.
	_, err = cl.HERelease(ctx, func() *nodeapi.HEReleaseRequest {
		r := releaseRequest(t, cl, sums, plainJob, 1, plainCons, active)
		return r
	}())
	requireRemote(t, err, 403, "not_an_output")
	require.Empty(t, entries(t, f, "a", string(nodeapi.StepHERelease), ""), "no attack reached a share")

	// The honest release still works, exactly.
	rel, err := c.newReleaser(ctx, ep, j, []string{"a", "b"}, "")
	require.NoError(t, err)
	res, err := rel.decrypt(ctx, sums, sum, output{index: 0, contributions: cons})
	require.NoError(t, err)
	want := wantAggregate(false, true)
	require.Equal(t, []int64{want.Count, want.Sum.Int64()}, res.Values()[:2])
	res, err = rel.decrypt(ctx, squares, sqSum, output{index: 1, contributions: sqCons})
	require.NoError(t, err)
	require.Equal(t, want.SumSq.Int64(), res.Values()[0])

	// Once decrypted, an output is never decrypted again: not with the same
	// contributions, nor with a new attempt's fresh ones.
	for _, cc := range []struct {
		job  JobRef
		cons []contribution
	}{{j, cons}, {again, againCons}} {
		for _, d := range []string{"a", "b"} {
			cl := f.Clients[d]
			_, err := cl.HERelease(ctx, releaseRequest(t, cl, sums, cc.job, 0, cc.cons, active))
			requireRemote(t, err, 409, "already_decrypted")
		}
	}
	// The audit says what each node released, with the bound it computed.
	got := entries(t, f, "a", string(nodeapi.StepHERelease), "agg-target")
	require.Len(t, got, 2)
	require.Equal(t, "0", got[0].Detail["output"])
	require.Equal(t, "3", got[0].Detail["noise_terms"], "three inputs, three fresh encryptions: the node's own bound")
}

// A node that holds no input of the job may release it (t of the roster)
// and checks the same: the binding, the signatures, its own ledger.
func TestAttackAggregateReleaseOnlyNode(t *testing.T) {
	ctx := context.Background()
	fx := start(t, 2, nodetest.Options{})
	c, f := fx.c, fx.f
	ep, err := c.epoch()
	require.NoError(t, err)
	sums := ep.sets[he.NameSums]
	spec := policy.Spec{Type: policy.Aggregate, Purpose: "two departments", Inputs: []policy.Input{{Dataset: "a.pay"}, {Dataset: "b.pay"}}, Value: &policy.ColumnRef{Column: "amount"}, Stats: []string{"sum"}}
	j := JobRef{ID: "agg-ab", Attempt: 1, Spec: spec, Requester: alice}
	sum, cons := collect(t, fx, j, he.NameSums)
	cc := f.Clients["c"]
	active := []string{"a", "c"}

	spec2 := spec
	spec2.Purpose = "something else"
	r := releaseRequest(t, cc, sums, j, 0, cons, active)
	r.Contributions[1].Signature = cons[0].sig
	_, err = cc.HERelease(ctx, r)
	requireRemote(t, err, 403, "bad_contribution")

	rel := &releaser{c: c, job: j, active: active}
	res, err := rel.decrypt(ctx, sums, sum, output{index: 0, contributions: cons})
	require.NoError(t, err)
	var want int64
	for _, i := range append(append([]int{}, rows()["a.pay"]...), rows()["b.pay"]...) {
		want += int64(i)
	}
	require.Equal(t, want, res.Values()[1])
	require.Len(t, entries(t, f, "c", string(nodeapi.StepHERelease), "agg-ab"), 1)

	// c bound the job id to its spec at its first release.
	r = releaseRequest(t, cc, sums, JobRef{ID: j.ID, Attempt: 1, Spec: spec2, Requester: alice}, 0, cons, active)
	_, err = cc.HERelease(ctx, r)
	requireRemote(t, err, 403, "spec_conflict")
	_, err = cc.HERelease(ctx, releaseRequest(t, cc, sums, j, 0, cons, active))
	requireRemote(t, err, 409, "already_decrypted")
}

// An input whose filter leaves fewer rows than its dataset's k is refused
// at its node, for he/groups and he/aggregate alike: the coordinator would
// see the totals before any reviewer.
func TestAttackAggregateInputBelowK(t *testing.T) {
	ctx := context.Background()
	fx := start(t, 2, nodetest.Options{Customise: func(d *policy.Dataset) { d.MinCount = 5 }})
	c, f := fx.c, fx.f
	spec := aggregateSpec([]string{"count", "sum"}, true)
	spec.Inputs[1].Filter = "amount >= 66" // b.pay: rows 66..69, four of them
	_, err := c.Aggregate(ctx, JobRef{ID: "narrow", Attempt: 1, Spec: spec, Requester: alice})
	re := requireRemote(t, err, 403, "input_below_k")
	require.Contains(t, re.Message, "k = 5")
	require.NotContains(t, re.Message, "4 rows", "the count stays at the node")
	require.NotEmpty(t, entries(t, f, "b", string(nodeapi.StepHEGroups)+".refused", "narrow"))

	spec.GroupBy = nil
	_, err = c.Aggregate(ctx, JobRef{ID: "narrow-2", Attempt: 1, Spec: spec, Requester: alice})
	requireRemote(t, err, 403, "input_below_k")
	require.NotEmpty(t, entries(t, f, "b", string(nodeapi.StepHEAggregate)+".refused", "narrow-2"))
	require.Empty(t, entries(t, f, "b", string(nodeapi.StepHEAggregate), "narrow-2"), "b encrypted nothing")

	spec.Inputs[1].Filter = "amount >= 65" // five rows: allowed
	got, err := c.Aggregate(ctx, JobRef{ID: "wide", Attempt: 1, Spec: spec, Requester: alice})
	require.NoError(t, err)
	want := wantAggregate(false, false)
	for _, i := range filterIdx(rows()["b.pay"], func(i int) bool { return i > 25 && i < 65 }) {
		want.Count--
		want.Sum.Sub(want.Sum, big.NewInt(int64(i)))
	}
	requireStats(t, want, got)
}

// intersectionFixture runs the PSI and the coordinator's masking of an
// intersection_stats job (value, group-by and filter at a.pay; keys in a,
// b and c) and returns its per-output ciphertexts, the signed layout and
// the expected totals by output.
type isFixture struct {
	j       JobRef
	results map[int]*he.Ciphertext // output isOut(g, lane) → masked sum, without the departments' masks
	layout  *nodeapi.HELayout
	want    map[int]int64
	groups  []string
}

func runIntersection(t *testing.T, fx *fixture, id string, stats []string) *isFixture {
	t.Helper()
	ctx := context.Background()
	r := rows()
	inC := map[int]bool{}
	for _, i := range r["c.pay"] {
		inC[i] = true
	}
	spec := policy.Spec{
		Type: policy.IntersectionStats, Purpose: "payments of owners",
		Inputs: []policy.Input{
			{Dataset: "a.pay", Key: "id_number"},
			{Dataset: "b.pay", Key: "id_number"},
			{Dataset: "c.pay", Key: "id_number"},
		},
		Value:   &policy.ColumnRef{Dataset: "a.pay", Column: "amount"},
		GroupBy: &policy.ColumnRef{Dataset: "a.pay", Column: "district"},
		Stats:   stats,
	}
	j := JobRef{ID: id, Attempt: 1, Spec: spec, Requester: alice}
	value, pos := runPSI(t, fx.f, j, 0)
	matched := make([]bool, value.N)
	for _, p := range pos {
		matched[p] = true
	}
	ep, err := fx.c.epoch()
	require.NoError(t, err)
	need, err := statNeeds(&spec)
	require.NoError(t, err)
	vh := value.Header
	acc, groups, layout, err := fx.c.maskedSums(ctx, value.Client, vh, value.N, matched, need, ep.sets[he.NameSums], ep.sets[he.NameSquares])
	require.NoError(t, err)
	out := &isFixture{j: j, results: map[int]*he.Ciphertext{}, layout: layout, want: map[int]int64{}, groups: groups}
	for g := range groups {
		for l := range he.ISLanes {
			if acc[l][g] != nil {
				out.results[isOut(g, l)] = acc[l][g]
			}
		}
	}
	for _, i := range r["a.pay"] {
		if !(i >= 20 && i < 70 && inC[i]) {
			continue
		}
		g := -1
		for gi, l := range groups {
			if l == nodetest.Districts[i%3] {
				g = gi
			}
		}
		// Small values: every residue lane is the total itself, the hint 0.
		out.want[isOut(g, he.ISCount)]++
		out.want[isOut(g, he.ISSumS)] += int64(i)
		out.want[isOut(g, he.ISSumQ)] += int64(i)
		out.want[isOut(g, he.ISSqQ)] += int64(i * i)
		out.want[isOut(g, he.ISSqS)] += int64(i * i)
	}
	return out
}

// isOut is the output index of lane l of group g of an intersection_stats
// job.
func isOut(g int, l he.ISLane) int { return g*int(he.ISLanes) + int(l) }

// isRequest is the request for output `index` of an intersection_stats
// job carrying ct as the result.
func isRequest(t *testing.T, cl *nodeapi.Client, ks *keySet, is *isFixture, index int, ct *he.Ciphertext, active []string) *nodeapi.HEReleaseRequest {
	t.Helper()
	r := releaseRequest(t, cl, ks, is.j, index, nil, active)
	r.Layout = is.layout
	r.Level = ct.Level()
	var err error
	r.Ciphertext, err = seal(cl, ks.ps, ks.setup.CeremonyID(), he.LabelCiphertext, ct.Level(), payload(t, ct))
	require.NoError(t, err)
	return r
}

// releaseIS has the active nodes release ct as output index and combines
// their shares, as the coordinator does.
func releaseIS(t *testing.T, c *Coordinator, ks *keySet, is *isFixture, index int, ct *he.Ciphertext, active []string) ([]int64, int64, error) {
	t.Helper()
	rel := &releaser{c: c, job: is.j, active: active}
	res, err := rel.decrypt(context.Background(), ks, ct, output{index: index, layout: is.layout})
	if err != nil {
		return nil, 0, err
	}
	return res.Values(), res.Total(), nil
}

// What a malicious coordinator can and cannot do with intersection_stats.
// It holds the match mask, so it can choose which of the value node's
// slots an output sums (any linear function of ciphertexts it holds) — but
// only within the job's he.ISLanes·G outputs, each decrypted once, and each only as
// a total: every releasing node adds its own zero-sum vector to its share,
// so leaving out the departments' zero-sum masks reveals no slot.
func TestAttackIntersectionStatsRelease(t *testing.T) {
	ctx := context.Background()
	fx := start(t, 2, nodetest.Options{})
	c, f := fx.c, fx.f
	ep, err := c.epoch()
	require.NoError(t, err)
	sums, squares := ep.sets[he.NameSums], ep.sets[he.NameSquares]
	is := runIntersection(t, fx, "is-target", []string{"count", "sum", "mean"})
	G := len(is.groups)
	require.Equal(t, G, is.layout.Groups)
	require.Greater(t, G, 1)
	active := []string{"a", "b"}
	cl := f.Clients["a"]

	refused := []struct {
		name   string
		mod    func(r *nodeapi.HEReleaseRequest)
		status int
		code   string
	}{
		{"over the output count (he.ISLanes·G)", func(r *nodeapi.HEReleaseRequest) { r.Output = isOut(G, he.ISCount) }, 403, "not_an_output"},
		{"a Σx² output of a job without the variance", func(r *nodeapi.HEReleaseRequest) { r.Output = isOut(0, he.ISSqS) }, 403, "not_an_output"},
		{"the Σx² hint of a job without the variance", func(r *nodeapi.HEReleaseRequest) { r.Output = isOut(1, he.ISSqHint) }, 403, "not_an_output"},
		{"no layout", func(r *nodeapi.HEReleaseRequest) { r.Layout = nil }, 403, "bad_layout"},
		{"a layout inflated to more groups", func(r *nodeapi.HEReleaseRequest) {
			l := *is.layout
			l.Groups += 5
			r.Layout, r.Output = &l, isOut(G, he.ISCount)
		}, 403, "bad_layout"},
		{"a layout with fewer chunks (less smudging)", func(r *nodeapi.HEReleaseRequest) {
			l := *is.layout
			l.Chunks = 1
			r.Layout = &l
		}, 403, "bad_layout"},
		{"a layout signed by another node", func(r *nodeapi.HEReleaseRequest) {
			l := *is.layout
			st := nodeapi.LayoutStatement{JobRef: is.j.header(0, "").Ref(), Groups: l.Groups, Chunks: l.Chunks}
			l.Signature = attest.Sign(nodetest.PrivateKey("node-b"), st.Message())
			r.Layout = &l
		}, 403, "bad_layout"},
		{"contributions given for an intersection_stats job", func(r *nodeapi.HEReleaseRequest) {
			r.Contributions = []nodeapi.HEContribution{{Input: 0, Ciphertext: r.Ciphertext}}
		}, 400, "bad_request"},
	}
	for _, a := range refused {
		r := isRequest(t, cl, sums, is, 0, is.results[0], active)
		a.mod(r)
		_, err := cl.HERelease(ctx, r)
		requireRemote(t, err, a.status, a.code)
		t.Logf("%s: refused (%s)", a.name, a.code)
	}
	_, err = cl.HERelease(ctx, isRequest(t, cl, squares, is, isOut(0, he.ISSqQ), encryptAsCoordinator(t, squares, []int64{1}), active))
	requireRemote(t, err, 403, "not_an_output")
	// Each node keeps its own ledger, so without the value node a coordinator
	// could have disjoint active sets ({a,b}, then {b,c}…) decrypt the same
	// output once each: an active set without the value node a is refused.
	for _, d := range []string{"b", "c"} {
		cl := f.Clients[d]
		_, err := cl.HERelease(ctx, isRequest(t, cl, sums, is, 0, is.results[0], []string{"b", "c"}))
		requireRemote(t, err, 403, "value_node_not_active")
	}
	require.Empty(t, entries(t, f, "a", string(nodeapi.StepHERelease), "is-target"), "no attack reached a share")

	// The coordinator leaves out the departments' zero-sum masks and
	// decrypts output 0 (group 0's count) hoping to read each matched key's
	// row count slot by slot: it gets the total, and uniform slots.
	vals, total, err := releaseIS(t, c, sums, is, 0, is.results[0], active)
	require.NoError(t, err)
	require.Equal(t, is.want[0], total)
	small := 0
	for _, v := range vals {
		if v >= 0 && v <= 3 {
			small++
		}
	}
	require.Less(t, small, 5, "without the nodes' own zero-sum shares the slots would be 0/1/2/3 row counts; %d of %d were", small, len(vals))

	// Re-randomised (ct + Enc(0)) or as it was, output 0 is not decrypted
	// again, by any node that released it.
	rerand := add(t, is.results[0], encryptAsCoordinator(t, sums, []int64{0}))
	for _, d := range active {
		cl := f.Clients[d]
		for _, ct := range []*he.Ciphertext{is.results[0], rerand} {
			_, err := cl.HERelease(ctx, isRequest(t, cl, sums, is, 0, ct, active))
			requireRemote(t, err, 409, "already_decrypted")
		}
	}

	// The residual, stated by the threat model: the coordinator chooses what
	// an unused output sums — here one raw, unmasked value chunk of the
	// value node, which holds every key's Σx (matched or not). It learns
	// the total of the slots it chose and nothing per slot, and it spends
	// one of the job's outputs (the Σx mod T_s of group 1 is then never released).
	chunk := rawChunk(t, fx, is, 0)
	vals, total, err = releaseIS(t, c, sums, is, isOut(1, he.ISSumS), chunk, active)
	require.NoError(t, err)
	small = 0
	for _, v := range vals {
		if v >= 0 && v < 70 {
			small++
		}
	}
	require.Less(t, small, 5, "a chunk's slots (amounts 0..69) do not decrypt alone")
	t.Logf("residual: output %d spent on a raw chunk, total %d", isOut(1, he.ISSumS), total)
	_, _, err = releaseIS(t, c, sums, is, isOut(1, he.ISSumS), is.results[isOut(1, he.ISSumS)], active)
	requireRemote(t, err, 409, "already_decrypted")

	// A ciphertext of another job cannot be released as this job's output
	// beyond this job's outputs: every output index is checked and burnt
	// per job.
	_, err = cl.HERelease(ctx, isRequest(t, cl, sums, is, isOut(G, he.ISSumS), chunk, active))
	requireRemote(t, err, 403, "not_an_output")

	// The other outputs release honestly, each exactly its total.
	for _, idx := range []int{isOut(0, he.ISSumS), isOut(1, he.ISCount), isOut(0, he.ISSumQ)} {
		ks := sums
		if idx == isOut(0, he.ISSumQ) {
			ks = squares
		}
		_, total, err := releaseIS(t, c, ks, is, idx, is.results[idx], active)
		require.NoError(t, err)
		require.Equal(t, is.want[idx], total, "output %d", idx)
	}
}

// rawChunk fetches chunk ci of the value node's layout again, unmasked, as
// the coordinator holds it (its Σx vector).
func rawChunk(t *testing.T, fx *fixture, is *isFixture, ci int) *he.Ciphertext {
	t.Helper()
	ep, err := fx.c.epoch()
	require.NoError(t, err)
	cl := fx.f.Clients["a"]
	resp, err := cl.HEValues(context.Background(), &nodeapi.HEValuesRequest{Header: is.j.header(0, nodeapi.StepHEValues), Offset: ci, Count: 1})
	require.NoError(t, err)
	ct, err := openCiphertext(cl, ep.sets[he.NameSums], resp.Chunks[0].Lanes[he.ISSumS])
	require.NoError(t, err)
	return ct
}

// The smudging of an intersection_stats release is sized by the node from
// the value node's signed layout and the job's inputs, whatever noise
// descriptor the coordinator attaches to the result: a descriptor lowered
// to one fresh encryption, or raised absurdly, changes nothing.
func TestAttackLyingNoiseDescriptor(t *testing.T) {
	fx := start(t, 2, nodetest.Options{})
	c, f := fx.c, fx.f
	ep, err := c.epoch()
	require.NoError(t, err)
	sums := ep.sets[he.NameSums]
	is := runIntersection(t, fx, "is-noise", []string{"count", "sum"})
	active := []string{"a", "b"}
	lie := func(ct *he.Ciphertext, n he.Noise) *he.Ciphertext {
		b := payload(t, ct)
		binary.BigEndian.PutUint64(b[:8], n.Terms)
		binary.BigEndian.PutUint64(b[8:16], n.Masked)
		out, err := sums.ps.UnmarshalCiphertext(b, ct.Level())
		require.NoError(t, err)
		require.Equal(t, n, out.Noise())
		return out
	}
	C := is.layout.Chunks
	wantTerms, wantMasked := strconv.Itoa(C+3), strconv.Itoa(C) // C masked chunks, three departments' masks
	for idx, n := range map[int]he.Noise{0: he.FreshNoise, 1: {Terms: 1 << 40, Masked: 1 << 40}} {
		ct := lie(is.results[idx], n)
		_, total, err := releaseIS(t, c, sums, is, idx, ct, active)
		require.NoError(t, err)
		require.Equal(t, is.want[idx], total)
		for _, d := range active {
			got := entries(t, f, d, string(nodeapi.StepHERelease), "is-noise")
			e := got[len(got)-1]
			require.Equal(t, fmt.Sprint(idx), e.Detail["output"])
			require.Equal(t, wantTerms, e.Detail["noise_terms"], "descriptor %+v", n)
			require.Equal(t, wantMasked, e.Detail["noise_masked"], "descriptor %+v", n)
			bound, err := he.MaskedSumNoise(C, 3)
			require.NoError(t, err)
			sm, err := sums.ps.SmudgingFor(bound, ct.Level(), 2)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprintf("%.2f", math.Log2(sm.Sigma)), e.Detail["smudging_log2_sigma"])
		}
	}
}

// relayed is what a coordinator holds mid-ceremony: every node's signed
// HPKE key and its shares (payloads opened from their envelopes) with
// their signatures.
type relayed struct {
	hdr        nodeapi.CeremonyHeader
	roster     []string
	hpke, sigs map[string][]byte
	ckg        map[string][]byte            // from → payload
	ckgSigs    map[string][]byte            // from → signature
	sealed     map[string]map[string][]byte // to → from → payload
	sealedSigs map[string]map[string][]byte // to → from → signature
}

// ceremonyToShares runs begin and shares of a 2-of-3 ceremony honestly at
// every node.
func ceremonyToShares(t *testing.T, fx *fixture, cer string) *relayed {
	t.Helper()
	ctx := context.Background()
	ps := he.Sums()
	r := &relayed{hdr: nodeapi.CeremonyHeader{Ceremony: cer, Params: ps.Name()}, roster: []string{"a", "b", "c"},
		hpke: map[string][]byte{}, sigs: map[string][]byte{}, ckg: map[string][]byte{}, ckgSigs: map[string][]byte{},
		sealed: map[string]map[string][]byte{"a": {}, "b": {}, "c": {}}, sealedSigs: map[string]map[string][]byte{"a": {}, "b": {}, "c": {}}}
	for _, n := range r.roster {
		resp, err := fx.f.Clients[n].KeysBegin(ctx, &nodeapi.KeysBeginRequest{CeremonyHeader: r.hdr, Nodes: r.roster, Threshold: 2})
		require.NoError(t, err)
		r.hpke[n], r.sigs[n] = resp.HPKEPublicKey, resp.Signature
	}
	for _, n := range r.roster {
		cl := fx.f.Clients[n]
		resp, err := cl.KeysShares(ctx, &nodeapi.KeysSharesRequest{CeremonyHeader: r.hdr, Nodes: r.roster, Threshold: 2, HPKEPublicKeys: r.hpke, HPKESignatures: r.sigs})
		require.NoError(t, err)
		r.ckg[n], err = open(cl, ps, cer, he.LabelCKGShare, ps.MaxLevel(), resp.PublicKeyShare)
		require.NoError(t, err)
		r.ckgSigs[n] = resp.PublicKeyShareSignature
		for to, m := range resp.SealedShares {
			r.sealed[to][n], err = open(cl, ps, cer, ceremony.LabelSealedShamirShare, ps.MaxLevel(), m)
			require.NoError(t, err)
			r.sealedSigs[to][n] = resp.SealedShareSignatures[to]
		}
	}
	return r
}

// finishFor is the finish request for node `to`, re-enveloped for it.
func (r *relayed) finishFor(t *testing.T, cl *nodeapi.Client, to string) *nodeapi.KeysFinishRequest {
	t.Helper()
	ps := he.Sums()
	req := &nodeapi.KeysFinishRequest{CeremonyHeader: r.hdr, PublicKeyShares: map[string][]byte{}, PublicKeyShareSignatures: map[string][]byte{},
		SealedShares: map[string][]byte{}, SealedShareSignatures: map[string][]byte{}}
	for from, p := range r.ckg {
		m, err := seal(cl, ps, r.hdr.Ceremony, he.LabelCKGShare, ps.MaxLevel(), p)
		require.NoError(t, err)
		req.PublicKeyShares[from], req.PublicKeyShareSignatures[from] = m, r.ckgSigs[from]
	}
	for from, p := range r.sealed[to] {
		m, err := seal(cl, ps, r.hdr.Ceremony, ceremony.LabelSealedShamirShare, ps.MaxLevel(), p)
		require.NoError(t, err)
		req.SealedShares[from], req.SealedShareSignatures[from] = m, r.sealedSigs[to][from]
	}
	return req
}

// The key ceremony's roster comes from each node's own federation, and
// every key and share is signed by the party that made it: a coordinator
// can neither add a phantom party nor substitute a party's HPKE key (and
// so collect t Shamir shares: the whole key), nor slip in shares of its
// own. Each refusal changes nothing: the node keeps its keys.
func TestAttackCeremony(t *testing.T) {
	ctx := context.Background()
	fx := start(t, 2, nodetest.Options{})
	f := fx.f
	ep, err := fx.c.epoch()
	require.NoError(t, err)
	cl := f.Clients["a"]
	ps := he.Sums()
	keepsKeys := func() {
		t.Helper()
		ok, err := holdsKeys(ctx, cl, ep)
		require.NoError(t, err)
		require.True(t, ok, "node a lost its keys")
	}

	t.Run("roster", func(t *testing.T) {
		for _, c := range []struct {
			name      string
			nodes     []string
			threshold int
			status    int
			code      string
		}{
			{"a phantom party", []string{"a", "b", "c", "mallory"}, 2, 403, "unknown_party"},
			{"a phantom in place of a department", []string{"a", "b", "mallory"}, 2, 403, "unknown_party"},
			{"a roster without the node", []string{"b", "c"}, 2, 400, "not_in_roster"},
			{"a department twice", []string{"a", "b", "b"}, 2, 400, "bad_request"},
			{"t = 1", []string{"a", "b", "c"}, 1, 400, "bad_request"},
			{"the node alone", []string{"a"}, 1, 400, "bad_request"},
			{"t > N", []string{"a", "b"}, 3, 400, "bad_request"},
		} {
			_, err := cl.KeysBegin(ctx, &nodeapi.KeysBeginRequest{CeremonyHeader: nodeapi.CeremonyHeader{Ceremony: "x-roster", Params: ps.Name()}, Nodes: c.nodes, Threshold: c.threshold})
			requireRemote(t, err, c.status, c.code)
			t.Logf("%s: refused (%s)", c.name, c.code)
		}
		keepsKeys()
	})

	t.Run("HPKE keys", func(t *testing.T) {
		hdr := nodeapi.CeremonyHeader{Ceremony: "x-hpke", Params: ps.Name()}
		roster := []string{"a", "b", "c"}
		pubs, sigs := map[string][]byte{}, map[string][]byte{}
		for _, n := range roster {
			resp, err := f.Clients[n].KeysBegin(ctx, &nodeapi.KeysBeginRequest{CeremonyHeader: hdr, Nodes: roster, Threshold: 2})
			require.NoError(t, err)
			pubs[n], sigs[n] = resp.HPKEPublicKey, resp.Signature
		}
		kp, err := ceremony.NewHPKEKeyPair()
		require.NoError(t, err)
		mine := kp.Public()
		coordSig := attest.Sign(nodetest.PrivateKey("coordinator"), (&nodeapi.CeremonyKeyStatement{Ceremony: hdr.Ceremony, Params: hdr.Params, Node: "b", Key: mine}).Message())
		for _, c := range []struct {
			name string
			key  []byte
			sig  []byte
		}{
			{"b's key substituted, b's signature kept", mine, sigs["b"]},
			{"b's key substituted, signed by the coordinator", mine, coordSig},
			{"c's key (and c's signature) as b's", pubs["c"], sigs["c"]},
			{"b's key unsigned", pubs["b"], nil},
		} {
			p, s := maps.Clone(pubs), maps.Clone(sigs)
			p["b"], s["b"] = c.key, c.sig
			resp, err := cl.KeysShares(ctx, &nodeapi.KeysSharesRequest{CeremonyHeader: hdr, Nodes: roster, Threshold: 2, HPKEPublicKeys: p, HPKESignatures: s})
			requireRemote(t, err, 403, "bad_signature")
			require.Nil(t, resp, "nothing sealed")
			t.Logf("%s: refused", c.name)
		}
		// The refusals changed nothing: the honest setup still goes ahead.
		resp, err := cl.KeysShares(ctx, &nodeapi.KeysSharesRequest{CeremonyHeader: hdr, Nodes: roster, Threshold: 2, HPKEPublicKeys: pubs, HPKESignatures: sigs})
		require.NoError(t, err)
		require.Len(t, resp.SealedShares, 2)
		keepsKeys()
	})

	t.Run("shares", func(t *testing.T) {
		for i, c := range []struct {
			name string
			mod  func(r *relayed)
		}{
			{"b's public-key share unsigned", func(r *relayed) { r.ckgSigs["b"] = nil }},
			{"c's public-key share in b's place", func(r *relayed) { r.ckg["b"] = r.ckg["c"] }},
			{"b's public-key share signed by c", func(r *relayed) { r.ckgSigs["b"] = r.ckgSigs["c"] }},
			{"b's sealed share signed by c", func(r *relayed) { r.sealedSigs["a"]["b"] = r.sealedSigs["a"]["c"] }},
			{"b's share sealed for c, offered to a", func(r *relayed) {
				r.sealed["a"]["b"], r.sealedSigs["a"]["b"] = r.sealed["c"]["b"], r.sealedSigs["c"]["b"]
			}},
			{"b's sealed share unsigned", func(r *relayed) { r.sealedSigs["a"]["b"] = nil }},
		} {
			cer := fmt.Sprintf("x-shares-%d", i)
			r := ceremonyToShares(t, fx, cer)
			c.mod(r)
			_, err := cl.KeysFinish(ctx, r.finishFor(t, cl, "a"))
			requireRemote(t, err, 403, "bad_signature")
			// Abandoned, never half-finished; the node keeps its keys.
			_, err = cl.KeysFinish(ctx, r.finishFor(t, cl, "a"))
			requireRemote(t, err, 404, "unknown_ceremony")
			keepsKeys()
			t.Logf("%s: refused", c.name)
			// b and c wait for a finish that never comes; a restart drops
			// their pending ceremonies (they hold at most a few).
			f.Restart(t, "b")
			f.Restart(t, "c")
		}
		// The honest relay of the same kind of ceremony finishes.
		r := ceremonyToShares(t, fx, "x-shares-ok")
		resp, err := cl.KeysFinish(ctx, r.finishFor(t, cl, "a"))
		require.NoError(t, err)
		require.Len(t, resp.PublicKeySHA256, 32)
	})
}
