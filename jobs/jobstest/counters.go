package jobstest

// Counters: privacy budgets and rate-limit windows.

import (
	"sync"
	"time"
)

// testSpend: counters never pass their limit, even under concurrency;
// refunds work; a ttl expires a window (fake clock for boltstore, real time
// for Redis).
func testSpend(e *env) {
	t := e.t
	key := "budget:alice:hrss.x"
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range 25 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := e.s.Spend(e.ctx, key, 3, 50, 0)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				granted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if granted != 16 { // 16 × 3 = 48 ≤ 50 < 51
		t.Fatalf("%d spends of 3 granted under a limit of 50, want 16", granted)
	}
	total, ok, err := e.s.Spend(e.ctx, key, 2, 50, 0)
	if err != nil || !ok || total != 50 {
		t.Fatalf("spending the last 2: %d %v %v", total, ok, err)
	}
	if total, ok, _ := e.s.Spend(e.ctx, key, 1, 50, 0); ok || total != 50 {
		t.Fatalf("over the limit: %d %v", total, ok)
	}
	if total, ok, _ := e.s.Spend(e.ctx, key, -3, 50, 0); !ok || total != 47 {
		t.Fatalf("refund: %d %v", total, ok)
	}
	for range 2 { // amount 0 reads, and changes nothing
		if total, ok, err := e.s.Spend(e.ctx, key, 0, 50, 0); !ok || total != 47 || err != nil {
			t.Fatalf("read: %d %v %v", total, ok, err)
		}
	}
	// A rate window expires.
	win := "rate:alice:w"
	ttl := time.Hour
	if e.h.RealTimeLeases {
		ttl = 150 * time.Millisecond
	}
	if _, ok, _ := e.s.Spend(e.ctx, win, 1, 1, ttl); !ok {
		t.Fatal("first in window refused")
	}
	if _, ok, _ := e.s.Spend(e.ctx, win, 1, 1, ttl); ok {
		t.Fatal("second in window granted")
	}
	if e.h.RealTimeLeases {
		Eventually(t, 5*time.Second, 20*time.Millisecond, func() bool {
			_, ok, _ := e.s.Spend(e.ctx, win, 1, 1, ttl)
			return ok
		}, "the rate window to expire")
	} else {
		e.clock.Advance(ttl)
		if _, ok, _ := e.s.Spend(e.ctx, win, 1, 1, ttl); !ok {
			t.Fatal("window did not expire")
		}
	}
}
