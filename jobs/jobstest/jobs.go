package jobstest

// The job records: create, read, list, copies, consents, progress.

import (
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/unseen-data/unseen/jobs"
)

func testCreateGetList(e *env) {
	t := e.t
	in := newJob("alice", jobs.Queued)
	a1, created, err := e.s.Create(e.ctx, in, "")
	if err != nil || !created {
		t.Fatalf("Create = %v, %v", created, err)
	}
	e.audits++
	if !jobs.ValidID(a1.ID) || a1.State != jobs.Queued || a1.Attempt != 0 || a1.Owner != "alice" || !a1.CreatedAt.Equal(epoch) {
		t.Errorf("created job = %+v", a1)
	}
	if in.ID != "" || in.History != nil {
		t.Errorf("Create modified its argument: %+v", in)
	}
	if len(a1.History) != 1 || a1.History[0].State != jobs.Queued || a1.History[0].Actor != "alice" {
		t.Errorf("history = %+v, want one queued event by alice", a1.History)
	}
	e.sameJob("Get after Create", a1, e.get(a1.ID))
	if n := e.countAction(a1.ID, "job.submitted"); n != 1 {
		t.Errorf("%d job.submitted entries, want 1", n)
	}

	e.clock.Advance(time.Second)
	b1 := e.create("bob", jobs.AwaitingConsent)
	a2 := e.create("alice", jobs.Queued)
	e.wantList(jobs.ListFilter{}, a2, b1, a1)
	e.wantList(jobs.ListFilter{Owner: "alice"}, a2, a1)
	e.wantList(jobs.ListFilter{States: []jobs.State{jobs.AwaitingConsent}}, b1)
	e.wantList(jobs.ListFilter{States: []jobs.State{jobs.AwaitingConsent, jobs.Queued}, Owner: "bob"}, b1)
	e.wantList(jobs.ListFilter{Owner: "alice", States: []jobs.State{jobs.AwaitingConsent}})
	e.wantList(jobs.ListFilter{Owner: "nobody"})
	e.wantList(jobs.ListFilter{Limit: 2}, a2, b1)

	// A job's state filter follows its transitions.
	a1 = e.transition(a1, jobs.Cancelled)
	e.wantList(jobs.ListFilter{States: []jobs.State{jobs.Queued}}, a2)
	e.wantList(jobs.ListFilter{States: []jobs.State{jobs.Cancelled}}, a1)

	// The default limit is 100, newest first.
	var many []*jobs.Job
	for range 101 {
		many = append(many, e.create("carol", jobs.Queued))
	}
	got, err := e.s.List(e.ctx, jobs.ListFilter{Owner: "carol"})
	if err != nil || len(got) != 100 || got[0].ID != many[100].ID || got[99].ID != many[1].ID {
		t.Errorf("List(carol) = %d jobs, %v; want the newest 100", len(got), err)
	}

	for _, id := range []string{jobs.NewID(), "not-an-id", "", "j_{x}"} {
		_, err := e.s.Get(e.ctx, id)
		wantErr(t, "Get("+id+")", err, jobs.ErrNotFound)
	}
}

func testCreateRejects(e *env) {
	t := e.t
	bad := map[string]func(j *jobs.Job){
		"running":      func(j *jobs.Job) { j.State = jobs.Running },
		"submitted":    func(j *jobs.Job) { j.State = jobs.Submitted },
		"no owner":     func(j *jobs.Job) { j.Owner = "" },
		"bad id":       func(j *jobs.Job) { j.ID = "j_nope" },
		"with result":  func(j *jobs.Job) { j.Result = json.RawMessage(`{}`) },
		"with attempt": func(j *jobs.Job) { j.Attempt = 2 },
	}
	for name, mod := range bad {
		j := newJob("alice", jobs.Queued)
		mod(j)
		if got, _, err := e.s.Create(e.ctx, j, ""); err == nil {
			t.Errorf("Create(%s) = %+v, want an error", name, got)
		}
	}
	j := newJob("alice", jobs.Running)
	_, _, err := e.s.Create(e.ctx, j, "")
	wantErr(t, "Create(running)", err, jobs.ErrIllegal)

	// A caller-chosen id is kept, and cannot be used twice.
	j = newJob("alice", jobs.Queued)
	j.ID = jobs.NewID()
	got, _, err := e.s.Create(e.ctx, j, "")
	if err != nil || got.ID != j.ID {
		t.Fatalf("Create with id = %v, %v", got, err)
	}
	e.audits++
	_, _, err = e.s.Create(e.ctx, j, "")
	wantErr(t, "Create(same id)", err, jobs.ErrConflict)
	e.wantList(jobs.ListFilter{}, got)
}

func testReturnsCopies(e *env) {
	t := e.t
	j := e.transition(e.jobIn(jobs.Running), jobs.AwaitingReview)
	want := e.get(j.ID)
	for _, got := range []*jobs.Job{j, e.get(j.ID)} {
		got.Spec.Inputs[0].Dataset = "mutated.dataset"
		got.Decision.Versions["x"] = "y"
		got.History[0].Actor = "mallory"
		got.History = append(got.History, jobs.Event{State: jobs.Released})
		got.Review[0] = '['
	}
	l, _ := e.s.List(e.ctx, jobs.ListFilter{})
	l[0].Spec.Inputs[1].Key = "mutated"
	e.sameJob("job after callers mutated their copies", want, e.get(j.ID))
	if want.Spec.Inputs[0].Dataset != "hrss.unemployment_benefits" {
		t.Errorf("store state reachable through returned job")
	}
}

// testConsents: a consent is a compare-and-set on awaiting_consent that
// keeps the state; answers for different datasets commute (owners
// answering at once lose nothing); consents and the deadline survive a
// round trip through the backend.
func testConsents(e *env) {
	t := e.t
	in := newJob("alice", jobs.AwaitingConsent)
	in.ConsentDeadline = e.clock.Now().Add(72 * time.Hour).UTC()
	j, _, err := e.s.Create(e.ctx, in, "")
	if err != nil {
		t.Fatal(err)
	}
	e.audits++
	if !j.ConsentDeadline.Equal(in.ConsentDeadline) {
		t.Fatalf("deadline %v, want %v", j.ConsentDeadline, in.ConsentDeadline)
	}
	answer := func(ds, by string, ok bool) jobs.Change {
		return jobs.Change{From: jobs.AwaitingConsent, To: jobs.AwaitingConsent, Actor: by, Role: "data_owner", Note: "consent",
			Consent: &jobs.Consent{Dataset: ds, By: by, Approved: ok, At: e.clock.Now().UTC()}}
	}
	// Two owners answer concurrently, both from the same read.
	var wg sync.WaitGroup
	for _, a := range []jobs.Change{answer("housing.property_owners", "hou", true), answer("civil.minimum_living_allowance", "civ", true)} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.s.Transition(e.ctx, j.ID, a); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	e.audits += 2
	got := e.get(j.ID)
	if got.State != jobs.AwaitingConsent || len(got.Consents) != 2 || got.Consents[0].Dataset != "civil.minimum_living_allowance" || got.Consents[1].By != "hou" {
		t.Fatalf("after two answers: %+v", got.Consents)
	}
	// An owner changing its answer replaces it.
	if _, err := e.s.Transition(e.ctx, j.ID, answer("housing.property_owners", "hou", false)); err != nil {
		t.Fatal(err)
	}
	e.audits++
	got = e.get(j.ID)
	if len(got.Consents) != 2 || got.Consents[1].Approved {
		t.Fatalf("answer not replaced: %+v", got.Consents)
	}
}

func testProgress(e *env) {
	t := e.t
	q := e.create("alice", jobs.Queued)
	wantErr(t, "Progress(queued job)", e.s.Progress(e.ctx, q.ID, 0, jobs.Progress{Done: 1}), jobs.ErrLeaseLost)
	l := e.claim("w1")
	p := jobs.Progress{Done: 7, Total: 64, Step: "psi"}
	if err := e.s.Progress(e.ctx, q.ID, l.Attempt, p); err != nil {
		t.Fatalf("Progress: %v", err)
	}
	if got := e.get(q.ID); got.Progress != p || got.State != jobs.Running {
		t.Errorf("job after Progress = %+v", got)
	}
	wantErr(t, "Progress(wrong attempt)", e.s.Progress(e.ctx, q.ID, l.Attempt+1, jobs.Progress{Done: 9}), jobs.ErrLeaseLost)
	wantErr(t, "Progress(unknown job)", e.s.Progress(e.ctx, jobs.NewID(), 1, p), jobs.ErrNotFound)
	done := e.transition(l.Job, jobs.AwaitingReview)
	if done.Progress != p {
		t.Errorf("progress after leaving running = %+v, want %+v kept", done.Progress, p)
	}
	wantErr(t, "Progress(after running)", e.s.Progress(e.ctx, q.ID, l.Attempt, jobs.Progress{Done: 64}), jobs.ErrLeaseLost)
	if got := e.get(q.ID); got.Progress != p {
		t.Errorf("progress changed by a refused update: %+v", got.Progress)
	}
}

// testErrorStoredOnce: after a node died mid-release one job's stored error
// was 10 kB, one sentence ~30 times (errors.Join of one cause per
// goroutine). A store keeps one cause, bounded, saying how many more.
func testErrorStoredOnce(e *env) {
	t := e.t
	cause := "node housing: Post \"http://127.0.0.1:7102/v1/he/release\": dial tcp 127.0.0.1:7102: connect: connection refused"
	joined := strings.Repeat(cause+"\n", 29) + cause
	j := e.jobIn(jobs.Running)
	c := change(jobs.Running, jobs.Failed, j.Attempt)
	c.Error = joined
	got, err := e.s.Transition(e.ctx, j.ID, c)
	if err != nil {
		t.Fatal(err)
	}
	e.audits++
	want := cause + " [and 29 more errors, 0 of them different]"
	if got.Error != want || e.get(j.ID).Error != want {
		t.Errorf("stored error = %q (%d bytes), want %q", got.Error, len(got.Error), want)
	}
	r := e.jobIn(jobs.Running)
	c = change(jobs.Running, jobs.Retryable, r.Attempt)
	c.Error, c.Waiting = strings.Repeat("x", 10000), strings.Repeat(cause+"\n", 3)
	got, err = e.s.Transition(e.ctx, r.ID, c)
	if err != nil {
		t.Fatal(err)
	}
	e.audits++
	if len(got.Error) > 1024 || len(got.Waiting) > 1024 || strings.Count(got.Waiting, cause) != 1 {
		t.Errorf("retryable job keeps %d bytes of error and waiting %q", len(got.Error), got.Waiting)
	}
}
