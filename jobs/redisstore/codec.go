package redisstore

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/unseen-data/unseen/jobs"
)

// Field names of the job hash.
const (
	fID         = "id"
	fOwner      = "owner"
	fDepartment = "department"
	fState      = "state"
	fAttempt    = "attempt"
	fSpec       = "spec"
	fDecision   = "decision"
	fProgress   = "progress"
	fReview     = "review"
	fResult     = "result"
	fError      = "error"
	fReviewer   = "reviewer"
	fComment    = "comment"
	fCreatedAt  = "created_at"
	fUpdatedAt  = "updated_at"
	fConsentPfx = "consent:" // one field per dataset: answers commute
	fDeadline   = "consent_deadline"
	fFailures   = "failures"
	fScheduled  = "scheduled_at"
	fWaiting    = "waiting"
	fApproval   = "approval" // the reviewer's signed approval (JSON)
	fMsg        = "msg"      // current queue entry id (internal)
)

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil { // plain data types only
		panic(err)
	}
	return string(b)
}

// newJobFields is the hash of a job being created (field/value pairs).
func newJobFields(j *jobs.Job) []any {
	f := []any{
		fID, j.ID, fOwner, j.Owner, fDepartment, j.Department, fState, string(j.State),
		fAttempt, strconv.Itoa(j.Attempt), fSpec, mustJSON(&j.Spec),
		fCreatedAt, fmtTime(j.CreatedAt), fUpdatedAt, fmtTime(j.UpdatedAt),
	}
	if j.Decision != nil {
		f = append(f, fDecision, mustJSON(j.Decision))
	}
	if !j.ConsentDeadline.IsZero() {
		f = append(f, fDeadline, fmtTime(j.ConsentDeadline))
	}
	return f
}

// changeFields are the fields a change sets (only the non-empty ones).
func changeFields(c jobs.Change) []any {
	var f []any
	add := func(k, v string) {
		if v != "" {
			f = append(f, k, v)
		}
	}
	add(fReview, string(c.Review))
	add(fResult, string(c.Result))
	add(fError, c.Error)
	add(fReviewer, c.Reviewer)
	add(fComment, c.Comment)
	if c.Consent != nil {
		add(fConsentPfx+c.Consent.Dataset, mustJSON(c.Consent))
	}
	if c.Approval != nil {
		add(fApproval, mustJSON(c.Approval))
	}
	if !c.RetryAt.IsZero() {
		add(fScheduled, fmtTime(c.RetryAt))
		add(fWaiting, c.Waiting)
	}
	return f
}

// decodeJob rebuilds a job from its hash and history list; msg is the
// job's current queue entry id ("" if none).
func decodeJob(h map[string]string, history []string) (j *jobs.Job, msg string, err error) {
	j = &jobs.Job{
		ID: h[fID], Owner: h[fOwner], Department: h[fDepartment], State: jobs.State(h[fState]),
		Error: h[fError], Reviewer: h[fReviewer], Comment: h[fComment], Waiting: h[fWaiting],
	}
	fail := func(field string, err error) (*jobs.Job, string, error) {
		return nil, "", fmt.Errorf("redisstore: job %s: field %s: %w", h[fID], field, err)
	}
	if j.Attempt, err = strconv.Atoi(h[fAttempt]); err != nil {
		return fail(fAttempt, err)
	}
	if s := h[fFailures]; s != "" {
		if j.Failures, err = strconv.Atoi(s); err != nil {
			return fail(fFailures, err)
		}
	}
	if s := h[fScheduled]; s != "" {
		if j.ScheduledAt, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return fail(fScheduled, err)
		}
	}
	if err := json.Unmarshal([]byte(h[fSpec]), &j.Spec); err != nil {
		return fail(fSpec, err)
	}
	if s := h[fDecision]; s != "" {
		if err := json.Unmarshal([]byte(s), &j.Decision); err != nil {
			return fail(fDecision, err)
		}
	}
	if s := h[fProgress]; s != "" {
		if err := json.Unmarshal([]byte(s), &j.Progress); err != nil {
			return fail(fProgress, err)
		}
	}
	if s := h[fReview]; s != "" {
		j.Review = json.RawMessage(s)
	}
	if s := h[fResult]; s != "" {
		j.Result = json.RawMessage(s)
	}
	if s := h[fApproval]; s != "" {
		if err := json.Unmarshal([]byte(s), &j.Approval); err != nil {
			return fail(fApproval, err)
		}
	}
	for k, v := range h {
		if !strings.HasPrefix(k, fConsentPfx) {
			continue
		}
		var c jobs.Consent
		if err := json.Unmarshal([]byte(v), &c); err != nil {
			return fail(k, err)
		}
		j.Consents = append(j.Consents, c)
	}
	slices.SortFunc(j.Consents, func(a, b jobs.Consent) int { return strings.Compare(a.Dataset, b.Dataset) })
	if s := h[fDeadline]; s != "" {
		if j.ConsentDeadline, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return fail(fDeadline, err)
		}
	}
	if j.CreatedAt, err = time.Parse(time.RFC3339Nano, h[fCreatedAt]); err != nil {
		return fail(fCreatedAt, err)
	}
	if j.UpdatedAt, err = time.Parse(time.RFC3339Nano, h[fUpdatedAt]); err != nil {
		return fail(fUpdatedAt, err)
	}
	j.History = make([]jobs.Event, len(history))
	for i, s := range history {
		if err := json.Unmarshal([]byte(s), &j.History[i]); err != nil {
			return fail("history", err)
		}
	}
	return j, h[fMsg], nil
}

// flatMap turns a script's HGETALL reply into a map.
func flatMap(v any) (map[string]string, error) {
	l, ok := v.([]any)
	if !ok || len(l)%2 != 0 {
		return nil, fmt.Errorf("redisstore: unexpected hash reply %T", v)
	}
	m := make(map[string]string, len(l)/2)
	for i := 0; i < len(l); i += 2 {
		k, _ := l[i].(string)
		v, _ := l[i+1].(string)
		m[k] = v
	}
	return m, nil
}
