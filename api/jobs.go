package api

import (
	"errors"

	"github.com/gin-gonic/gin"

	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
)

// MaxIdempotencyKey bounds the Idempotency-Key header.
const MaxIdempotencyKey = 128

func (a *API) submit(c *gin.Context) {
	u := currentUser(c)
	body, err := a.readBody(c)
	if err != nil {
		abort(c, err)
		return
	}
	if len(body) > policy.MaxSpecBytes {
		// Past the spec's own size limit is "too large", like the body limit.
		abort(c, errf(413, "too_large", "job spec larger than %d bytes", policy.MaxSpecBytes))
		return
	}
	spec, err := policy.DecodeSpec(body)
	if err != nil {
		abort(c, errf(400, "invalid_spec", "%v", err))
		return
	}
	idem := c.GetHeader("Idempotency-Key")
	if len(idem) > MaxIdempotencyKey {
		abort(c, errf(400, "bad_request", "Idempotency-Key longer than %d bytes", MaxIdempotencyKey))
		return
	}
	cat, err := a.cfg.Catalog.Catalog(c.Request.Context())
	if err != nil {
		abort(c, errf(503, "catalog_unavailable", "the dataset catalog is unavailable: %v", err))
		return
	}
	dec := policy.Decide(cat, spec, policy.Requester{User: u.Name, Department: u.Department}, false)
	if dec.Allow && a.cfg.HEMaxRowsPerInput > 0 {
		if vs := policy.SizeViolations(cat, spec, a.cfg.HEMaxRowsPerInput); len(vs) > 0 {
			dec.Allow = false
			dec.Violations = append(dec.Violations, vs...)
		}
	}
	if spec.Type == policy.PSIMembers && u.PublicKey == "" {
		dec.Allow = false
		dec.Violations = append(dec.Violations, policy.Violation{Rule: "recipient_key", Message: "psi_members results are sealed to the analyst's public key; register one (unseen keygen) with your user first"})
	}
	if !dec.Allow {
		for _, v := range dec.Violations {
			a.metrics.refused.WithLabelValues(v.Rule).Inc()
		}
		he := errf(403, "policy_violation", "%s", dec.Error())
		he.body.Violations = dec.Violations
		abort(c, he)
		return
	}
	// Disclosure control (disclosure.go): refuse what cannot be protected,
	// charge the plan's ε, and name near-duplicate jobs for the reviewer.
	p, vs := plan(spec, cat)
	if len(vs) > 0 {
		for _, v := range vs {
			a.metrics.refused.WithLabelValues(v.Rule).Inc()
		}
		he := errf(403, "policy_violation", "%s", policy.Decision{Violations: vs}.Error())
		he.body.Violations = vs
		abort(c, he)
		return
	}
	dec.Epsilon = epsilonCharged(p)
	if dec.Similar, err = a.similarJobs(c.Request.Context(), u.Name, spec); err != nil {
		abort(c, err)
		return
	}
	charges, over, err := a.chargeLimits(c.Request.Context(), cat, spec, u.Name, p)
	if err != nil {
		abort(c, err)
		return
	}
	if len(over) > 0 {
		for _, v := range over {
			a.metrics.refused.WithLabelValues(v.Rule).Inc()
		}
		he := errf(429, "limit_exceeded", "%s", policy.Decision{Violations: over}.Error())
		he.body.Violations = over
		abort(c, he)
		return
	}
	now := a.cfg.Clock.Now()
	j := &jobs.Job{ID: jobs.NewID(), Spec: *spec, Owner: u.Name, Department: u.Department, State: jobs.Queued, Decision: &dec, CreatedAt: now, UpdatedAt: now}
	if len(dec.NeedsConsent) > 0 {
		j.State = jobs.AwaitingConsent
		j.ConsentDeadline = now.Add(a.cfg.ConsentTTL).UTC()
	}
	j, created, err := a.cfg.Store.Create(c.Request.Context(), j, idem)
	if err != nil || !created {
		// Nothing new was created: give back what this submission spent.
		a.refund(c.Request.Context(), charges)
	}
	if err != nil {
		abort(c, err)
		return
	}
	status := 202
	if created {
		a.metrics.submitted.WithLabelValues(string(spec.Type)).Inc()
	}
	if !created {
		status = 200
	}
	c.JSON(status, wire.Submitted{ID: j.ID, State: j.State})
}

func (a *API) list(c *gin.Context) {
	u := currentUser(c)
	limit, err := queryInt(c, "limit", 100, 1000)
	if err != nil {
		abort(c, err)
		return
	}
	f := jobs.ListFilter{Limit: limit}
	switch u.Role {
	case RoleAnalyst:
		f.Owner = u.Name
	case RoleReviewer:
		f.States = []jobs.State{jobs.AwaitingReview}
	case RoleAuditor, RoleAdmin:
	case RoleDataOwner:
		f.States = []jobs.State{jobs.AwaitingConsent}
	}
	if s := c.Query("state"); s != "" {
		st := jobs.State(s)
		if !st.Valid() {
			abort(c, errf(400, "bad_request", "unknown state %q", s))
			return
		}
		if u.Role == RoleReviewer || u.Role == RoleDataOwner {
			// Reviewers and data owners see only what awaits them.
			if st != f.States[0] {
				abort(c, errf(403, "forbidden", "role %s lists only %s jobs", u.Role, f.States[0]))
				return
			}
		}
		f.States = []jobs.State{st}
	}
	js, err := a.cfg.Store.List(c.Request.Context(), f)
	if err != nil {
		abort(c, err)
		return
	}
	out := make([]wire.Job, 0, len(js))
	for _, j := range js {
		if u.Role == RoleDataOwner && !touchesDepartment(j, u.Department) {
			continue
		}
		out = append(out, wire.FromJob(j))
	}
	c.JSON(200, wire.Jobs{Jobs: out})
}

func touchesDepartment(j *jobs.Job, dept string) bool {
	for _, d := range j.Spec.Datasets() {
		if policy.Department(d) == dept {
			return true
		}
	}
	return false
}

// load fetches the job named in the path and checks the caller may see it.
func (a *API) load(c *gin.Context) (*jobs.Job, error) {
	id := c.Param("id")
	if !jobs.ValidID(id) {
		return nil, errf(404, "not_found", "no such job")
	}
	j, err := a.cfg.Store.Get(c.Request.Context(), id)
	if err != nil {
		return nil, err
	}
	u := currentUser(c)
	switch u.Role {
	case RoleAnalyst:
		if j.Owner != u.Name {
			// Not 403: whether someone else's job exists is not for an analyst to learn.
			return nil, errf(404, "not_found", "no such job")
		}
	case RoleReviewer, RoleAuditor, RoleAdmin:
	case RoleDataOwner:
		if !touchesDepartment(j, u.Department) {
			return nil, errf(404, "not_found", "no such job")
		}
	}
	return j, nil
}

func (a *API) get(c *gin.Context) {
	j, err := a.load(c)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(200, wire.FromJob(j))
}

func (a *API) readComment(c *gin.Context) (wire.Decision, error) {
	var cb wire.Decision
	b, err := a.readBody(c)
	if err != nil || len(b) == 0 {
		return cb, err
	}
	if err := decodeStrict(b, &cb); err != nil {
		return cb, err
	}
	if len(cb.Comment) > 2000 || len(cb.Reason) > 2000 {
		return cb, errf(400, "bad_request", "comment and reason are limited to 2000 bytes")
	}
	return cb, nil
}

func (a *API) transition(c *gin.Context, j *jobs.Job, ch jobs.Change) {
	u := currentUser(c)
	ch.From, ch.Attempt, ch.Actor, ch.Role = j.State, j.Attempt, u.Name, string(u.Role)
	nj, err := a.cfg.Store.Transition(c.Request.Context(), j.ID, ch)
	a.answerTransition(c, j, ch, nj, err)
}

// answerTransition answers a transition's outcome: the job after it, or
// why it was not made (409 with the state the job is in now).
func (a *API) answerTransition(c *gin.Context, j *jobs.Job, ch jobs.Change, nj *jobs.Job, err error) {
	if err == nil && a.cfg.OnDecision != nil && (ch.To == jobs.Released || ch.To == jobs.Rejected) {
		a.cfg.OnDecision(nj)
	}
	if err != nil {
		if errors.Is(err, jobs.ErrConflict) || errors.Is(err, jobs.ErrIllegal) {
			cur, gerr := a.cfg.Store.Get(c.Request.Context(), j.ID)
			he := errf(409, "conflict", "job %s is %s; it cannot become %s", j.ID, j.State, ch.To)
			if gerr == nil {
				he.body.State = string(cur.State)
				he.body.Message = "job " + j.ID + " is " + string(cur.State) + "; it cannot become " + string(ch.To)
			}
			abort(c, he)
			return
		}
		abort(c, err)
		return
	}
	c.JSON(200, wire.FromJob(nj))
}

func (a *API) cancel(c *gin.Context) {
	j, err := a.load(c)
	if err != nil {
		abort(c, err)
		return
	}
	cb, err := a.readComment(c)
	if err != nil {
		abort(c, err)
		return
	}
	// A worker may claim the job (queued → running) between our read and
	// the change; the job is still not finished, so try again on what it is
	// now rather than refuse a cancel that is still possible.
	for try := 0; ; try++ {
		if j.State.Final() {
			he := errf(409, "conflict", "job %s is already %s", j.ID, j.State)
			he.body.State = string(j.State)
			abort(c, he)
			return
		}
		u := currentUser(c)
		ch := jobs.Change{From: j.State, Attempt: j.Attempt, To: jobs.Cancelled, Actor: u.Name, Role: string(u.Role), Note: cb.Reason, Comment: cb.Comment}
		nj, err := a.cfg.Store.Transition(c.Request.Context(), j.ID, ch)
		if errors.Is(err, jobs.ErrConflict) && try < 3 {
			if cur, gerr := a.cfg.Store.Get(c.Request.Context(), j.ID); gerr == nil {
				j = cur
				continue
			}
		}
		a.answerTransition(c, j, ch, nj, err)
		return
	}
}

// retry requeues a dead-lettered job once its cause is mended (admins):
// a fresh attempt, recomputed from the start.
func (a *API) retry(c *gin.Context) {
	j, err := a.load(c)
	if err != nil {
		abort(c, err)
		return
	}
	cb, err := a.readComment(c)
	if err != nil {
		abort(c, err)
		return
	}
	if j.State != jobs.DeadLetter {
		he := errf(409, "not_dead_letter", "job %s is %s; only dead-lettered jobs are retried", j.ID, j.State)
		he.body.State = string(j.State)
		abort(c, he)
		return
	}
	note := "requeued from dead letter"
	if cb.Reason != "" {
		note += ": " + cb.Reason
	}
	a.transition(c, j, jobs.Change{To: jobs.Queued, Note: note})
}

// reviewable loads a job for a reviewer and enforces that nobody reviews a
// job they submitted.
func (a *API) reviewable(c *gin.Context) (*jobs.Job, error) {
	j, err := a.load(c)
	if err != nil {
		return nil, err
	}
	if j.Owner == currentUser(c).Name {
		return nil, errf(403, "separation_of_duties", "you submitted job %s, so you cannot review it", j.ID)
	}
	if j.State != jobs.AwaitingReview {
		he := errf(409, "not_awaiting_review", "job %s is %s, not awaiting review", j.ID, j.State)
		he.body.State = string(j.State)
		return nil, he
	}
	return j, nil
}

func (a *API) reject(c *gin.Context) {
	j, err := a.reviewable(c)
	if err != nil {
		abort(c, err)
		return
	}
	cb, err := a.readComment(c)
	if err != nil {
		abort(c, err)
		return
	}
	if cb.Reason == "" {
		abort(c, errf(400, "reason_required", "a rejection needs a reason"))
		return
	}
	a.transition(c, j, jobs.Change{To: jobs.Rejected, Reviewer: currentUser(c).Name, Comment: cb.Reason, Note: cb.Reason})
}

func (a *API) auditEntries(c *gin.Context) {
	limit, err := queryInt(c, "limit", 1000, 100000)
	if err != nil {
		abort(c, err)
		return
	}
	f := audit.Filter{Job: c.Query("job"), Dataset: c.Query("dataset"), Actor: c.Query("actor"), Action: c.Query("action"), Limit: limit}
	es, err := a.cfg.Store.Audit().Entries(c.Request.Context(), f)
	if err != nil {
		abort(c, errf(503, "audit_unavailable", "%v", err))
		return
	}
	if es == nil {
		es = []audit.Entry{}
	}
	c.JSON(200, gin.H{"entries": es})
}

func (a *API) auditVerify(c *gin.Context) {
	n, err := audit.VerifyLog(c.Request.Context(), a.cfg.Store.Audit())
	var ve *audit.VerifyError
	switch {
	case errors.As(err, &ve):
		c.JSON(200, wire.Verify{OK: false, Entries: n, Error: err.Error()})
	case err != nil:
		abort(c, errf(503, "audit_unavailable", "%v", err))
	default:
		c.JSON(200, wire.Verify{OK: true, Entries: n})
	}
}
