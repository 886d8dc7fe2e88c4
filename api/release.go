package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// Deliverer fetches what a released job hands over from the nodes rather
// than from the coordinator: a psi_members job's member list, sealed to the
// analyst, which the requesting node gives out only against the reviewer's
// signed approval (j.Approval) of exactly this result.
type Deliverer interface {
	Deliver(ctx context.Context, j *jobs.Job) ([]byte, error)
}

// jobRef names j as every party binds it: id, spec hash, requester.
func jobRef(j *jobs.Job) attest.JobRef {
	return attest.Ref(j.ID, &j.Spec, policy.Requester{User: j.Owner, Department: j.Department})
}

// recipientKey is the analyst's registered HPKE public key (raw bytes), to
// which a psi_members list is sealed.
func (a *API) recipientKey(user string) ([]byte, error) {
	u, ok := a.users.byName[user]
	if !ok || u.PublicKey == "" {
		return nil, errf(409, "no_recipient_key", "analyst %s has no registered public key to seal the member list to", user)
	}
	k, err := base64.StdEncoding.DecodeString(u.PublicKey)
	if err != nil {
		return nil, errf(500, "internal", "analyst %s's registered public key is not base64", user)
	}
	return k, nil
}

// approvalStatement is what reviewer must sign to release j with review rv:
// the job, the SHA-256 of the exact result bytes under review, and for
// psi_members the SHA-256 of the analyst's key the list is sealed to (with
// its fingerprint, for people to compare).
func (a *API) approvalStatement(j *jobs.Job, rv *jobs.Review, reviewer string) (st *attest.Approval, fingerprint string, err error) {
	st = &attest.Approval{JobRef: jobRef(j), Result: sha256.Sum256(rv.Result), Reviewer: reviewer, At: a.cfg.Clock.Now().UTC().Truncate(1e9)}
	if j.Spec.Type == policy.PSIMembers {
		k, err := a.recipientKey(j.Owner)
		if err != nil {
			return nil, "", err
		}
		st.Recipient = sha256.Sum256(k)
		fingerprint = attest.Fingerprint(k)
	}
	return st, fingerprint, nil
}

func (a *API) storedReview(j *jobs.Job) (*jobs.Review, error) {
	var rv jobs.Review
	if err := json.Unmarshal(j.Review, &rv); err != nil || len(rv.Result) == 0 {
		return nil, errf(500, "internal", "stored review is malformed")
	}
	return &rv, nil
}

func (a *API) review(c *gin.Context) {
	j, err := a.reviewable(c)
	if err != nil {
		abort(c, err)
		return
	}
	rv, err := a.storedReview(j)
	if err != nil {
		abort(c, err)
		return
	}
	// Without a statement to sign (the analyst has no key to seal to) the
	// review is still shown: the reviewer can reject.
	st, fp, err := a.approvalStatement(j, rv, currentUser(c).Name)
	if err != nil {
		st, fp = nil, ""
	}
	if err := a.record(c, "review.viewed", j, nil); err != nil {
		abort(c, err)
		return
	}
	c.JSON(200, wire.Review{Job: wire.FromJob(j), Review: *rv, Approval: st, RecipientFingerprint: fp})
}

// approve releases a result against the reviewer's signed approval: signed
// by the calling reviewer's registered key, over this job, this result's
// digest and (psi_members) this analyst's key. Anything else is refused and
// changes nothing.
func (a *API) approve(c *gin.Context) {
	j, err := a.reviewable(c)
	if err != nil {
		abort(c, err)
		return
	}
	b, err := a.readBody(c)
	if err != nil {
		abort(c, err)
		return
	}
	var req wire.Approve
	if len(b) > 0 {
		if err := decodeStrict(b, &req); err != nil {
			abort(c, err)
			return
		}
	}
	if len(req.Comment) > 2000 {
		abort(c, errf(400, "bad_request", "comment is limited to 2000 bytes"))
		return
	}
	u := currentUser(c)
	if req.Approval == nil || req.Approval.Statement == nil || len(req.Approval.Signature) == 0 {
		abort(c, errf(400, "approval_required", "a release needs your signed approval of the statement GET /v1/jobs/%s/review shows (unseen approve %s --key FILE)", j.ID, j.ID))
		return
	}
	rv, err := a.storedReview(j)
	if err != nil {
		abort(c, err)
		return
	}
	pub, ok := a.users.keys[u.Name]
	if !ok {
		abort(c, errf(403, "no_signing_key", "no signing key is registered for reviewer %s (signing_key in the coordinator's users), so no approval of theirs can be checked", u.Name))
		return
	}
	got := req.Approval.Statement
	if got.Reviewer != u.Name {
		abort(c, errf(403, "approval_mismatch", "the approval names reviewer %q, but you are %s", got.Reviewer, u.Name))
		return
	}
	if err := (attest.Keyring{u.Name: pub}).VerifyApproval(req.Approval); err != nil {
		abort(c, errf(403, "bad_signature", "the approval does not verify against %s's registered key (%s): %v", u.Name, attest.Fingerprint(pub), err))
		return
	}
	want, _, err := a.approvalStatement(j, rv, u.Name)
	if err != nil {
		abort(c, err)
		return
	}
	switch {
	case got.JobRef != want.JobRef:
		abort(c, errf(403, "approval_mismatch", "the approval was made for job %s (spec %.12s…, requester %s/%s), not for job %s (spec %.12s…, requester %s/%s)",
			got.Job, got.SpecHash, got.Requester.User, got.Requester.Department, j.ID, want.SpecHash, want.Requester.User, want.Requester.Department))
		return
	case got.Result != want.Result:
		abort(c, errf(403, "approval_mismatch", "the approval is for a result hashing to %s, but the result under review hashes to %s", got.Result, want.Result))
		return
	case got.Recipient != want.Recipient:
		abort(c, errf(403, "approval_mismatch", "the approval seals the list to a key hashing to %s, but analyst %s's registered key hashes to %s", got.Recipient, j.Owner, want.Recipient))
		return
	}
	detail := map[string]string{"result_sha256": want.Result.String(), "reviewer_key": attest.Fingerprint(pub)}
	if !want.Recipient.IsZero() {
		detail["recipient_key_sha256"] = want.Recipient.String()
	}
	a.transition(c, j, jobs.Change{To: jobs.Released, Result: rv.Result, Reviewer: u.Name, Comment: req.Comment, Note: "approved",
		Approval: req.Approval, Detail: detail})
}

func (a *API) result(c *gin.Context) {
	j, err := a.load(c)
	if err != nil {
		abort(c, err)
		return
	}
	if j.State != jobs.Released {
		he := errf(409, "not_released", "job %s is %s; results are readable only once released", j.ID, j.State)
		he.body.State = string(j.State)
		abort(c, he)
		return
	}
	out := wire.Result{ID: j.ID, Type: j.Spec.Type, State: j.State, Result: j.Result, Reviewer: j.Reviewer, Comment: j.Comment, Approval: j.Approval}
	var detail map[string]string
	if j.Spec.Type == policy.PSIMembers {
		sealed, err := a.sealedMembers(c.Request.Context(), j)
		if err != nil {
			abort(c, err)
			return
		}
		if sealed != nil {
			out.SealedMembers = sealed
			sum := sha256.Sum256(sealed)
			detail = map[string]string{"sealed_sha256": attest.Digest(sum).String()}
		}
	}
	if err := a.record(c, "result.read", j, detail); err != nil {
		abort(c, err)
		return
	}
	c.JSON(200, out)
}

// sealedMembers returns a released psi_members job's sealed list: nil if
// the result carries it itself (older coordinators stored it there);
// otherwise fetched from the requesting node through the Deliverer, the
// first time, and kept in memory after.
//
// Why not on the job: the requesting node keeps the sealed list durably and
// records each delivery in its own log, so the coordinator holds no copy at
// rest (encrypted to the analyst as it is) and the job store needs no new
// field in either backend. The price is that after a restart the node must
// be reachable for the first read (503 until it is).
func (a *API) sealedMembers(ctx context.Context, j *jobs.Job) ([]byte, error) {
	var res struct {
		Inline string        `json:"sealed_members"`
		SHA256 attest.Digest `json:"sealed_sha256"`
	}
	if err := json.Unmarshal(j.Result, &res); err != nil {
		return nil, errf(500, "internal", "stored result is malformed")
	}
	if res.Inline != "" {
		return nil, nil
	}
	if b, ok := a.sealed.get(j.ID); ok {
		return b, nil
	}
	if a.cfg.Deliverer == nil {
		return nil, errf(503, "delivery_unavailable", "this coordinator cannot fetch member lists from the nodes (no deliverer configured)")
	}
	if j.Approval == nil {
		return nil, errf(500, "internal", "released job %s carries no signed approval, and the node hands nothing over without one", j.ID)
	}
	b, err := a.cfg.Deliverer.Deliver(ctx, j)
	if err != nil {
		var p interface{ Permanent() bool }
		if errors.As(err, &p) && p.Permanent() {
			a.log.Warn("node refused to deliver a member list", "job", j.ID, "err", err)
			return nil, errf(502, "delivery_refused", "the requesting node refused to hand over the sealed member list: %v", err)
		}
		a.log.Warn("member list delivery failed", "job", j.ID, "err", err)
		return nil, errf(503, "node_unreachable", "the requesting node could not be reached to hand over the sealed member list (%v); try again once it is up", err)
	}
	if !res.SHA256.IsZero() {
		if sum := sha256.Sum256(b); !bytes.Equal(sum[:], res.SHA256[:]) {
			return nil, errf(502, "delivery_mismatch", "the node handed over a list hashing to %x, but the released result names %s", sum, res.SHA256)
		}
	}
	a.sealed.put(j.ID, b)
	return b, nil
}

// sealedCache keeps delivered lists in memory, bounded in count.
type sealedCache struct {
	mu    sync.Mutex
	max   int
	items map[string][]byte
	order []string
}

func (s *sealedCache) get(id string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.items[id]
	return b, ok
}

func (s *sealedCache) put(id string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.items == nil {
		s.items = map[string][]byte{}
	}
	if _, ok := s.items[id]; ok {
		return
	}
	for len(s.order) >= s.max && len(s.order) > 0 {
		delete(s.items, s.order[0])
		s.order = s.order[1:]
	}
	s.items[id] = b
	s.order = append(s.order, id)
}

// me tells a caller who their token names and which keys are registered.
func (a *API) me(c *gin.Context) {
	u := currentUser(c)
	c.JSON(200, wire.Me{Name: u.Name, Role: u.Role, Department: u.Department, SigningKey: u.SigningKey, PublicKey: u.PublicKey})
}
