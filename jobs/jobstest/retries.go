package jobstest

// Retries as data: a transient failure moves a job running → retryable with
// a due time; it then holds no lease, is handed to no worker, and PromoteDue
// moves it back to queued once the store's clock reaches its due time.

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/unseen-data/unseen/jobs"
)

// fail moves a leased job running → retryable, due after d.
func (e *env) fail(l *jobs.Lease, d time.Duration, why string) *jobs.Job {
	e.t.Helper()
	c := jobs.Change{From: jobs.Running, Attempt: l.Attempt, To: jobs.Retryable, Actor: "worker:" + l.Worker, Role: "worker",
		Note: "transient failure", Error: why, RetryAt: e.clock.Now().Add(d), Waiting: why + "; retry soon"}
	j, err := e.s.Transition(e.ctx, l.Job.ID, c)
	if err != nil {
		e.t.Fatalf("running → retryable: %v", err)
	}
	e.audits++
	return j
}

func (e *env) promote(want ...*jobs.Job) []*jobs.Job {
	e.t.Helper()
	got, err := e.s.PromoteDue(e.ctx, "scheduler")
	if err != nil {
		e.t.Fatalf("PromoteDue: %v", err)
	}
	e.audits += len(got)
	if g, w := fmt.Sprint(ids(got)), fmt.Sprint(ids(want)); g != w {
		e.t.Errorf("PromoteDue at %s = %s, want %s", e.clock.Now().Format(time.TimeOnly), g, w)
	}
	return got
}

func testRetryableHoldsNoLease(e *env) {
	t := e.t
	e.create("alice", jobs.Queued)
	l := e.claim("w1")
	due := e.clock.Now().Add(10 * time.Second)
	j := e.fail(l, 10*time.Second, "node b unreachable (connection refused)")
	if j.State != jobs.Retryable || j.Failures != 1 || !j.ScheduledAt.Equal(due) || j.Attempt != 1 ||
		j.Error != "node b unreachable (connection refused)" || j.Waiting == "" {
		t.Fatalf("job after a transient failure = %+v", j)
	}
	e.sameJob("Get of a retryable job", j, e.get(j.ID))
	wantErr(t, "Heartbeat(lease of a retryable job)", e.s.Heartbeat(e.ctx, l), jobs.ErrLeaseLost)
	wantErr(t, "Progress(retryable job)", e.s.Progress(e.ctx, j.ID, l.Attempt, jobs.Progress{Done: 1}), jobs.ErrLeaseLost)
	if got, err := e.s.Claim(e.ctx, "w2", 0); got != nil || err != nil {
		t.Errorf("Claim = %v, %v; a retryable job is not handed out before it is due", got, err)
	}
	if ls, err := e.s.Reclaim(e.ctx, "w2", 0); err != nil || len(ls) != 0 {
		t.Errorf("Reclaim(0) = %v, %v; a retryable job has no lease to take over", ls, err)
	}
	e.wantList(jobs.ListFilter{States: []jobs.State{jobs.Retryable}}, j)
}

func testPromoteWhenDue(e *env) {
	t := e.t
	var ls []*jobs.Lease
	for range 3 {
		e.create("alice", jobs.Queued)
		ls = append(ls, e.claim("w1"))
	}
	start := e.clock.Now()
	j1 := e.fail(ls[0], 30*time.Second, "a")
	j2 := e.fail(ls[1], 10*time.Second, "b")
	j3 := e.fail(ls[2], 20*time.Second, "c")
	e.clock.Advance(5 * time.Second)
	e.promote()
	e.clock.Set(start.Add(20 * time.Second))
	got := e.promote(j2, j3) // earliest due first
	for _, j := range got {
		if j.State != jobs.Queued || !j.ScheduledAt.IsZero() || j.Waiting != "" || j.Failures != 1 || j.Attempt != 1 {
			t.Errorf("promoted job = %+v", j)
		}
		last := j.History[len(j.History)-1]
		if last.State != jobs.Queued || last.Actor != "scheduler" {
			t.Errorf("promotion's history event = %+v", last)
		}
		e.sameJob("Get after PromoteDue", j, e.get(j.ID))
	}
	e.promote() // nothing twice
	for _, want := range []*jobs.Job{j2, j3} {
		if l := e.claim("w2"); l.Job.ID != want.ID || l.Attempt != 2 {
			t.Errorf("Claim after promotion = %s at attempt %d, want %s at 2", l.Job.ID, l.Attempt, want.ID)
		}
	}
	if l, err := e.s.Claim(e.ctx, "w2", 0); l != nil || err != nil {
		t.Errorf("Claim = %v, %v; j1 is not due yet", l, err)
	}
	e.clock.Advance(10 * time.Second)
	e.promote(j1)
	if n := e.countAction(j1.ID, "job.queued"); n != 1 {
		t.Errorf("%d job.queued entries for the promoted job, want 1", n)
	}
}

// testFailuresCounted: the failure counter is data on the job, counted by
// transient failures only (not reclaims), and an admin retry out of
// dead_letter starts it afresh.
func testFailuresCounted(e *env) {
	t := e.t
	j := e.create("alice", jobs.Queued)
	for want := 1; want <= 2; want++ {
		l := e.claim("w1")
		if got := e.fail(l, time.Second, "down"); got.Failures != want {
			t.Fatalf("after failure %d the job counts %d", want, got.Failures)
		}
		e.clock.Advance(time.Second)
		e.promote(j)
	}
	l := e.claim("w1")
	ls := e.reclaimAll("w2", 1) // the worker died: not the job's fault
	if ls[0].Job.Failures != 2 || ls[0].Attempt != l.Attempt+1 {
		t.Fatalf("reclaimed job counts %d failures at attempt %d", ls[0].Job.Failures, ls[0].Attempt)
	}
	dead := e.transition(ls[0].Job, jobs.DeadLetter)
	if dead.Failures != 3 {
		t.Errorf("dead-lettered job counts %d failures, want 3", dead.Failures)
	}
	back := e.transition(dead, jobs.Queued)
	if back.Failures != 0 || back.State != jobs.Queued {
		t.Errorf("admin retry left failures %d, state %s", back.Failures, back.State)
	}
	if l := e.claim("w3"); l.Job.ID != j.ID || l.Job.Failures != 0 {
		t.Errorf("claim after admin retry = %+v", l.Job)
	}
}

func testCancelRetryable(e *env) {
	t := e.t
	e.create("alice", jobs.Queued)
	j := e.fail(e.claim("w1"), time.Minute, "down")
	c := e.transition(j, jobs.Cancelled)
	if !c.ScheduledAt.IsZero() || c.Waiting != "" {
		t.Errorf("cancelled job still scheduled: %+v", c)
	}
	e.clock.Advance(time.Hour)
	e.promote()
	if l, err := e.s.Claim(e.ctx, "w2", 0); l != nil || err != nil {
		t.Errorf("Claim = %v, %v; the cancelled job must never run", l, err)
	}
	if got := e.get(j.ID); got.State != jobs.Cancelled {
		t.Errorf("job is %s", got.State)
	}
}

// testConcurrentPromoters: schedulers of several coordinators promote at
// once; each due job moves exactly once.
func testConcurrentPromoters(e *env) {
	t := e.t
	const n = 8
	for range n {
		e.create("alice", jobs.Queued)
		e.fail(e.claim("w1"), time.Second, "down")
	}
	e.clock.Advance(time.Second)
	var (
		mu    sync.Mutex
		moved = map[string]int{}
		wg    sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			got, err := e.s.PromoteDue(e.ctx, "scheduler")
			if err != nil && !errors.Is(err, jobs.ErrConflict) {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, j := range got {
				moved[j.ID]++
			}
		})
	}
	wg.Wait()
	e.audits += n
	if len(moved) != n {
		t.Errorf("%d jobs promoted, want %d", len(moved), n)
	}
	for id, k := range moved {
		if k != 1 {
			t.Errorf("job %s promoted %d times", id, k)
		}
		if c := e.countAction(id, "job.queued"); c != 1 {
			t.Errorf("job %s has %d job.queued entries", id, c)
		}
	}
}
