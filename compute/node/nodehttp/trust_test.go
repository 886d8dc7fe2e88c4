package nodehttp_test

// Attacks by a malicious coordinator (or anyone holding its token) on
// real nodes over HTTP: each test sends what such a coordinator could send
// and checks that the node refuses it, with which code, and that nothing
// was served. The nodes are honest; the coordinator may send any message,
// in any order, replay, and forge anything it can (it holds no node's,
// owner's or reviewer's signing key).

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/psi"
	"github.com/unseen-data/unseen/psi/delivery"
)

// mallory is a signing key no node knows: what an attacker signs with.
var mallory = nodetest.PrivateKey("mallory")

// codes counts the node's audited refusals by code.
func codes(t *testing.T, f *nodetest.Federation, dept string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, e := range entries(t, f, dept, "request.refused") {
		out[e.Detail["code"]]++
	}
	return out
}

// The membership oracle: the coordinator hashes a guessed ID as the nodes
// do, blinds it with a key of its own and asks a node to reblind it as a
// chunk of another party's list. Without the previous hop's signature over
// exactly these elements, no node blinds it.
func TestGuessedIDOracleRefused(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	s := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits})
	ps := prepareBoth(t, f, s, "j1", 1)
	genuine := ownChunk(t, ps, 1, 0, 1) // housing's first element, for hrss

	// ID 15 is in both departments' sets (rows 0–29 and 10–39).
	hash := s.Hash()
	guess := psi.HashID("j1", []byte(nodetest.ID(15)))
	key, err := psi.DeriveKey(bytes.Repeat([]byte{7}, 32), "j1", hash[:])
	require.NoError(t, err)
	blinded := make([]psi.Element, 1)
	require.NoError(t, key.Blind(blinded, []psi.Element{guess}))
	point := psi.EncodeElements(blinded)

	forge := func(signer ed25519.PrivateKey, list, hop int) []byte {
		st := nodeapi.ChunkStatement{JobRef: genuine.Ref(), List: list, Hop: hop, Offset: 0, N: 1, Elements: nodeapi.DigestOf(point)}
		return attest.Sign(signer, st.Message())
	}
	for _, c := range []struct {
		name  string
		to    string
		list  int
		proof []byte
	}{
		{"no proof", "hrss", 1, nil},
		{"signed by the attacker", "hrss", 1, forge(mallory, 1, 0)},
		{"signed with the coordinator's key", "hrss", 1, forge(nodetest.PrivateKey("coordinator"), 1, 0)},
		{"signed by the reblinding node itself", "hrss", 1, forge(nodetest.PrivateKey("node-hrss"), 1, 0)},
		{"the genuine chunk's proof", "hrss", 1, genuine.Proof},
		{"to housing, as hrss's list", "housing", 0, nil},
		{"to housing, with hrss's proof of another chunk", "housing", 0, ownChunk(t, ps, 0, 0, 1).Proof},
	} {
		t.Run(c.name, func(t *testing.T) {
			party := 1 - c.list
			req := &nodeapi.ReblindRequest{Header: ps[party].Header, List: c.list, Offset: 0, Elements: point, Proof: c.proof, Length: ps[party].Lengths[c.list]}
			_, err := f.Clients[c.to].Reblind(ctx, req)
			requireRefused(t, err, 403, "bad_proof")
			require.True(t, nodeapi.IsPermanent(err), "a forged chunk is refused for good, not retried")
		})
	}
	require.Empty(t, entries(t, f, "hrss", string(nodeapi.StepReblind)), "a guessed point was reblinded")
	require.Empty(t, entries(t, f, "housing", string(nodeapi.StepReblind)), "a guessed point was reblinded")
	require.Equal(t, 5, codes(t, f, "hrss")["bad_proof"])
	require.Equal(t, 2, codes(t, f, "housing")["bad_proof"])

	// The genuine chunk, as produced, is served: the refusals above are the
	// guess's.
	_, err = f.Clients["hrss"].Reblind(ctx, genuine)
	require.NoError(t, err)
}

// A spec changed under a known job id: the coordinator re-runs job j1 with
// one person filtered out (AND amount != 5), to learn about that person
// from the difference. Every node binds a job id to its first spec for
// good: refused at every attempt, and after a restart.
func TestSpecChangedUnderKnownJobRefused(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	s1 := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits, Filter: "amount >= 0"})
	s2 := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits, Filter: "amount >= 0 AND amount != 5"})
	prepareBoth(t, f, s1, "j1", 1)

	narrowed := func(attempt int) {
		t.Helper()
		for party := range 2 {
			_, err := prepare(t, f, s2, alice, header(s2, "j1", attempt, party))
			requireRefused(t, err, 403, "spec_conflict")
			require.True(t, nodeapi.IsPermanent(err))
		}
	}
	narrowed(2)
	// Naming the old spec's hash over the new spec does not help.
	_, err := prepare(t, f, s2, alice, header(s1, "j1", 3, 0))
	requireRefused(t, err, 400, "spec_hash_mismatch")
	// Nor another requester under the same id and spec.
	_, err = prepare(t, f, s1, policy.Requester{User: "bob", Department: "hrss"}, header(s1, "j1", 3, 0))
	requireRefused(t, err, 403, "spec_conflict")
	// A later step of the prepared attempt under the new spec's hash.
	_, err = f.Clients["hrss"].Own(ctx, &nodeapi.OwnRequest{Header: header(s2, "j1", 1, 0), N: 1})
	requireRefused(t, err, 403, "spec_conflict")

	// After both nodes restart (their sessions gone), still refused.
	f.Restart(t, "hrss")
	f.Restart(t, "housing")
	narrowed(4)
	narrowed(5)
	// The job under its own spec still runs.
	ps := prepareBoth(t, f, s1, "j1", 6)
	res, err := psi.Run(ctx, []psi.Party{ps[0], ps[1]}, 0, 16, nil)
	require.NoError(t, err)
	require.Equal(t, 20, res.Count)
	for _, dept := range []string{"hrss", "housing"} {
		refused := 0
		for _, e := range entries(t, f, dept, "psi.refused") {
			if e.Job == "j1" && strings.Contains(e.Detail["reason"], "cannot be run under another spec") {
				refused++
			}
		}
		require.GreaterOrEqual(t, refused, 3, "node %s audits each refusal with its reason", dept)
	}
}

// A chunk of a list, signed for one job (or attempt), replayed into
// another: the signature names the job, spec and attempt, so it does not
// verify there; nor does the list owner's length declaration.
func TestChunkReplayedIntoAnotherJobRefused(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	hrss := f.Clients["hrss"]
	s := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits})
	j1 := prepareBoth(t, f, s, "j1", 1)
	j2 := prepareBoth(t, f, s, "j2", 1)
	chunk := ownChunk(t, j1, 1, 0, 5) // housing's list of j1

	into := func(target []*nodeapi.Party, length nodeapi.SignedLength) error {
		r := *chunk
		r.Header, r.Length = target[0].Header, length
		_, err := hrss.Reblind(ctx, &r)
		return err
	}
	requireRefused(t, into(j2, j2[1].Lengths[1]), 403, "bad_proof")
	requireRefused(t, into(j2, j1[1].Lengths[1]), 403, "bad_length")
	// Into a new attempt of the same job.
	j1b := prepareBoth(t, f, s, "j1", 2)
	requireRefused(t, into(j1b, j1b[1].Lengths[1]), 403, "bad_proof")
	requireRefused(t, into(j1b, j1[1].Lengths[1]), 403, "bad_length")
	require.Empty(t, entries(t, f, "hrss", string(nodeapi.StepReblind)))

	// Each job's own chunks are served.
	_, err := hrss.Reblind(ctx, ownChunk(t, j2, 1, 0, 5))
	require.NoError(t, err)
	_, err = hrss.Reblind(ctx, ownChunk(t, j1b, 1, 0, 5))
	require.NoError(t, err)
}

// On a three-party route a node checks the previous hop, not any hop: the
// last node of a list will not take the owner's chunk with the middle hop
// skipped, nor a chunk signed as another hop.
func TestHopsOutOfOrderRefused(t *testing.T) {
	f := nodetest.Start(t, map[string][]int{"a.x": rng(0, 30), "b.y": rng(0, 30), "c.z": rng(0, 30)}, nil)
	ctx := context.Background()
	s := policy.Spec{Type: policy.PSICardinality, Purpose: "p", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number"}, {Dataset: "b.y", Key: "id_number"}, {Dataset: "c.z", Key: "id_number"}}}
	depts := []string{"a", "b", "c"}
	lengths := make([]nodeapi.SignedLength, 3)
	hs := make([]nodeapi.Header, 3)
	for i, d := range depts {
		hs[i] = header(s, "j1", 1, i)
		r, err := f.Clients[d].Prepare(ctx, &nodeapi.PrepareRequest{Header: hs[i], Spec: s, Requester: alice, Input: i, Parties: 3})
		require.NoError(t, err)
		lengths[i] = r.Length
	}
	// List 0's route: a (owner, hop 0) → b (hop 1) → c (hop 2).
	own, err := f.Clients["a"].Own(ctx, &nodeapi.OwnRequest{Header: hs[0], Offset: 0, N: 4})
	require.NoError(t, err)
	toC := &nodeapi.ReblindRequest{Header: hs[2], List: 0, Offset: 0, Elements: own.Elements, Proof: own.Proof, Length: lengths[0]}
	_, err = f.Clients["c"].Reblind(ctx, toC)
	requireRefused(t, err, 403, "bad_proof")

	hop1, err := f.Clients["b"].Reblind(ctx, &nodeapi.ReblindRequest{Header: hs[1], List: 0, Offset: 0, Elements: own.Elements, Proof: own.Proof, Length: lengths[0]})
	require.NoError(t, err)
	// b's hop-1 output is what c takes; sent to b again as list 2 it is not.
	_, err = f.Clients["b"].Reblind(ctx, &nodeapi.ReblindRequest{Header: hs[1], List: 2, Offset: 0, Elements: hop1.Elements, Proof: hop1.Proof, Length: lengths[2]})
	requireRefused(t, err, 403, "bad_proof")
	toC.Elements, toC.Proof = hop1.Elements, hop1.Proof
	_, err = f.Clients["c"].Reblind(ctx, toC)
	require.NoError(t, err)
}

// Positions of a list are reblinded once per attempt and never past the
// length its owner declared; an identical repeat is answered again, the
// same. A restart does not reset this: the node prepares no attempt twice.
func TestReblindPositionsOncePerAttempt(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	hrss := f.Clients["hrss"]
	s := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits})
	ps := prepareBoth(t, f, s, "j1", 1)
	require.Equal(t, 30, ps[1].N)

	first := ownChunk(t, ps, 1, 0, 10)
	out1, err := hrss.Reblind(ctx, first)
	require.NoError(t, err)
	out2, err := hrss.Reblind(ctx, first)
	require.NoError(t, err, "an identical repeat is answered")
	require.Equal(t, out1, out2, "…with the same elements and proof")

	// Overlapping positions, even from a genuine chunk.
	_, err = hrss.Reblind(ctx, ownChunk(t, ps, 1, 5, 10))
	requireRefused(t, err, 403, "repeated_position")
	_, err = hrss.Reblind(ctx, ownChunk(t, ps, 1, 9, 1))
	requireRefused(t, err, 403, "repeated_position")
	// A chunk of the same offset and size with other elements: the owner's
	// genuine positions [1, 11) relabelled as [0, 10) fail their proof.
	shifted := ownChunk(t, ps, 1, 1, 10)
	shifted.Offset = 0
	_, err = hrss.Reblind(ctx, shifted)
	requireRefused(t, err, 403, "bad_proof")

	// Past the declared length (30).
	last := ownChunk(t, ps, 1, 25, 5)
	for _, off := range []int{26, 28, 30, -1} {
		r := *last
		r.Offset = off
		_, err = hrss.Reblind(ctx, &r)
		requireRefused(t, err, 403, "over_length")
	}
	_, err = hrss.Reblind(ctx, ownChunk(t, ps, 1, 10, 20))
	require.NoError(t, err, "the rest of the list, once")
	_, err = hrss.Reblind(ctx, last)
	requireRefused(t, err, 403, "repeated_position")

	// A restarted node has lost its record of what it reblinded, so it
	// will not prepare attempt 1 again (nor older); attempt 2 is new.
	f.Restart(t, "hrss")
	_, err = prepare(t, f, s, alice, header(s, "j1", 1, 0))
	requireRefused(t, err, 409, "attempt_used")
	_, err = hrss.Reblind(ctx, first)
	requireRefused(t, err, 409, "not_prepared")
	ps2 := prepareBoth(t, f, s, "j1", 2)
	_, err = hrss.Reblind(ctx, ownChunk(t, ps2, 1, 0, 10))
	require.NoError(t, err)
	require.Len(t, entries(t, f, "hrss", string(nodeapi.StepReblind)), 4, "served: [0,10) twice, [10,30), and attempt 2's [0,10)")
}

// A length declaration not made by the list's owner for this very job,
// attempt and list is refused, so no one can stretch a list.
func TestForgedLengthRefused(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	s := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits})
	ps := prepareBoth(t, f, s, "j1", 1)
	chunk := ownChunk(t, ps, 1, 0, 5)
	ref := chunk.Ref()
	sign := func(key ed25519.PrivateKey, ref nodeapi.JobRef, list, n int) nodeapi.SignedLength {
		st := nodeapi.LengthStatement{JobRef: ref, List: list, Len: n}
		return nodeapi.SignedLength{List: list, Len: n, Signature: attest.Sign(key, st.Message())}
	}
	other := ref
	other.Attempt = 2
	stretched := ps[1].Lengths[1]
	stretched.Len = 40
	for name, l := range map[string]nodeapi.SignedLength{
		"length changed":             stretched,
		"signed by the attacker":     sign(mallory, ref, 1, 40),
		"signed by the coordinator":  sign(nodetest.PrivateKey("coordinator"), ref, 1, 40),
		"signed by the reblinder":    sign(nodetest.PrivateKey("node-hrss"), ref, 1, 40),
		"another list's declaration": ps[0].Lengths[0],
		"for another attempt":        sign(nodetest.PrivateKey("node-housing"), other, 1, 30),
		"no signature":               {List: 1, Len: 30},
	} {
		t.Run(name, func(t *testing.T) {
			r := *chunk
			r.Length = l
			_, err := f.Clients["hrss"].Reblind(ctx, &r)
			requireRefused(t, err, 403, "bad_length")
		})
	}
	require.Empty(t, entries(t, f, "hrss", string(nodeapi.StepReblind)))
}

// A conditional dataset (有条件共享) is used only with its owner's consent,
// signed with a key from the node's own config, for this job, spec,
// requester and dataset, and still valid: whatever the coordinator says.
func TestConditionalDatasetNeedsSignedConsent(t *testing.T) {
	const cond = "hrss.cond"
	clock := time.Now()
	f := nodetest.Start(t, map[string][]int{cond: rng(0, 30), "hrss.other": rng(0, 5), dsOwners: rng(10, 40)}, func(d *policy.Dataset) {
		if d.Name == cond || d.Name == "hrss.other" {
			d.Sharing = "conditional"
		}
	})
	ctx := context.Background()
	s := spec(policy.PSICardinality, policy.Input{Dataset: cond})
	s2 := spec(policy.PSICardinality, policy.Input{Dataset: cond, Filter: "amount > 3"})
	owner := nodetest.Owner("hrss")
	consent := func(key string, c attest.Consent) attest.SignedConsent {
		if c.Owner == "" {
			c.Owner = owner
		}
		if c.Dataset == "" {
			c.Dataset = cond
		}
		if c.Until.IsZero() {
			c.Until = clock.Add(time.Hour)
		}
		if c.JobRef.Job == "" {
			c.JobRef = attest.Ref("j1", &s, alice)
		}
		sc, err := attest.SignConsent(nodetest.PrivateKey(key), &c)
		require.NoError(t, err)
		return *sc
	}
	run := func(cs ...attest.SignedConsent) error {
		_, err := f.Clients["hrss"].Prepare(ctx, &nodeapi.PrepareRequest{Header: header(s, "j1", 1, 0), Spec: s, Requester: alice, Input: 0, Parties: 2, Consents: cs})
		return err
	}
	tampered := consent(owner, attest.Consent{Approve: true})
	tampered.Statement.Until = clock.Add(24 * 365 * time.Hour)
	for _, c := range []struct {
		name     string
		consents []attest.SignedConsent
		code     string
	}{
		{"no consent", nil, "consent_required"},
		{"for another job", []attest.SignedConsent{consent(owner, attest.Consent{Approve: true, JobRef: attest.Ref("j9", &s, alice)})}, "consent_required"},
		{"for another spec of the job", []attest.SignedConsent{consent(owner, attest.Consent{Approve: true, JobRef: attest.Ref("j1", &s2, alice)})}, "consent_required"},
		{"for another requester", []attest.SignedConsent{consent(owner, attest.Consent{Approve: true, JobRef: attest.Ref("j1", &s, policy.Requester{User: "bob", Department: "hrss"})})}, "consent_required"},
		{"for another dataset", []attest.SignedConsent{consent(owner, attest.Consent{Approve: true, Dataset: "hrss.other"})}, "consent_required"},
		{"expired", []attest.SignedConsent{consent(owner, attest.Consent{Approve: true, Until: clock.Add(-time.Minute)})}, "consent_required"},
		{"altered after signing", []attest.SignedConsent{tampered}, "consent_required"},
		{"owner not in the node's config", []attest.SignedConsent{consent("mallory", attest.Consent{Approve: true, Owner: "mallory"})}, "consent_required"},
		{"owner's name, another key", []attest.SignedConsent{consent("mallory", attest.Consent{Approve: true})}, "consent_required"},
		{"another department's owner", []attest.SignedConsent{consent(nodetest.Owner("housing"), attest.Consent{Approve: true, Owner: nodetest.Owner("housing")})}, "consent_required"},
		{"the owner refused", []attest.SignedConsent{consent(owner, attest.Consent{Approve: false, Reason: "no"})}, "consent_refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			requireRefused(t, run(c.consents...), 403, c.code)
		})
	}
	require.Empty(t, entries(t, f, "hrss", string(nodeapi.StepPrepare)), "a conditional dataset was prepared without consent")
	refused := entries(t, f, "hrss", "psi.refused")
	require.Len(t, refused, 11)
	for _, e := range refused {
		require.Contains(t, e.Detail["reason"], cond)
		require.Equal(t, "alice", e.Detail["requester"])
	}
	// The owner's consent to this job: served (among other consents).
	require.NoError(t, run(consent("mallory", attest.Consent{Approve: true}), consent(owner, attest.Consent{Approve: true})))
}

// Two inputs from one department would let its node make the last hop of
// its own second list and of another's, and compute their intersection
// itself. A coordinator that skips the submission checks and sends such a
// spec by hand is refused by the node; so is a party index that is not the
// department's input.
func TestTwoInputsFromOneDepartmentRefused(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	bad := policy.Spec{Type: policy.PSICardinality, Purpose: "p", Inputs: []policy.Input{{Dataset: dsBenefits, Key: "id_number"}, {Dataset: dsRestricted, Key: "id_number"}, {Dataset: dsOwners, Key: "id_number"}}}
	require.ErrorContains(t, bad.Validate(), "same department", "the coordinator's own check")
	for party := range 2 {
		_, err := f.Clients["hrss"].Prepare(ctx, &nodeapi.PrepareRequest{Header: header(bad, "j2", 1, party), Spec: bad, Requester: alice, Input: party, Parties: 3})
		requireRefused(t, err, 403, "policy_violation")
		require.ErrorContains(t, err, "same department")
	}
	// A valid spec, but hrss claimed as another party than its input.
	s := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits})
	_, err := f.Clients["hrss"].Prepare(ctx, &nodeapi.PrepareRequest{Header: header(s, "j3", 1, 1), Spec: s, Requester: alice, Input: 0, Parties: 2})
	requireRefused(t, err, 403, "not_my_party")
	_, err = f.Clients["hrss"].Prepare(ctx, &nodeapi.PrepareRequest{Header: header(s, "j3", 1, 0), Spec: s, Requester: alice, Input: 0, Parties: 3})
	requireRefused(t, err, 400, "bad_request")
	require.Empty(t, entries(t, f, "hrss", string(nodeapi.StepPrepare)))
}

// The owner's privacy budget and rate limits, per analyst and in total,
// kept by the node itself: a coordinator that skips its own checks, or
// invents analysts, cannot exceed them, not even across a restart.
func TestNodeLedgerLimitsHold(t *testing.T) {
	const dpDS, rateDS = "hrss.dp", "hrss.rated"
	f := nodetest.Start(t, map[string][]int{dpDS: rng(0, 30), rateDS: rng(0, 30), dsOwners: rng(10, 40)}, func(d *policy.Dataset) {
		switch d.Name {
		case dpDS:
			d.DP = &policy.DP{Epsilon: 1, Budget: 2, TotalBudget: 3}
		case rateDS:
			d.RateLimit = &policy.RateLimit{Jobs: 2, Per: time.Hour, TotalJobs: 3}
		}
	})
	who := func(name string) policy.Requester { return policy.Requester{User: name, Department: "hrss"} }
	run := func(ds, job, analyst string, attempt int) error {
		s := spec(policy.PSICardinality, policy.Input{Dataset: ds})
		_, err := prepare(t, f, s, who(analyst), header(s, job, attempt, 0))
		return err
	}
	for _, c := range []struct {
		ds, perAnalyst, total string
	}{{dpDS, "dp_budget", "dp_total_budget"}, {rateDS, "rate_limit", "rate_limit_total"}} {
		t.Run(c.ds, func(t *testing.T) {
			j := func(n int) string { return fmt.Sprintf("%s-%d", c.ds, n) }
			require.NoError(t, run(c.ds, j(1), "alice", 1))
			require.NoError(t, run(c.ds, j(2), "alice", 1))
			require.NoError(t, run(c.ds, j(1), "alice", 2), "a retry of a job is not charged again")
			requireRefused(t, run(c.ds, j(3), "alice", 1), 403, c.perAnalyst)
			require.NoError(t, run(c.ds, j(4), "bob", 1), "an invented analyst has a budget of their own…")
			requireRefused(t, run(c.ds, j(5), "carol", 1), 403, c.total) // …but not beyond the total
			f.Restart(t, "hrss")
			requireRefused(t, run(c.ds, j(6), "dave", 1), 403, c.total)
			requireRefused(t, run(c.ds, j(7), "alice", 1), 403, c.perAnalyst)
		})
	}
}

// An input narrowed below its dataset's k is refused, and the refusal
// says so without the list's size.
func TestInputBelowKRefused(t *testing.T) {
	f := nodetest.Start(t, map[string][]int{dsBenefits: rng(0, 30), dsOwners: rng(10, 40)}, func(d *policy.Dataset) { d.MinCount = 10 })
	ctx := context.Background()
	narrow := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits, Filter: "amount < 7"}) // 7 keys
	_, err := prepare(t, f, narrow, alice, header(narrow, "j1", 1, 0))
	requireRefused(t, err, 403, "input_below_k")
	require.True(t, nodeapi.IsPermanent(err))
	require.NotContains(t, err.Error(), "7", "the refusal gives away the list's size")
	_, err = f.Clients["hrss"].Own(ctx, &nodeapi.OwnRequest{Header: header(narrow, "j1", 1, 0), N: 1})
	requireRefused(t, err, 409, "not_prepared")
	es := entries(t, f, "hrss", "psi.refused")
	require.Len(t, es, 1)
	require.Equal(t, "input below k", es[0].Detail["reason"])
	require.Empty(t, entries(t, f, "hrss", string(nodeapi.StepPrepare)))

	k := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits, Filter: "amount < 10"}) // exactly k
	r, err := prepare(t, f, k, alice, header(k, "j2", 1, 0))
	require.NoError(t, err)
	require.Equal(t, 10, r.Len)
}

// approve is a psi_members result as the coordinator's worker writes it,
// and reviewer rita's signed approval of it for the analyst key pub.
func approve(t *testing.T, job string, s policy.Spec, req policy.Requester, mr *nodeapi.MembersResponse, pub []byte) ([]byte, *attest.SignedApproval) {
	t.Helper()
	result, err := json.Marshal(map[string]any{"count": mr.Count, "recipient": req.User, "recipient_key_sha256": nodeapi.DigestOf(pub), "sealed_sha256": mr.SealedSHA256})
	require.NoError(t, err)
	return result, signApproval(t, nodetest.PrivateKey(nodetest.Reviewer), attest.Approval{JobRef: attest.Ref(job, &s, req), Result: nodeapi.DigestOf(result), Recipient: nodeapi.DigestOf(pub), Reviewer: nodetest.Reviewer, At: time.Now()})
}

func signApproval(t *testing.T, key ed25519.PrivateKey, a attest.Approval) *attest.SignedApproval {
	t.Helper()
	sa, err := attest.SignApproval(key, &a)
	require.NoError(t, err)
	return sa
}

// The psi_members list leaves the requesting node only against a
// reviewer's signed approval of exactly the result that names it, for this
// job, sealed to the analyst key the reviewer approved.
func TestMembersDeliveryNeedsApproval(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	hrss := f.Clients["hrss"]
	s := spec(policy.PSIMembers, policy.Input{Dataset: dsBenefits})
	ps := prepareBoth(t, f, s, "jm", 1)
	res, err := psi.Run(ctx, []psi.Party{ps[0], ps[1]}, 0, 8, nil)
	require.NoError(t, err)
	require.Equal(t, 20, res.Count)
	h := ps[0].Header
	pub, priv, err := delivery.GenerateKey()
	require.NoError(t, err)
	deliver := func(h nodeapi.Header, a *attest.SignedApproval, result []byte) ([]byte, error) {
		return hrss.Deliver(ctx, &nodeapi.DeliverRequest{Header: h, Approval: a, Result: result})
	}

	_, err = deliver(h, nil, []byte(`{}`))
	requireRefused(t, err, 404, "no_members")
	mr, err := hrss.Members(ctx, &nodeapi.MembersRequest{Header: h, Positions: res.Positions, RecipientKey: pub, Recipient: "alice"})
	require.NoError(t, err)
	require.Equal(t, 20, mr.Count)
	result, ok := approve(t, "jm", s, alice, mr, pub)

	// Variations of the genuine approval, each what a coordinator could
	// make or replay.
	with := func(key ed25519.PrivateKey, edit func(a *attest.Approval)) *attest.SignedApproval {
		a := *ok.Statement
		edit(&a)
		return signApproval(t, key, a)
	}
	rita := nodetest.PrivateKey(nodetest.Reviewer)
	other := spec(policy.PSIMembers, policy.Input{Dataset: dsBenefits, Filter: "amount > 1"})
	otherResult, err := json.Marshal(map[string]any{"count": 21, "recipient": "alice", "recipient_key_sha256": nodeapi.DigestOf(pub), "sealed_sha256": mr.SealedSHA256})
	require.NoError(t, err)
	fakeList, err := json.Marshal(map[string]any{"count": 20, "recipient": "alice", "recipient_key_sha256": nodeapi.DigestOf(pub), "sealed_sha256": nodeapi.DigestOf([]byte("another list"))})
	require.NoError(t, err)
	malloryPub, _, err := delivery.GenerateKey()
	require.NoError(t, err)
	altered := *ok
	st := *ok.Statement
	st.Recipient = nodeapi.DigestOf(malloryPub)
	altered.Statement = &st
	for _, c := range []struct {
		name     string
		approval *attest.SignedApproval
		result   []byte
		h        nodeapi.Header
		status   int
		code     string
	}{
		{"no approval", nil, result, h, 403, "approval_invalid"},
		{"signed by the coordinator", with(nodetest.PrivateKey("coordinator"), func(*attest.Approval) {}), result, h, 403, "approval_invalid"},
		{"signed by a data owner", with(nodetest.PrivateKey(nodetest.Owner("hrss")), func(*attest.Approval) {}), result, h, 403, "approval_invalid"},
		{"signed by a reviewer the node does not know", with(mallory, func(a *attest.Approval) { a.Reviewer = "mallory" }), result, h, 403, "approval_invalid"},
		{"altered after signing", &altered, result, h, 403, "approval_invalid"},
		{"for another result, sent with this one", with(rita, func(a *attest.Approval) { a.Result = nodeapi.DigestOf(otherResult) }), result, h, 403, "result_mismatch"},
		{"for a result with another count", with(rita, func(a *attest.Approval) { a.Result = nodeapi.DigestOf(otherResult) }), otherResult, h, 403, "result_mismatch"},
		{"for a result naming another list", with(rita, func(a *attest.Approval) { a.Result = nodeapi.DigestOf(fakeList) }), fakeList, h, 403, "result_mismatch"},
		{"for another job", with(rita, func(a *attest.Approval) { a.JobRef = attest.Ref("jx", &s, alice) }), result, h, 403, "approval_mismatch"},
		{"for another spec", with(rita, func(a *attest.Approval) { a.JobRef = attest.Ref("jm", &other, alice) }), result, h, 403, "approval_mismatch"},
		{"for another requester", with(rita, func(a *attest.Approval) {
			a.JobRef = attest.Ref("jm", &s, policy.Requester{User: "mallory", Department: "hrss"})
		}), result, h, 403, "approval_mismatch"},
		{"for another analyst key", with(rita, func(a *attest.Approval) { a.Recipient = nodeapi.DigestOf(malloryPub) }), result, h, 403, "recipient_mismatch"},
		{"with no analyst key", with(rita, func(a *attest.Approval) { a.Recipient = attest.Digest{} }), result, h, 403, "recipient_mismatch"},
		{"under another spec's hash", ok, result, header(other, "jm", 1, 0), 403, "spec_conflict"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ct, err := deliver(c.h, c.approval, c.result)
			requireRefused(t, err, c.status, c.code)
			require.Nil(t, ct)
		})
	}
	require.Empty(t, entries(t, f, "hrss", string(nodeapi.StepDeliver)), "a list was delivered without a valid approval")
	require.Len(t, entries(t, f, "hrss", string(nodeapi.StepDeliver)+".refused"), 14)

	// A coordinator that has the list sealed to its own key instead: the
	// reviewer approves the analyst's registered key, which the node checks
	// against the key it sealed to.
	mr2, err := hrss.Members(ctx, &nodeapi.MembersRequest{Header: h, Positions: res.Positions, RecipientKey: malloryPub, Recipient: "alice"})
	require.NoError(t, err)
	result2, _ := approve(t, "jm", s, alice, mr2, malloryPub)
	approved := signApproval(t, rita, attest.Approval{JobRef: attest.Ref("jm", &s, alice), Result: nodeapi.DigestOf(result2), Recipient: nodeapi.DigestOf(pub), Reviewer: nodetest.Reviewer, At: time.Now()})
	_, err = deliver(h, approved, result2)
	requireRefused(t, err, 403, "recipient_mismatch")
	// Nor is the earlier list, sealed to alice, still to be had.
	_, err = deliver(h, ok, result)
	requireRefused(t, err, 403, "result_mismatch")

	// Sealed to alice again and approved: delivered, also after a restart,
	// as many times as asked, the same list.
	mr3, err := hrss.Members(ctx, &nodeapi.MembersRequest{Header: h, Positions: res.Positions, RecipientKey: pub, Recipient: "alice"})
	require.NoError(t, err)
	result3, ok3 := approve(t, "jm", s, alice, mr3, pub)
	f.Restart(t, "hrss")
	ct, err := deliver(h, ok3, result3)
	require.NoError(t, err)
	again, err := deliver(h, ok3, result3)
	require.NoError(t, err)
	require.Equal(t, ct, again)
	ids, err := delivery.Open(priv, "jm", ct)
	require.NoError(t, err)
	var want []string
	for i := 10; i < 30; i++ {
		want = append(want, nodetest.ID(i))
	}
	slices.Sort(ids)
	slices.Sort(want)
	require.Equal(t, want, ids)
	require.Len(t, entries(t, f, "hrss", string(nodeapi.StepDeliver)), 2)
}

// The requesting node seals no member list shorter than its dataset's k.
func TestMembersBelowKRefused(t *testing.T) {
	f := nodetest.Start(t, map[string][]int{dsBenefits: rng(0, 30), dsOwners: rng(10, 40)}, func(d *policy.Dataset) { d.MinCount = 25 })
	ctx := context.Background()
	s := spec(policy.PSIMembers, policy.Input{Dataset: dsBenefits})
	ps := prepareBoth(t, f, s, "jm", 1)
	res, err := psi.Run(ctx, []psi.Party{ps[0], ps[1]}, 0, 8, nil)
	require.NoError(t, err)
	require.Equal(t, 20, res.Count)
	pub, _, err := delivery.GenerateKey()
	require.NoError(t, err)
	_, err = f.Clients["hrss"].Members(ctx, &nodeapi.MembersRequest{Header: ps[0].Header, Positions: res.Positions, RecipientKey: pub, Recipient: "alice"})
	requireRefused(t, err, 403, "below_k")
	require.Empty(t, entries(t, f, "hrss", string(nodeapi.StepMembers)))
}
