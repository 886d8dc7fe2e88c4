package hefed

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/psi"
)

// BenchmarkIntersectionStatsOverhead measures what the homomorphic part of
// an intersection_stats job costs on top of its PSI: the same inputs (n
// keys at each of two real HTTP nodes, half in common), run once as bare
// PSI and once as PSI + encryption of the value column + mask + zero-sum
// masks + threshold release (2 of 3). It reports overhead-ratio = stats
// time / bare PSI time (goal ≤ 1.05), both measured in the same run.
func BenchmarkIntersectionStatsOverhead(b *testing.B) {
	for _, n := range []int{1 << 14, 1 << 16, 1 << 18} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			rows := map[string][]int{"a.pay": rng(0, n), "b.pay": rng(n/2, n+n/2), "c.pay": rng(0, 10)}
			f := nodetest.Start(b, rows, nil)
			c, err := Open(context.Background(), Options{Blobs: testStore(b), Key: testStateKey(b), Nodes: f.Clients})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Init(context.Background(), 2); err != nil {
				b.Fatal(err)
			}
			spec := policy.Spec{Type: policy.IntersectionStats, Purpose: "benchmark",
				Inputs: []policy.Input{{Dataset: "a.pay", Key: "id_number"}, {Dataset: "b.pay", Key: "id_number"}},
				Value:  &policy.ColumnRef{Dataset: "a.pay", Column: "amount"}, Stats: []string{"count", "sum", "mean"}}
			req := policy.Requester{User: "alice", Department: "a"}
			psiOnly := func(ctx context.Context, id string) (*nodeapi.Party, []int, error) {
				parties := make([]psi.Party, 2)
				for i, in := range spec.Inputs {
					cl := f.Clients[policy.Department(in.Dataset)]
					h := nodeapi.Header{Job: id, SpecHash: spec.Hash(), Attempt: 1, Party: i}
					resp, err := cl.Prepare(ctx, &nodeapi.PrepareRequest{Header: h, Spec: spec, Requester: req, Input: i, Parties: 2})
					if err != nil {
						return nil, nil, err
					}
					parties[i] = &nodeapi.Party{Client: cl, Header: h, N: resp.Len}
				}
				res, err := psi.Run(ctx, parties, 0, 4096, nil)
				if err != nil {
					return nil, nil, err
				}
				return parties[0].(*nodeapi.Party), res.Positions, nil
			}
			var bare, stats time.Duration
			b.ResetTimer()
			runBare := func(ctx context.Context) {
				t0 := time.Now()
				if _, _, err := psiOnly(ctx, jobs.NewID()); err != nil {
					b.Fatal(err)
				}
				bare += time.Since(t0)
			}
			runStats := func(ctx context.Context) {
				id := jobs.NewID()
				t1 := time.Now()
				vp, pos, err := psiOnly(ctx, id)
				if err != nil {
					b.Fatal(err)
				}
				st, err := c.IntersectionStats(ctx, JobRef{ID: id, Attempt: 1, Spec: spec, Requester: req}, vp, pos)
				if err != nil {
					b.Fatal(err)
				}
				stats += time.Since(t1)
				if st.Count != int64(n/2) {
					b.Fatalf("count %d, want %d", st.Count, n/2)
				}
			}
			for i := 0; i < b.N; i++ {
				// Alternate the order so drift in the machine's load falls
				// on both sides alike.
				ctx := context.Background()
				if i%2 == 0 {
					runBare(ctx)
					runStats(ctx)
				} else {
					runStats(ctx)
					runBare(ctx)
				}
			}
			b.ReportMetric(bare.Seconds()/float64(b.N), "psi-s/op")
			b.ReportMetric(stats.Seconds()/float64(b.N), "stats-s/op")
			b.ReportMetric(stats.Seconds()/bare.Seconds(), "overhead-ratio")
		})
	}
}
