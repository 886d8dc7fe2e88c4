package jobstest

// The state machine: every edge and non-edge, compare-and-set, races.

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/unseen-data/unseen/jobs"
)

// testTransitionMatrix walks the whole State×State matrix: every edge of
// the machine works from a job in its source state and writes one audit
// entry; every other pair is ErrIllegal and changes nothing.
func testTransitionMatrix(e *env) {
	t := e.t
	for _, from := range jobs.States {
		for _, to := range jobs.States {
			pair := fmt.Sprintf("%s → %s", from, to)
			legal := jobs.CanTransition(from, to)
			if from == jobs.Submitted {
				// No job is ever stored in submitted (Create stores it
				// queued or awaiting consent): a legal edge from it can only
				// fail the compare-and-set.
				j := e.create("alice", jobs.Queued)
				_, err := e.s.Transition(e.ctx, j.ID, change(from, to, 0))
				if legal {
					wantErr(t, pair, err, jobs.ErrConflict)
				} else {
					wantErr(t, pair, err, jobs.ErrIllegal)
				}
				continue
			}
			j := e.jobIn(from)
			before := e.get(j.ID)
			n := len(e.entries())
			c := change(from, to, j.Attempt)
			got, err := e.s.Transition(e.ctx, j.ID, c)
			if !legal {
				wantErr(t, pair, err, jobs.ErrIllegal)
				e.sameJob(pair+": job after illegal transition", before, e.get(j.ID))
				if m := len(e.entries()); m != n {
					t.Errorf("%s: illegal transition wrote %d audit entries", pair, m-n)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", pair, err)
				continue
			}
			e.audits++
			wantAttempt := j.Attempt
			if to == jobs.Running {
				wantAttempt++
			}
			if got.State != to || got.Attempt != wantAttempt {
				t.Errorf("%s: job is %s at attempt %d, want %s at %d", pair, got.State, got.Attempt, to, wantAttempt)
			}
			last := got.History[len(got.History)-1]
			if len(got.History) != len(before.History)+1 || last.State != to || last.Actor != "tester" || last.Attempt != wantAttempt || last.Note != c.Note {
				t.Errorf("%s: last history event %+v", pair, last)
			}
			if string(c.Result) != "" && string(got.Result) != string(c.Result) || c.Error != "" && got.Error != c.Error ||
				c.Reviewer != "" && got.Reviewer != c.Reviewer || len(c.Review) > 0 && string(got.Review) != string(c.Review) {
				t.Errorf("%s: change fields not applied: %+v", pair, got)
			}
			e.sameJob(pair+": Get after Transition", got, e.get(j.ID))
			all := e.entries()
			if len(all) != n+1 {
				t.Errorf("%s: %d audit entries written, want 1", pair, len(all)-n)
				continue
			}
			a := all[n]
			if a.Action != "job."+string(to) || a.Job != j.ID || a.Actor != "tester" || a.Detail["from"] != string(from) ||
				a.Detail["attempt"] != fmt.Sprint(wantAttempt) || len(a.Datasets) != 2 {
				t.Errorf("%s: audit entry %+v", pair, a)
			}
		}
	}
}

func testCompareAndSet(e *env) {
	t := e.t
	j := e.create("alice", jobs.Queued)
	n := len(e.entries())
	for name, c := range map[string]jobs.Change{
		"wrong state":   change(jobs.AwaitingConsent, jobs.Cancelled, 0),
		"wrong attempt": change(jobs.Queued, jobs.Cancelled, 3),
		"both wrong":    change(jobs.Running, jobs.Failed, 1),
	} {
		_, err := e.s.Transition(e.ctx, j.ID, c)
		wantErr(t, name, err, jobs.ErrConflict)
	}
	e.sameJob("job after failed compare-and-set", j, e.get(j.ID))
	if m := len(e.entries()); m != n {
		t.Errorf("failed compare-and-set wrote %d audit entries", m-n)
	}
	_, err := e.s.Transition(e.ctx, jobs.NewID(), change(jobs.Queued, jobs.Cancelled, 0))
	wantErr(t, "Transition(unknown job)", err, jobs.ErrNotFound)
	noActor := change(jobs.Queued, jobs.Cancelled, 0)
	noActor.Actor = ""
	if _, err := e.s.Transition(e.ctx, j.ID, noActor); err == nil {
		t.Error("Transition without an actor succeeded")
	}
	resultEarly := change(jobs.Queued, jobs.Cancelled, 0)
	resultEarly.Result = json.RawMessage(`{}`)
	if _, err := e.s.Transition(e.ctx, j.ID, resultEarly); err == nil {
		t.Error("Transition setting a result before release succeeded")
	}
	e.sameJob("job after refused transitions", j, e.get(j.ID))
}

func testRacingApprovals(e *env) {
	t := e.t
	j := e.jobIn(jobs.AwaitingReview)
	const n = 20
	errs := make(chan error, n)
	var start sync.WaitGroup
	start.Add(1)
	for i := range n {
		go func() {
			start.Wait()
			c := change(jobs.AwaitingReview, jobs.Released, j.Attempt)
			c.Actor, c.Reviewer = fmt.Sprintf("reviewer%d", i), fmt.Sprintf("reviewer%d", i)
			_, err := e.s.Transition(e.ctx, j.ID, c)
			errs <- err
		}()
	}
	start.Done()
	ok := 0
	for range n {
		switch err := <-errs; {
		case err == nil:
			ok++
		case !errors.Is(err, jobs.ErrConflict):
			t.Errorf("losing approval: %v, want ErrConflict", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d approvals succeeded, want exactly 1", ok)
	}
	e.audits++
	if c := e.countAction(j.ID, "job.released"); c != 1 {
		t.Errorf("%d job.released audit entries, want 1", c)
	}
	got := e.get(j.ID)
	var winner string
	for _, a := range e.entries() {
		if a.Action == "job.released" {
			winner = a.Actor
		}
	}
	if got.State != jobs.Released || got.Reviewer != winner || got.History[len(got.History)-1].Actor != winner {
		t.Errorf("released job = %+v, audit says %s approved", got, winner)
	}
}
