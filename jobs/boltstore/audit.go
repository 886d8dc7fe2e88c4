package boltstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/unseen-data/unseen/audit"
)

// AuditLog is the coordinator's audit chain in the store file (bucket
// audit, head in meta). It implements audit.Log and audit.HeadReader; job
// transitions append to the same chain inside their own transactions.
type AuditLog struct{ s *Store }

var (
	_ audit.Log        = (*AuditLog)(nil)
	_ audit.HeadReader = (*AuditLog)(nil)
)

// appendAudit seals e after the chain's head and stores it, inside tx. The
// head must describe the chain's actual last entry: if it does not (damage,
// or tampering), it refuses with audit.ErrBroken rather than extend a chain
// that no longer verifies, and the transaction — with the change the entry
// describes — is rolled back.
func (s *Store) appendAudit(tx *bolt.Tx, e audit.Entry) (audit.Entry, error) {
	if s.fault != nil {
		if err := s.fault(); err != nil {
			return audit.Entry{}, fmt.Errorf("boltstore: audit append failed, change not applied: %w", err)
		}
	}
	b := tx.Bucket(bAudit)
	head, err := readHead(tx)
	if err != nil {
		return audit.Entry{}, err
	}
	k, v := b.Cursor().Last()
	var prev *audit.Entry
	switch {
	case k == nil && head == (audit.Head{}):
	case k == nil:
		return audit.Entry{}, fmt.Errorf("boltstore: %w: the head names seq %d but the chain is empty", audit.ErrBroken, head.Seq)
	default:
		last, err := audit.Decode(v)
		if err != nil {
			return audit.Entry{}, fmt.Errorf("boltstore: %w: last entry: %v", audit.ErrBroken, err)
		}
		if binary.BigEndian.Uint64(k) != last.Seq || (audit.Head{Seq: last.Seq, Hash: last.Hash}) != head {
			return audit.Entry{}, fmt.Errorf("boltstore: %w: the head (seq %d) does not match the last entry (seq %d)", audit.ErrBroken, head.Seq, last.Seq)
		}
		prev = &last
	}
	e.Seal(prev)
	enc := e.Encode()
	if len(enc) > audit.MaxEntryBytes {
		return audit.Entry{}, fmt.Errorf("boltstore: audit entry larger than %d bytes", audit.MaxEntryBytes)
	}
	if err := b.Put(u64(e.Seq), enc); err != nil {
		return audit.Entry{}, err
	}
	hb, err := json.Marshal(audit.Head{Seq: e.Seq, Hash: e.Hash})
	if err != nil {
		return audit.Entry{}, err
	}
	return e, tx.Bucket(bMeta).Put(kAuditHead, hb)
}

func readHead(tx *bolt.Tx) (audit.Head, error) {
	var h audit.Head
	if v := tx.Bucket(bMeta).Get(kAuditHead); v != nil {
		if err := json.Unmarshal(v, &h); err != nil {
			return h, fmt.Errorf("boltstore: %w: head: %v", audit.ErrBroken, err)
		}
	}
	return h, nil
}

// Append seals e after the chain's last entry and stores it (fsynced). On
// any error nothing is stored.
func (a *AuditLog) Append(ctx context.Context, e audit.Entry) (audit.Entry, error) {
	var out audit.Entry
	err := a.s.update(ctx, func(tx *bolt.Tx) error {
		var err error
		out, err = a.s.appendAudit(tx, e)
		return err
	})
	return out, err
}

// Head returns the recorded head of the chain.
func (a *AuditLog) Head(ctx context.Context) (audit.Head, error) {
	var h audit.Head
	err := a.s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		h, err = readHead(tx)
		return err
	})
	return h, err
}

// All returns the whole chain in order.
func (a *AuditLog) All(ctx context.Context) ([]audit.Entry, error) {
	var out []audit.Entry
	err := a.s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bAudit).ForEach(func(k, v []byte) error {
			e, err := audit.Decode(v)
			if err != nil {
				return fmt.Errorf("boltstore: audit entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}

// Entries returns the entries matching f, oldest first (the newest f.Limit
// if set).
func (a *AuditLog) Entries(ctx context.Context, f audit.Filter) ([]audit.Entry, error) {
	all, err := a.All(ctx)
	if err != nil {
		return nil, err
	}
	var out []audit.Entry
	for i := range all {
		if f.Match(&all[i]) {
			out = append(out, all[i])
		}
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[len(out)-f.Limit:]
	}
	return out, nil
}
