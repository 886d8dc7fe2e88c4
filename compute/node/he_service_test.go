package node_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/he/ceremony"
	"github.com/unseen-data/unseen/compute/he/envelope"
	"github.com/unseen-data/unseen/compute/he/release"
	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// nodeKeys is the keyring every test node believes (nodetest's keys).
func nodeKeys(t *testing.T, depts ...string) attest.Keyring {
	t.Helper()
	k := attest.Keyring{}
	for _, d := range depts {
		pub, err := attest.ParsePublicKey(nodetest.PublicKey("node-" + d))
		require.NoError(t, err)
		k[d] = pub
	}
	return k
}

// specHash is the hex spec hash of a spec given as JSON.
func specHash(t *testing.T, specJSON string) string {
	t.Helper()
	var sp policy.Spec
	strict(t, specJSON, &sp)
	return attest.Digest(sp.Hash()).String()
}

// TestHEWireTypesThroughTheService drives every homomorphic step of the
// node protocol — every nodeapi request and response type — through the
// Service methods directly, as decoded JSON in and encoded JSON out, and
// checks what the answers mean: a signed key ceremony whose keys decrypt
// the node's aggregate (released from its signed contribution) and the
// totals of its values (released against its signed layout).
func TestHEWireTypesThroughTheService(t *testing.T) {
	f := newFederation(t)
	hrss := f.svc["hrss"]
	c := f.caller
	keyring := nodeKeys(t, "hrss", "housing", "tax")
	var hrssActions []string
	served := func(action ...string) {
		t.Helper()
		hrssActions = append(hrssActions, action...)
		require.Equal(t, hrssActions, f.actions(t, "hrss"))
	}

	// ---- the key ceremony, 2 of 3, relayed as the coordinator does (the
	// nodes accept the same token, so their envelope keys agree and the
	// coordinator's re-enveloping is the identity); every key and share
	// signed by the node that made it ----
	nodes := []string{"hrss", "housing", "tax"}
	envKey := nodeapi.EnvelopeKey(sha(nodetest.Token))
	setups := map[string]*ceremony.Setup{}
	for _, ps := range []*he.ParamSet{he.Sums(), he.Squares()} {
		cer := "t1." + ps.Name()
		hdr := func(step string) string {
			return fmt.Sprintf(`"ceremony":%q,"step":%q,"params":%q`, cer, step, ps.Name())
		}
		hpke, hpkeSigs := map[string][]byte{}, map[string][]byte{}
		for _, n := range nodes {
			out := call(t, f.svc[n].KeysBegin, c, fmt.Sprintf(`{%s,"nodes":["hrss","housing","tax"],"threshold":2}`, hdr("keys.begin")))
			hpke[n], hpkeSigs[n] = field[[]byte](t, out, "hpke_public_key"), field[[]byte](t, out, "signature")
			st := nodeapi.CeremonyKeyStatement{Ceremony: cer, Params: ps.Name(), Node: n, Key: hpke[n]}
			require.NoError(t, keyring.Verify(n, st.Message(), hpkeSigs[n]), "%s signed its HPKE key", n)
		}
		ckg, ckgSigs := map[string][]byte{}, map[string][]byte{}
		sealed := map[string]map[string][]byte{"hrss": {}, "housing": {}, "tax": {}} // to → from → envelope
		sealedSigs := map[string]map[string][]byte{"hrss": {}, "housing": {}, "tax": {}}
		for _, n := range nodes {
			out := call(t, f.svc[n].KeysShares, c, fmt.Sprintf(`{%s,"nodes":["hrss","housing","tax"],"threshold":2,"hpke_public_keys":%s,"hpke_signatures":%s}`, hdr("keys.shares"), js(hpke), js(hpkeSigs)))
			ckg[n], ckgSigs[n] = field[[]byte](t, out, "public_key_share"), field[[]byte](t, out, "public_key_share_signature")
			p, err := envelope.Open(envKey, ckg[n], expect(t, ps, cer, he.LabelCKGShare, ps.MaxLevel()))
			require.NoError(t, err)
			st := nodeapi.CeremonyShareStatement{Ceremony: cer, Params: ps.Name(), From: n, Payload: nodeapi.DigestOf(p)}
			require.NoError(t, keyring.Verify(n, st.Message(), ckgSigs[n]), "%s signed its public-key share", n)
			sh := field[map[string][]byte](t, out, "sealed_shares")
			sigs := field[map[string][]byte](t, out, "sealed_share_signatures")
			require.Len(t, sh, 2, "one Shamir share for each other node")
			for to, m := range sh {
				require.NotEqual(t, n, to)
				p, err := envelope.Open(envKey, m, expect(t, ps, cer, ceremony.LabelSealedShamirShare, ps.MaxLevel()))
				require.NoError(t, err)
				st := nodeapi.CeremonyShareStatement{Ceremony: cer, Params: ps.Name(), From: n, To: to, Payload: nodeapi.DigestOf(p)}
				require.NoError(t, keyring.Verify(n, st.Message(), sigs[to]), "%s signed its share for %s", n, to)
				sealed[to][n], sealedSigs[to][n] = m, sigs[to]
			}
		}
		var pkHash []byte
		for _, n := range nodes {
			out := call(t, f.svc[n].KeysFinish, c, fmt.Sprintf(`{%s,"public_key_shares":%s,"public_key_share_signatures":%s,"sealed_shares":%s,"sealed_share_signatures":%s}`,
				hdr("keys.finish"), js(ckg), js(ckgSigs), js(sealed[n]), js(sealedSigs[n])))
			h := field[[]byte](t, out, "public_key_sha256")
			require.Len(t, h, sha256.Size)
			if pkHash != nil {
				require.Equal(t, pkHash, h, "the nodes derived different collective keys")
			}
			pkHash = h
		}
		keys := map[ceremony.NodeID][]byte{}
		for n, k := range hpke {
			keys[ceremony.NodeID(n)] = k
		}
		setup, err := ceremony.NewSetup(cer, ps, []ceremony.NodeID{"housing", "hrss", "tax"}, 2, keys)
		require.NoError(t, err)
		setups[ps.Name()] = setup
		served("keys.begin", "keys.shares", "keys.finish")
	}
	out := get(t, hrss.KeysStatus, c)
	require.Equal(t, "hrss", field[string](t, out, "department"))
	sets := field[[]nodeapi.KeySetStatus](t, out, "sets")
	require.Len(t, sets, 2)
	for i, name := range []string{he.NameSums, he.NameSquares} {
		require.Equal(t, name, sets[i].Params)
		require.Equal(t, "t1."+name, sets[i].Ceremony)
		require.Equal(t, 2, sets[i].Threshold)
		require.Equal(t, []string{"housing", "hrss", "tax"}, sets[i].Nodes)
	}
	served("keys.status")

	// open and seal are the coordinator's envelope handling.
	open := func(ps *he.ParamSet, msg []byte) *he.Ciphertext {
		t.Helper()
		h, err := envelope.PeekHeader(msg)
		require.NoError(t, err)
		p, err := envelope.Open(envKey, msg, expect(t, ps, setups[ps.Name()].CeremonyID(), he.LabelCiphertext, h.Level))
		require.NoError(t, err)
		ct, err := ps.UnmarshalCiphertext(p, h.Level)
		require.NoError(t, err)
		return ct
	}
	seal := func(ps *he.ParamSet, label string, level int, p []byte) []byte {
		t.Helper()
		m, err := envelope.Seal(envKey, envelope.Header{ParamsHash: ps.Hash(), CeremonyID: setups[ps.Name()].CeremonyID(), Label: label, Level: level}, p)
		require.NoError(t, err)
		return m
	}
	// decrypt has an active set of two nodes release output `output` of a
	// job (what identifies the result: contributions, or a ciphertext and
	// a layout, as JSON fields) towards a fresh release key, and combines
	// their shares as the coordinator does; ct is the result the nodes
	// decrypt.
	decrypt := func(ps *he.ParamSet, job, spec string, output int, ct *he.Ciphertext, fields string) *release.Result {
		t.Helper()
		setup := setups[ps.Name()]
		rk := release.NewReleaseKey(ps)
		pkb, err := rk.PublicKey().MarshalBinary()
		require.NoError(t, err)
		active, err := release.NewActiveSet(setup, []ceremony.NodeID{"hrss", "housing"})
		require.NoError(t, err)
		comb, err := release.NewCombiner(setup, active, ct, rk)
		require.NoError(t, err)
		for _, n := range []string{"hrss", "housing"} {
			out := call(t, f.svc[n].HERelease, c, fmt.Sprintf(`{"job":%q,"spec_hash":%q,"step":"he.release","attempt":1,"party":0,"spec":%s,"requester":{"user":"alice","department":"hrss"},"output":%d,"params":%q,"active":["hrss","housing"],"level":%d,"release_key":%s,%s}`,
				job, specHash(t, spec), spec, output, ps.Name(), ct.Level(), b64(seal(ps, he.LabelPublicKey, ps.MaxLevel(), pkb)), fields))
			p, err := envelope.Open(envKey, field[[]byte](t, out, "share"), expect(t, ps, setup.CeremonyID(), release.LabelShare, ct.Level()))
			require.NoError(t, err)
			sh, err := release.UnmarshalShare(ps, p, ct.Level())
			require.NoError(t, err)
			require.NoError(t, comb.Add(ceremony.NodeID(n), sh))
		}
		res, err := comb.Decrypt()
		require.NoError(t, err)
		served("he.release")
		return res
	}

	// ---- aggregate: groups, then the encrypted, signed per-group totals,
	// released from the signed contribution (the job's only input) ----
	agg := `{"type":"aggregate","purpose":"benefit totals","inputs":[{"dataset":"hrss.benefits"}],"value":{"dataset":"hrss.benefits","column":"amount"},"stats":["count","sum","variance"],"group_by":{"dataset":"hrss.benefits","column":"district"}}`
	aggHash := specHash(t, agg)
	out = call(t, hrss.HEGroups, c, fmt.Sprintf(`{"job":"ja","spec_hash":%q,"step":"he.groups","attempt":1,"party":0,"spec":%s,"requester":{"user":"alice","department":"hrss"},"input":0}`, aggHash, agg))
	require.JSONEq(t, `{"groups":["天河区","海珠区","越秀区"]}`, out) // sorted
	served("he.groups")
	out = call(t, hrss.HEAggregate, c, fmt.Sprintf(`{"job":"ja","spec_hash":%q,"step":"he.aggregate","attempt":1,"party":0,"spec":%s,"requester":{"user":"alice","department":"hrss"},"input":0,"groups":["天河区","海珠区","越秀区"],"max_rows":1000}`, aggHash, agg))
	served("he.aggregate")
	contribution := func(ps *he.ParamSet, env, sig []byte) (*he.Ciphertext, string) {
		t.Helper()
		ct := open(ps, env)
		b, err := ct.MarshalBinary()
		require.NoError(t, err)
		var d attest.Digest
		require.NoError(t, d.UnmarshalText([]byte(aggHash)))
		st := nodeapi.ContributionStatement{JobRef: nodeapi.JobRef{Job: "ja", SpecHash: d, Attempt: 1}, Input: 0, Params: ps.Name(), Payload: nodeapi.DigestOf(b)}
		require.NoError(t, keyring.Verify("hrss", st.Message(), sig), "hrss signed its %s contribution", ps.Name())
		return ct, fmt.Sprintf(`"contributions":[{"input":0,"ciphertext":%s,"signature":%s}]`, b64(env), b64(sig))
	}
	// Rows 0–29, amount = row, district = row mod 3: 天河区 0,3,…,27;
	// 越秀区 1,4,…,28; 海珠区 2,5,…,29 — ten rows each.
	ct, fields := contribution(he.Sums(), field[[]byte](t, out, "sums"), field[[]byte](t, out, "sums_signature"))
	sums := decrypt(he.Sums(), "ja", agg, 0, ct, fields).Values()
	require.Equal(t, []int64{10, 10, 10, 135, 155, 145}, sums[:6])
	require.Equal(t, []int64{0, 0, 0}, sums[6:9], "floor hints ⌊Σx/2^39⌋ of small totals")
	require.Zero(t, sums[9])
	ct, fields = contribution(he.Squares(), field[[]byte](t, out, "squares"), field[[]byte](t, out, "squares_signature"))
	sq := decrypt(he.Squares(), "ja", agg, 1, ct, fields).Values()
	sumSq := func(r int) (s int64) {
		for i := r; i < 30; i += 3 {
			s += int64(i * i)
		}
		return s
	}
	require.Equal(t, []int64{sumSq(0), sumSq(2), sumSq(1)}, sq[:3])
	require.Equal(t, []int64{0, 0, 0}, sq[3:6], "floor hints ⌊Σx²/2^55⌋")

	// ---- intersection_stats: the value node's encrypted rows and signed
	// layout, zero-sum masks, and the totals released against the layout
	// (the test plays a coordinator whose mask matched every key) ----
	is := `{"type":"intersection_stats","purpose":"benefits of owners","inputs":[{"dataset":"hrss.benefits","key":"id_number"},{"dataset":"housing.owners","key":"id_number"}],"value":{"dataset":"hrss.benefits","column":"amount"},"stats":["count","sum","variance"]}`
	isHash := specHash(t, is)
	call(t, hrss.Prepare, c, fmt.Sprintf(`{"job":"ji","spec_hash":%q,"step":"psi.prepare","attempt":1,"party":0,"spec":%s,"requester":{"user":"alice","department":"hrss"},"input":0,"parties":2}`, isHash, is))
	served("psi.prepare")
	out = call(t, hrss.HEValues, c, fmt.Sprintf(`{"job":"ji","spec_hash":%q,"step":"he.values","attempt":1,"party":0,"offset":0,"count":4,"squares":true}`, isHash))
	served("he.values")
	var vr nodeapi.HEValuesResponse
	strict(t, out, &vr)
	require.Equal(t, 1, vr.Total)
	require.Equal(t, []string{""}, vr.Groups)
	var d attest.Digest
	require.NoError(t, d.UnmarshalText([]byte(isHash)))
	lst := nodeapi.LayoutStatement{JobRef: nodeapi.JobRef{Job: "ji", SpecHash: d, Attempt: 1}, Groups: 1, Chunks: 1}
	require.NoError(t, keyring.Verify("hrss", lst.Message(), vr.LayoutSignature), "hrss signed its layout")
	require.Len(t, vr.Chunks, 1)
	ch := vr.Chunks[0]
	require.Equal(t, 0, ch.Index)
	require.Equal(t, 0, ch.Group)
	require.ElementsMatch(t, rng(0, 30), ch.Positions, "one slot per key of the list")

	out = call(t, hrss.HEZeroMask, c, fmt.Sprintf(`{"job":"ji","spec_hash":%q,"step":"he.zeromask","attempt":1,"party":0,"params":"sums","count":2}`, isHash))
	served("he.zeromask")
	masks := field[[][]byte](t, out, "masks")
	require.Len(t, masks, 2)

	layout := fmt.Sprintf(`"layout":{"groups":1,"chunks":1,"signature":%s}`, b64(vr.LayoutSignature))
	result := func(ps *he.ParamSet, cts ...*he.Ciphertext) (*he.Ciphertext, string) {
		t.Helper()
		sum, err := he.Sum(he.NewEvaluator(ps), cts, 1)
		require.NoError(t, err)
		b, err := sum.MarshalBinary()
		require.NoError(t, err)
		return sum, fmt.Sprintf(`"ciphertext":%s,%s`, b64(seal(ps, he.LabelCiphertext, sum.Level(), b)), layout)
	}
	// Output 0, the count, with a zero-sum mask added: the mask changes
	// nothing but the slots.
	require.Len(t, ch.Lanes, int(he.ISLanes))
	ct, fields = result(he.Sums(), open(he.Sums(), ch.Lanes[he.ISCount]), open(he.Sums(), masks[0]))
	counts := decrypt(he.Sums(), "ji", is, 0, ct, fields)
	require.Equal(t, int64(30), counts.Total())
	ct, fields = result(he.Sums(), open(he.Sums(), ch.Lanes[he.ISSumS]))
	vals := decrypt(he.Sums(), "ji", is, 1, ct, fields)
	require.Equal(t, int64(435), vals.Total(), "0 + 1 + … + 29")
	ct, fields = result(he.Squares(), open(he.Squares(), ch.Lanes[he.ISSqQ]))
	sqQ := decrypt(he.Squares(), "ji", is, 2, ct, fields).Total()
	require.Equal(t, sumSq(0)+sumSq(1)+sumSq(2), sqQ)
	// The other lanes (outputs 3–5 of group 0): Σx mod T_q, Σx² mod T_s and
	// the Σx² floor hint; decoded together they give Σx and Σx² exactly.
	ct, fields = result(he.Squares(), open(he.Squares(), ch.Lanes[he.ISSumQ]))
	sumQ := decrypt(he.Squares(), "ji", is, 3, ct, fields).Total()
	ct, fields = result(he.Sums(), open(he.Sums(), ch.Lanes[he.ISSqS]))
	sqS := decrypt(he.Sums(), "ji", is, 4, ct, fields).Total()
	ct, fields = result(he.Sums(), open(he.Sums(), ch.Lanes[he.ISSqHint]))
	hint := decrypt(he.Sums(), "ji", is, 5, ct, fields).Total()
	gotSum, err := he.IntersectionSum(vals.Total(), sumQ)
	require.NoError(t, err)
	require.Equal(t, "435", gotSum.String())
	gotSq, err := he.IntersectionSumSq(sqS, sqQ, hint)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprint(sumSq(0)+sumSq(1)+sumSq(2)), gotSq.String())
	// Only totals: the nodes zero-sum their shares, so even the unmasked
	// values chunk does not decrypt slot by slot.
	small := 0
	for _, v := range vals.Values() {
		if v >= 0 && v < 30 {
			small++
		}
	}
	require.Less(t, small, 5, "slots of an intersection_stats output are uniform")
}

func expect(t *testing.T, ps *he.ParamSet, cer, label string, level int) envelope.Expect {
	t.Helper()
	e, err := release.Expect(ps, cer, label, level)
	require.NoError(t, err)
	return e
}

// A node refuses the homomorphic steps of a job under another spec than
// the one it bound the job id to (at any attempt), and an aggregate input
// below k — before it encrypts anything.
func TestHEStepsBoundToTheSpec(t *testing.T) {
	f := newFederation(t)
	ctx := context.Background()
	hrss, c := f.svc["hrss"], f.caller
	spec := policy.Spec{Type: policy.Aggregate, Purpose: "p", Inputs: []policy.Input{{Dataset: "hrss.benefits"}}, Value: &policy.ColumnRef{Column: "amount"}, Stats: []string{"sum"}}
	req := func(job string, attempt int, s policy.Spec) *nodeapi.HEAggregateRequest {
		return &nodeapi.HEAggregateRequest{Header: nodeapi.Header{Job: job, SpecHash: s.Hash(), Step: nodeapi.StepHEAggregate, Attempt: attempt}, Spec: s, Requester: alice, MaxRows: 100}
	}
	// No ceremony has run: a request that passes every check is bound to
	// its spec and only then refused for want of keys.
	_, err := hrss.HEAggregate(ctx, c, req("jb", 1, spec))
	refusal(t, err, node.KindConflict, "no_keys")
	narrow := spec
	narrow.Inputs = []policy.Input{{Dataset: "hrss.benefits", Filter: "amount != 7"}}
	for _, attempt := range []int{1, 2} {
		_, err = hrss.HEAggregate(ctx, c, req("jb", attempt, narrow))
		refusal(t, err, node.KindForbidden, "spec_conflict")
	}
	_, err = hrss.HEGroups(ctx, c, &nodeapi.HEGroupsRequest{Header: nodeapi.Header{Job: "jb", SpecHash: narrow.Hash(), Step: nodeapi.StepHEGroups, Attempt: 3}, Spec: narrow, Requester: alice})
	refusal(t, err, node.KindForbidden, "spec_conflict")
	lying := req("jb", 1, narrow)
	lying.SpecHash = spec.Hash()
	_, err = hrss.HEAggregate(ctx, c, lying)
	refusal(t, err, node.KindBadRequest, "spec_hash_mismatch")

	// Below k: hrss.benefits has k = 1 in these tests, so a filter that
	// leaves no row at all is refused.
	empty := spec
	empty.Inputs = []policy.Input{{Dataset: "hrss.benefits", Filter: "amount > 1000"}}
	_, err = hrss.HEAggregate(ctx, c, req("jk", 1, empty))
	refusal(t, err, node.KindForbidden, "input_below_k")
}
