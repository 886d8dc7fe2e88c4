package hefed

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/he/ceremony"
	"github.com/unseen-data/unseen/compute/he/envelope"
	"github.com/unseen-data/unseen/compute/he/release"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/boltstore"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/psi"
)

var alice = policy.Requester{User: "alice", Department: "a"}

func rng(lo, hi int) []int {
	out := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

// The federation of these tests: three departments with one dataset each
// (nodetest rows: key ID(i), district Districts[i%3], amount i). a.pay
// holds keys 30 and 31 more than once.
func rows() map[string][]int {
	return map[string][]int{
		"a.pay": append(rng(0, 40), 30, 30, 31),
		"b.pay": rng(20, 70),
		"c.pay": append(rng(100, 130), rng(0, 35)...),
	}
}

type fixture struct {
	f     *nodetest.Federation
	c     *Coordinator
	store jobs.Store // the shared store holding the state
	key   []byte     // the state key sealing the release keys in it
}

// testStateKey is a fresh state key.
func testStateKey(t testing.TB) []byte {
	k := make([]byte, StateKeySize)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

// testStore is an embedded store in a temporary folder.
func testStore(t testing.TB) jobs.Store {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "unseen.db"), boltstore.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

func start(t *testing.T, threshold int, opts nodetest.Options) *fixture {
	t.Helper()
	f := nodetest.StartWith(t, rows(), opts)
	store, key := testStore(t), testStateKey(t)
	c, err := Open(context.Background(), Options{Blobs: store, Key: key, Nodes: f.Clients})
	require.NoError(t, err)
	t.Cleanup(func() {
		for dept, l := range f.Audits {
			_, err := audit.VerifyLog(context.Background(), l)
			require.NoError(t, err, "audit chain of node %s", dept)
		}
	})
	fx := &fixture{f: f, c: c, store: store, key: key}
	fx.init(t, threshold)
	return fx
}

func (fx *fixture) init(t *testing.T, threshold int) *Status {
	t.Helper()
	st, err := fx.c.Init(context.Background(), threshold)
	require.NoError(t, err)
	require.Equal(t, threshold, st.Threshold)
	require.Len(t, st.Nodes, 3)
	for _, n := range st.Nodes {
		require.True(t, n.InRoster && n.Reachable && n.HoldsShares, "%+v", n)
	}
	return st
}

// plain is the expected result over nodetest row indexes.
func plain(idx []int, grouped, squares bool) *Stats {
	st := &Stats{Sum: new(big.Int), SumSq: zeroIf(squares)}
	if grouped {
		st.Groups = map[string]GroupStats{}
	}
	for _, i := range idx {
		x := big.NewInt(int64(i))
		xx := new(big.Int).Mul(x, x)
		st.Count++
		st.Sum.Add(st.Sum, x)
		if squares {
			st.SumSq.Add(st.SumSq, xx)
		}
		if grouped {
			g := st.Groups[nodetest.Districts[i%3]]
			g.Count++
			if g.Sum == nil {
				g.Sum = new(big.Int)
			}
			g.Sum.Add(g.Sum, x)
			if squares {
				if g.SumSq == nil {
					g.SumSq = new(big.Int)
				}
				g.SumSq.Add(g.SumSq, xx)
			}
			st.Groups[nodetest.Districts[i%3]] = g
		}
	}
	return st
}

// requireStats compares totals by value (big integers compare by Cmp, not
// by representation; a nil Σx is 0).
func requireStats(t *testing.T, want, got *Stats) {
	t.Helper()
	require.Equal(t, statsString(want), statsString(got))
}

func statsString(s *Stats) string {
	if s == nil {
		return "<nil>"
	}
	str := func(x *big.Int) string {
		if x == nil {
			return "nil"
		}
		return x.String()
	}
	sum := func(x *big.Int) string {
		if x == nil {
			return "0"
		}
		return x.String()
	}
	out := fmt.Sprintf("n=%d Σx=%s Σx²=%s hist=%v", s.Count, sum(s.Sum), str(s.SumSq), s.Histogram)
	if s.Groups != nil {
		names := slices.Sorted(maps.Keys(s.Groups))
		out += " groups:"
		for _, g := range names {
			gs := s.Groups[g]
			out += fmt.Sprintf(" [%s n=%d Σx=%s Σx²=%s hist=%v]", g, gs.Count, sum(gs.Sum), str(gs.SumSq), gs.Histogram)
		}
	}
	return out
}

func filterIdx(idx []int, keep func(int) bool) []int {
	var out []int
	for _, i := range idx {
		if keep(i) {
			out = append(out, i)
		}
	}
	return out
}

func aggregateSpec(stats []string, grouped bool) policy.Spec {
	s := policy.Spec{
		Type: policy.Aggregate, Purpose: "payments by district",
		Inputs: []policy.Input{{Dataset: "a.pay"}, {Dataset: "b.pay", Filter: "amount > 25"}, {Dataset: "c.pay"}},
		Value:  &policy.ColumnRef{Column: "amount"}, Stats: stats,
	}
	if grouped {
		s.GroupBy = &policy.ColumnRef{Column: "district"}
	}
	return s
}

func wantAggregate(grouped, squares bool) *Stats {
	r := rows()
	all := append(append(append([]int{}, r["a.pay"]...), filterIdx(r["b.pay"], func(i int) bool { return i > 25 })...), r["c.pay"]...)
	st := plain(all, grouped, squares)
	if !squares {
		st.SumSq = nil
	}
	return st
}

// runPSI prepares every input and runs PSI with input `primary` first, as
// the runner does for intersection_stats.
func runPSI(t *testing.T, f *nodetest.Federation, j JobRef, primary int) (*nodeapi.Party, []int) {
	t.Helper()
	ctx := context.Background()
	n := len(j.Spec.Inputs)
	parties := make([]psi.Party, n)
	lengths := make([]nodeapi.SignedLength, n) // shared: every reblind carries its list's
	for i, in := range j.Spec.Inputs {
		cl := f.Clients[policy.Department(in.Dataset)]
		h := nodeapi.Header{Job: j.ID, SpecHash: j.Spec.Hash(), Attempt: j.Attempt, Party: i}
		resp, err := cl.Prepare(ctx, &nodeapi.PrepareRequest{Header: h, Spec: j.Spec, Requester: j.Requester, Input: i, Parties: n})
		require.NoError(t, err)
		lengths[i] = resp.Length
		parties[i] = &nodeapi.Party{Client: cl, Header: h, N: resp.Len, Lengths: lengths}
	}
	res, err := psi.Run(ctx, parties, primary, 4096, nil)
	require.NoError(t, err)
	return parties[primary].(*nodeapi.Party), res.Positions
}

func entries(t *testing.T, f *nodetest.Federation, dept, action, job string) []audit.Entry {
	t.Helper()
	all, err := f.Audits[dept].Entries(context.Background(), audit.Filter{Action: action, Job: job})
	require.NoError(t, err)
	return all
}

func mustExpect(t *testing.T, ps *he.ParamSet, cer, label string, level int) envelope.Expect {
	t.Helper()
	e, err := release.Expect(ps, cer, label, level)
	require.NoError(t, err)
	return e
}

func requireRemote(t *testing.T, err error, status int, code string) *nodeapi.RemoteError {
	t.Helper()
	var re *nodeapi.RemoteError
	require.True(t, errors.As(err, &re), "want a node refusal, got %v", err)
	require.Equal(t, status, re.Status, "%v", err)
	require.Equal(t, code, re.Code, "%v", err)
	return re
}

// ---------------------------------------------------------------------------

// One federation through its life: a 3-of-3 ceremony and an aggregate; a
// new 2-of-3 epoch; aggregates and intersection_stats equal to plaintext;
// then every node and the coordinator restart and the keys still work.
func TestFederation(t *testing.T) {
	ctx := context.Background()
	fx := start(t, 3, nodetest.Options{})
	c, f := fx.c, fx.f

	t.Run("aggregate 3-of-3", func(t *testing.T) {
		st, err := c.Aggregate(ctx, JobRef{ID: "agg-1", Attempt: 1, Spec: aggregateSpec([]string{"count", "sum", "mean", "variance"}, true), Requester: alice})
		require.NoError(t, err)
		requireStats(t, wantAggregate(true, true), st)
		// Every input's node audited its part; three nodes released.
		for _, d := range []string{"a", "b", "c"} {
			require.Len(t, entries(t, f, d, string(nodeapi.StepHEAggregate), "agg-1"), 1)
			require.Len(t, entries(t, f, d, string(nodeapi.StepHERelease), "agg-1"), 2) // sums, squares
		}
	})

	old, err := c.Status(ctx)
	require.NoError(t, err)
	st := fx.init(t, 2)
	require.Equal(t, 2, st.Epoch)
	require.NotEqual(t, old.Ceremony, st.Ceremony)
	// The new ceremony replaced every node's keys: said in the audit log,
	// and the old key shares are kept, not lost.
	for _, d := range []string{"a", "b", "c"} {
		fin := entries(t, f, d, string(nodeapi.StepKeysFinish), "")
		last := fin[len(fin)-1]
		require.Equal(t, old.Ceremony+"."+he.NameSquares, last.Detail["replaces_ceremony"], d)
		require.NotEmpty(t, last.Detail["replaces_public_key_sha256"], d)
		for _, name := range paramSets {
			kept, err := filepath.Glob(filepath.Join(f.Configs[d].KeysPath(), d+"."+name+"."+old.Ceremony+"."+name+".*.keys.old"))
			require.NoError(t, err)
			require.Len(t, kept, 1, "%s keeps its replaced %s keys", d, name)
			fi, err := os.Stat(kept[0])
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		}
	}

	t.Run("aggregate 2-of-3", func(t *testing.T) {
		got, err := c.Aggregate(ctx, JobRef{ID: "agg-2", Attempt: 1, Spec: aggregateSpec([]string{"count", "sum", "mean", "variance"}, true), Requester: alice})
		require.NoError(t, err)
		want := wantAggregate(true, true)
		requireStats(t, want, got)
		m, err := got.Groups[nodetest.Districts[1]].Moments().VarianceRat()
		require.NoError(t, err)
		wm, _ := want.Groups[nodetest.Districts[1]].Moments().VarianceRat()
		require.Equal(t, wm.String(), m.String())
		released := 0
		for _, d := range []string{"a", "b", "c"} {
			released += len(entries(t, f, d, string(nodeapi.StepHERelease), "agg-2"))
		}
		require.Equal(t, 2*2, released, "two ciphertexts, two nodes each")

		got, err = c.Aggregate(ctx, JobRef{ID: "agg-3", Attempt: 1, Spec: aggregateSpec([]string{"sum"}, false), Requester: alice})
		require.NoError(t, err)
		requireStats(t, wantAggregate(false, false), got)
	})

	t.Run("aggregate histogram", func(t *testing.T) {
		spec := aggregateSpec([]string{"count", "histogram"}, true)
		spec.Bins = []int64{10, 30, 60}
		got, err := c.Aggregate(ctx, JobRef{ID: "agg-h", Attempt: 1, Spec: spec, Requester: alice})
		require.NoError(t, err)
		want := wantAggregate(true, false)
		// Bucket every row the same way, in the clear.
		r := rows()
		all := append(append(append([]int{}, r["a.pay"]...), filterIdx(r["b.pay"], func(i int) bool { return i > 25 })...), r["c.pay"]...)
		want.Histogram = make([]int64, 4)
		hist := map[string][]int64{}
		for _, i := range all {
			b := spec.Bucket(int64(i))
			want.Histogram[b]++
			d := nodetest.Districts[i%3]
			if hist[d] == nil {
				hist[d] = make([]int64, 4)
			}
			hist[d][b]++
		}
		require.Equal(t, want.Histogram, got.Histogram)
		for d, h := range hist {
			require.Equal(t, h, got.Groups[d].Histogram, d)
			require.Equal(t, want.Groups[d].Count, got.Groups[d].Count, d)
		}
	})

	t.Run("intersection_stats", func(t *testing.T) {
		r := rows()
		inC := map[int]bool{}
		for _, i := range r["c.pay"] {
			inC[i] = true
		}
		// Value, group-by and a filter at a.pay; keys in a, b and c.
		spec := policy.Spec{
			Type: policy.IntersectionStats, Purpose: "payments of owners",
			Inputs: []policy.Input{
				{Dataset: "a.pay", Key: "id_number", Filter: fmt.Sprintf("district != '%s'", nodetest.Districts[2])},
				{Dataset: "b.pay", Key: "id_number"},
				{Dataset: "c.pay", Key: "id_number"},
			},
			Value:   &policy.ColumnRef{Dataset: "a.pay", Column: "amount"},
			GroupBy: &policy.ColumnRef{Dataset: "a.pay", Column: "district"},
			Stats:   []string{"count", "sum", "mean", "variance"},
		}
		j := JobRef{ID: "is-1", Attempt: 1, Spec: spec, Requester: alice}
		value, pos := runPSI(t, f, j, 0)
		c.pageChunks = 1 // one group per page: the layout must hold across pages
		got, err := c.IntersectionStats(ctx, j, value, pos)
		c.pageChunks = 0
		require.NoError(t, err)
		require.Len(t, entries(t, f, "a", string(nodeapi.StepHEValues), "is-1"), 2)
		want := plain(filterIdx(r["a.pay"], func(i int) bool { return i >= 20 && i < 70 && inC[i] && i%3 != 2 }), true, true)
		// Every group of the filtered rows is reported, matched or not.
		for _, d := range nodetest.Districts[:2] {
			if _, ok := want.Groups[d]; !ok {
				want.Groups[d] = GroupStats{SumSq: new(big.Int)}
			}
		}
		requireStats(t, want, got)
		require.Equal(t, int64(2+1), got.Count-int64(len(pos)), "keys 30 and 31 have 3 and 2 rows")
		// Every input's node added zero-sum masks.
		for _, d := range []string{"a", "b", "c"} {
			require.NotEmpty(t, entries(t, f, d, string(nodeapi.StepHEZeroMask), "is-1"), d)
		}

		// Value in the second input, no group-by, no variance.
		spec2 := policy.Spec{
			Type: policy.IntersectionStats, Purpose: "payments of residents",
			Inputs: []policy.Input{{Dataset: "c.pay", Key: "id_number"}, {Dataset: "b.pay", Key: "id_number"}},
			Value:  &policy.ColumnRef{Dataset: "b.pay", Column: "amount"},
			Stats:  []string{"count", "sum", "mean"},
		}
		j2 := JobRef{ID: "is-2", Attempt: 1, Spec: spec2, Requester: alice}
		value, pos = runPSI(t, f, j2, 1)
		got, err = c.IntersectionStats(ctx, j2, value, pos)
		require.NoError(t, err)
		want = plain(filterIdx(r["b.pay"], func(i int) bool { return inC[i] }), false, false)
		want.SumSq = nil
		requireStats(t, want, got)
		require.Empty(t, entries(t, f, "b", string(nodeapi.StepHEValues)+".refused", ""))
	})

	t.Run("keys survive restarts", func(t *testing.T) {
		for _, d := range []string{"a", "b", "c"} {
			for _, name := range paramSets {
				fi, err := os.Stat(filepath.Join(f.Configs[d].KeysPath(), d+"."+name+".keys"))
				require.NoError(t, err)
				require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "key shares of %s", d)
			}
			fi, err := os.Stat(filepath.Join(f.Configs[d].KeysPath(), d+".ledger"))
			if err == nil { // nodes that released something
				require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
			}
			f.Restart(t, d)
		}
		c2, err := Open(ctx, Options{Blobs: fx.store, Key: fx.key, Nodes: f.Clients})
		require.NoError(t, err)
		st2, err := c2.Status(ctx)
		require.NoError(t, err)
		require.Equal(t, st.Epoch, st2.Epoch)
		require.Equal(t, st.Ceremony, st2.Ceremony)
		for _, n := range st2.Nodes {
			require.True(t, n.HoldsShares, "%+v", n)
		}
		got, err := c2.Aggregate(ctx, JobRef{ID: "agg-4", Attempt: 1, Spec: aggregateSpec([]string{"count", "variance"}, true), Requester: alice})
		require.NoError(t, err)
		requireStats(t, wantAggregate(true, true), got)
	})
}

// rawPost posts a body to a node with the coordinator's token.
func rawPost(t *testing.T, cl *nodeapi.Client, path string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, cl.BaseURL+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+cl.Token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// Release guards at the node: forged or malformed envelopes are refused
// before anything is parsed and burn nothing; a second decryption of the
// same output, and a node outside the active set, are refused; values
// that could wrap are refused with the column named; the node's own policy
// is applied. (The attacks on what is decrypted are in attack_test.go.)
func TestReleaseGuards(t *testing.T) {
	ctx := context.Background()
	fx := start(t, 2, nodetest.Options{})
	c, f := fx.c, fx.f
	ep, err := c.epoch()
	require.NoError(t, err)
	ks := ep.sets[he.NameSums]
	ps, cer, L := ks.ps, ks.setup.CeremonyID(), ks.ps.MaxLevel()
	j := JobRef{ID: "guards", Attempt: 1, Spec: aggregateSpec([]string{"sum"}, false), Requester: alice}
	sum, cons := collect(t, fx, j, he.NameSums)
	pkb, _ := ks.rk.PublicKey().MarshalBinary()
	cl := f.Clients["a"]
	sealFor := func(key []byte, cer, label string, level int, p []byte) []byte {
		m, err := envelope.Seal(key, envelope.Header{ParamsHash: ps.Hash(), CeremonyID: cer, Label: label, Level: level}, p)
		require.NoError(t, err)
		return m
	}
	key := cl.EnvelopeKey()
	pkEnv := sealFor(key, cer, he.LabelPublicKey, L, pkb)
	// req is node a's release request of output 0 with input 0's
	// contribution envelope replaced by ctEnv.
	req := func(ctEnv []byte, level int, active ...string) *nodeapi.HEReleaseRequest {
		if active == nil {
			active = []string{"a", "b"}
		}
		r := releaseRequest(t, cl, ks, j, 0, cons, active)
		r.Level, r.ReleaseKey = level, pkEnv
		if ctEnv != nil {
			r.Contributions[0].Ciphertext = ctEnv
		}
		return r
	}
	good := req(nil, L).Contributions[0].Ciphertext
	ctb := cons[0].payload

	t.Run("malformed envelopes", func(t *testing.T) {
		flipped := bytes.Clone(good)
		flipped[len(flipped)/2] ^= 0x40
		corrupt := bytes.Clone(ctb)
		corrupt[16+3] ^= 0xff // a length prefix of lattigo's encoding, under a valid MAC
		other := nodeapi.EnvelopeKey(bytes.Repeat([]byte{7}, 32))
		for name, c := range map[string]struct {
			r      *nodeapi.HEReleaseRequest
			status int
		}{
			"truncated":                 {req(good[:len(good)-1], L), 400},
			"extended":                  {req(append(bytes.Clone(good), 0), L), 400},
			"bit flipped":               {req(flipped, L), 400},
			"wrong level":               {req(good, L-1), 400},
			"level past the top":        {req(good, L+1), 400},
			"resealed at a lower level": {req(sealFor(key, cer, he.LabelCiphertext, L-1, ctb), L-1), 400},
			"another peer's key":        {req(sealFor(other, cer, he.LabelCiphertext, L, ctb), L), 400},
			"another ceremony":          {req(sealFor(key, "e0-other.sums", he.LabelCiphertext, L, ctb), L), 409},
			"wrong label":               {req(sealFor(key, cer, he.LabelPublicKey, L, ctb), L), 400},
			// The signature is checked on the payload before lattigo parses it.
			"valid MAC, corrupt payload": {req(sealFor(key, cer, he.LabelCiphertext, L, corrupt), L), 403},
			"valid MAC, short payload":   {req(sealFor(key, cer, he.LabelCiphertext, L, ctb[:len(ctb)-8]), L), 400},
		} {
			_, err := cl.HERelease(ctx, c.r)
			var re *nodeapi.RemoteError
			require.True(t, errors.As(err, &re), "%s: %v", name, err)
			require.Equal(t, c.status, re.Status, "%s: %v", name, err)
		}
		bad := req(nil, L)
		bad.ReleaseKey = pkEnv[:len(pkEnv)-3]
		_, err := cl.HERelease(ctx, bad)
		requireRemote(t, err, 400, "bad_envelope")
		require.Equal(t, 400, rawPost(t, cl, nodeapi.PathHERelease, []byte(`{"job":"guards","step":"he.release","attempt":1,"ciphertext":"AAAA`)))
		require.Len(t, entries(t, f, "a", string(nodeapi.StepHERelease), "guards"), 0, "nothing was released")
		require.NotEmpty(t, entries(t, f, "a", string(nodeapi.StepHERelease)+".refused", "guards"))
		require.NoError(t, cl.Health(ctx), "the node still serves")
	})

	t.Run("malformed ceremony messages", func(t *testing.T) {
		// A ceremony in progress at node a, with b and c played by the test
		// (signing as them: the honest peers of this test).
		hdr := nodeapi.CeremonyHeader{Ceremony: "e9-test.sums", Params: he.NameSums}
		roster := []string{"a", "b", "c"}
		begin, err := cl.KeysBegin(ctx, &nodeapi.KeysBeginRequest{CeremonyHeader: hdr, Nodes: roster, Threshold: 2})
		require.NoError(t, err)
		pubs := map[string][]byte{"a": begin.HPKEPublicKey}
		sigs := map[string][]byte{"a": begin.Signature}
		for _, n := range []string{"b", "c"} {
			kp, err := ceremony.NewHPKEKeyPair()
			require.NoError(t, err)
			pubs[n] = kp.Public()
			st := nodeapi.CeremonyKeyStatement{Ceremony: hdr.Ceremony, Params: hdr.Params, Node: n, Key: pubs[n]}
			sigs[n] = attest.Sign(nodetest.PrivateKey("node-"+n), st.Message())
		}
		sh, err := cl.KeysShares(ctx, &nodeapi.KeysSharesRequest{CeremonyHeader: hdr, Nodes: roster, Threshold: 2, HPKEPublicKeys: pubs, HPKESignatures: sigs})
		require.NoError(t, err)
		require.Len(t, sh.SealedShares, 2)
		require.Len(t, sh.SealedShareSignatures, 2)
		// The node's own share, echoed back truncated.
		p, err := envelope.Open(key, sh.PublicKeyShare, mustExpect(t, ps, hdr.Ceremony, he.LabelCKGShare, L))
		require.NoError(t, err)
		trunc := sealFor(key, hdr.Ceremony, he.LabelCKGShare, L, p)
		own := map[string][]byte{"a": sh.PublicKeyShareSignature}
		_, err = cl.KeysFinish(ctx, &nodeapi.KeysFinishRequest{CeremonyHeader: hdr, PublicKeyShares: map[string][]byte{"a": trunc[:len(trunc)-5]}, PublicKeyShareSignatures: own})
		requireRemote(t, err, 400, "bad_envelope")
		// The ceremony is abandoned, not half-finished, and the node keeps
		// its current keys.
		_, err = cl.KeysFinish(ctx, &nodeapi.KeysFinishRequest{CeremonyHeader: hdr, PublicKeyShares: map[string][]byte{"a": trunc}, PublicKeyShareSignatures: own})
		requireRemote(t, err, 404, "unknown_ceremony")
		ok, err := holdsKeys(ctx, cl, ep)
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, 400, rawPost(t, cl, nodeapi.PathKeysBegin, []byte(`{"ceremony":"x","step":"keys.begin","params":"sums","nodes":["a","b"],"threshold":2,"extra":1}`)))
	})

	t.Run("not in the active set", func(t *testing.T) {
		cc := f.Clients["c"]
		r := releaseRequest(t, cc, ks, j, 0, cons, []string{"a", "b"})
		_, err := cc.HERelease(ctx, r)
		requireRemote(t, err, 403, "not_active")
		r.Active = []string{"a", "b", "c"}
		_, err = cc.HERelease(ctx, r)
		requireRemote(t, err, 400, "bad_active_set")
	})

	t.Run("second decryption refused", func(t *testing.T) {
		rel, err := c.newReleaser(ctx, ep, j, []string{"a", "b"}, "")
		require.NoError(t, err)
		res, err := rel.decrypt(ctx, ks, sum, output{index: 0, contributions: cons}) // what the forgeries above carried
		require.NoError(t, err)
		require.Equal(t, wantAggregate(false, false).Sum.Int64(), res.Values()[1])
		_, err = rel.decrypt(ctx, ks, sum, output{index: 0, contributions: cons})
		require.ErrorIs(t, err, ErrRelease)
		requireRemote(t, err, 409, "already_decrypted")
		require.Contains(t, err.Error(), "submit the job anew")
		// Directly, too: the ledger, not the coordinator, refuses.
		_, err = cl.HERelease(ctx, req(nil, L))
		requireRemote(t, err, 409, "already_decrypted")
		// And after a restart (the ledger is a file).
		f.Restart(t, "a")
		_, err = cl.HERelease(ctx, req(nil, L))
		requireRemote(t, err, 409, "already_decrypted")
	})

	t.Run("operator's row limit", func(t *testing.T) {
		// Values are |x| ≤ 2^40 at any row count; an operator's
		// MaxRowsPerNode only limits rows (a.pay has 43 > 10).
		c.MaxRowsPerNode = 10
		defer func() { c.MaxRowsPerNode = 0 }()
		require.Equal(t, int64(30), c.rowBound(3))
		_, err := c.Aggregate(ctx, JobRef{ID: "range", Attempt: 1, Spec: aggregateSpec([]string{"sum"}, false), Requester: alice})
		re := requireRemote(t, err, 400, "too_many_rows")
		require.Contains(t, re.Message, "share (10)")
		c.MaxRowsPerNode = 0
		require.Equal(t, he.MaxJobRows, c.rowBound(3))
	})

	t.Run("node policy", func(t *testing.T) {
		spec := aggregateSpec([]string{"count"}, true)
		spec.GroupBy.Column = "amount" // not declared as a group-by column
		_, err := c.Aggregate(ctx, JobRef{ID: "pol", Attempt: 1, Spec: spec, Requester: alice})
		requireRemote(t, err, 403, "policy_violation")
		require.NotEmpty(t, entries(t, f, "a", string(nodeapi.StepHEGroups)+".refused", "pol"))
	})
}

// A node that drops out mid-release fails the job clearly; nothing is
// retried on the same ciphertext, and a re-run computes afresh.
func TestNodeDownMidRelease(t *testing.T) {
	ctx := context.Background()
	var drop atomic.Bool
	wrap := func(dept string, h http.Handler) http.Handler {
		if dept != "c" {
			return h
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if drop.Load() && r.URL.Path == nodeapi.PathHERelease {
				// The process dies mid-request: the connection closes unanswered.
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	fx := start(t, 3, nodetest.Options{Wrap: wrap})
	c, f := fx.c, fx.f
	spec := aggregateSpec([]string{"count", "sum"}, false)

	drop.Store(true)
	_, err := c.Aggregate(ctx, JobRef{ID: "down", Attempt: 1, Spec: spec, Requester: alice})
	require.ErrorIs(t, err, ErrRelease)
	require.Contains(t, err.Error(), "node c")
	require.Contains(t, err.Error(), "not offered again")
	// a and b took part (their ledgers burnt the ciphertext); one attempt only.
	for _, d := range []string{"a", "b"} {
		require.Len(t, entries(t, f, d, string(nodeapi.StepHERelease), "down"), 1, d)
	}

	// A new attempt of the same job recomputes from fresh encryptions, but
	// its output 0 was decrypted (in part) once already: a and b refuse it
	// for good — each output of a job is decrypted at most once, ever, so a
	// coordinator cannot buy a second decryption with a new attempt.
	drop.Store(false)
	_, err = c.Aggregate(ctx, JobRef{ID: "down", Attempt: 2, Spec: spec, Requester: alice})
	require.ErrorIs(t, err, ErrRelease)
	requireRemote(t, err, 409, "already_decrypted")
	// A new job computes it.
	got, err := c.Aggregate(ctx, JobRef{ID: "down-again", Attempt: 1, Spec: spec, Requester: alice})
	require.NoError(t, err)
	want := wantAggregate(false, false)
	requireStats(t, want, got)
}
