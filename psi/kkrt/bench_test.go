package kkrt

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/cloudflare/circl/dh/x25519"
	"github.com/unseen-data/unseen/psi"

	"github.com/unseen-data/unseen/internal/cputime"
)

// x25519CPUPerMult measures the process CPU time of one X25519 scalar
// multiplication (count ladders on GOMAXPROCS goroutines).
func x25519CPUPerMult(count int) (time.Duration, bool) {
	workers := runtime.GOMAXPROCS(0)
	c0, ok := cputime.Process()
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
	return (c1 - c0) / time.Duration(count/workers*workers), ok
}

// BenchmarkRun runs whole two-party sessions in-process (base OTs, OT
// extension, OPRF, coordinator join, all cores) on n items per side, half
// of them common, and reports:
//
//   - elements/s, both sets counted;
//   - limit-ratio: that over the X25519 limit measured in the same run,
//     psi.ScalarMultRate/2 (the commutative-blinding engine needs two
//     scalar multiplications per element for two parties), sampled before
//     and after and the higher kept, so the ratio is conservative;
//   - cpu-ratio: the same comparison in process CPU time (CPU the X25519
//     engine would need at two multiplications per element, over the CPU
//     this run used), which other tenants of a shared machine barely move;
//   - wire-B/element: every message of the session (node to node and to
//     the coordinator), per element.
func BenchmarkRun(b *testing.B) {
	for _, log2n := range []int{12, 16, 18, 20} {
		b.Run(fmt.Sprintf("n=2^%d", log2n), func(b *testing.B) {
			n := 1 << log2n
			rng := rand.New(rand.NewPCG(uint64(n), 7))
			sender, receiver := sets(rng, n, n, n/2)
			const limitCount = 1 << 14
			before := psi.ScalarMultRate(limitCount)
			cpuMult0, cpuOK := x25519CPUPerMult(limitCount)
			var st Stats
			cpu0, _ := cputime.Process()
			b.ResetTimer()
			for range b.N {
				res, err := Run(context.Background(), sender, receiver, benchOpts)
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Matches) != n/2 {
					b.Fatalf("%d matches, want %d", len(res.Matches), n/2)
				}
				st = res.Stats
			}
			b.StopTimer()
			cpu1, _ := cputime.Process()
			after := psi.ScalarMultRate(limitCount)
			cpuMult1, _ := x25519CPUPerMult(limitCount)
			elements := 2 * n * b.N
			limit := max(before, after) / 2
			perSec := float64(elements) / b.Elapsed().Seconds()
			b.ReportMetric(perSec, "elements/s")
			b.ReportMetric(limit, "limit-elements/s")
			b.ReportMetric(perSec/limit, "limit-ratio")
			if cpuOK && cpu1 > cpu0 {
				ideal := time.Duration(2*elements) * min(cpuMult0, cpuMult1)
				b.ReportMetric(float64(ideal)/float64(cpu1-cpu0), "cpu-ratio")
			}
			b.ReportMetric(float64(st.NodeBytes+st.CoordinatorBytes)/float64(2*n), "wire-B/element")
		})
	}
}

// BenchmarkBaseOTs is the fixed cost of a session: 128 simot instances
// over Ristretto255 and the IKNP step to 512 OTs, three flows, all cores.
func BenchmarkBaseOTs(b *testing.B) {
	params := Params{ReceiverSize: 1, SenderSize: 1}
	for b.Loop() {
		r, _ := NewReceiver(params, testKey(1))
		s, _ := NewSender(params, testKey(1))
		setup, err := s.Setup()
		if err != nil {
			b.Fatal(err)
		}
		reply, err := r.Reply(setup)
		if err != nil {
			b.Fatal(err)
		}
		seeds, err := s.Seeds(reply)
		if err != nil {
			b.Fatal(err)
		}
		if err := r.Finish(seeds); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkColsToRows(b *testing.B) {
	n := 1 << 14
	cols := make([]byte, CodeBits*n/8)
	rows := make([]byte, n*CodeBytes)
	b.SetBytes(int64(len(cols)))
	for b.Loop() {
		colsToRows(rows, cols, n)
	}
}

func BenchmarkTranspose64(b *testing.B) {
	var a [64]uint64
	for i := range a {
		a[i] = uint64(i) * 0x9e3779b97f4a7c15
	}
	b.SetBytes(512)
	for b.Loop() {
		transpose64(&a)
	}
}

func BenchmarkJoin(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 1 << 18
	ro := &ReceiverOutputs{Parts: 1}
	sv := &SenderValues{Parts: 1}
	for i := range n {
		ro.Positions = append(ro.Positions, uint64(i))
		ro.Values = append(ro.Values, randValue(rng))
		var v [3][ValueSize]byte
		for k := range v {
			v[k] = randValue(rng)
		}
		if i%2 == 0 {
			v[0] = ro.Values[i]
		}
		sort3(&v)
		sv.Positions = append(sv.Positions, uint64(i))
		sv.Values = append(sv.Values, v)
	}
	for b.Loop() {
		if _, err := Join([]*ReceiverOutputs{ro}, []*SenderValues{sv}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*4*n), "ns/entry")
}

// benchOpts is nil (the defaults); change it locally to compare settings.
var benchOpts *Options
