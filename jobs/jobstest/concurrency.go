package jobstest

// Concurrency: many writers at once, one chain.

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
)

// testConcurrentChanges: many writers at once (creates, claims,
// transitions, plain appends) all land, each once, in one chain that
// verifies.
func testConcurrentChanges(e *env) {
	t := e.t
	const n = 10
	var wg sync.WaitGroup
	errs := make(chan error, 4*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			j, _, err := e.s.Create(e.ctx, newJob(fmt.Sprintf("owner%d", i), jobs.AwaitingConsent), "")
			if err == nil {
				_, err = e.s.Transition(e.ctx, j.ID, change(jobs.AwaitingConsent, jobs.Queued, 0))
			}
			if err == nil {
				var l *jobs.Lease
				if l, err = e.s.Claim(e.ctx, fmt.Sprintf("w%d", i), 5*time.Second); err == nil && l == nil {
					err = errors.New("no job to claim")
				}
			}
			errs <- err
		}()
		go func() {
			defer wg.Done()
			_, err := e.s.Audit().Append(e.ctx, audit.Entry{Time: e.clock.Now(), Actor: "auditor", Action: "audit.read", Detail: map[string]string{"i": fmt.Sprint(i)}})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	e.audits += 4 * n
	running, err := e.s.List(e.ctx, jobs.ListFilter{States: []jobs.State{jobs.Running}})
	if err != nil || len(running) != n {
		t.Errorf("%d running jobs, %v; want %d", len(running), err, n)
	}
}
