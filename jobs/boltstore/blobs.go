package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"

	bolt "go.etcd.io/bbolt"

	"github.com/unseen-data/unseen/jobs"
)

// bBlobs holds jobs.Blobs: key → version (8 bytes, big-endian) ‖ value. It
// is made on the first write, so a file from before it opens read-only too.
var bBlobs = []byte("blobs")

// Blob implements jobs.Blobs.
func (s *Store) Blob(ctx context.Context, key string, known int64) ([]byte, int64, error) {
	if err := jobs.CheckBlob(key, nil, 0); err != nil {
		return nil, 0, err
	}
	var (
		val []byte
		ver int64
	)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bBlobs)
		if b == nil {
			return jobs.ErrNoBlob
		}
		v := b.Get([]byte(key))
		if len(v) < 8 {
			return jobs.ErrNoBlob
		}
		ver = int64(binary.BigEndian.Uint64(v[:8]))
		if ver != known {
			val = bytes.Clone(v[8:])
		}
		return nil
	})
	return val, ver, err
}

// PutBlob implements jobs.Blobs.
func (s *Store) PutBlob(ctx context.Context, key string, value []byte, ifVersion int64) (int64, error) {
	if err := jobs.CheckBlob(key, value, ifVersion); err != nil {
		return 0, err
	}
	var ver int64
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bBlobs)
		if err != nil {
			return err
		}
		var cur int64
		if v := b.Get([]byte(key)); len(v) >= 8 {
			cur = int64(binary.BigEndian.Uint64(v[:8]))
		}
		if cur != ifVersion {
			return jobs.ErrBlobVersion
		}
		ver = cur + 1
		return b.Put([]byte(key), append(u64(uint64(ver)), value...))
	})
	if err != nil {
		return 0, err
	}
	return ver, nil
}
