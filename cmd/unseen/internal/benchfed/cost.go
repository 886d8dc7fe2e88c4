package benchfed

import (
	"runtime"
	"time"

	"github.com/cloudflare/circl/dh/x25519"
)

// CPUPerMult measures the CPU time one X25519 scalar multiplication costs
// on this machine: count ladders on one goroutine, timed by this process's
// CPU clock (user + system), not the wall clock, so that load elsewhere on
// the machine hardly moves it. The bench calls it while its children are
// idle, with nothing else running in this process.
func CPUPerMult(count int) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var k, u, out x25519.Key
	k[0], u[0] = 1, 9
	start := SelfCPU()
	for range count {
		x25519.Shared(&out, &k, &u)
		u = out
	}
	return (SelfCPU() - start) / time.Duration(count)
}
