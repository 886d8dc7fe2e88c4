package disclosure

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/unseen-data/unseen/policy"
)

// largeInput is a job with g groups of b buckets whose cells are drawn
// around k (a quarter of them below it), the largest shape one Sums
// ciphertext carries being g·(2+b) ≤ 8192.
func largeInput(g, b int) (*policy.Spec, StatsInput) {
	r := rand.New(rand.NewPCG(uint64(g), uint64(b)))
	bins := make([]int64, b-1)
	for i := range bins {
		bins[i] = int64(10 * (i + 1))
	}
	spec := histSpec(bins, true)
	in := StatsInput{Total: Moments{Hist: make([]int64, b)}, Groups: map[string]Moments{}}
	for i := range g {
		m := Moments{Hist: make([]int64, b)}
		for j := range b {
			m.Hist[j] = 1 + r.Int64N(40)
			m.Count += m.Hist[j]
			in.Total.Hist[j] += m.Hist[j]
		}
		in.Total.Count += m.Count
		in.Groups[fmt.Sprintf("g%04d", i)] = m
	}
	return spec, in
}

// BenchmarkReviewLarge reports the review of the largest table as a ratio
// to encoding its result as JSON, measured in the same run.
func BenchmarkReviewLarge(b *testing.B) {
	for _, shape := range [][2]int{{200, 5}, {1000, 6}, {2700, 1}} {
		g, bk := shape[0], shape[1]+1
		spec, in := largeInput(g, bk)
		plan := mustPlan(b, spec, testCatalog(nil, 10), nil)
		b.Run(fmt.Sprintf("review-%dx%d", g, bk), func(b *testing.B) {
			for range b.N {
				if _, err := ReviewStats(spec, plan, in, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		rel, _ := ReviewStats(spec, plan, in, nil)
		var res StatsResult
		_ = json.Unmarshal(rel.Result, &res)
		b.Run(fmt.Sprintf("json-%dx%d", g, bk), func(b *testing.B) {
			for range b.N {
				_, _ = json.Marshal(res)
			}
		})
	}
}
