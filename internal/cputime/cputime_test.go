//go:build unix

package cputime

import "testing"

// Spinning on one goroutine must show up as CPU time.
func TestProcessAdvancesWithWork(t *testing.T) {
	c0, ok := Process()
	if !ok {
		t.Fatal("no CPU time on a unix system")
	}
	x := uint64(1)
	for {
		for range 1 << 20 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		if c1, _ := Process(); c1 > c0 {
			break
		}
	}
	_ = x
}
