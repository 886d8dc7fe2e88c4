package parallel

import (
	"errors"
	"sync/atomic"
	"testing"
)

func TestDo(t *testing.T) {
	var running, peak, done atomic.Int64
	err := Do(50, 3, func(i int) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		running.Add(-1)
		done.Add(1)
		return nil
	})
	if err != nil || done.Load() != 50 || peak.Load() > 3 {
		t.Fatalf("err %v, done %d, peak %d", err, done.Load(), peak.Load())
	}
	bad := errors.New("bad")
	if err := Do(5, 0, func(i int) error {
		if i == 3 {
			return bad
		}
		return nil
	}); !errors.Is(err, bad) {
		t.Fatalf("error lost: %v", err)
	}
}
