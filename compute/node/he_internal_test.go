package node

import (
	"math"
	"testing"
)

func TestIsqrt(t *testing.T) {
	for _, n := range []int64{0, 1, 2, 3, 4, 15, 16, 17, 1 << 40, 1<<58 - 1, 1 << 58, math.MaxInt64 / 4} {
		r := isqrt(n)
		if r*r > n || (r+1)*(r+1) <= n {
			t.Fatalf("isqrt(%d) = %d", n, r)
		}
	}
}
