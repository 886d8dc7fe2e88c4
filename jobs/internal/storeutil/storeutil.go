// Package storeutil holds what the job store backends must do identically:
// validating a new job, the submission audit entry, history events and deep
// copies. Keeping it in one place is what lets one conformance suite pass
// for both backends.
package storeutil

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// ActionSubmitted is the audit action Create writes.
const ActionSubmitted = "job.submitted"

// NewJob validates a job handed to Store.Create and returns the copy to
// store: id assigned if empty, attempt 0, timestamps now, one history event.
// Fields that only transitions may set (result, review, error, reviewer,
// comment, progress) must be empty; a caller setting them is a bug.
func NewJob(in *jobs.Job, now time.Time) (*jobs.Job, error) {
	if in == nil {
		return nil, errors.New("jobs: create: nil job")
	}
	if in.State != jobs.Queued && in.State != jobs.AwaitingConsent {
		return nil, fmt.Errorf("%w: a job is created queued or awaiting_consent, not %q", jobs.ErrIllegal, in.State)
	}
	if in.Owner == "" {
		return nil, errors.New("jobs: create: job has no owner")
	}
	if in.ID != "" && !jobs.ValidID(in.ID) {
		return nil, fmt.Errorf("jobs: create: malformed job id %q", in.ID)
	}
	if in.Attempt != 0 || in.Progress != (jobs.Progress{}) || len(in.Review) > 0 || len(in.Result) > 0 ||
		in.Error != "" || in.Reviewer != "" || in.Comment != "" || len(in.History) > 0 || len(in.Consents) > 0 ||
		in.Failures != 0 || !in.ScheduledAt.IsZero() || in.Waiting != "" {
		return nil, errors.New("jobs: create: a new job carries only its id, spec, owner, department, decision, consent deadline and state")
	}
	j := Clone(in)
	if j.ID == "" {
		j.ID = jobs.NewID()
	}
	now = now.UTC()
	j.CreatedAt, j.UpdatedAt = now, now
	j.History = []jobs.Event{{State: j.State, At: now, Actor: j.Owner, Note: "submitted"}}
	return j, nil
}

// SubmittedEntry is the audit entry Create writes: one per stored job.
func SubmittedEntry(j *jobs.Job, at time.Time) audit.Entry {
	return audit.Entry{
		Time:     at,
		Actor:    j.Owner,
		Action:   ActionSubmitted,
		Job:      j.ID,
		Datasets: j.Spec.Datasets(),
		Detail:   map[string]string{"to": string(j.State), "attempt": "0", "purpose": j.Spec.Purpose, "type": string(j.Spec.Type)},
	}
}

// SameSpec reports whether two specs are the same job (for idempotent
// Create): their canonical encodings are equal.
func SameSpec(a, b *policy.Spec) bool { return bytes.Equal(a.Encode(), b.Encode()) }

// AttemptAfter is the attempt a job has after c (claims and reclaims bump it).
func AttemptAfter(c jobs.Change) int {
	if c.To == jobs.Running && (c.From == jobs.Queued || c.From == jobs.Running) {
		return c.Attempt + 1
	}
	return c.Attempt
}

// StartsAttempt reports whether c begins a new attempt, which starts with
// fresh progress.
func StartsAttempt(c jobs.Change) bool { return AttemptAfter(c) != c.Attempt }

// Event is the history event c appends.
func Event(c jobs.Change, at time.Time) jobs.Event {
	return jobs.Event{State: c.To, At: at.UTC(), Actor: c.Actor, Attempt: AttemptAfter(c), Note: c.Note}
}

// FailuresAfter is the job's transient-failure count after c, from cur:
// a transient failure (to retryable, or the last one, running →
// dead_letter) adds one; an admin retry out of dead_letter starts afresh.
func FailuresAfter(cur int, c jobs.Change) int {
	switch {
	case c.To == jobs.Retryable, c.From == jobs.Running && c.To == jobs.DeadLetter:
		return cur + 1
	case c.From == jobs.DeadLetter:
		return 0
	}
	return cur
}

// MaxErrorBytes bounds a stored error (and a retryable job's Waiting).
const MaxErrorBytes = 1024

// CapError is the error text a store keeps: the first cause only (errors
// joined from several goroutines repeat one cause per goroutine, one per
// line), at most MaxErrorBytes, saying how many more there were.
func CapError(s string) string {
	var causes []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			causes = append(causes, l)
		}
	}
	if len(causes) == 0 {
		return ""
	}
	first, suffix := causes[0], ""
	if more := len(causes) - 1; more > 0 {
		distinct := map[string]bool{}
		for _, c := range causes[1:] {
			if c != first {
				distinct[c] = true
			}
		}
		suffix = fmt.Sprintf(" [and %d more errors, %d of them different]", more, len(distinct))
	}
	if limit := MaxErrorBytes - len(suffix); len(first) > limit {
		cut := limit - len("…")
		for cut > 0 && !utf8.RuneStart(first[cut]) {
			cut--
		}
		first = first[:cut] + "…"
	}
	return first + suffix
}

// Normalize is c as every backend stores it: error and waiting text capped.
func Normalize(c jobs.Change) jobs.Change {
	c.Error, c.Waiting = CapError(c.Error), CapError(c.Waiting)
	if !c.RetryAt.IsZero() {
		c.RetryAt = c.RetryAt.UTC()
	}
	return c
}

// Apply returns a copy of j after c (normalized), which the caller has
// checked applies.
func Apply(j *jobs.Job, c jobs.Change, at time.Time) *jobs.Job {
	n := Clone(j)
	n.State, n.Attempt, n.UpdatedAt = c.To, AttemptAfter(c), at.UTC()
	n.Failures = FailuresAfter(j.Failures, c)
	if c.From == jobs.Retryable {
		n.ScheduledAt, n.Waiting = time.Time{}, ""
	}
	if c.To == jobs.Retryable {
		n.ScheduledAt, n.Waiting = c.RetryAt.UTC(), c.Waiting
	}
	if StartsAttempt(c) {
		n.Progress = jobs.Progress{}
	}
	if len(c.Review) > 0 {
		n.Review = bytes.Clone(c.Review)
	}
	if len(c.Result) > 0 {
		n.Result = bytes.Clone(c.Result)
	}
	if c.Error != "" {
		n.Error = c.Error
	}
	if c.Reviewer != "" {
		n.Reviewer = c.Reviewer
	}
	if c.Comment != "" {
		n.Comment = c.Comment
	}
	if c.Consent != nil {
		n.Consents = SetConsent(n.Consents, *c.Consent)
	}
	if c.Approval != nil {
		n.Approval = c.Approval
	}
	n.History = append(n.History, Event(c, at))
	return n
}

// SetConsent returns cs with the answer for con.Dataset replaced or added,
// ordered by dataset (so both backends return the same order).
func SetConsent(cs []jobs.Consent, con jobs.Consent) []jobs.Consent {
	out := slices.DeleteFunc(slices.Clone(cs), func(x jobs.Consent) bool { return x.Dataset == con.Dataset })
	out = append(out, con)
	slices.SortFunc(out, func(a, b jobs.Consent) int { return strings.Compare(a.Dataset, b.Dataset) })
	return out
}

// ClaimChange is the change a claim (from queued) or reclaim (from running)
// makes on behalf of worker.
func ClaimChange(j *jobs.Job, worker, note string) jobs.Change {
	return jobs.Change{From: j.State, Attempt: j.Attempt, To: jobs.Running, Actor: "worker:" + worker, Role: "worker", Note: note}
}

// Conflict is the ErrConflict a failed compare-and-set returns.
func Conflict(id string, c jobs.Change, state jobs.State, attempt int) error {
	return fmt.Errorf("%w: job %s is %s at attempt %d, change expects %s at attempt %d",
		jobs.ErrConflict, id, state, attempt, c.From, c.Attempt)
}

// Clone returns a deep copy of j, so callers cannot reach a store's state.
func Clone(j *jobs.Job) *jobs.Job {
	if j == nil {
		return nil
	}
	c := *j
	c.Spec = CloneSpec(j.Spec)
	if j.Decision != nil {
		d := *j.Decision
		d.Violations = slices.Clone(d.Violations)
		d.Versions = maps.Clone(d.Versions)
		d.NeedsConsent = slices.Clone(d.NeedsConsent)
		d.Epsilon = maps.Clone(d.Epsilon)
		d.Similar = slices.Clone(d.Similar)
		c.Decision = &d
	}
	c.Review = bytes.Clone(j.Review)
	c.Result = bytes.Clone(j.Result)
	c.Consents = slices.Clone(j.Consents)
	for i := range c.Consents {
		c.Consents[i].Signed = cloneConsent(c.Consents[i].Signed)
	}
	c.Approval = cloneApproval(j.Approval)
	c.History = slices.Clone(j.History)
	return &c
}

// cloneConsent and cloneApproval deep-copy a signed statement (a flat
// struct behind a pointer, and the signature).
func cloneConsent(s *attest.SignedConsent) *attest.SignedConsent {
	if s == nil {
		return nil
	}
	c := &attest.SignedConsent{Signature: bytes.Clone(s.Signature)}
	if s.Statement != nil {
		st := *s.Statement
		c.Statement = &st
	}
	return c
}

func cloneApproval(s *attest.SignedApproval) *attest.SignedApproval {
	if s == nil {
		return nil
	}
	c := &attest.SignedApproval{Signature: bytes.Clone(s.Signature)}
	if s.Statement != nil {
		st := *s.Statement
		c.Statement = &st
	}
	return c
}

// CloneSpec returns a deep copy of s.
func CloneSpec(s policy.Spec) policy.Spec {
	c := s
	c.Inputs = slices.Clone(s.Inputs)
	c.Stats = slices.Clone(s.Stats)
	c.Bins = slices.Clone(s.Bins)
	if s.Value != nil {
		v := *s.Value
		c.Value = &v
	}
	if s.GroupBy != nil {
		g := *s.GroupBy
		c.GroupBy = &g
	}
	return c
}
