package worker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudflare/circl/dh/x25519"

	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/boltstore"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/psi"

	"github.com/unseen-data/unseen/internal/cputime"
)

// countingDialer counts every byte the coordinator's connections to the
// nodes carry, both directions (HTTP headers included).
type countingDialer struct{ n atomic.Int64 }

func (d *countingDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c, n: &d.n}, nil
}

type countedConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countedConn) Read(b []byte) (int, error) {
	k, err := c.Conn.Read(b)
	c.n.Add(int64(k))
	return k, err
}

func (c *countedConn) Write(b []byte) (int, error) {
	k, err := c.Conn.Write(b)
	c.n.Add(int64(k))
	return k, err
}

// x25519CPUPerMult measures the process CPU time of one X25519 scalar
// multiplication (count ladders on GOMAXPROCS goroutines).
func x25519CPUPerMult(count int) time.Duration {
	workers := runtime.GOMAXPROCS(0)
	c0, _ := cputime.Process()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var k, u, out x25519.Key
			k[0], u[0] = byte(w+1), 9
			for range count / workers {
				x25519.Shared(&out, &k, &u)
				u = out
			}
		})
	}
	wg.Wait()
	c1, _ := cputime.Process()
	return (c1 - c0) / time.Duration(count/workers*workers)
}

// BenchmarkPSIProtocol runs psi_cardinality jobs end to end — real node
// servers on loopback (nodetest: CSV files, HTTP, signed steps, audit
// logs), the runner's prepare, relay and join — on two lists of n keys,
// half of them common, once per protocol, and reports:
//
//   - elements/s, both lists counted, prepare included;
//   - limit-ratio: that over the X25519 limit measured in the same run
//     (psi.ScalarMultRate/2: the ECDH protocol needs at least two scalar
//     multiplications per element for two parties), before and after, the
//     higher kept;
//   - cpu-ratio: the same in process CPU time (X25519 CPU for two
//     multiplications per element, over the CPU the job used), which other
//     tenants of a shared machine barely move;
//   - wire-B/element: every byte of the coordinator's connections to the
//     nodes, both directions, per element.
//
// The small sizes show where the OT protocol's fixed cost is paid back
// (policy.AutoOTMinElements); run e.g. -bench 'PSIProtocol/n=2\^20/'
// for the large one alone.
func BenchmarkPSIProtocol(b *testing.B) {
	for _, log2n := range []int{7, 9, 11, 13, 16, 18, 20} {
		n := 1 << log2n
		b.Run(fmt.Sprintf("n=2^%d", log2n), func(b *testing.B) {
			// A parent benchmark runs once: its federation serves both.
			fed := nodetest.Start(b, map[string][]int{"a.x": rng(0, n), "b.y": rng(n/2, n+n/2)}, nil)
			for _, proto := range []string{policy.PSIProtocolECDH, policy.PSIProtocolOT} {
				b.Run(proto, func(b *testing.B) { benchProtocol(b, fed, proto, n) })
			}
		})
	}
}

func benchProtocol(b *testing.B, fed *nodetest.Federation, proto string, n int) {
	dialer := &countingDialer{}
	for _, c := range fed.Clients {
		c.HTTP = &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{DialContext: dialer.dial, MaxIdleConnsPerHost: 16}}
	}
	st := &states{ch: map[string]chan jobs.State{}}
	store := openStoreB(b)
	r := &Runner{Store: store, Nodes: fed.Clients, Catalog: staticCatalog(fed.Catalog), OnState: st.on, Worker: "bench", Logger: quietLogger()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, 1); close(done) }()
	defer func() { cancel(); <-done }()

	const limitCount = 1 << 14
	before := psi.ScalarMultRate(limitCount)
	cpuMult := x25519CPUPerMult(limitCount)
	cpu0, _ := cputime.Process()
	b.ResetTimer()
	for range b.N {
		spec := psiSpec(policy.PSICardinality, proto, "a.x", "b.y")
		j, _, err := store.Create(context.Background(), &jobs.Job{ID: jobs.NewID(), Spec: spec, Owner: "alice", Department: "a", State: jobs.Queued, CreatedAt: time.Now()}, "")
		if err != nil {
			b.Fatal(err)
		}
		st.waitB(b, j.ID, jobs.AwaitingReview)
	}
	b.StopTimer()
	cpu1, _ := cputime.Process()
	after := psi.ScalarMultRate(limitCount)
	cpuMult = min(cpuMult, x25519CPUPerMult(limitCount))
	elements := float64(2 * n * b.N)
	perSec := elements / b.Elapsed().Seconds()
	b.ReportMetric(perSec, "elements/s")
	b.ReportMetric(perSec/(max(before, after)/2), "limit-ratio")
	if cpu1 > cpu0 {
		b.ReportMetric(float64(2*cpuMult)*elements/float64(cpu1-cpu0), "cpu-ratio")
	}
	b.ReportMetric(float64(dialer.n.Load())/elements, "wire-B/element")
}

func openStoreB(b *testing.B) *boltstore.Store {
	s, err := boltstore.Open(filepath.Join(b.TempDir(), "unseen.db"), boltstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// waitB is states.wait for a benchmark.
func (s *states) waitB(b *testing.B, id string, want jobs.State) {
	s.mu.Lock()
	c, ok := s.ch[id]
	if !ok {
		c = make(chan jobs.State, 16)
		s.ch[id] = c
	}
	s.mu.Unlock()
	for st := range c {
		if st == want {
			return
		}
		if st.Final() || st == jobs.Retryable {
			b.Fatalf("job %s went %s", id, st)
		}
	}
}
