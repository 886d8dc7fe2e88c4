package jobstest

// Idempotency keys: one job per key and owner, however many retries.

import (
	"sync"

	"github.com/unseen-data/unseen/jobs"
)

func testIdempotentCreate(e *env) {
	t := e.t
	const n = 20
	in := newJob("alice", jobs.Queued)
	type res struct {
		j       *jobs.Job
		created bool
		err     error
	}
	out := make(chan res, n)
	var start sync.WaitGroup
	start.Add(1)
	for range n {
		go func() {
			start.Wait()
			j, c, err := e.s.Create(e.ctx, in, "req-7")
			out <- res{j, c, err}
		}()
	}
	start.Done()
	var first *jobs.Job
	created := 0
	for range n {
		r := <-out
		if r.err != nil {
			t.Fatalf("concurrent Create: %v", r.err)
		}
		if r.created {
			created++
		}
		if first == nil {
			first = r.j
		} else if r.j.ID != first.ID {
			t.Errorf("concurrent Creates returned jobs %s and %s", first.ID, r.j.ID)
		}
	}
	e.audits++
	if created != 1 {
		t.Errorf("%d Creates reported created, want exactly 1", created)
	}
	e.wantList(jobs.ListFilter{}, first)
	if c := e.countAction(first.ID, "job.submitted"); c != 1 || len(e.entries()) != 1 {
		t.Errorf("%d job.submitted entries for the job (%d in all), want exactly 1", c, len(e.entries()))
	}

	// Again, later: the same job, not created.
	j, c, err := e.s.Create(e.ctx, newJob("alice", jobs.Queued), "req-7")
	if err != nil || c || j.ID != first.ID {
		t.Errorf("repeat Create = %v, created %v, %v; want %s, false", j, c, err, first.ID)
	}
	// Same key, different job: refused.
	other := newJob("alice", jobs.Queued)
	other.Spec.Purpose = "something else"
	_, _, err = e.s.Create(e.ctx, other, "req-7")
	wantErr(t, "Create(same key, other spec)", err, jobs.ErrIdempotency)
	// Keys are per owner.
	b, c, err := e.s.Create(e.ctx, newJob("bob", jobs.Queued), "req-7")
	if err != nil || !c || b.ID == first.ID {
		t.Errorf("Create(bob, same key) = %v, created %v, %v; want a new job", b, c, err)
	}
	e.audits++
	e.wantList(jobs.ListFilter{}, b, first)
}
