package boltstore

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/jobstest"
)

func open(t *testing.T, path string, clock jobs.Clock) *Store {
	t.Helper()
	s, err := Open(path, Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	jobstest.Run(t, jobstest.Harness{
		New: func(t *testing.T, clock jobs.Clock) jobs.Store {
			return open(t, filepath.Join(t.TempDir(), "unseen.db"), clock)
		},
		Reopen: func(t *testing.T, s jobs.Store, clock jobs.Clock) jobs.Store {
			return open(t, s.(*Store).Path(), clock)
		},
		BreakAudit:   breakAudit,
		ClaimWaiting: func(s jobs.Store) bool { return s.(*Store).waitingClaims() > 0 },
	})
}

// breakAudit makes the recorded head disagree with the chain's last entry,
// as if entries had been cut off: every append then refuses (audit.ErrBroken)
// and rolls back the change it was for.
func breakAudit(t *testing.T, js jobs.Store) func() {
	s := js.(*Store)
	var saved []byte
	err := s.db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bMeta)
		saved = append([]byte(nil), m.Get(kAuditHead)...)
		b, _ := json.Marshal(audit.Head{Seq: 1 << 40, Hash: audit.GenesisHash})
		return m.Put(kAuditHead, b)
	})
	if err != nil {
		t.Fatalf("breakAudit: %v", err)
	}
	return func() {
		if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put(kAuditHead, saved) }); err != nil {
			t.Fatalf("repair audit: %v", err)
		}
	}
}

// Only one process may have the file: a second Open (bbolt's flock is per
// open file description, so a second Open in this process is refused like
// another process's) fails quickly with ErrLocked instead of hanging.
func TestSecondOpenRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "unseen.db")
	s := open(t, path, nil)
	start := time.Now()
	_, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v", d)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open after the first closed: %v", err)
	}
	s2.Close()
}

// A lease found when the file is opened belongs to a process that is gone
// (the flock says so): it is reclaimable at once, not after minIdle.
func TestLeasesOfDeadProcessReclaimableAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "unseen.db")
	clock := jobstest.NewFakeClock(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC))
	s := open(t, path, clock)
	ctx := t.Context()
	j, _, err := s.Create(ctx, &jobs.Job{Owner: "alice", State: jobs.Queued}, "")
	if err != nil {
		t.Fatal(err)
	}
	if l, err := s.Claim(ctx, "w1", 0); err != nil || l == nil {
		t.Fatal(l, err)
	}
	if ls, err := s.Reclaim(ctx, "w2", time.Hour); err != nil || len(ls) != 0 {
		t.Fatalf("fresh lease reclaimed: %v, %v", ls, err)
	}
	s.Close()
	s = open(t, path, clock)
	ls, err := s.Reclaim(ctx, "w2", time.Hour)
	if err != nil || len(ls) != 1 || ls[0].Job.ID != j.ID || ls[0].Attempt != 2 {
		t.Fatalf("Reclaim after reopening = %v, %v; want the dead process's job at attempt 2", ls, err)
	}
}

// The chain in the file verifies with its head, and a store whose head was
// cut back refuses to extend it.
func TestAuditHead(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "unseen.db"), nil)
	ctx := t.Context()
	for range 3 {
		if _, _, err := s.Create(ctx, &jobs.Job{Owner: "alice", State: jobs.Queued}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := audit.VerifyLog(ctx, s.Audit()); err != nil || n != 3 {
		t.Fatalf("VerifyLog = %d, %v", n, err)
	}
	// Cut the last entry off: the chain is shorter and valid, the head says otherwise.
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bAudit).Delete(u64(3)) }); err != nil {
		t.Fatal(err)
	}
	if _, err := audit.VerifyLog(ctx, s.Audit()); !errors.Is(err, audit.ErrBroken) {
		t.Errorf("VerifyLog of a truncated chain: %v, want ErrBroken", err)
	}
	if _, _, err := s.Create(ctx, &jobs.Job{Owner: "alice", State: jobs.Queued}, ""); !errors.Is(err, audit.ErrBroken) {
		t.Errorf("Create on a truncated chain: %v, want ErrBroken", err)
	}
	if js, _ := s.List(ctx, jobs.ListFilter{}); len(js) != 3 {
		t.Errorf("%d jobs after a refused Create, want 3", len(js))
	}
}

// `unseen audit verify --file` on a store file: read only, refused while
// the file is in use, and it finds a chain cut short.
func TestVerifyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "unseen.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, _, err := s.Create(t.Context(), &jobs.Job{Owner: "alice", State: jobs.Queued}, ""); err != nil {
			t.Fatal(err)
		}
	}
	if !IsStoreFile(path) || IsStoreFile("store_test.go") {
		t.Error("IsStoreFile does not tell a store file from another")
	}
	if _, err := VerifyFile(path); !errors.Is(err, ErrLocked) {
		t.Errorf("VerifyFile while open: %v, want ErrLocked", err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bAudit).Delete(u64(2)) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := VerifyFile(path); !errors.Is(err, audit.ErrBroken) {
		t.Errorf("VerifyFile of a truncated chain: %v, want ErrBroken", err)
	}
}
