package boltstore

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
)

// An auditor reads the coordinator's chain from its stopped store file,
// checked; a cut chain is refused, and so is a file in use.
func TestReadAuditFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "unseen.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, _, err := s.Create(t.Context(), &jobs.Job{Owner: "alice", State: jobs.Queued}, ""); err != nil {
			t.Fatal(err)
		}
	}
	want, err := s.Audit().All(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadAuditFile(path); !errors.Is(err, ErrLocked) {
		t.Errorf("ReadAuditFile while open: %v, want ErrLocked", err)
	}
	s.Close()
	got, err := ReadAuditFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].Hash != want[2].Hash {
		t.Fatalf("read %d entries, want the 3 written", len(got))
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bAudit).Delete(u64(3)) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := ReadAuditFile(path); !errors.Is(err, audit.ErrBroken) {
		t.Errorf("ReadAuditFile of a cut chain: %v, want ErrBroken", err)
	}
}
