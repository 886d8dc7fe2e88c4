package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// The people's signatures. A client never signs a statement the server
// hands it as it stands: it rebuilds the statement from what it fetched —
// the job's spec (whose hash it computes), the result's exact bytes (whose
// SHA-256 it computes) — so a coordinator that shows one thing and asks for
// a signature over another gets refused here, not signed.

// ConsentAnswer is a data owner's answer for a job.
type ConsentAnswer struct {
	// Dataset is the conditional dataset answered for; empty: every one
	// of the owner's department that the job asks consent for.
	Dataset string
	Approve bool
	Reason  string
	// Until is when the consent lapses (nodes act on it only before);
	// zero: DefaultConsentFor from now.
	Until time.Time
}

// DefaultConsentFor is how long a consent holds unless said otherwise.
const DefaultConsentFor = 30 * 24 * time.Hour

// checkKey checks that priv is the key registered for the caller.
func checkKey(me *wire.Me, priv ed25519.PrivateKey) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("client: not an Ed25519 private key")
	}
	pub := priv.Public().(ed25519.PublicKey)
	if me.SigningKey == "" {
		return fmt.Errorf("client: no signing key is registered for %s at the coordinator; register %s as signing_key", me.Name, attest.FormatPublicKey(pub))
	}
	reg, err := attest.ParsePublicKey(me.SigningKey)
	if err != nil {
		return fmt.Errorf("client: the coordinator shows a malformed signing key for %s: %w", me.Name, err)
	}
	if !bytes.Equal(reg, pub) {
		return fmt.Errorf("client: this key (fingerprint %s) is not the one registered for %s (fingerprint %s)", attest.Fingerprint(pub), me.Name, attest.Fingerprint(reg))
	}
	return nil
}

// ref names job j as the client computes it from the job's own spec.
func ref(j *wire.Job) attest.JobRef {
	return attest.Ref(j.ID, &j.Spec, policy.Requester{User: j.Owner, Department: j.Department})
}

// Consent answers for the caller's department's conditional datasets in
// job id (data owners). An approval is signed with priv, over the job as the
// client fetched it (its spec hashed here), the dataset, the answer, reason
// and until; a refusal is signed too if priv is given. It returns the job
// after the last answer.
func (c *Client) Consent(ctx context.Context, id string, ans ConsentAnswer, priv ed25519.PrivateKey) (*wire.Job, error) {
	if ans.Approve && priv == nil {
		return nil, fmt.Errorf("client: a consent is signed: give your signing key")
	}
	if !ans.Approve && priv == nil {
		return c.postConsent(ctx, id, wire.ConsentRequest{Dataset: ans.Dataset, Refuse: true, Reason: ans.Reason})
	}
	me, err := c.Me(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkKey(me, priv); err != nil {
		return nil, err
	}
	j, err := c.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.ID != id {
		return nil, fmt.Errorf("client: asked for job %s, the coordinator answered with job %s", id, j.ID)
	}
	datasets := []string{ans.Dataset}
	if ans.Dataset == "" {
		datasets = nil
		if j.Decision != nil {
			for _, ds := range j.Decision.NeedsConsent {
				if policy.Department(ds) == me.Department {
					datasets = append(datasets, ds)
				}
			}
		}
		if len(datasets) == 0 {
			return nil, fmt.Errorf("client: job %s asks no consent of department %s", id, me.Department)
		}
	}
	until := ans.Until
	if until.IsZero() {
		until = time.Now().Add(DefaultConsentFor)
	}
	var out *wire.Job
	for _, ds := range datasets {
		st := &attest.Consent{JobRef: ref(j), Dataset: ds, Approve: ans.Approve, Reason: ans.Reason, Until: until, Owner: me.Name}
		s, err := attest.SignConsent(priv, st)
		if err != nil {
			return nil, err
		}
		out, err = c.postConsent(ctx, id, wire.ConsentRequest{Dataset: ds, Approve: ans.Approve, Refuse: !ans.Approve, Reason: ans.Reason,
			Until: st.Until, Signature: s.Signature})
		if err != nil {
			return nil, fmt.Errorf("consent for %s: %w", ds, err)
		}
		if !ans.Approve {
			break // one refusal rejects the job
		}
	}
	return out, nil
}

func (c *Client) postConsent(ctx context.Context, id string, req wire.ConsentRequest) (*wire.Job, error) {
	b, _ := json.Marshal(req)
	var out wire.Job
	return &out, c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/consent", nil, b, &out)
}

// PrepareApproval fetches job id's review and builds the approval the
// caller (a reviewer) would sign, computed here from the job's spec and the
// result's exact bytes; it refuses if the server's own statement differs
// in anything but the time. The recipient key digest (psi_members) is the
// one thing the client cannot compute: it is the server's, shown as
// Review.RecipientFingerprint for the reviewer to compare with the
// analyst's.
func (c *Client) PrepareApproval(ctx context.Context, id string) (*attest.Approval, *wire.Review, error) {
	me, err := c.Me(ctx)
	if err != nil {
		return nil, nil, err
	}
	rv, err := c.Review(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if rv.Job.ID != id {
		return nil, nil, fmt.Errorf("client: asked for job %s, the coordinator answered with job %s", id, rv.Job.ID)
	}
	if len(rv.Review.Result) == 0 {
		return nil, nil, fmt.Errorf("client: job %s's review holds no result", id)
	}
	a := &attest.Approval{JobRef: ref(&rv.Job), Result: sha256.Sum256(rv.Review.Result), Reviewer: me.Name, At: time.Now()}
	if srv := rv.Approval; srv != nil {
		switch {
		case srv.JobRef != a.JobRef:
			return nil, nil, fmt.Errorf("client: the coordinator asks for a signature over job %s (spec %.12s…), but shows job %s (spec %.12s…): not signing", srv.Job, srv.SpecHash, a.Job, a.SpecHash)
		case srv.Result != a.Result:
			return nil, nil, fmt.Errorf("client: the coordinator asks for a signature over a result hashing to %s, but shows one hashing to %s: not signing", srv.Result, a.Result)
		case srv.Reviewer != me.Name:
			return nil, nil, fmt.Errorf("client: the coordinator asks for a signature as %q, but you are %s: not signing", srv.Reviewer, me.Name)
		}
		a.Recipient = srv.Recipient
	}
	if (rv.Job.Type == policy.PSIMembers) != !a.Recipient.IsZero() {
		return nil, nil, fmt.Errorf("client: a %s job's approval must name a recipient key if and only if it is psi_members", rv.Job.Type)
	}
	return a, rv, nil
}

// SendApproval sends a signed approval with a comment.
func (c *Client) SendApproval(ctx context.Context, id, comment string, s *attest.SignedApproval) (*wire.Job, error) {
	b, _ := json.Marshal(wire.Approve{Comment: comment, Approval: s})
	var out wire.Job
	return &out, c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/approve", nil, b, &out)
}

// Approve releases a reviewed result: PrepareApproval, signed with priv
// (which must be the caller's registered key), then SendApproval.
func (c *Client) Approve(ctx context.Context, id, comment string, priv ed25519.PrivateKey) (*wire.Job, error) {
	me, err := c.Me(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkKey(me, priv); err != nil {
		return nil, err
	}
	a, _, err := c.PrepareApproval(ctx, id)
	if err != nil {
		return nil, err
	}
	s, err := attest.SignApproval(priv, a)
	if err != nil {
		return nil, err
	}
	return c.SendApproval(ctx, id, comment, s)
}
