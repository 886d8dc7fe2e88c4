package boltstore

// Checkpoints (jobs.Checkpoints) live in files beside the database, one per
// chunk, named <path>.chunks/<job>/<attempt>.<key>; the database holds only
// their index (bucket chunks: len(job) job key → attempt8 ‖ SHA-256 ‖ size8).
//
// Why files: a PSI job checkpoints 16 bytes per element of every list (32
// MiB for two lists of 2^20), written in 64–256 KiB pieces while it runs and
// dropped when it ends. In the bbolt file those bytes would grow the file to
// the high-water mark of every job's checkpoints at once — bbolt never gives
// space back — and enlarge the freelist written with every later commit
// (heartbeats, progress, transitions), and each 256 KiB write would hold
// bbolt's one writer lock against them. As files, a save holds that lock
// only for a small index entry, and a finished job's chunks go back to the
// file system.
//
// A save writes a temporary file and fsyncs it, then, in one transaction,
// checks the fence (running at the attempt), renames the file into place,
// fsyncs the folder and writes the index entry. The index is authoritative:
// a file it does not name (a save whose commit failed, one superseded by a
// later attempt, a job dropped by a crash before its folder was removed) is
// garbage, removed when the store is opened, and LoadChunks skips a file
// whose size or digest is not the index's.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/unseen-data/unseen/jobs"
)

// bChunks is the checkpoint index, made on the first save.
var bChunks = []byte("chunks")

var _ jobs.Checkpoints = (*Store)(nil)

// chunkRoot is the folder of every job's checkpoint files.
func (s *Store) chunkRoot() string { return s.path + ".chunks" }

func (s *Store) chunkDir(job string) string { return filepath.Join(s.chunkRoot(), job) }

func chunkFile(attempt int, key string) string { return fmt.Sprintf("%d.%s", attempt, key) }

func chunkIndexKey(job, key string) []byte { return append(lenPrefixed(job), key...) }

// chunkEntry is an index value.
type chunkEntry struct {
	attempt int
	sum     [32]byte
	size    int
}

func (e chunkEntry) encode() []byte {
	b := u64(uint64(e.attempt))
	b = append(b, e.sum[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(e.size))
}

func decodeChunkEntry(v []byte) (chunkEntry, bool) {
	if len(v) != 48 {
		return chunkEntry{}, false
	}
	var e chunkEntry
	e.attempt = int(binary.BigEndian.Uint64(v))
	copy(e.sum[:], v[8:40])
	e.size = int(binary.BigEndian.Uint64(v[40:]))
	return e, true
}

// SaveChunk implements jobs.Checkpoints.
func (s *Store) SaveChunk(ctx context.Context, job string, attempt int, key string, data []byte) (err error) {
	if err := jobs.CheckChunk(key, data); err != nil {
		return err
	}
	if !jobs.ValidID(job) {
		return fmt.Errorf("%w: %q", jobs.ErrNotFound, job)
	}
	if err := s.usable(ctx); err != nil {
		return err
	}
	dir := s.chunkDir(job)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("boltstore: checkpoint: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("boltstore: checkpoint: %w", err)
	}
	tmp := f.Name()
	placed := false
	defer func() {
		if !placed {
			os.Remove(tmp)
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("boltstore: checkpoint: %w", err)
	}
	name := chunkFile(attempt, key)
	var superseded string
	err = s.update(ctx, func(tx *bolt.Tx) error {
		r, err := getRecord(tx, job)
		if err != nil {
			return err
		}
		if r.Job.State != jobs.Running || r.Job.Attempt != attempt {
			return leaseLost(r.Job, attempt)
		}
		b, err := tx.CreateBucketIfNotExists(bChunks)
		if err != nil {
			return err
		}
		k := chunkIndexKey(job, key)
		if old, ok := decodeChunkEntry(b.Get(k)); ok && old.attempt != attempt {
			superseded = chunkFile(old.attempt, key)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return err
		}
		placed = true
		if err := syncDir(dir); err != nil {
			return err
		}
		return b.Put(k, chunkEntry{attempt: attempt, sum: sha256.Sum256(data), size: len(data)}.encode())
	})
	if err != nil {
		return err
	}
	if superseded != "" {
		os.Remove(filepath.Join(dir, superseded))
	}
	return nil
}

// LoadChunks implements jobs.Checkpoints. A file that is missing, or whose
// size or digest differs from its index entry, is left out: the caller
// recomputes that chunk.
func (s *Store) LoadChunks(ctx context.Context, job string) (map[string][]byte, error) {
	out := map[string][]byte{}
	if !jobs.ValidID(job) {
		return out, nil
	}
	index := map[string]chunkEntry{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bChunks)
		if b == nil {
			return nil
		}
		prefix := lenPrefixed(job)
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if e, ok := decodeChunkEntry(v); ok {
				index[string(k[len(prefix):])] = e
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	dir := s.chunkDir(job)
	for key, e := range index {
		data, err := os.ReadFile(filepath.Join(dir, chunkFile(e.attempt, key)))
		if err != nil || len(data) != e.size || sha256.Sum256(data) != e.sum {
			continue
		}
		out[key] = data
	}
	return out, nil
}

// DeleteChunks implements jobs.Checkpoints.
func (s *Store) DeleteChunks(ctx context.Context, job string) error {
	if !jobs.ValidID(job) {
		return nil
	}
	if err := s.update(ctx, func(tx *bolt.Tx) error { return dropChunkIndex(tx, job) }); err != nil {
		return err
	}
	return s.removeChunkDir(job)
}

// dropChunkIndex deletes a job's index entries inside tx; the files go
// after the commit (removeChunkDir), or at the next Open.
func dropChunkIndex(tx *bolt.Tx, job string) error {
	b := tx.Bucket(bChunks)
	if b == nil {
		return nil
	}
	prefix := lenPrefixed(job)
	var ks [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		ks = append(ks, bytes.Clone(k))
	}
	for _, k := range ks {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) removeChunkDir(job string) error {
	if err := os.RemoveAll(s.chunkDir(job)); err != nil {
		return fmt.Errorf("boltstore: remove checkpoints: %w", err)
	}
	return nil
}

// sweepChunks removes every checkpoint file the index does not name (best
// effort, at Open: no other process can be saving).
func (s *Store) sweepChunks() {
	dirs, err := os.ReadDir(s.chunkRoot())
	if err != nil {
		return
	}
	keep := map[string]map[string]bool{}
	_ = s.db.View(func(tx *bolt.Tx) error {
		for _, d := range dirs {
			job := d.Name()
			b := tx.Bucket(bChunks)
			if b == nil || !jobs.ValidID(job) {
				continue
			}
			prefix := lenPrefixed(job)
			c := b.Cursor()
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				if e, ok := decodeChunkEntry(v); ok {
					if keep[job] == nil {
						keep[job] = map[string]bool{}
					}
					keep[job][chunkFile(e.attempt, string(k[len(prefix):]))] = true
				}
			}
		}
		return nil
	})
	for _, d := range dirs {
		job := d.Name()
		if keep[job] == nil {
			os.RemoveAll(filepath.Join(s.chunkRoot(), job))
			continue
		}
		files, err := os.ReadDir(filepath.Join(s.chunkRoot(), job))
		if err != nil {
			continue
		}
		for _, f := range files {
			if !keep[job][f.Name()] || strings.HasPrefix(f.Name(), ".") {
				os.Remove(filepath.Join(s.chunkRoot(), job, f.Name()))
			}
		}
	}
}

// syncDir fsyncs a folder, so a rename in it survives a power cut.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
