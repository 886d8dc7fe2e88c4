package jobstest

import "testing"

type test struct {
	name string
	fn   func(e *env)
}

// suite is every conformance test, grouped by concern (one file each).
var suite = []struct {
	group string
	tests []test
}{
	{"Jobs", []test{
		{"CreateGetList", testCreateGetList},
		{"CreateRejects", testCreateRejects},
		{"ReturnsCopies", testReturnsCopies},
		{"ConsentsRecorded", testConsents},
		{"Progress", testProgress},
		{"ErrorStoredOnce", testErrorStoredOnce},
		{"SignedStatementsKept", testSignedStatementsKept},
	}},
	{"Transitions", []test{
		{"Matrix", testTransitionMatrix},
		{"CompareAndSet", testCompareAndSet},
		{"RacingApprovals", testRacingApprovals},
	}},
	{"Queue", []test{
		{"ClaimFIFO", testClaimFIFO},
		{"ClaimBlocksUntilEnqueued", testClaimBlocks},
		{"ClaimTimesOut", testClaimTimesOut},
		{"CancelledNeverHandedOut", testCancelledNeverHandedOut},
		{"RequeueAndClaimAgain", testRequeue},
		{"HeartbeatKeepsLease", testHeartbeat},
		{"ReclaimFencesStaleLease", testReclaim},
	}},
	{"Retries", []test{
		{"RetryableHoldsNoLease", testRetryableHoldsNoLease},
		{"PromoteWhenDue", testPromoteWhenDue},
		{"FailuresCounted", testFailuresCounted},
		{"CancelWhileWaiting", testCancelRetryable},
		{"ConcurrentPromoters", testConcurrentPromoters},
	}},
	{"Counters", []test{
		{"SpendWithinLimit", testSpend},
	}},
	{"Blobs", []test{
		{"VersionedValues", testBlobs},
		{"RacingWriters", testBlobRace},
	}},
	{"Audit", []test{
		{"AppendSharesChain", testAuditAppend},
		{"FailClosed", testFailClosed},
	}},
	{"Idempotency", []test{
		{"IdempotentCreate", testIdempotentCreate},
	}},
	{"Concurrency", []test{
		{"ConcurrentChangesOneChain", testConcurrentChanges},
	}},
	{"Checkpoints", []test{
		{"Fenced", testCheckpointsFenced},
		{"StaleSaverRacingReclaim", testCheckpointsRace},
		{"Reopened", testCheckpointsReopened},
		{"DroppedWhenJobCannotRunAgain", testCheckpointsDropped},
	}},
	{"Durability", []test{
		{"Closed", testClosed},
		{"Reopened", testReopened},
	}},
}

// Run runs the conformance suite against the backend h describes. Every
// test gets a fresh store and ends by verifying the audit chain and that it
// holds exactly one entry per successful state change.
func Run(t *testing.T, h Harness) {
	if h.New == nil || h.Reopen == nil || h.BreakAudit == nil {
		t.Fatal("jobstest: Harness.New, Reopen and BreakAudit are required")
	}
	for _, g := range suite {
		t.Run(g.group, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					e := h.setup(t)
					tc.fn(e)
					if !t.Failed() && !t.Skipped() {
						e.checkAudit()
					}
				})
			}
		})
	}
}
