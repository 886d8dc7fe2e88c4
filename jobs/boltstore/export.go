package boltstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/unseen-data/unseen/audit"
)

// ReadAuditFile returns the audit chain of a store file, read only, after
// checking it and its head (as VerifyFile): an auditor's copy of the
// coordinator's log, to check nodes' logs against (the heads the
// coordinator witnessed). The file must not be in use.
func ReadAuditFile(path string) ([]audit.Entry, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("boltstore: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (export the running coordinator's chain with `unseen audit list --json --limit 0`)", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	defer db.Close()
	s := &Store{db: db, path: path}
	s.audit = &AuditLog{s: s}
	err = db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bAudit) == nil || tx.Bucket(bMeta) == nil {
			return fmt.Errorf("boltstore: %s holds no audit chain", path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if _, err := audit.VerifyLog(ctx, s.audit); err != nil {
		return nil, err
	}
	return s.audit.All(ctx)
}
