package node_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/psi/delivery"
)

var alice = policy.Requester{User: "alice", Department: "hrss"}

func rng(lo, hi int) []int {
	out := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

// federation is three nodes' services, called directly (no HTTP): hrss
// holds benefits (rows 0–29), housing holds owners (rows 10–39); tax takes
// part in key ceremonies only.
type federation struct {
	svc    map[string]*node.Service
	logs   map[string]*audit.MemLog
	caller node.Caller
}

func newFederation(t *testing.T) *federation {
	t.Helper()
	cfgs, _ := nodetest.Configs(t, map[string][]int{"hrss.benefits": rng(0, 30), "housing.owners": rng(10, 40), "tax.records": rng(0, 5)}, nil)
	f := &federation{svc: map[string]*node.Service{}, logs: map[string]*audit.MemLog{}}
	for dept, cfg := range cfgs {
		l := &audit.MemLog{}
		s, err := node.New(cfg, node.Options{Audit: l})
		require.NoError(t, err)
		f.svc[dept], f.logs[dept] = s, l
		c, err := s.Authenticate(nodetest.Token, "192.0.2.7:4711")
		require.NoError(t, err)
		f.caller = c
	}
	t.Cleanup(func() {
		for dept, l := range f.logs {
			_, err := audit.VerifyLog(context.Background(), l)
			require.NoError(t, err, "audit chain of node %s", dept)
		}
	})
	return f
}

// actions lists the actions a node's log recorded, in order.
func (f *federation) actions(t *testing.T, dept string) []string {
	t.Helper()
	all, err := f.logs[dept].All(context.Background())
	require.NoError(t, err)
	var out []string
	for _, e := range all {
		require.Equal(t, node.ActorCoordinator, e.Actor)
		out = append(out, e.Action)
	}
	return out
}

// strict decodes JSON as the node's transport does: one value, no unknown
// fields.
func strict(t *testing.T, s string, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(v), "%s", s)
	require.False(t, dec.More(), "trailing data in %s", s)
}

// call is one protocol step without HTTP: reqJSON (what the coordinator
// sends) is decoded into a Req, which must encode back to the same JSON;
// the method's response is encoded, must decode strictly into a Resp that
// encodes back to the same JSON, and is returned as JSON.
func call[Req, Resp any](t *testing.T, method func(context.Context, node.Caller, *Req) (*Resp, error), c node.Caller, reqJSON string) string {
	t.Helper()
	var req Req
	strict(t, reqJSON, &req)
	again, err := json.Marshal(&req)
	require.NoError(t, err)
	require.JSONEq(t, reqJSON, string(again), "%T does not round-trip", req)
	resp, err := method(context.Background(), c, &req)
	require.NoError(t, err)
	return respJSON[Resp](t, resp)
}

// get is call for a request without a body.
func get[Resp any](t *testing.T, method func(context.Context, node.Caller) (*Resp, error), c node.Caller) string {
	t.Helper()
	resp, err := method(context.Background(), c)
	require.NoError(t, err)
	return respJSON[Resp](t, resp)
}

func respJSON[Resp any](t *testing.T, resp *Resp) string {
	t.Helper()
	out, err := json.Marshal(resp)
	require.NoError(t, err)
	var back Resp
	strict(t, string(out), &back)
	again, err := json.Marshal(&back)
	require.NoError(t, err)
	require.JSONEq(t, string(out), string(again), "%T does not round-trip", back)
	return string(out)
}

// b64 is a []byte as JSON encodes it.
func b64(b []byte) string { return `"` + base64.StdEncoding.EncodeToString(b) + `"` }

func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// field reads one top-level field of a JSON object.
func field[T any](t *testing.T, obj, name string) T {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(obj), &m))
	raw, ok := m[name]
	require.True(t, ok, "no %q in %s", name, obj)
	var v T
	require.NoError(t, json.Unmarshal(raw, &v))
	return v
}

// TestWireTypesThroughTheService drives every PSI step of the node protocol
// — every nodeapi request and response type — through the Service methods
// directly, as decoded JSON in and encoded JSON out, and checks what the
// answers mean: the true intersection, the analyst's members. (The
// homomorphic steps: TestHEWireTypesThroughTheService.)
func TestWireTypesThroughTheService(t *testing.T) {
	f := newFederation(t)
	hrss, housing := f.svc["hrss"], f.svc["housing"]
	c := f.caller
	var hrssActions []string
	served := func(action ...string) {
		t.Helper()
		hrssActions = append(hrssActions, action...)
		require.Equal(t, hrssActions, f.actions(t, "hrss"))
	}

	// ---- datasets ----
	out := get(t, hrss.Datasets, c)
	require.Equal(t, "hrss", field[string](t, out, "department"))
	ds := field[[]policy.Dataset](t, out, "datasets")
	require.Len(t, ds, 1)
	require.Equal(t, nodetest.Dataset("hrss.benefits"), ds[0])
	served() // not audited: metadata only

	// ---- PSI: prepare, own, reblind, members, deliver, finish, outcome ----
	members := `{"type":"psi_members","purpose":"eligibility check","inputs":[{"dataset":"hrss.benefits","key":"id_number"},{"dataset":"housing.owners","key":"id_number"}]}`
	hm := specDigest(t, members)
	prep := func(s *node.Service, party int) string {
		return call(t, s.Prepare, c, fmt.Sprintf(`{"job":"jm","spec_hash":%q,"step":"psi.prepare","attempt":1,"party":%d,"spec":%s,"requester":{"user":"alice","department":"hrss"},"input":%d,"parties":2}`, hm, party, members, party))
	}
	lengths := make([]nodeapi.SignedLength, 2)
	for party, s := range []*node.Service{hrss, housing} {
		out := prep(s, party)
		require.Equal(t, 30, field[int](t, out, "len"))
		require.Equal(t, 0, field[int](t, out, "invalid_ids"))
		lengths[party] = field[nodeapi.SignedLength](t, out, "length")
		require.Equal(t, party, lengths[party].List)
		require.Equal(t, 30, lengths[party].Len)
	}
	served("psi.prepare")
	// The lengths are signed by each list's owner, for this job and spec.
	ref := nodeapi.JobRef{Job: "jm", SpecHash: hm, Attempt: 1}
	for party, dept := range []string{"hrss", "housing"} {
		ls := nodeapi.LengthStatement{JobRef: ref, List: party, Len: 30}
		require.True(t, ed25519.Verify(nodetest.PrivateKey("node-"+dept).Public().(ed25519.PublicKey), ls.Message().Encoded(), lengths[party].Signature))
	}

	own := func(s *node.Service, party int) ([]byte, []byte) {
		out := call(t, s.Own, c, fmt.Sprintf(`{"job":"jm","spec_hash":%q,"step":"psi.own","attempt":1,"party":%d,"offset":0,"n":30}`, hm, party))
		els := field[[]byte](t, out, "elements")
		require.Len(t, els, 30*32)
		return els, field[[]byte](t, out, "proof")
	}
	l0, p0 := own(hrss, 0)
	l1, p1 := own(housing, 1)
	served("psi.own")
	reblind := func(s *node.Service, party, list int, els, proof []byte) []byte {
		out := call(t, s.Reblind, c, fmt.Sprintf(`{"job":"jm","spec_hash":%q,"step":"psi.reblind","attempt":1,"party":%d,"list":%d,"offset":0,"elements":%s,"proof":%s,"length":%s}`,
			hm, party, list, b64(els), b64(proof), js(lengths[list])))
		got := field[[]byte](t, out, "elements")
		require.Len(t, got, len(els))
		// Signed by the reblinding node as hop 1 of the list.
		cs := nodeapi.ChunkStatement{JobRef: ref, List: list, Hop: 1, Offset: 0, N: 30, Elements: nodeapi.DigestOf(got)}
		require.True(t, ed25519.Verify(s.PublicKey(), cs.Message().Encoded(), field[[]byte](t, out, "proof")))
		return got
	}
	l0, l1 = reblind(housing, 1, 0, l0, p0), reblind(hrss, 0, 1, l1, p1)
	served("psi.reblind")
	// Both lists now carry both keys: equal elements are equal IDs.
	var positions []int
	for p := range 30 {
		for q := range 30 {
			if bytes.Equal(l0[32*p:32*p+32], l1[32*q:32*q+32]) {
				positions = append(positions, p)
			}
		}
	}
	require.Len(t, positions, 20, "rows 10–29 are in both")

	pub, priv, err := delivery.GenerateKey()
	require.NoError(t, err)
	out = call(t, hrss.Members, c, fmt.Sprintf(`{"job":"jm","spec_hash":%q,"step":"psi.members","attempt":1,"party":0,"positions":%s,"recipient_key":%s,"recipient":"alice"}`, hm, js(positions), b64(pub)))
	require.Equal(t, 20, field[int](t, out, "count"))
	sealed := field[attest.Digest](t, out, "sealed_sha256")
	served("psi.members")

	// The reviewer approves the result naming the sealed list; the node
	// hands it over against that approval.
	result := js(map[string]any{"count": 20, "sealed_sha256": sealed, "recipient": "alice", "recipient_key_sha256": nodeapi.DigestOf(pub)})
	sp := decodeSpec(t, members)
	approval, err := attest.SignApproval(nodetest.PrivateKey(nodetest.Reviewer), &attest.Approval{JobRef: attest.Ref("jm", &sp, alice),
		Result: nodeapi.DigestOf([]byte(result)), Recipient: nodeapi.DigestOf(pub), Reviewer: nodetest.Reviewer, At: time.Unix(1_800_000_000, 0)})
	require.NoError(t, err)
	out = call(t, hrss.Deliver, c, fmt.Sprintf(`{"job":"jm","spec_hash":%q,"step":"psi.deliver","attempt":1,"party":0,"approval":%s,"result":%s}`, hm, js(approval), b64([]byte(result))))
	ct := field[[]byte](t, out, "ciphertext")
	require.Equal(t, sealed, nodeapi.DigestOf(ct))
	ids, err := delivery.Open(priv, "jm", ct)
	require.NoError(t, err)
	var want []string
	for i := 10; i < 30; i++ {
		want = append(want, nodetest.ID(i))
	}
	require.ElementsMatch(t, want, ids)
	served("psi.deliver")

	// Finish and outcome answer with the node's signed audit head (witness_test.go).
	fin := call(t, hrss.Finish, c, fmt.Sprintf(`{"job":"jm","spec_hash":%q,"step":"job.finish","attempt":1,"party":0,"outcome":"done"}`, hm))
	require.True(t, field[bool](t, fin, "ok"))
	require.Equal(t, "hrss", field[audit.SignedHead](t, fin, "head").Log)
	oc := call(t, hrss.Outcome, c, fmt.Sprintf(`{"job":"jm","spec_hash":%q,"step":"job.outcome","attempt":1,"party":0,"outcome":"released","purpose":"eligibility check","datasets":["hrss.benefits","housing.owners"],"reviewer":"rita"}`, hm))
	require.True(t, field[bool](t, oc, "ok"))
	require.Equal(t, "hrss", field[audit.SignedHead](t, oc, "head").Log)
	served("job.finish", "job.released")
}

// decodeSpec reads a spec as the node's transport does.
func decodeSpec(t *testing.T, spec string) policy.Spec {
	t.Helper()
	var sp policy.Spec
	strict(t, spec, &sp)
	return sp
}

// specDigest is the hash of a spec given as JSON.
func specDigest(t *testing.T, spec string) attest.Digest {
	t.Helper()
	sp := decodeSpec(t, spec)
	return sp.Hash()
}

func sha(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}
