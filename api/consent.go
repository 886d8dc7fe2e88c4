package api

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// consent records a data owner's answer for a conditional dataset of their
// department in a job. An approval must be signed by the owner's registered
// key over this job (id, spec hash, requester), the dataset, the answer, its
// reason and its deadline (attest.Consent): the nodes act on a conditional
// dataset only with that signed statement, so the coordinator's word that
// an owner agreed is worth nothing. A refusal rejects the job at once and
// may go unsigned; the last approval queues the job. Past the job's consent
// deadline the job expires instead. A refused answer changes nothing.
func (a *API) consent(c *gin.Context) {
	u := currentUser(c)
	j, err := a.load(c)
	if err != nil {
		abort(c, err)
		return
	}
	b, err := a.readBody(c)
	if err != nil {
		abort(c, err)
		return
	}
	var req wire.ConsentRequest
	if err := decodeStrict(b, &req); err != nil {
		abort(c, err)
		return
	}
	if req.Approve == req.Refuse {
		abort(c, errf(400, "bad_request", `say exactly one of "approve": true or "refuse": true`))
		return
	}
	if req.Refuse && req.Reason == "" {
		abort(c, errf(400, "reason_required", "a refusal needs a reason"))
		return
	}
	if len(req.Reason) > 2000 {
		abort(c, errf(400, "bad_request", "reason is limited to 2000 bytes"))
		return
	}
	if j.State != jobs.AwaitingConsent {
		he := errf(409, "not_awaiting_consent", "job %s is %s, not awaiting consent", j.ID, j.State)
		he.body.State = string(j.State)
		abort(c, he)
		return
	}
	var mine []string
	if j.Decision != nil {
		for _, ds := range j.Decision.NeedsConsent {
			if policy.Department(ds) == u.Department {
				mine = append(mine, ds)
			}
		}
	}
	if len(mine) == 0 {
		abort(c, errf(403, "not_owner", "job %s asks no consent of department %s", j.ID, u.Department))
		return
	}
	now := a.cfg.Clock.Now()
	if !j.ConsentDeadline.IsZero() && now.After(j.ConsentDeadline) {
		a.expire(c, j)
		return
	}
	targets := mine
	switch {
	case req.Dataset != "":
		if !slices.Contains(mine, req.Dataset) {
			abort(c, errf(403, "not_owner", "job %s asks no consent of department %s for dataset %q (it asks for %v)", j.ID, u.Department, req.Dataset, mine))
			return
		}
		targets = []string{req.Dataset}
	case req.Approve:
		abort(c, errf(400, "dataset_required", "name the dataset you consent for (one of %v): your signature covers it", mine))
		return
	}
	var signed *attest.SignedConsent
	if req.Approve || len(req.Signature) > 0 {
		if signed, err = a.checkConsent(j, u, targets, &req, now); err != nil {
			abort(c, err)
			return
		}
	}
	for _, ds := range targets {
		con := &jobs.Consent{Dataset: ds, By: u.Name, Approved: req.Approve, Reason: req.Reason, At: now.UTC(), Signed: signed}
		to, note := jobs.AwaitingConsent, "consent given for "+ds
		if req.Refuse {
			to, note = jobs.Rejected, "consent refused for "+ds+": "+req.Reason
		}
		detail := map[string]string{"dataset": ds, "approved": fmt.Sprint(req.Approve), "signed": fmt.Sprint(signed != nil)}
		if signed != nil {
			detail["until"] = signed.Statement.Until.Format(time.RFC3339)
			detail["owner_key"] = attest.Fingerprint(a.users.keys[u.Name])
		}
		ch := jobs.Change{From: jobs.AwaitingConsent, Attempt: j.Attempt, To: to, Actor: u.Name, Role: string(u.Role), Note: note, Consent: con, Detail: detail}
		if req.Refuse {
			ch.Comment = req.Reason
		}
		nj, err := a.cfg.Store.Transition(c.Request.Context(), j.ID, ch)
		if err != nil {
			abort(c, a.consentConflict(c, j.ID, err))
			return
		}
		j = nj
		if req.Refuse {
			c.JSON(200, wire.FromJob(j))
			return
		}
	}
	// Every conditional dataset approved: the job goes to the queue. Another
	// owner answering at the same moment may get there first; that is fine.
	if allConsented(j) {
		nj, err := a.cfg.Store.Transition(c.Request.Context(), j.ID, jobs.Change{From: jobs.AwaitingConsent, Attempt: j.Attempt, To: jobs.Queued,
			Actor: u.Name, Role: string(u.Role), Note: "all owners consented"})
		switch {
		case err == nil:
			j = nj
		case errors.Is(err, jobs.ErrConflict):
			if cur, gerr := a.cfg.Store.Get(c.Request.Context(), j.ID); gerr == nil {
				j = cur
			}
		default:
			abort(c, err)
			return
		}
	}
	c.JSON(200, wire.FromJob(j))
}

// checkConsent rebuilds the statement the owner must have signed from the
// job as stored and the answer as sent, and checks the signature against
// the owner's registered key.
func (a *API) checkConsent(j *jobs.Job, u *User, targets []string, req *wire.ConsentRequest, now time.Time) (*attest.SignedConsent, error) {
	if len(targets) != 1 {
		return nil, errf(400, "dataset_required", "a signed answer names its dataset (one of %v)", targets)
	}
	if len(req.Signature) == 0 {
		return nil, errf(400, "signature_required", "consent must be signed with your key over this job, the dataset, your answer and its deadline (unseen consent %s --approve --key FILE)", j.ID)
	}
	if req.Until.IsZero() {
		return nil, errf(400, "until_required", "a signed consent says until when it holds (until, RFC 3339)")
	}
	if !req.Until.After(now) {
		return nil, errf(400, "bad_until", "consent until %s has already lapsed", req.Until.UTC().Format(time.RFC3339))
	}
	pub, ok := a.users.keys[u.Name]
	if !ok {
		return nil, errf(403, "no_signing_key", "no signing key is registered for data owner %s (signing_key in the coordinator's users), so no consent of theirs can be checked", u.Name)
	}
	st := &attest.Consent{JobRef: jobRef(j), Dataset: targets[0], Approve: req.Approve, Reason: req.Reason,
		Until: req.Until.UTC().Truncate(time.Second), Owner: u.Name}
	s := &attest.SignedConsent{Statement: st, Signature: req.Signature}
	if err := (attest.Keyring{u.Name: pub}).VerifyConsent(s); err != nil {
		return nil, errf(403, "bad_signature", "the consent signature does not verify against %s's registered key (%s) for this job (id %s, spec %.12s…, requester %s), dataset %s, this answer, reason and until: %v",
			u.Name, attest.Fingerprint(pub), j.ID, st.SpecHash, j.Owner, targets[0], err)
	}
	return s, nil
}

func (a *API) consentConflict(c *gin.Context, id string, err error) error {
	if !errors.Is(err, jobs.ErrConflict) {
		return err
	}
	he := errf(409, "conflict", "job %s changed while consenting; look again", id)
	if cur, gerr := a.cfg.Store.Get(c.Request.Context(), id); gerr == nil {
		he.body.State = string(cur.State)
	}
	return he
}

func allConsented(j *jobs.Job) bool {
	if j.Decision == nil {
		return false
	}
	for _, ds := range j.Decision.NeedsConsent {
		i := slices.IndexFunc(j.Consents, func(c jobs.Consent) bool { return c.Dataset == ds && c.Approved })
		if i < 0 {
			return false
		}
	}
	return true
}

// expire moves a job whose consent deadline passed to expired.
func (a *API) expire(c *gin.Context, j *jobs.Job) {
	_, err := a.cfg.Store.Transition(c.Request.Context(), j.ID, jobs.Change{From: jobs.AwaitingConsent, Attempt: j.Attempt, To: jobs.Expired,
		Actor: "system", Role: "system", Note: "consent deadline passed"})
	if err != nil && !errors.Is(err, jobs.ErrConflict) {
		abort(c, err)
		return
	}
	he := errf(409, "consent_expired", "job %s's consent deadline (%s) has passed; it has expired", j.ID, j.ConsentDeadline.Format("2006-01-02 15:04 MST"))
	he.body.State = string(jobs.Expired)
	abort(c, he)
}
