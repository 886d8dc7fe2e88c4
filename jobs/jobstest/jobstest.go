// Package jobstest is the conformance suite every jobs.Store backend runs
// (memstore and redisstore), plus the fake clock and polling helper it uses.
//
//	func TestConformance(t *testing.T) {
//		jobstest.Run(t, jobstest.Harness{New: func(t *testing.T, log audit.Log, clock jobs.Clock) jobs.Store { … }})
//	}
//
// Lease expiry: a backend that ages leases by the injected clock is driven
// by FakeClock.Advance, deterministically. Redis ages leases by its own
// server time (stream idle times), which no injected clock can move, so for
// a Harness with RealTimeLeases the suite uses a short minIdle
// (RealTimeMinIdle) and polls Reclaim with a deadline until real time has
// passed it, instead of sleeping a guessed amount.
package jobstest

import (
	"sync"
	"testing"
	"time"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
)

// Harness describes a backend to the suite.
type Harness struct {
	// New returns a fresh, empty store (and arranges its cleanup with t).
	// The store stamps jobs and audit entries with clock and, unless
	// RealTimeLeases, measures lease ages with it too. If log is non-nil the
	// store must write its audit chain there (the suite passes a MemLog it
	// can make fail); backends that keep their own chain set OwnAudit and
	// get nil.
	New func(t *testing.T, log audit.Log, clock jobs.Clock) jobs.Store
	// OwnAudit says the backend keeps its audit chain itself (Redis).
	OwnAudit bool
	// RealTimeLeases says lease ages are real time measured by the backend
	// (Redis), not the injected clock.
	RealTimeLeases bool
	// BreakAudit makes s's audit appends fail until repair is called. The
	// suite needs it only for OwnAudit backends (for the others it makes
	// its own MemLog fail); without it the fail-closed test is skipped.
	BreakAudit func(t *testing.T, s jobs.Store) (repair func())
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
