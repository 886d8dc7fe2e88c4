package jobstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
)

// Run runs the conformance suite against the backend h describes. Every
// subtest gets a fresh store and ends by verifying the audit chain and
// that it holds exactly one entry per successful state change.
func Run(t *testing.T, h Harness) {
	if h.New == nil {
		t.Fatal("jobstest: Harness.New is nil")
	}
	tests := []struct {
		name string
		fn   func(e *env)
	}{
		{"CreateGetList", testCreateGetList},
		{"CreateRejects", testCreateRejects},
		{"ReturnsCopies", testReturnsCopies},
		{"IdempotentCreate", testIdempotentCreate},
		{"TransitionMatrix", testTransitionMatrix},
		{"CompareAndSet", testCompareAndSet},
		{"ClaimFIFO", testClaimFIFO},
		{"ConsentsRecorded", testConsents},
		{"SpendWithinLimit", testSpend},
		{"ClaimBlocksUntilEnqueued", testClaimBlocks},
		{"ClaimTimesOut", testClaimTimesOut},
		{"CancelledNeverHandedOut", testCancelledNeverHandedOut},
		{"RequeueAndClaimAgain", testRequeue},
		{"Progress", testProgress},
		{"HeartbeatKeepsLease", testHeartbeat},
		{"ReclaimFencesStaleLease", testReclaim},
		{"RacingApprovals", testRacingApprovals},
		{"AuditAppendSharesChain", testAuditAppend},
		{"ConcurrentChangesOneChain", testConcurrentChanges},
		{"FailClosed", testFailClosed},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := h.setup(t)
			tc.fn(e)
			if !t.Failed() && !t.Skipped() {
				e.checkAudit()
			}
		})
	}
}

// env is one subtest's store and what the suite expects of it.
type env struct {
	t      *testing.T
	h      Harness
	ctx    context.Context
	s      jobs.Store
	clock  *FakeClock
	log    *audit.MemLog // the injected log; nil if the backend keeps its own
	audits int           // entries the chain must hold
}

var epoch = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

func (h Harness) setup(t *testing.T) *env {
	e := &env{t: t, h: h, ctx: t.Context(), clock: NewFakeClock(epoch)}
	var l audit.Log
	if !h.OwnAudit {
		e.log = &audit.MemLog{}
		l = e.log
	}
	e.s = h.New(t, l, e.clock)
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
	case jobs.DeadLetter:
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

// testSpend: counters never pass their limit, even under concurrency;
// refunds work; a ttl expires a window (fake clock for memstore, real time
// for Redis).
func testSpend(e *env) {
	t := e.t
	key := "budget:alice:hrss.x"
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range 25 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := e.s.Spend(e.ctx, key, 3, 50, 0)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				granted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if granted != 16 { // 16 × 3 = 48 ≤ 50 < 51
		t.Fatalf("%d spends of 3 granted under a limit of 50, want 16", granted)
	}
	total, ok, err := e.s.Spend(e.ctx, key, 2, 50, 0)
	if err != nil || !ok || total != 50 {
		t.Fatalf("spending the last 2: %d %v %v", total, ok, err)
	}
	if total, ok, _ := e.s.Spend(e.ctx, key, 1, 50, 0); ok || total != 50 {
		t.Fatalf("over the limit: %d %v", total, ok)
	}
	if total, ok, _ := e.s.Spend(e.ctx, key, -3, 50, 0); !ok || total != 47 {
		t.Fatalf("refund: %d %v", total, ok)
	}
	// A rate window expires.
	win := "rate:alice:w"
	ttl := time.Hour
	if e.h.RealTimeLeases {
		ttl = 150 * time.Millisecond
	}
	if _, ok, _ := e.s.Spend(e.ctx, win, 1, 1, ttl); !ok {
		t.Fatal("first in window refused")
	}
	if _, ok, _ := e.s.Spend(e.ctx, win, 1, 1, ttl); ok {
		t.Fatal("second in window granted")
	}
	if e.h.RealTimeLeases {
		Eventually(t, 5*time.Second, 20*time.Millisecond, func() bool {
			_, ok, _ := e.s.Spend(e.ctx, win, 1, 1, ttl)
			return ok
		}, "the rate window to expire")
	} else {
		e.clock.Advance(ttl)
		if _, ok, _ := e.s.Spend(e.ctx, win, 1, 1, ttl); !ok {
			t.Fatal("window did not expire")
		}
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

// testFailClosed: while the audit log cannot be written, every state
// change is refused and nothing changes; afterwards work resumes.
func testFailClosed(e *env) {
	t := e.t
	var breakLog func() (repair func())
	switch {
	case e.log != nil:
		breakLog = func() func() {
			e.log.Fail = errors.New("audit disk full")
			return func() { e.log.Fail = nil }
		}
	case e.h.BreakAudit != nil:
		breakLog = func() func() { return e.h.BreakAudit(t, e.s) }
	default:
		t.Skip("backend keeps its own audit log and has no BreakAudit")
	}
	e.create("alice", jobs.Queued)
	running := e.claim("w1")
	e.create("alice", jobs.Queued)
	review := e.transition(e.claim("w1").Job, jobs.AwaitingReview)
	queued := e.create("alice", jobs.Queued)
	consent := e.create("alice", jobs.AwaitingConsent)
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
}

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
}
