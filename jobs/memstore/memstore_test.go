package memstore

import (
	"testing"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/jobstest"
)

func TestConformance(t *testing.T) {
	jobstest.Run(t, jobstest.Harness{
		New: func(t *testing.T, log audit.Log, clock jobs.Clock) jobs.Store {
			s := New(log, clock)
			t.Cleanup(func() { s.Close() })
			return s
		},
		ClaimWaiting: func(s jobs.Store) bool { return s.(*Store).waitingClaims() > 0 },
	})
}

// A FileLog-backed store keeps working across the log's fsyncs, and the
// file's chain verifies on reopening: the coordinator's embedded setup.
func TestFileLog(t *testing.T) {
	path := t.TempDir() + "/audit.log"
	log, err := audit.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := New(log, nil)
	ctx := t.Context()
	j, _, err := s.Create(ctx, &jobs.Job{Owner: "alice", State: jobs.Queued}, "")
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Claim(ctx, "w1", 0)
	if err != nil || l == nil || l.Job.ID != j.ID {
		t.Fatalf("Claim = %v, %v", l, err)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	// A closed log refuses appends: the store refuses the transition.
	if _, err := s.Transition(ctx, j.ID, jobs.Change{From: jobs.Running, Attempt: 1, To: jobs.Failed, Actor: "w1"}); err == nil {
		t.Fatal("transition succeeded with the audit log closed")
	}
	if got, _ := s.Get(ctx, j.ID); got.State != jobs.Running {
		t.Fatalf("job is %s after a refused transition", got.State)
	}
	entries, err := audit.ReadFile(path)
	if err != nil || len(entries) != 2 || audit.Verify(entries) != nil {
		t.Fatalf("file chain: %d entries, %v, verify %v", len(entries), err, audit.Verify(entries))
	}
}
