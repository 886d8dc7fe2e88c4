package jobstest

// The queue and its leases: claim order, blocking, heartbeats, reclaims.

import (
	"context"
	"time"

	"github.com/unseen-data/unseen/jobs"
)

func testClaimFIFO(e *env) {
	t := e.t
	a := e.create("alice", jobs.Queued)
	consent := e.create("alice", jobs.AwaitingConsent)
	b := e.create("bob", jobs.Queued)
	c := e.create("alice", jobs.Queued)
	for _, want := range []*jobs.Job{a, b, c} {
		l := e.claim("w1")
		if l.Job.ID != want.ID {
			t.Fatalf("Claim = %s, want %s (FIFO)", l.Job.ID, want.ID)
		}
		last := l.Job.History[len(l.Job.History)-1]
		if l.Attempt != 1 || l.Job.Attempt != 1 || l.Job.State != jobs.Running || l.Worker != "w1" ||
			last.State != jobs.Running || last.Actor != "worker:w1" {
			t.Errorf("lease = %+v (job %+v)", l, l.Job)
		}
		e.sameJob("Get after Claim", l.Job, e.get(want.ID))
	}
	if l, err := e.s.Claim(e.ctx, "w1", 0); l != nil || err != nil {
		t.Errorf("Claim on an empty queue = %v, %v; want nil, nil", l, err)
	}
	// Consent given: now it can be claimed.
	e.transition(consent, jobs.Queued)
	if l := e.claim("w2"); l.Job.ID != consent.ID {
		t.Errorf("Claim = %s, want the consented job %s", l.Job.ID, consent.ID)
	}
}

func testClaimBlocks(e *env) {
	t := e.t
	type res struct {
		l   *jobs.Lease
		err error
	}
	for _, how := range []string{"create", "consent"} {
		var pending *jobs.Job
		if how == "consent" {
			pending = e.create("alice", jobs.AwaitingConsent)
		}
		got := make(chan res, 1)
		started := time.Now()
		go func() {
			l, err := e.s.Claim(e.ctx, "w1", 30*time.Second)
			got <- res{l, err}
		}()
		if e.h.ClaimWaiting != nil {
			Eventually(t, 10*time.Second, time.Millisecond, func() bool { return e.h.ClaimWaiting(e.s) }, "Claim to block")
		}
		var want *jobs.Job
		if how == "create" {
			want = e.create("alice", jobs.Queued)
		} else {
			want = e.transition(pending, jobs.Queued)
		}
		select {
		case r := <-got:
			if r.err != nil || r.l == nil || r.l.Job.ID != want.ID {
				t.Fatalf("blocked Claim woken by %s = %v, %v; want %s", how, r.l, r.err, want.ID)
			}
			e.audits++
			if d := time.Since(started); d > 10*time.Second {
				t.Errorf("blocked Claim returned after %v: not woken by the enqueue", d)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("blocked Claim not woken by %s", how)
		}
	}
}

func testClaimTimesOut(e *env) {
	t := e.t
	e.create("alice", jobs.AwaitingConsent) // not claimable
	start := time.Now()
	l, err := e.s.Claim(e.ctx, "w1", 150*time.Millisecond)
	if d := time.Since(start); l != nil || err != nil || d < 140*time.Millisecond || d > 5*time.Second {
		t.Errorf("Claim(150ms) on an empty queue = %v, %v after %v; want nil, nil after ~150ms", l, err, d)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if l, err := e.s.Claim(ctx, "w1", time.Second); l != nil || err == nil {
		t.Errorf("Claim with a cancelled context = %v, %v; want an error", l, err)
	}
}

func testCancelledNeverHandedOut(e *env) {
	t := e.t
	a := e.create("alice", jobs.Queued)
	b := e.create("alice", jobs.Queued)
	c := e.create("alice", jobs.Queued)
	e.transition(a, jobs.Cancelled)
	e.transition(c, jobs.Expired)
	if l := e.claim("w1"); l.Job.ID != b.ID {
		t.Errorf("Claim = %s, want %s (the only job still queued)", l.Job.ID, b.ID)
	}
	if l, err := e.s.Claim(e.ctx, "w1", 50*time.Millisecond); l != nil || err != nil {
		t.Errorf("Claim = %v, %v; want nothing: the other jobs were cancelled and expired", l, err)
	}
	if l, err := e.s.Reclaim(e.ctx, "w2", 0); err != nil || len(l) != 1 || l[0].Job.ID != b.ID {
		t.Errorf("Reclaim(0) = %v, %v; want only the running job %s", l, err, b.ID)
	} else {
		e.audits++
	}
	for _, j := range []*jobs.Job{a, c} {
		if got := e.get(j.ID); !got.State.Final() || got.Attempt != 0 {
			t.Errorf("job %s is %s at attempt %d", j.ID, got.State, got.Attempt)
		}
	}
}

func testRequeue(e *env) {
	t := e.t
	j := e.create("alice", jobs.Queued)
	l1 := e.claim("w1")
	if err := e.s.Progress(e.ctx, j.ID, 1, jobs.Progress{Done: 3, Total: 10, Step: "psi"}); err != nil {
		t.Fatal(err)
	}
	back := e.transition(l1.Job, jobs.Queued)
	if back.Attempt != 1 {
		t.Errorf("requeued job at attempt %d, want 1", back.Attempt)
	}
	l2 := e.claim("w2")
	if l2.Job.ID != j.ID || l2.Attempt != 2 || l2.Job.Progress != (jobs.Progress{}) {
		t.Errorf("second claim = %+v (progress %+v), want attempt 2 with progress reset", l2, l2.Job.Progress)
	}
	wantErr(t, "Heartbeat(first lease)", e.s.Heartbeat(e.ctx, l1), jobs.ErrLeaseLost)
	if err := e.s.Heartbeat(e.ctx, l2); err != nil {
		t.Errorf("Heartbeat(second lease): %v", err)
	}
	if l, err := e.s.Claim(e.ctx, "w1", 0); l != nil || err != nil {
		t.Errorf("Claim = %v, %v; want nothing left", l, err)
	}
}

// testHeartbeat: of two leases claimed together, the one heartbeated on
// every poll survives while the other is reclaimed once minIdle has passed.
func testHeartbeat(e *env) {
	t := e.t
	e.create("alice", jobs.Queued)
	e.create("alice", jobs.Queued)
	kept, idle := e.claim("w1"), e.claim("w1")
	minIdle := e.minIdle()
	var taken []*jobs.Lease
	Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool {
		if err := e.s.Heartbeat(e.ctx, kept); err != nil {
			t.Fatalf("Heartbeat: %v", err)
		}
		e.tick(minIdle / 4)
		ls, err := e.s.Reclaim(e.ctx, "w2", minIdle)
		if err != nil {
			t.Fatalf("Reclaim: %v", err)
		}
		e.audits += len(ls)
		taken = append(taken, ls...)
		return len(taken) > 0
	}, "the idle lease to be reclaimed")
	if len(taken) != 1 || taken[0].Job.ID != idle.Job.ID {
		t.Fatalf("reclaimed %v, want only the idle lease's job %s", ids(jobsOf(taken)), idle.Job.ID)
	}
	if err := e.s.Heartbeat(e.ctx, kept); err != nil {
		t.Errorf("Heartbeat(kept lease): %v", err)
	}
	wantErr(t, "Heartbeat(reclaimed lease)", e.s.Heartbeat(e.ctx, idle), jobs.ErrLeaseLost)
	if err := e.s.Heartbeat(e.ctx, taken[0]); err != nil {
		t.Errorf("Heartbeat(new lease): %v", err)
	}
	wantErr(t, "Heartbeat(unknown job)", e.s.Heartbeat(e.ctx, &jobs.Lease{Job: &jobs.Job{ID: jobs.NewID()}, Attempt: 1, Worker: "w1", Token: kept.Token}), jobs.ErrNotFound)
}

func testReclaim(e *env) {
	t := e.t
	j := e.create("alice", jobs.Queued)
	old := e.claim("w1")
	if ls, err := e.s.Reclaim(e.ctx, "w2", time.Hour); err != nil || len(ls) != 0 {
		t.Fatalf("Reclaim of a fresh lease = %v, %v; want nothing", ls, err)
	}
	ls := e.reclaimAll("w2", 1)
	if len(ls) != 1 {
		t.Fatalf("reclaimed %d leases, want 1", len(ls))
	}
	nl := ls[0]
	last := nl.Job.History[len(nl.Job.History)-1]
	if nl.Job.ID != j.ID || nl.Attempt != 2 || nl.Job.State != jobs.Running || nl.Worker != "w2" || last.Actor != "worker:w2" || last.Attempt != 2 {
		t.Fatalf("reclaimed lease = %+v (job %+v)", nl, nl.Job)
	}
	// The stale lease is fenced off everywhere.
	wantErr(t, "stale Progress", e.s.Progress(e.ctx, j.ID, old.Attempt, jobs.Progress{Done: 1}), jobs.ErrLeaseLost)
	wantErr(t, "stale Heartbeat", e.s.Heartbeat(e.ctx, old), jobs.ErrLeaseLost)
	_, err := e.s.Transition(e.ctx, j.ID, change(jobs.Running, jobs.AwaitingReview, old.Attempt))
	wantErr(t, "stale Transition", err, jobs.ErrConflict)
	// The new one works.
	if err := e.s.Heartbeat(e.ctx, nl); err != nil {
		t.Errorf("Heartbeat(new lease): %v", err)
	}
	if err := e.s.Progress(e.ctx, j.ID, nl.Attempt, jobs.Progress{Done: 2, Total: 2}); err != nil {
		t.Errorf("Progress(new lease): %v", err)
	}
	done := e.transition(nl.Job, jobs.AwaitingReview)
	if done.Attempt != 2 || done.Progress.Done != 2 {
		t.Errorf("finished job = %+v", done)
	}
	if n := e.countAction(j.ID, "job.running"); n != 2 {
		t.Errorf("%d job.running audit entries, want 2 (claim and reclaim)", n)
	}
	// A finished job's lease is never reclaimed.
	e.tick(e.minIdle())
	if ls, err := e.s.Reclaim(e.ctx, "w3", e.minIdle()); err != nil || len(ls) != 0 {
		t.Errorf("Reclaim after the job finished = %v, %v; want nothing", ls, err)
	}
}
