package worker

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/compute/node/nodehttp"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/boltstore"
	"github.com/unseen-data/unseen/policy"
)

// stoppableNode serves a real node (a nodetest node.Server) over real HTTP
// on a fixed loopback address that the test can stop (connections refused)
// and start again, as when a department's node process is restarted.
type stoppableNode struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	srv  *http.Server
	// reblind is signalled on each PSI reblind request (the job is then
	// mid-protocol).
	reblind chan struct{}
}

func newStoppableNode(t *testing.T) *stoppableNode {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	n := &stoppableNode{t: t, addr: l.Addr().String(), reblind: make(chan struct{}, 1)}
	require.NoError(t, l.Close())
	return n
}

func (n *stoppableNode) start(h http.Handler) {
	var l net.Listener
	var err error
	for range 50 { // the port was ours a moment ago; a dying connection may hold it briefly
		if l, err = net.Listen("tcp", n.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.NoError(n.t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/psi/reblind") {
			select {
			case n.reblind <- struct{}{}:
			default:
			}
		}
		h.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
	n.t.Cleanup(func() { srv.Close() })
}

// stop closes the listener and every connection: from now on, connection
// refused.
func (n *stoppableNode) stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	require.NoError(n.t, n.srv.Close())
}

func (n *stoppableNode) url() string { return "http://" + n.addr }

// A node goes down for 60 s in the middle of a PSI job on a coordinator
// with a single worker. The job waits as data — retryable, its status
// saying what it waits for — holding no worker, so a second job runs to
// review meanwhile; once the node is back the job completes with the right
// count. The 60 s pass on a fake clock: the scheduler decides "due" by it,
// and the test moves it to each due time and waits on the runner's
// signals, so nothing sleeps.
func TestNodeDownDuringPSIJob(t *testing.T) {
	rows := map[string][]int{"a.x": rng(0, 400), "b.y": rng(200, 700), "c.z": rng(350, 450)}
	fed := nodetest.Start(t, rows, nil)
	b := newStoppableNode(t)
	b.start(nodehttp.New(fed.Services["b"], nodehttp.Options{}))
	nodes := map[string]*nodeapi.Client{"a": fed.Clients["a"], "c": fed.Clients["c"], "b": nodeapi.NewClient("b", b.url(), nodetest.Token)}

	clock := &fakeClock{t: time.Date(2026, 11, 1, 10, 40, 0, 0, time.UTC)}
	store := openStore(t, clock)
	st := &states{ch: map[string]chan jobs.State{}}
	r := &Runner{Store: store, Nodes: nodes, Catalog: staticCatalog(fed.Catalog), OnState: st.on, Worker: "solo", Clock: clock,
		ChunkSize: 50, SchedulerPoll: 5 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, 1); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	in := func(ds string) policy.Input { return policy.Input{Dataset: ds, Key: "id_number"} }
	j1 := submit(t, store, policy.Spec{Type: policy.PSICardinality, Purpose: "test", Inputs: []policy.Input{in("a.x"), in("b.y")}})
	select {
	case <-b.reblind: // mid-job: b is reblinding a's chunks
	case <-time.After(time.Minute):
		t.Fatal("the job never reached b's reblind step")
	}
	b.stop()
	down := clock.Now()
	st.wait(t, j1.ID, jobs.Retryable)
	got := mustGet(t, store, j1.ID)
	require.Contains(t, got.Waiting, "node b")
	require.Equal(t, 1, got.Failures)

	// The single worker is free: another job (not on b) runs to review
	// while the first waits.
	j2 := submit(t, store, policy.Spec{Type: policy.PSICardinality, Purpose: "test", Inputs: []policy.Input{in("a.x"), in("c.z")}})
	st.wait(t, j2.ID, jobs.AwaitingReview)
	_, res := review(t, store, j2.ID)
	require.EqualValues(t, 50, res["count"])
	require.Equal(t, jobs.Retryable, mustGet(t, store, j1.ID).State, "the waiting job held no worker and was not run meanwhile")
	leases, err := store.Reclaim(context.Background(), "probe", 0)
	require.NoError(t, err)
	require.Empty(t, leases, "a retryable job holds no lease")

	// 60 s of downtime: each due retry fails again, the status says why.
	for clock.Now().Sub(down) < 60*time.Second {
		prev := mustGet(t, store, j1.ID)
		clock.Set(prev.ScheduledAt)
		st.wait(t, j1.ID, jobs.Queued)
		st.wait(t, j1.ID, jobs.Retryable)
		cur := mustGet(t, store, j1.ID)
		require.Equal(t, prev.Failures+1, cur.Failures)
		require.Contains(t, cur.Waiting, "node b unreachable (connection refused); retry ")
		require.Contains(t, cur.Waiting, " of 11 at "+cur.ScheduledAt.Format("15:04:05 UTC"))
		require.True(t, cur.ScheduledAt.After(prev.ScheduledAt))
	}
	failures := mustGet(t, store, j1.ID).Failures
	require.GreaterOrEqual(t, failures, 4, "60 s of downtime spans several retries (2, 4, 8, 16, 32 s …)")
	require.Less(t, failures, DefaultAttempts, "not dead-lettered: the default schedule rides out a minute")

	// The node's process restarts (fresh in-memory state, same files, same
	// address); at the next due time the job completes, correctly.
	b.start(nodehttp.New(fed.Restart(t, "b"), nodehttp.Options{}))
	clock.Set(mustGet(t, store, j1.ID).ScheduledAt)
	st.wait(t, j1.ID, jobs.AwaitingReview)
	_, res = review(t, store, j1.ID)
	require.EqualValues(t, 200, res["count"]) // 200..399
	final := mustGet(t, store, j1.ID)
	require.Equal(t, failures, final.Failures)
	require.Empty(t, final.Waiting)
	require.Equal(t, failures+1, final.Attempt, "one run per failure, and the last one succeeded")
}

// A worker (the whole coordinator process) dies while a job is retryable:
// the job is in the store file, with its due time, and the next process on
// the same file runs it when it is due.
func TestWorkerKilledWhileRetryableKeepsJob(t *testing.T) {
	rows := map[string][]int{"a.x": rng(0, 100), "b.y": rng(60, 160)}
	fed := nodetest.Start(t, rows, nil)
	b := newStoppableNode(t)
	b.start(nodehttp.New(fed.Services["b"], nodehttp.Options{}))
	b.stop() // b is down from the start
	nodes := map[string]*nodeapi.Client{"a": fed.Clients["a"], "b": nodeapi.NewClient("b", b.url(), nodetest.Token)}
	clock := &fakeClock{t: time.Date(2026, 11, 1, 10, 40, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "unseen.db")

	run := func(store *boltstore.Store, st *states) (stop func()) {
		r := &Runner{Store: store, Nodes: nodes, Catalog: staticCatalog(fed.Catalog), OnState: st.on, Worker: "w", Clock: clock, SchedulerPoll: 5 * time.Millisecond}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { r.Run(ctx, 1); close(done) }()
		return func() { cancel(); <-done }
	}
	store, err := boltstore.Open(path, boltstore.Options{Clock: clock})
	require.NoError(t, err)
	st := &states{ch: map[string]chan jobs.State{}}
	stop := run(store, st)
	j := submit(t, store, policy.Spec{Type: policy.PSICardinality, Purpose: "test", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number"}, {Dataset: "b.y", Key: "id_number"}}})
	st.wait(t, j.ID, jobs.Retryable)
	before := mustGet(t, store, j.ID)
	// The process dies: its worker and its scheduler stop, the file is
	// let go (a SIGKILL does the same to the flock).
	stop()
	require.NoError(t, store.Close())

	b.start(nodehttp.New(fed.Restart(t, "b"), nodehttp.Options{}))
	store, err = boltstore.Open(path, boltstore.Options{Clock: clock})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	after := mustGet(t, store, j.ID)
	require.Equal(t, jobs.Retryable, after.State)
	require.True(t, after.ScheduledAt.Equal(before.ScheduledAt))
	require.Equal(t, before.Waiting, after.Waiting)

	st = &states{ch: map[string]chan jobs.State{}}
	stop = run(store, st)
	defer stop()
	clock.Set(after.ScheduledAt)
	st.wait(t, j.ID, jobs.AwaitingReview)
	_, res := review(t, store, j.ID)
	require.EqualValues(t, 40, res["count"]) // 60..99
	require.Equal(t, 1, mustGet(t, store, j.ID).Failures)
}

// WaitingFor names the node and the cause in a few words.
func TestWaitingFor(t *testing.T) {
	c := nodeapi.NewClient("housing", "http://127.0.0.1:1", "t")
	err := c.Health(context.Background())
	require.Error(t, err)
	require.Equal(t, "node housing unreachable (connection refused)", WaitingFor(err))
	require.Equal(t, "node civil answered 503 (unavailable)", WaitingFor(&nodeapi.RemoteError{Department: "civil", Status: 503, Code: "unavailable"}))
	require.Equal(t, "a transient failure: something odd", WaitingFor(errors.New("something odd\nand more")))
}
