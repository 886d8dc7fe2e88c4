package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/unseen-data/unseen/audit"
)

// boltMagic is bbolt's meta page magic, at byte 16 of the file (after
// the first page's header), little-endian on the platforms Unseen runs on.
const boltMagic = 0xED0CDAED

// IsStoreFile reports whether path looks like a store file (a bbolt
// database) rather than, say, a node's audit log.
func IsStoreFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [20]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return false
	}
	return binary.LittleEndian.Uint32(b[16:]) == boltMagic
}

// VerifyFile checks the audit chain in a store file, and its head, read
// only. The file must not be in use: while a coordinator runs on it, verify
// its chain over the API (GET /v1/audit/verify) instead.
func VerifyFile(path string) (int, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("boltstore: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return 0, fmt.Errorf("%w: %s (verify the running coordinator's chain over its API)", ErrLocked, path)
	}
	if err != nil {
		return 0, fmt.Errorf("boltstore: open %s: %w", path, err)
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
		return 0, err
	}
	n, err := audit.VerifyLog(context.Background(), s.audit)
	return n, err
}
