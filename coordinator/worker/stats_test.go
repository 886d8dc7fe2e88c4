package worker

import (
	"encoding/json"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/policy"
)

func TestExactMoments(t *testing.T) {
	// 1, 2, 4: mean 7/3, variance (1+4+16)/3 − 49/9 = 63/9 − 49/9 = 14/9.
	b := big.NewInt
	require.Equal(t, "7/3", ExactMean(3, b(7)).RatString())
	require.Equal(t, "14/9", ExactVariance(3, b(7), b(21)).RatString())
	require.Equal(t, "0", ExactVariance(2, b(10), b(50)).RatString())
	// Past 2^63: 10^8 rows of 2^40 (Σx = 10^8·2^40, Σx² = 10^8·2^80), all
	// equal, so the variance is exactly 0 and the mean 2^40.
	n := int64(100_000_000)
	sum := new(big.Int).Lsh(b(n), 40)
	sumSq := new(big.Int).Lsh(b(n), 80)
	require.Equal(t, "1099511627776", ExactMean(n, sum).RatString())
	require.Equal(t, "0", ExactVariance(n, sum, sumSq).RatString())
	m := moments{Count: n, Sum: sum, SumSq: sumSq}
	r, err := render(&policy.Spec{Stats: []string{"sum"}}, m, 10, "", new([]string))
	require.NoError(t, err)
	js, err := json.Marshal(r)
	require.NoError(t, err)
	require.JSONEq(t, `{"sum":109951162777600000000}`, string(js), "the sum is an exact JSON number")
}

func TestStatsReviewSuppression(t *testing.T) {
	sq := big.NewInt
	spec := &policy.Spec{Stats: []string{"count", "sum", "mean", "variance"}}
	groups := map[string]moments{
		"天河区": {Count: 12, Sum: sq(120), SumSq: sq(1300)},
		"越秀区": {Count: 3, Sum: sq(30), SumSq: sq(300)},
		"海珠区": {Count: 0},
	}
	rv, err := statsReview(spec, moments{Count: 15, Sum: sq(150), SumSq: sq(1600)}, groups, 10)
	require.NoError(t, err)
	// 越秀区 is below k; 天河区 is hidden too, or total − 天河区 would give it.
	require.Equal(t, []string{"groups.天河区", "groups.越秀区"}, rv.Suppressed)
	require.False(t, rv.Checks[0].Passed)
	var res StatsResult
	require.NoError(t, json.Unmarshal(rv.Result, &res))
	require.EqualValues(t, 15, *res.Count)
	require.Equal(t, "10", res.MeanExact)
	require.Equal(t, "20/3", res.VarianceExact) // 1600/15 − 100
	require.Nil(t, res.Groups["越秀区"].Count, "a small group is suppressed, not rounded")
	require.NotEmpty(t, res.Groups["越秀区"].Suppressed)
	require.NotContains(t, res.Groups, "海珠区")
	require.Nil(t, res.Groups["天河区"].Count)
	require.Contains(t, res.Groups["天河区"].Suppressed, "derived from the total")

	// Everything below k: nothing but the suppression note.
	rv, err = statsReview(spec, moments{Count: 5, Sum: sq(50)}, nil, 10)
	require.NoError(t, err)
	require.Equal(t, []string{"all"}, rv.Suppressed)
	require.NotContains(t, string(rv.Result), "50")
}

func TestHiddenBuckets(t *testing.T) {
	require.Equal(t, []bool{false, false, false}, hiddenBuckets([]int64{0, 12, 30}, 10), "empty buckets say nothing")
	require.Equal(t, []bool{true, true, false}, hiddenBuckets([]int64{3, 12, 30}, 10), "one small bucket takes the next smallest with it")
	require.Equal(t, []bool{true, false, true, false}, hiddenBuckets([]int64{3, 40, 5, 30}, 10))
}
