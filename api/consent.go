package api

import (
	"errors"
	"fmt"
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
)

// consent records a data owner's answer for their department's conditional
// datasets in a job. A refusal rejects the job at once; the last approval
// queues it. Past the deadline the job expires instead.
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
	for _, ds := range mine {
		con := &jobs.Consent{Dataset: ds, By: u.Name, Approved: req.Approve, Reason: req.Reason, At: now.UTC()}
		to, note := jobs.AwaitingConsent, "consent given for "+ds
		if req.Refuse {
			to, note = jobs.Rejected, "consent refused for "+ds+": "+req.Reason
		}
		ch := jobs.Change{From: jobs.AwaitingConsent, Attempt: j.Attempt, To: to, Actor: u.Name, Role: string(u.Role), Note: note, Consent: con,
			Detail: map[string]string{"dataset": ds, "approved": fmt.Sprint(req.Approve)}}
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
