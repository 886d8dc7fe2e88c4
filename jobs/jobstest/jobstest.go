// Package jobstest is the conformance suite every jobs.Store backend runs
// (boltstore and redisstore), plus the fake clock and polling helper it
// uses. Run is the one entry point; the tests are grouped by concern, one
// file each: jobs.go (records), transitions.go (the state machine),
// queue.go (queue and leases), retries.go, counters.go, blobs.go (shared
// versioned values), checkpoints.go (fenced per-attempt chunks), audit.go (audit
// atomicity), idempotency.go, concurrency.go and durability.go.
//
//	func TestConformance(t *testing.T) {
//		jobstest.Run(t, jobstest.Harness{New: …, Reopen: …, BreakAudit: …})
//	}
//
// Lease expiry: a backend that ages leases by the injected clock is driven
// by FakeClock.Advance, deterministically. Redis ages leases by its own
// server time (stream idle times), which no injected clock can move, so for
// a Harness with RealTimeLeases the suite uses a short minIdle
// (RealTimeMinIdle) and polls Reclaim with a deadline until real time has
// passed it, instead of sleeping a guessed amount. Retry due times are the
// injected clock's on every backend.
package jobstest

import (
	"sync"
	"testing"
	"time"

	"github.com/unseen-data/unseen/jobs"
)

// Harness describes a backend to the suite.
type Harness struct {
	// New returns a fresh, empty store (and arranges its cleanup with t).
	// The store stamps jobs and audit entries with clock, decides with it
	// when retries are due and, unless RealTimeLeases, measures lease ages
	// and counter windows with it too. It keeps its own audit chain.
	New func(t *testing.T, clock jobs.Clock) jobs.Store
	// Reopen returns a store over the same data as s, which the suite has
	// closed (a process restart).
	Reopen func(t *testing.T, s jobs.Store, clock jobs.Clock) jobs.Store
	// BreakAudit makes s's audit appends fail until repair is called.
	BreakAudit func(t *testing.T, s jobs.Store) (repair func())
	// RealTimeLeases says lease ages and counter windows are real time
	// measured by the backend (Redis), not the injected clock.
	RealTimeLeases bool
	// ClaimWaiting, if set, reports whether a Claim is blocked in s, so the
	// blocking test enqueues only once a Claim really waits.
	ClaimWaiting func(s jobs.Store) bool
}

// RealTimeMinIdle is the lease idle time the suite uses with
// RealTimeLeases: long enough that a heartbeat every poll keeps a lease
// alive on a loaded machine, short enough to keep the suite fast.
const RealTimeMinIdle = 200 * time.Millisecond

// FakeClock is a jobs.Clock that moves only when told to.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewFakeClock returns a clock reading start.
func NewFakeClock(start time.Time) *FakeClock { return &FakeClock{now: start} }

// Now implements jobs.Clock.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Advance moves the clock forward by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Eventually calls cond every interval until it returns true, failing t if
// that has not happened within timeout. It is for conditions that depend
// on time passing elsewhere (Redis idle times), not for synchronising with
// goroutines of the test itself (use channels for that).
func Eventually(t testing.TB, timeout, interval time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(interval)
	}
}
