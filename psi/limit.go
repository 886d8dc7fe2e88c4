package psi

import (
	"runtime"
	"sync"
	"time"

	"github.com/cloudflare/circl/dh/x25519"
)

// ScalarMultRate measures this machine's X25519 scalar multiplications per
// second on all cores (GOMAXPROCS goroutines, count ladders in all). It is
// the primitive limit PSI throughput is reported against: each list entry
// of an N-party job costs N multiplications, so no implementation can beat
// ScalarMultRate/N entries per second.
func ScalarMultRate(count int) float64 {
	workers := runtime.GOMAXPROCS(0)
	if count < workers {
		count = workers
	}
	per := count / workers
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var k, u, out x25519.Key
			k[0], u[0] = byte(w+1), 9
			for range per {
				x25519.Shared(&out, &k, &u)
				u = out
			}
		})
	}
	wg.Wait()
	return float64(per*workers) / time.Since(start).Seconds()
}
