package kkrt

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/unseen-data/unseen/psi"
)

// BenchmarkRun runs whole two-party sessions in-process (base OTs, OT
// extension, OPRF, coordinator join, all cores) on n items per side, half
// of them common, and reports elements/s (both sets counted) against the
// X25519 limit measured in the same run: psi.ScalarMultRate/2, the best
// the commutative-blinding engine could do on this machine, sampled before
// and after and the higher kept (so the ratio is conservative).
func BenchmarkRun(b *testing.B) {
	for _, log2n := range []int{16, 18, 20} {
		b.Run(fmt.Sprintf("n=2^%d", log2n), func(b *testing.B) {
			n := 1 << log2n
			rng := rand.New(rand.NewPCG(uint64(n), 7))
			sender, receiver := sets(rng, n, n, n/2)
			const limitCount = 1 << 14
			before := psi.ScalarMultRate(limitCount)
			var st Stats
			b.ResetTimer()
			for range b.N {
				res, err := Run(context.Background(), sender, receiver, nil)
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Matches) != n/2 {
					b.Fatalf("%d matches, want %d", len(res.Matches), n/2)
				}
				st = res.Stats
			}
			b.StopTimer()
			after := psi.ScalarMultRate(limitCount)
			limit := max(before, after) / 2
			perSec := float64(2*n*b.N) / b.Elapsed().Seconds()
			b.ReportMetric(perSec, "elements/s")
			b.ReportMetric(limit, "limit-elements/s")
			b.ReportMetric(perSec/limit, "limit-ratio")
			b.ReportMetric(float64(st.NodeBytes+st.CoordinatorBytes)/float64(2*n), "wire-B/element")
		})
	}
}
