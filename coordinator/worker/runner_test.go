package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/boltstore"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/psi/delivery"
)

type staticCatalog policy.Catalog

func (s staticCatalog) Catalog(context.Context) (policy.Catalog, error) {
	return policy.Catalog(s), nil
}

// states records transitions so tests wait on signals, not sleeps.
type states struct {
	mu sync.Mutex
	ch map[string]chan jobs.State
}

func (s *states) on(id string, st jobs.State) {
	s.mu.Lock()
	c, ok := s.ch[id]
	if !ok {
		c = make(chan jobs.State, 16)
		s.ch[id] = c
	}
	s.mu.Unlock()
	c <- st
}

func (s *states) wait(t *testing.T, id string, want jobs.State) {
	t.Helper()
	s.mu.Lock()
	c, ok := s.ch[id]
	if !ok {
		c = make(chan jobs.State, 16)
		s.ch[id] = c
	}
	s.mu.Unlock()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case st := <-c:
			if st == want {
				return
			}
			if st.Final() {
				t.Fatalf("job %s ended %s, wanted %s", id, st, want)
			}
		case <-timeout:
			t.Fatalf("job %s never reached %s", id, want)
		}
	}
}

// openStore opens the embedded store on a file of the test's own.
func openStore(t *testing.T, clock jobs.Clock) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "unseen.db"), boltstore.Options{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func rng(lo, hi int) []int {
	out := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

func setup(t *testing.T, rows map[string][]int, customise ...func(*policy.Dataset)) (*Runner, *boltstore.Store, *states, []byte) {
	var c func(*policy.Dataset)
	if len(customise) > 0 {
		c = customise[0]
	}
	fed := nodetest.Start(t, rows, c)
	pub, priv, err := delivery.GenerateKey()
	require.NoError(t, err)
	st := &states{ch: map[string]chan jobs.State{}}
	store := openStore(t, nil)
	r := &Runner{
		Store: store, Nodes: fed.Clients, Catalog: staticCatalog(fed.Catalog),
		RecipientKey: func(string) ([]byte, error) { return pub, nil },
		ChunkSize:    100, OnState: st.on, Worker: "test",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, 2); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, store, st, priv
}

func submit(t *testing.T, store jobs.Jobs, spec policy.Spec) *jobs.Job {
	require.NoError(t, spec.Validate())
	j, _, err := store.Create(context.Background(), &jobs.Job{ID: jobs.NewID(), Spec: spec, Owner: "alice", Department: "a", State: jobs.Queued, CreatedAt: time.Now()}, "")
	require.NoError(t, err)
	return j
}

func review(t *testing.T, store jobs.Jobs, id string) (jobs.Review, map[string]any) {
	j, err := store.Get(context.Background(), id)
	require.NoError(t, err)
	var rv jobs.Review
	require.NoError(t, json.Unmarshal(j.Review, &rv))
	var res map[string]any
	require.NoError(t, json.Unmarshal(rv.Result, &res))
	return rv, res
}

func TestPSIThroughRealNodes(t *testing.T) {
	rows := map[string][]int{
		"a.x": rng(0, 500),   // 0..499
		"b.y": rng(250, 900), // overlap with a: 250..499
		"c.z": rng(400, 450), // overlap with both: 400..449 → 50
	}
	r, store, st, priv := setup(t, rows)
	in := func(ds string) policy.Input { return policy.Input{Dataset: ds, Key: "id_number"} }

	j3 := submit(t, store, policy.Spec{Type: policy.PSICardinality, Purpose: "test", Inputs: []policy.Input{in("a.x"), in("b.y"), in("c.z")}})
	j2 := submit(t, store, policy.Spec{Type: policy.PSICardinality, Purpose: "test", Inputs: []policy.Input{
		{Dataset: "a.x", Key: "id_number", Filter: "district = '天河区'"}, in("b.y")}})
	jm := submit(t, store, policy.Spec{Type: policy.PSIMembers, Purpose: "test", Inputs: []policy.Input{in("a.x"), in("c.z")}})

	st.wait(t, j3.ID, jobs.AwaitingReview)
	_, res := review(t, store, j3.ID)
	require.EqualValues(t, 50, res["count"])

	st.wait(t, j2.ID, jobs.AwaitingReview)
	_, res = review(t, store, j2.ID)
	want := 0
	for i := 250; i < 500; i++ {
		if nodetest.Districts[i%3] == "天河区" {
			want++
		}
	}
	require.EqualValues(t, want, res["count"])

	st.wait(t, jm.ID, jobs.AwaitingReview)
	ct := release(t, r, store, jm.ID)
	ids, err := delivery.Open(priv, jm.ID, ct)
	require.NoError(t, err)
	var wantIDs []string
	for i := 400; i < 450; i++ {
		wantIDs = append(wantIDs, nodetest.ID(i))
	}
	sort.Strings(ids)
	sort.Strings(wantIDs)
	require.Equal(t, wantIDs, ids)

	// Progress was reported and reached its total.
	j, err := store.Get(context.Background(), j3.ID)
	require.NoError(t, err)
	require.Equal(t, j.Progress.Total, j.Progress.Done)
	require.Greater(t, j.Progress.Total, int64(0))
}

func TestSmallIntersectionSuppressed(t *testing.T) {
	rows := map[string][]int{"a.x": rng(0, 100), "b.y": rng(95, 200)} // 5 in common
	_, store, st, _ := setup(t, rows, func(d *policy.Dataset) {
		if d.Name == "b.y" {
			d.MinCount = 10
		}
	})
	j := submit(t, store, policy.Spec{Type: policy.PSICardinality, Purpose: "test", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number"}, {Dataset: "b.y", Key: "id_number"}}})
	st.wait(t, j.ID, jobs.AwaitingReview)
	rv, res := review(t, store, j.ID)
	require.Nil(t, res["count"], "a count below k is suppressed, not rounded")
	require.Equal(t, []string{"count"}, rv.Suppressed)
	require.False(t, check(t, rv, "min_count").Passed)
	require.True(t, check(t, rv, "input_isolation").Passed)
}

// A psi_members intersection below k: the result is suppressed and no list
// is sealed (the requesting node would refuse it anyway).
func TestSmallMembersSuppressed(t *testing.T) {
	rows := map[string][]int{"a.x": rng(0, 100), "b.y": rng(95, 200)} // 5 in common
	r, store, st, _ := setup(t, rows, func(d *policy.Dataset) { d.MinCount = 10 })
	j := submit(t, store, policy.Spec{Type: policy.PSIMembers, Purpose: "test", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number"}, {Dataset: "b.y", Key: "id_number"}}})
	st.wait(t, j.ID, jobs.AwaitingReview)
	rv, res := review(t, store, j.ID)
	require.Nil(t, res["count"])
	require.NotContains(t, res, "sealed_sha256")
	require.Equal(t, []string{"members"}, rv.Suppressed)
	require.False(t, check(t, rv, "psi_members_k").Passed)
	_, err := r.Deliver(context.Background(), mustGet(t, store, j.ID))
	require.ErrorIs(t, err, ErrNotDeliverable)
}

// A conditional dataset: the runner hands the nodes the owner's signed
// consent the job holds; without it the node refuses, and the job fails.
func TestConditionalDatasetNeedsSignedConsent(t *testing.T) {
	rows := map[string][]int{"a.x": rng(0, 100), "b.y": rng(50, 150)}
	_, store, st, _ := setup(t, rows, func(d *policy.Dataset) {
		if d.Name == "b.y" {
			d.Sharing = "conditional"
		}
	})
	spec := policy.Spec{Type: policy.PSICardinality, Purpose: "test", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number"}, {Dataset: "b.y", Key: "id_number"}}}
	// A job waits for the owner's consent; the answer is recorded as the
	// API records it, and moves the job to the queue.
	create := func(sign bool) *jobs.Job {
		ctx := context.Background()
		j, _, err := store.Create(ctx, &jobs.Job{ID: jobs.NewID(), Spec: spec, Owner: "alice", Department: "a", State: jobs.AwaitingConsent, CreatedAt: time.Now()}, "")
		require.NoError(t, err)
		c := &jobs.Consent{Dataset: "b.y", By: nodetest.Owner("b"), Approved: true, At: time.Now()}
		if sign {
			sc := nodetest.Consent(j.ID, &spec, policy.Requester{User: "alice", Department: "a"}, "b.y", time.Now().Add(time.Hour))
			c.Signed = &sc
		}
		_, err = store.Transition(ctx, j.ID, jobs.Change{From: jobs.AwaitingConsent, Attempt: j.Attempt, To: jobs.Queued, Actor: c.By, Role: "data_owner", Consent: c})
		require.NoError(t, err)
		return j
	}
	// The coordinator's record says the owner approved, but holds no
	// signed statement: the node does not take its word.
	unsigned := create(false)
	st.wait(t, unsigned.ID, jobs.Failed)
	require.Contains(t, mustGet(t, store, unsigned.ID).Error, "consent_required")

	signed := create(true)
	st.wait(t, signed.ID, jobs.AwaitingReview)
	_, res := review(t, store, signed.ID)
	require.EqualValues(t, 50, res["count"])
}

func TestNodeRefusalFailsJobPermanently(t *testing.T) {
	rows := map[string][]int{"a.x": rng(0, 50), "b.y": rng(0, 50)}
	_, store, st, _ := setup(t, rows)
	// Filter on a column the node does not declare: the node's own policy
	// refuses it, and the job fails at once (no retry).
	j := submit(t, store, policy.Spec{Type: policy.PSICardinality, Purpose: "test", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number", Filter: "salary > 1"}, {Dataset: "b.y", Key: "id_number"}}})
	st.wait(t, j.ID, jobs.Failed)
	got, err := store.Get(context.Background(), j.ID)
	require.NoError(t, err)
	require.Equal(t, 1, got.Attempt)
	require.Contains(t, got.Error, "salary")
}

func TestUnknownDepartmentFails(t *testing.T) {
	rows := map[string][]int{"a.x": rng(0, 50), "b.y": rng(0, 50)}
	_, store, st, _ := setup(t, rows)
	j := submit(t, store, policy.Spec{Type: policy.PSICardinality, Purpose: "test", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number"}, {Dataset: "zz.y", Key: "id_number"}}})
	st.wait(t, j.ID, jobs.Failed)
	got, _ := store.Get(context.Background(), j.ID)
	require.Contains(t, got.Error, "no node is configured")
}

// A node that stays down: each run fails transiently and the job waits as
// data (retryable, due after a growing backoff, saying what it waits for),
// until the failures reach the attempts and it is dead-lettered. The clock
// is fake: the test moves it to each due time, and waits on the runner's
// signals, not on sleeps.
func TestTransientFailuresBackOffThenDeadLetter(t *testing.T) {
	rows := map[string][]int{"a.x": rng(0, 50), "b.y": rng(0, 50)}
	fed := nodetest.Start(t, rows, nil)
	// b's node is unreachable: a transient failure every attempt.
	clients := map[string]*nodeapi.Client{"a": fed.Clients["a"], "b": nodeapi.NewClient("b", "http://127.0.0.1:1", nodetest.Token)}
	st := &states{ch: map[string]chan jobs.State{}}
	clock := &fakeClock{t: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)}
	store := openStore(t, clock)
	r := &Runner{Store: store, Nodes: clients, Catalog: staticCatalog(fed.Catalog), OnState: st.on, Worker: "t", Clock: clock,
		Retry: Retry{Attempts: 3}, SchedulerPoll: 5 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, 1); close(done) }()
	defer func() { cancel(); <-done }()

	j := submit(t, store, policy.Spec{Type: policy.PSICardinality, Purpose: "test", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number"}, {Dataset: "b.y", Key: "id_number"}}})
	for n, ceiling := range []time.Duration{2 * time.Second, 4 * time.Second} {
		st.wait(t, j.ID, jobs.Retryable)
		got, err := store.Get(ctx, j.ID)
		require.NoError(t, err)
		wait := got.ScheduledAt.Sub(clock.Now())
		require.Equal(t, n+1, got.Failures)
		require.GreaterOrEqual(t, wait, ceiling*3/4, "backoff after failure %d", n+1)
		require.LessOrEqual(t, wait, ceiling, "backoff after failure %d", n+1)
		require.Contains(t, got.Waiting, "node b unreachable (connection refused)")
		require.Contains(t, got.Waiting, fmt.Sprintf("retry %d of 2 at %s", n+1, got.ScheduledAt.Format("15:04:05 UTC")))
		// Not due yet: the scheduler leaves it.
		clock.Advance(wait - time.Millisecond)
		require.Equal(t, jobs.Retryable, mustGet(t, store, j.ID).State)
		clock.Advance(time.Millisecond)
		st.wait(t, j.ID, jobs.Queued)
	}
	st.wait(t, j.ID, jobs.DeadLetter)
	got, err := store.Get(context.Background(), j.ID)
	require.NoError(t, err)
	require.Equal(t, 3, got.Attempt)
	require.Equal(t, 3, got.Failures)
	require.Contains(t, got.Error, "connect")
	require.Empty(t, got.Waiting)
	retries := 0
	for _, e := range got.History {
		if e.State == jobs.Retryable {
			retries++
		}
	}
	require.Equal(t, 2, retries, "a backoff before each retry, none before dead-lettering")
}

func mustGet(t *testing.T, s jobs.Jobs, id string) *jobs.Job {
	t.Helper()
	j, err := s.Get(context.Background(), id)
	require.NoError(t, err)
	return j
}

// The default schedule rides out a node restart of a few minutes: its
// shortest possible total wait before dead-lettering is at least 5 min.
func TestDefaultRetrySchedule(t *testing.T) {
	var p Retry
	p = p.withDefaults()
	require.Equal(t, DefaultAttempts, p.Attempts)
	var ceilings []time.Duration
	var least time.Duration
	for n := 1; n < p.Attempts; n++ { // a wait after every failure but the last
		c := p.Ceiling(n)
		ceilings = append(ceilings, c)
		least += c - c/4
		for range 20 {
			d := p.Delay(n)
			require.GreaterOrEqual(t, d, c-c/4, "failure %d", n)
			require.LessOrEqual(t, d, c, "failure %d", n)
		}
	}
	require.Equal(t, []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second,
		time.Minute, time.Minute, time.Minute, time.Minute, time.Minute, time.Minute}, ceilings)
	require.GreaterOrEqual(t, least, 5*time.Minute)
	custom := Retry{Attempts: 4, BaseDelay: time.Second, MaxDelay: 3 * time.Second}
	require.Equal(t, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, []time.Duration{custom.Ceiling(1), custom.Ceiling(2), custom.Ceiling(3)})
}

func check(t *testing.T, rv jobs.Review, name string) jobs.Check {
	t.Helper()
	for _, c := range rv.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check %q in %+v", name, rv.Checks)
	return jobs.Check{}
}

// A filter that narrows an input below its dataset's k: the node refuses
// to take part (no count about one person reaches the coordinator), and
// the job fails at once, saying below k, not the size.
func TestNarrowFilterRefused(t *testing.T) {
	rows := map[string][]int{"a.x": rng(0, 300), "b.y": rng(0, 300)}
	_, store, st, _ := setup(t, rows, func(d *policy.Dataset) { d.MinCount = 10 })
	// amount = index: "amount < 7" leaves 7 keys at node a, below its k.
	j := submit(t, store, policy.Spec{Type: policy.PSICardinality, Purpose: "test", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number", Filter: "amount < 7"}, {Dataset: "b.y", Key: "id_number"}}})
	st.wait(t, j.ID, jobs.Failed)
	got := mustGet(t, store, j.ID)
	require.Equal(t, 1, got.Attempt, "refused for good, not retried")
	require.Contains(t, got.Error, "input_below_k")
	require.Contains(t, got.Error, "a.x")
	require.NotContains(t, got.Error, "7", "the node says below k, not its size")
	require.Empty(t, got.Review)

	// A filter that keeps k keys runs, and the review says the nodes
	// enforce it.
	j = submit(t, store, policy.Spec{Type: policy.PSICardinality, Purpose: "test", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number", Filter: "amount < 10"}, {Dataset: "b.y", Key: "id_number"}}})
	st.wait(t, j.ID, jobs.AwaitingReview)
	rv, res := review(t, store, j.ID)
	require.EqualValues(t, 10, res["count"])
	c := check(t, rv, "input_isolation")
	require.True(t, c.Passed)
	require.Contains(t, c.Detail, "enforced by the nodes")
}

// release plays the reviewer and the people-facing API for a psi_members
// job: it approves the review's result as it stands, signed with the test
// reviewer's key over the analyst key the result names, and fetches the
// sealed list through Runner.Deliver as the API would.
func release(t *testing.T, r *Runner, store jobs.Jobs, id string) []byte {
	t.Helper()
	j := mustGet(t, store, id)
	var rv jobs.Review
	require.NoError(t, json.Unmarshal(j.Review, &rv))
	var res struct {
		Count     int           `json:"count"`
		Sealed    attest.Digest `json:"sealed_sha256"`
		Recipient attest.Digest `json:"recipient_key_sha256"`
		Members   any           `json:"sealed_members"`
	}
	require.NoError(t, json.Unmarshal(rv.Result, &res))
	require.Nil(t, res.Members, "the coordinator holds no member list before release")
	_, err := r.Deliver(context.Background(), j)
	require.ErrorIs(t, err, ErrNotDeliverable, "no approval, nothing delivered")

	j.Result = rv.Result
	j.Approval = nodetest.Approve(j.ID, &j.Spec, policy.Requester{User: j.Owner, Department: j.Department}, j.Result, res.Recipient, time.Now())
	// An approval of another result is not this result's.
	other := *j
	other.Result = append([]byte(`{"count":1,`), j.Result[1:]...)
	_, err = r.Deliver(context.Background(), &other)
	require.ErrorIs(t, err, ErrNotDeliverable)
	ct, err := r.Deliver(context.Background(), j)
	require.NoError(t, err)
	require.Equal(t, res.Sealed, nodeapi.DigestOf(ct))
	return ct
}

// On shutdown a worker hands its running job back (queued, same attempt
// for the next claim to bump), and holds no lease.
func TestShutdownHandsJobBack(t *testing.T) {
	rows := map[string][]int{"a.x": rng(0, 200), "b.y": rng(0, 200)}
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	fed := nodetest.StartWith(t, rows, nodetest.Options{Wrap: func(dept string, h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if dept == "b" && strings.HasSuffix(r.URL.Path, "/psi/reblind") {
				select {
				case entered <- struct{}{}:
				default:
				}
				select { // hold the step until the test lets go
				case <-release:
				case <-r.Context().Done():
				}
			}
			h.ServeHTTP(w, r)
		})
	}})
	defer close(release)
	st := &states{ch: map[string]chan jobs.State{}}
	store := openStore(t, nil)
	r := &Runner{Store: store, Nodes: fed.Clients, Catalog: staticCatalog(fed.Catalog), OnState: st.on, Worker: "w", ChunkSize: 50}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, 1); close(done) }()

	j := submit(t, store, policy.Spec{Type: policy.PSICardinality, Purpose: "test", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number"}, {Dataset: "b.y", Key: "id_number"}}})
	st.wait(t, j.ID, jobs.Running)
	select {
	case <-entered: // the job is mid-protocol
	case <-time.After(time.Minute):
		t.Fatal("the job never reached its reblind step")
	}
	cancel() // SIGTERM
	<-done
	got, err := store.Get(context.Background(), j.ID)
	require.NoError(t, err)
	require.Equal(t, jobs.Queued, got.State, "handed back, not failed")
	require.Equal(t, 1, got.Attempt)
	require.Contains(t, got.History[len(got.History)-1].Note, "shutting down")
	// Nothing is left claimed: the next worker gets it at once, attempt 2.
	l, err := store.Claim(context.Background(), "next", 0)
	require.NoError(t, err)
	require.Equal(t, j.ID, l.Job.ID)
	require.Equal(t, 2, l.Attempt)
	leases, err := store.Reclaim(context.Background(), "other", 0)
	require.NoError(t, err)
	require.Len(t, leases, 1, "only the new claim is running")
}
