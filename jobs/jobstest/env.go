package jobstest

// env is what every test of the suite shares: a fresh store, the fake
// clock, and helpers that count the audit entries the chain must hold.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
)

// env is one subtest's store and what the suite expects of it.
type env struct {
	t      *testing.T
	h      Harness
	ctx    context.Context
	s      jobs.Store
	clock  *FakeClock
	audits int // entries the chain must hold
}

var epoch = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

func (h Harness) setup(t *testing.T) *env {
	e := &env{t: t, h: h, ctx: t.Context(), clock: NewFakeClock(epoch)}
	e.s = h.New(t, e.clock)
	return e
}

func (e *env) minIdle() time.Duration {
	if e.h.RealTimeLeases {
		return RealTimeMinIdle
	}
	return time.Minute
}

// tick lets lease time pass: the fake clock moves; real time passes by
// itself between polls.
func (e *env) tick(d time.Duration) {
	if !e.h.RealTimeLeases {
		e.clock.Advance(d)
	}
}

func testSpec(purpose string) policy.Spec {
	return policy.Spec{
		Type:    policy.PSICardinality,
		Purpose: purpose,
		Inputs: []policy.Input{
			{Dataset: "hrss.unemployment_benefits", Key: "resident_id", Filter: "district = '天河区'"},
			{Dataset: "amr.business_registrations", Key: "legal_rep_id"},
		},
	}
}

func newJob(owner string, st jobs.State) *jobs.Job {
	return &jobs.Job{
		Spec:       testSpec("benefit recipients who also run a business"),
		Owner:      owner,
		Department: "audit_bureau",
		State:      st,
		Decision:   &policy.Decision{Allow: true, Versions: map[string]string{"hrss.unemployment_benefits": "v3"}},
	}
}

func (e *env) create(owner string, st jobs.State) *jobs.Job {
	e.t.Helper()
	j, created, err := e.s.Create(e.ctx, newJob(owner, st), "")
	if err != nil || !created {
		e.t.Fatalf("Create(%s, %s) = created %v, %v", owner, st, created, err)
	}
	e.audits++
	e.clock.Advance(time.Second)
	return j
}

func (e *env) get(id string) *jobs.Job {
	e.t.Helper()
	j, err := e.s.Get(e.ctx, id)
	if err != nil {
		e.t.Fatalf("Get(%s): %v", id, err)
	}
	return j
}

// change is a well-formed change for from → to, with the fields the target
// state expects.
func change(from, to jobs.State, attempt int) jobs.Change {
	c := jobs.Change{From: from, To: to, Attempt: attempt, Actor: "tester", Role: "admin", Note: "test " + string(to)}
	switch to {
	case jobs.AwaitingReview:
		c.Review = json.RawMessage(`{"result":{"count":42},"checks":[]}`)
	case jobs.Released:
		c.Result, c.Reviewer, c.Comment = json.RawMessage(`{"count":42}`), "reviewer1", "ok"
	case jobs.Failed:
		c.Error = "node hrss unreachable"
	case jobs.Retryable:
		c.RetryAt, c.Waiting = epoch.Add(time.Hour), "node hrss unreachable (connection refused); retry 1 of 11"
	case jobs.Rejected:
		c.Reviewer, c.Comment = "reviewer1", "too small"
	}
	return c
}

func (e *env) transition(j *jobs.Job, to jobs.State) *jobs.Job {
	e.t.Helper()
	n, err := e.s.Transition(e.ctx, j.ID, change(j.State, to, j.Attempt))
	if err != nil {
		e.t.Fatalf("Transition %s %s → %s: %v", j.ID, j.State, to, err)
	}
	e.audits++
	return n
}

// jobIn returns a fresh job in state st, walked there through the machine
// (running via a plain Transition, so the queue's FIFO order is not
// involved).
func (e *env) jobIn(st jobs.State) *jobs.Job {
	e.t.Helper()
	switch st {
	case jobs.AwaitingConsent, jobs.Queued:
		return e.create("alice", st)
	case jobs.Running:
		return e.transition(e.jobIn(jobs.Queued), jobs.Running)
	case jobs.AwaitingReview:
		return e.transition(e.jobIn(jobs.Running), jobs.AwaitingReview)
	case jobs.Released:
		return e.transition(e.jobIn(jobs.AwaitingReview), jobs.Released)
	case jobs.Rejected, jobs.Failed, jobs.Cancelled, jobs.Expired:
		return e.transition(e.jobIn(jobs.Queued), st)
	case jobs.DeadLetter, jobs.Retryable:
		return e.transition(e.jobIn(jobs.Running), st)
	}
	e.t.Fatalf("no job can be stored in state %s", st)
	return nil
}

func (e *env) claim(worker string) *jobs.Lease {
	e.t.Helper()
	l, err := e.s.Claim(e.ctx, worker, 0)
	if err != nil || l == nil {
		e.t.Fatalf("Claim(%s) = %v, %v; want a lease", worker, l, err)
	}
	e.audits++
	return l
}

func (e *env) entries() []audit.Entry {
	e.t.Helper()
	all, err := e.s.Audit().All(e.ctx)
	if err != nil {
		e.t.Fatalf("Audit().All: %v", err)
	}
	return all
}

// checkAudit verifies the chain and its length.
func (e *env) checkAudit() {
	e.t.Helper()
	all := e.entries()
	if err := audit.Verify(all); err != nil {
		e.t.Errorf("audit chain does not verify: %v", err)
	}
	if len(all) != e.audits {
		e.t.Errorf("audit chain has %d entries, want %d (one per successful change)", len(all), e.audits)
	}
}

func (e *env) countAction(job, action string) int {
	n := 0
	for _, a := range e.entries() {
		if a.Job == job && a.Action == action {
			n++
		}
	}
	return n
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func (e *env) sameJob(what string, want, got *jobs.Job) {
	e.t.Helper()
	if w, g := jsonOf(want), jsonOf(got); w != g {
		e.t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func ids(js []*jobs.Job) []string {
	out := make([]string, len(js))
	for i, j := range js {
		out[i] = j.ID
	}
	return out
}

func (e *env) wantList(f jobs.ListFilter, want ...*jobs.Job) {
	e.t.Helper()
	got, err := e.s.List(e.ctx, f)
	if err != nil {
		e.t.Fatalf("List(%+v): %v", f, err)
	}
	if g, w := fmt.Sprint(ids(got)), fmt.Sprint(ids(want)); g != w {
		e.t.Errorf("List(%+v) = %s, want %s", f, g, w)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: err = %v, want %v", what, err, target)
	}
}

func jobsOf(ls []*jobs.Lease) []*jobs.Job {
	out := make([]*jobs.Job, len(ls))
	for i, l := range ls {
		out[i] = l.Job
	}
	return out
}

// reclaimAll polls Reclaim until n leases have been taken.
func (e *env) reclaimAll(worker string, n int) []*jobs.Lease {
	e.t.Helper()
	var taken []*jobs.Lease
	minIdle := e.minIdle()
	e.tick(minIdle)
	Eventually(e.t, 10*time.Second, 10*time.Millisecond, func() bool {
		ls, err := e.s.Reclaim(e.ctx, worker, minIdle)
		if err != nil {
			e.t.Fatalf("Reclaim: %v", err)
		}
		e.audits += len(ls)
		taken = append(taken, ls...)
		return len(taken) >= n
	}, fmt.Sprintf("%d leases to expire", n))
	return taken
}
