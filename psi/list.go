package psi

// A prepared list on disk: the party's de-duplicated IDs in the secret
// order, built by an external sort so that a node's memory does not grow
// with its dataset.

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// DefaultRunSize is the default number of IDs sorted in memory at once
// while a list is built: about 60 MiB of records, well under a node's
// budget, and 10 runs to merge at 10^7 IDs.
const DefaultRunSize = 1 << 20

// MaxIDLen bounds one ID in a list (a normalised ID number has 18 bytes).
const MaxIDLen = 1024

// ListOptions say where and how a list is built.
type ListOptions struct {
	// Dir is the folder the list's own temporary folder is made in (its
	// runs while it is built, then the list's files); created if missing.
	Dir string
	// RunSize is the most IDs held in memory while sorting (default
	// DefaultRunSize). Memory is O(RunSize); the number of runs merged at
	// once is the IDs divided by it.
	RunSize int
}

// List is a party's prepared list on disk: de-duplicated IDs in the order
// NewLocalParty defines (ascending HMAC-SHA256(k', id), ties by ID), read
// by position. Its files are removed by Close. It is safe for concurrent
// reads.
type List struct {
	n      int
	dir    string
	ids    *os.File // the IDs, concatenated in order
	ends   *os.File // uint64be end offset in ids of each position's ID
	digest []byte

	closeOnce sync.Once
	closeErr  error
}

// A run record is uvarint(len) ‖ tag (32 bytes) ‖ id. The tag is the
// whole HMAC, so the order is exactly NewLocalParty's.
const tagSize = sha256.Size

// maxArena keeps a run's offsets within uint32 whatever RunSize says.
const maxArena = 1 << 31

// BuildList streams a party's IDs (each, which calls add once per ID read,
// duplicates allowed) into a list on disk for jobID, in the secret order,
// de-duplicated: sorted runs of at most RunSize IDs are spilled to files
// and merged. add copies the ID. The list's digest (ListDigest) is computed
// during the merge.
func BuildList(ctx context.Context, nodeSecret []byte, jobID string, specHash []byte, opts ListOptions, each func(add func(id []byte) error) error) (l *List, err error) {
	orderKey, err := deriveBytes(nodeSecret, "order", jobID, specHash)
	if err != nil {
		return nil, err
	}
	digestKey, err := deriveBytes(nodeSecret, "list-digest", jobID, specHash)
	if err != nil {
		return nil, err
	}
	if opts.RunSize <= 0 {
		opts.RunSize = DefaultRunSize
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("psi: list folder: %w", err)
	}
	dir, err := os.MkdirTemp(opts.Dir, "list-*")
	if err != nil {
		return nil, fmt.Errorf("psi: list folder: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()

	r := &runBuilder{key: orderKey, dir: dir, max: opts.RunSize}
	if err := each(func(id []byte) error {
		if len(id) == 0 || len(id) > MaxIDLen {
			return fmt.Errorf("%w: an ID of %d bytes (1..%d)", ErrRange, len(id), MaxIDLen)
		}
		if r.count == r.max || len(r.arena) > maxArena {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := r.spill(); err != nil {
				return err
			}
		}
		r.add(id)
		return nil
	}); err != nil {
		return nil, err
	}
	if err := r.spill(); err != nil {
		return nil, err
	}
	r.arena, r.starts = nil, nil // the merge needs none of it
	l = &List{dir: dir}
	if l.ids, err = os.Create(filepath.Join(dir, "ids")); err != nil {
		return nil, fmt.Errorf("psi: %w", err)
	}
	if l.ends, err = os.Create(filepath.Join(dir, "ends")); err != nil {
		l.ids.Close()
		return nil, fmt.Errorf("psi: %w", err)
	}
	if err := l.merge(ctx, r.runs, hmac.New(sha256.New, digestKey)); err != nil {
		l.Close()
		return nil, err
	}
	for _, f := range r.runs {
		_ = os.Remove(f)
	}
	return l, nil
}

// runBuilder gathers up to max records in one arena and spills them sorted.
type runBuilder struct {
	key    []byte
	dir    string
	max    int
	count  int
	arena  []byte   // records: tag ‖ id
	starts []uint32 // record i is arena[starts[i]:starts[i+1]] (the last ends at len(arena))
	runs   []string
}

func (r *runBuilder) add(id []byte) {
	r.starts = append(r.starts, uint32(len(r.arena)))
	r.arena = append(r.arena, make([]byte, tagSize)...)
	r.arena = append(r.arena, id...)
	r.count++
}

func (r *runBuilder) rec(i int) []byte {
	end := len(r.arena)
	if i+1 < len(r.starts) {
		end = int(r.starts[i+1])
	}
	return r.arena[r.starts[i]:end]
}

// spill tags the gathered IDs (on all cores), sorts them and writes them
// as a run, duplicates dropped.
func (r *runBuilder) spill() error {
	if r.count == 0 {
		return nil
	}
	parallelRanges(r.count, func(lo, hi int) {
		mac := hmac.New(sha256.New, r.key)
		for i := lo; i < hi; i++ {
			rec := r.rec(i)
			mac.Reset()
			mac.Write(rec[tagSize:])
			mac.Sum(rec[:0])
		}
	})
	order := make([]int32, r.count)
	for i := range order {
		order[i] = int32(i)
	}
	// tag ‖ id compares as (tag, id): every tag has the same length.
	slices.SortFunc(order, func(a, b int32) int { return bytes.Compare(r.rec(int(a)), r.rec(int(b))) })
	f, err := os.Create(filepath.Join(r.dir, fmt.Sprintf("run-%d", len(r.runs))))
	if err != nil {
		return fmt.Errorf("psi: %w", err)
	}
	w := bufio.NewWriterSize(f, 256<<10)
	var last []byte
	var hdr [binary.MaxVarintLen64]byte
	for _, i := range order {
		rec := r.rec(int(i))
		if last != nil && bytes.Equal(rec, last) {
			continue
		}
		last = rec
		w.Write(hdr[:binary.PutUvarint(hdr[:], uint64(len(rec)))])
		w.Write(rec)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("psi: writing a run: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("psi: writing a run: %w", err)
	}
	r.runs = append(r.runs, f.Name())
	r.arena, r.starts, r.count = r.arena[:0], r.starts[:0], 0
	return nil
}

// runReader reads one run's records in order.
type runReader struct {
	f   *os.File
	br  *bufio.Reader
	rec []byte
}

func (rr *runReader) next() (bool, error) {
	n, err := binary.ReadUvarint(rr.br)
	if err == io.EOF {
		return false, nil
	}
	if err != nil || n < tagSize+1 || n > tagSize+MaxIDLen {
		return false, fmt.Errorf("psi: a run file is corrupt")
	}
	rr.rec = slices.Grow(rr.rec[:0], int(n))[:n]
	if _, err := io.ReadFull(rr.br, rr.rec); err != nil {
		return false, fmt.Errorf("psi: a run file is corrupt: %w", err)
	}
	return true, nil
}

type runHeap []*runReader

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return bytes.Compare(h[i].rec, h[j].rec) < 0 }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// merge k-way merges the runs into the list's files, dropping duplicates
// across runs, and computes the digest: HMAC over uvarint(len) ‖ id of each
// ID in order, then the count (uint64be).
func (l *List) merge(ctx context.Context, runs []string, mac hash.Hash) error {
	h := make(runHeap, 0, len(runs))
	defer func() {
		for _, rr := range h {
			rr.f.Close()
		}
	}()
	for _, name := range runs {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("psi: %w", err)
		}
		rr := &runReader{f: f, br: bufio.NewReaderSize(f, 64<<10)}
		ok, err := rr.next()
		if err != nil {
			f.Close()
			return err
		}
		if !ok {
			f.Close()
			continue
		}
		h = append(h, rr)
	}
	heap.Init(&h)
	iw := bufio.NewWriterSize(l.ids, 256<<10)
	ew := bufio.NewWriterSize(l.ends, 64<<10)
	var last []byte
	var end uint64
	var b [binary.MaxVarintLen64]byte
	for len(h) > 0 {
		rr := h[0]
		if !bytes.Equal(rr.rec, last) {
			id := rr.rec[tagSize:]
			iw.Write(id)
			end += uint64(len(id))
			ew.Write(binary.BigEndian.AppendUint64(b[:0], end))
			mac.Write(b[:binary.PutUvarint(b[:], uint64(len(id)))])
			mac.Write(id)
			last = append(last[:0], rr.rec...)
			l.n++
			if l.n&0xffff == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
		}
		ok, err := rr.next()
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			rr.f.Close()
			heap.Pop(&h)
		}
	}
	if err := iw.Flush(); err != nil {
		return fmt.Errorf("psi: writing the list: %w", err)
	}
	if err := ew.Flush(); err != nil {
		return fmt.Errorf("psi: writing the list: %w", err)
	}
	mac.Write(binary.BigEndian.AppendUint64(nil, uint64(l.n)))
	l.digest = mac.Sum(nil)
	return nil
}

// Len is the number of distinct IDs.
func (l *List) Len() int { return l.n }

// Digest is the hex of the list's digest: an HMAC-SHA256 under a key
// derived from the node secret, the job and the spec hash, over the IDs in
// order. Equal for the same list of the same job (whatever order the IDs
// were read in), and telling nothing else.
func (l *List) Digest() string { return hex.EncodeToString(l.digest) }

// span returns the byte range of positions [offset, offset+n) in ids, and
// each one's end relative to the range's start.
func (l *List) span(offset, n int) (lo uint64, ends []uint64, err error) {
	if offset < 0 || n < 0 || offset > l.n || n > l.n-offset {
		return 0, nil, fmt.Errorf("%w: range [%d, %d+%d) of a list of %d", ErrRange, offset, offset, n, l.n)
	}
	first := offset - 1 // the end of the previous position is this one's start
	buf := make([]byte, 8*(n+1))
	if first < 0 {
		if _, err := l.ends.ReadAt(buf[8:], 0); err != nil && n > 0 {
			return 0, nil, fmt.Errorf("psi: reading the list: %w", err)
		}
	} else if _, err := l.ends.ReadAt(buf, int64(first)*8); err != nil {
		return 0, nil, fmt.Errorf("psi: reading the list: %w", err)
	}
	lo = binary.BigEndian.Uint64(buf)
	ends = make([]uint64, n)
	for i := range n {
		ends[i] = binary.BigEndian.Uint64(buf[8*(i+1):]) - lo
	}
	return lo, ends, nil
}

// IDs returns the IDs at positions [offset, offset+n), read with two
// ReadAts.
func (l *List) IDs(offset, n int) ([][]byte, error) {
	lo, ends, err := l.span(offset, n)
	if err != nil || n == 0 {
		return nil, err
	}
	buf := make([]byte, ends[n-1])
	if _, err := l.ids.ReadAt(buf, int64(lo)); err != nil {
		return nil, fmt.Errorf("psi: reading the list: %w", err)
	}
	out := make([][]byte, n)
	start := uint64(0)
	for i, e := range ends {
		out[i] = buf[start:e:e]
		start = e
	}
	return out, nil
}

// Each calls fn with every position and its ID in order, reading the files
// sequentially. The ID is valid only during the call.
func (l *List) Each(ctx context.Context, fn func(pos int, id []byte) error) error {
	ir := bufio.NewReaderSize(io.NewSectionReader(l.ids, 0, 1<<62), 256<<10)
	er := bufio.NewReaderSize(io.NewSectionReader(l.ends, 0, 1<<62), 64<<10)
	var prev uint64
	var b [8]byte
	id := make([]byte, 0, 64)
	for i := range l.n {
		if i&0xffff == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if _, err := io.ReadFull(er, b[:]); err != nil {
			return fmt.Errorf("psi: reading the list: %w", err)
		}
		end := binary.BigEndian.Uint64(b[:])
		if end < prev || end-prev > MaxIDLen {
			return errors.New("psi: the list's files are corrupt")
		}
		id = id[:end-prev]
		if _, err := io.ReadFull(ir, id); err != nil {
			return fmt.Errorf("psi: reading the list: %w", err)
		}
		prev = end
		if err := fn(i, id); err != nil {
			return err
		}
	}
	return nil
}

// Close closes and removes the list's files. Reads after Close fail.
func (l *List) Close() error {
	l.closeOnce.Do(func() {
		var errs []error
		for _, f := range []*os.File{l.ids, l.ends} {
			if f != nil {
				errs = append(errs, f.Close())
			}
		}
		errs = append(errs, os.RemoveAll(l.dir))
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// RemoveStaleLists removes the lists a previous process left in dir (its
// sessions are gone with it).
func RemoveStaleLists(dir string) error {
	old, err := filepath.Glob(filepath.Join(dir, "list-*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range old {
		errs = append(errs, os.RemoveAll(d))
	}
	return errors.Join(errs...)
}
