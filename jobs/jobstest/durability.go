package jobstest

// Durability: what a store held is there after closing and reopening it.

import (
	"time"

	"github.com/unseen-data/unseen/jobs"
)

func testClosed(e *env) {
	t := e.t
	j := e.create("alice", jobs.Queued)
	if err := e.s.Ping(e.ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := e.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := e.s.Get(e.ctx, j.ID)
	wantErr(t, "Get after Close", err, jobs.ErrUnavailable)
	wantErr(t, "Ping after Close", e.s.Ping(e.ctx), jobs.ErrUnavailable)
	_, err = e.s.Claim(e.ctx, "w1", 0)
	wantErr(t, "Claim after Close", err, jobs.ErrUnavailable)
	// Run then checks the chain: the audit log outlives the store.
	e.s = e.h.Reopen(t, e.s, e.clock)
}

// testReopened: everything a store holds survives closing and reopening
// it (a process restart): jobs with their history, the queue's order,
// leases, the retry schedule, idempotency keys, counters and the audit
// chain, which new entries extend.
func testReopened(e *env) {
	t := e.t
	q1, _, err := e.s.Create(e.ctx, newJob("alice", jobs.Queued), "key-1")
	if err != nil {
		t.Fatal(err)
	}
	e.audits++
	e.create("alice", jobs.Queued)
	run := e.claim("w1") // q1
	if err := e.s.Progress(e.ctx, q1.ID, run.Attempt, jobs.Progress{Done: 3, Total: 9, Step: "psi"}); err != nil {
		t.Fatal(err)
	}
	e.create("bob", jobs.Queued)
	retry := e.fail(e.claim("w1"), time.Minute, "node b down") // q2
	review := e.jobIn(jobs.AwaitingReview)
	q3 := e.create("carol", jobs.Queued)
	q4 := e.create("carol", jobs.Queued)
	if _, ok, err := e.s.Spend(e.ctx, "dp:alice:x", 7, 10, 0); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, ok, err := e.s.Spend(e.ctx, "rate:alice:x", 1, 1, time.Hour); !ok || err != nil {
		t.Fatal(ok, err)
	}
	before, err := e.s.List(e.ctx, jobs.ListFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	chain := e.entries()
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	e.s = e.h.Reopen(t, e.s, e.clock)

	after, err := e.s.List(e.ctx, jobs.ListFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if jsonOf(after) != jsonOf(before) {
		t.Errorf("jobs after reopening differ:\nbefore %s\n after %s", jsonOf(before), jsonOf(after))
	}
	e.wantList(jobs.ListFilter{Owner: "carol"}, q4, q3)
	if got := e.entries(); jsonOf(got) != jsonOf(chain) {
		t.Errorf("audit chain after reopening: %d entries, want the %d before", len(got), len(chain))
	}
	if j, created, err := e.s.Create(e.ctx, newJob("alice", jobs.Queued), "key-1"); err != nil || created || j.ID != q1.ID {
		t.Errorf("idempotent Create after reopening = %v, created %v, %v; want %s", j, created, err, q1.ID)
	}
	if total, ok, err := e.s.Spend(e.ctx, "dp:alice:x", 4, 10, 0); ok || total != 7 || err != nil {
		t.Errorf("budget after reopening: spent %d, granted another 4 of 10: %v, %v", total, ok, err)
	}
	if _, ok, err := e.s.Spend(e.ctx, "rate:alice:x", 1, 1, time.Hour); ok || err != nil {
		t.Errorf("rate window after reopening granted a second job: %v, %v", ok, err)
	}
	// The queue keeps its order (bob's job, then carol's two).
	for _, want := range []string{"bob", "carol", "carol"} {
		if l := e.claim("w2"); l.Job.Owner != want {
			t.Errorf("claimed %s's job after reopening, want %s's", l.Job.Owner, want)
		}
	}
	// The running job's lease is still there to be taken over once idle.
	ls := e.reclaimAll("w2", 1)
	var found bool
	for _, l := range ls {
		if l.Job.ID == q1.ID {
			found = l.Attempt == run.Attempt+1 && l.Job.Progress == (jobs.Progress{})
		}
	}
	if !found {
		t.Errorf("the running job's lease was not reclaimable after reopening: %v", ids(jobsOf(ls)))
	}
	// The retry schedule too.
	e.clock.Advance(time.Minute)
	e.promote(retry)
	e.sameJob("review job after reopening", review, e.get(review.ID))
}
