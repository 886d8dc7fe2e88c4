package jobstest

import (
	"crypto/ed25519"
	"reflect"
	"time"

	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// testSignedStatementsKept: an owner's signed consent and a reviewer's
// signed approval come back from the store exactly as given (the nodes,
// and any auditor, check them later), and still verify.
func testSignedStatementsKept(e *env) {
	t := e.t
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	kr := attest.Keyring{"rita": priv.Public().(ed25519.PublicKey), "cora": priv.Public().(ed25519.PublicKey)}

	in := newJob("alice", jobs.AwaitingConsent)
	in.ConsentDeadline = e.clock.Now().Add(time.Hour).UTC()
	j, _, err := e.s.Create(e.ctx, in, "")
	if err != nil {
		t.Fatal(err)
	}
	e.audits++
	ref := attest.Ref(j.ID, &j.Spec, policy.Requester{User: j.Owner, Department: j.Department})
	sc, err := attest.SignConsent(priv, &attest.Consent{JobRef: ref, Dataset: "civil.minimum_living_allowance", Approve: true, Until: epoch.Add(48 * time.Hour), Owner: "cora"})
	if err != nil {
		t.Fatal(err)
	}
	c := jobs.Change{From: jobs.AwaitingConsent, To: jobs.AwaitingConsent, Actor: "cora", Role: "data_owner", Note: "consent",
		Consent: &jobs.Consent{Dataset: "civil.minimum_living_allowance", By: "cora", Approved: true, At: e.clock.Now().UTC(), Signed: sc}}
	if _, err := e.s.Transition(e.ctx, j.ID, c); err != nil {
		t.Fatal(err)
	}
	e.audits++
	got := e.get(j.ID)
	if len(got.Consents) != 1 || !reflect.DeepEqual(got.Consents[0].Signed, sc) {
		t.Fatalf("signed consent not kept: %+v", got.Consents)
	}
	if err := kr.VerifyConsent(got.Consents[0].Signed); err != nil {
		t.Fatalf("kept consent does not verify: %v", err)
	}

	r := e.jobIn(jobs.AwaitingReview)
	rel := change(jobs.AwaitingReview, jobs.Released, r.Attempt)
	sa, err := attest.SignApproval(priv, &attest.Approval{JobRef: attest.Ref(r.ID, &r.Spec, policy.Requester{User: r.Owner, Department: r.Department}),
		Result: attest.Digest{1, 2, 3}, Recipient: attest.Digest{4, 5, 6}, Reviewer: "rita", At: epoch})
	if err != nil {
		t.Fatal(err)
	}
	rel.Approval = sa
	if _, err := e.s.Transition(e.ctx, r.ID, rel); err != nil {
		t.Fatal(err)
	}
	e.audits++
	got = e.get(r.ID)
	if !reflect.DeepEqual(got.Approval, sa) {
		t.Fatalf("signed approval not kept: got %+v, want %+v", got.Approval, sa)
	}
	if err := kr.VerifyApproval(got.Approval); err != nil {
		t.Fatalf("kept approval does not verify: %v", err)
	}
}
