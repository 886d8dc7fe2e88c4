package jobstest

// Audit atomicity: one chain for transitions and other entries; no
// change without its entry.

import (
	"fmt"
	"time"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
)

func testAuditAppend(e *env) {
	t := e.t
	j := e.create("alice", jobs.Queued)
	for i := range 3 {
		got, err := e.s.Audit().Append(e.ctx, audit.Entry{Time: e.clock.Now(), Actor: "alice", Role: "analyst", Action: "result.read", Job: j.ID, Detail: map[string]string{"n": fmt.Sprint(i)}})
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		e.audits++
		if got.Seq != uint64(e.audits) || got.Hash == "" {
			t.Errorf("appended entry = %+v, want seq %d", got, e.audits)
		}
		e.transition(e.get(j.ID), []jobs.State{jobs.Running, jobs.Queued, jobs.Running}[i])
	}
	got, err := e.s.Audit().Entries(e.ctx, audit.Filter{Job: j.ID, Action: "result.read", Limit: 2})
	if err != nil || len(got) != 2 || got[1].Detail["n"] != "2" {
		t.Errorf("Entries(filter) = %+v, %v", got, err)
	}
}

// testFailClosed: while the audit log cannot be written, every state
// change is refused and nothing changes; afterwards work resumes.
func testFailClosed(e *env) {
	t := e.t
	breakLog := func() func() { return e.h.BreakAudit(t, e.s) }
	e.create("alice", jobs.Queued)
	running := e.claim("w1")
	e.create("alice", jobs.Queued)
	review := e.transition(e.claim("w1").Job, jobs.AwaitingReview)
	queued := e.create("alice", jobs.Queued)
	consent := e.create("alice", jobs.AwaitingConsent)
	retry := e.transition(e.jobIn(jobs.Running), jobs.Retryable)
	snapshot := func() string {
		all, err := e.s.List(e.ctx, jobs.ListFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return jsonOf(all)
	}
	before := snapshot()
	n := len(e.entries())

	repair := breakLog()
	if _, _, err := e.s.Create(e.ctx, newJob("alice", jobs.Queued), "k1"); err == nil {
		t.Error("Create succeeded without audit")
	}
	for _, c := range []struct {
		j  *jobs.Job
		to jobs.State
	}{{queued, jobs.Cancelled}, {consent, jobs.Queued}, {review, jobs.Released}, {running.Job, jobs.Failed}} {
		if _, err := e.s.Transition(e.ctx, c.j.ID, change(c.j.State, c.to, c.j.Attempt)); err == nil {
			t.Errorf("Transition %s → %s succeeded without audit", c.j.State, c.to)
		}
	}
	if l, err := e.s.Claim(e.ctx, "w2", 0); err == nil {
		t.Errorf("Claim = %v without audit, want an error", l)
	}
	minIdle := e.minIdle()
	e.tick(minIdle)
	Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool {
		ls, err := e.s.Reclaim(e.ctx, "w2", minIdle)
		if len(ls) > 0 {
			t.Fatalf("Reclaim took %d leases without audit", len(ls))
		}
		return err != nil
	}, "Reclaim of an expired lease to fail without audit")
	if _, err := e.s.Audit().Append(e.ctx, audit.Entry{Time: e.clock.Now(), Actor: "x", Action: "y"}); err == nil {
		t.Error("Audit().Append succeeded on a broken log")
	}
	e.clock.Set(retry.ScheduledAt)
	if got, err := e.s.PromoteDue(e.ctx, "scheduler"); err == nil || len(got) > 0 {
		t.Errorf("PromoteDue = %d jobs, %v without audit; want an error and none", len(got), err)
	}
	if after := snapshot(); after != before {
		t.Errorf("jobs changed while the audit log was failing:\nbefore %s\n after %s", before, after)
	}
	repair()
	if m := len(e.entries()); m != n {
		t.Fatalf("%d audit entries written while failing", m-n)
	}

	// Work resumes: the refused idempotent Create left no key behind, and
	// the queued job is handed out again (Redis: through Reclaim, as the
	// refused Claim's delivery is pending like a crashed claimer's).
	if _, created, err := e.s.Create(e.ctx, newJob("alice", jobs.Queued), "k1"); err != nil || !created {
		t.Errorf("Create after repair = %v, %v", created, err)
	} else {
		e.audits++
	}
	held := map[string]*jobs.Lease{}
	e.tick(minIdle)
	Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool {
		for _, l := range held { // keep what we got, so it is not reclaimed again
			if err := e.s.Heartbeat(e.ctx, l); err != nil {
				t.Fatalf("Heartbeat after repair: %v", err)
			}
		}
		l, err := e.s.Claim(e.ctx, "w3", 0)
		if err != nil {
			t.Fatalf("Claim after repair: %v", err)
		}
		ls, err := e.s.Reclaim(e.ctx, "w3", minIdle)
		if err != nil {
			t.Fatalf("Reclaim after repair: %v", err)
		}
		if l != nil {
			ls = append(ls, l)
		}
		for _, l := range ls {
			e.audits++
			held[l.Job.ID] = l
		}
		return held[queued.ID] != nil && held[running.Job.ID] != nil
	}, "the queued and the expired job to be handed out after repair")
	if got := e.get(queued.ID); got.State != jobs.Running || got.Attempt != 1 {
		t.Errorf("queued job after repair = %s at attempt %d, want running at 1", got.State, got.Attempt)
	}
	e.promote(retry)
}
