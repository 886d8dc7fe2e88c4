package node

// The node's items of one OT session, split by kkrt partition: built in one
// pass over the prepared list (otInput), read back one partition at a time
// as the session reaches it. Lists up to otSpillAbove items stay in memory
// (24 bytes an item); longer ones are written to a temporary file beside
// the node's ledger, in per-partition segments, so that the OT path's own
// memory is one write buffer per partition and one partition read back.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/unseen-data/unseen/psi/kkrt"
)

// otSpillAbove is the list length above which a session's items go to
// disk (a variable so that tests can exercise the file).
var otSpillAbove = 1 << 21

const (
	otRecSize   = kkrt.ItemSize + 8 // item ‖ position (big-endian)
	otSegRecs   = 256               // records per partition buffer, flushed as one segment
	otHashBatch = 4096              // IDs hashed per parallel batch
)

// otRec is one item and its position in the node's list.
type otRec struct {
	item kkrt.Item
	pos  uint64
}

// otSeg is one flushed buffer of a partition in the spill file.
type otSeg struct {
	off int64
	n   int
}

// otParts is a session's items by partition.
type otParts struct {
	n   int
	mem [][]otRec // in memory, or nil when spilled

	f    *os.File
	segs [][]otSeg
	buf  [][]otRec
	end  int64
}

// itemHasher is kkrt.HashItem with its HMAC state reused.
type itemHasher struct {
	mac hash.Hash
	sum []byte
}

func newItemHasher(key []byte) *itemHasher {
	return &itemHasher{mac: hmac.New(sha256.New, key), sum: make([]byte, 0, sha256.Size)}
}

// item is kkrt.HashItem(key, id) (TestItemHasherIsHashItem).
func (h *itemHasher) item(id []byte) kkrt.Item {
	h.mac.Reset()
	h.mac.Write(id)
	h.sum = h.mac.Sum(h.sum[:0])
	var it kkrt.Item
	copy(it[:], h.sum)
	return it
}

// buildOTParts hashes every ID of the session's list into an item under
// itemKey and sorts the items into the session's partitions, in position
// order. spillDir is where a long list's file goes.
func buildOTParts(ctx context.Context, ss *session, params kkrt.Params, sessionKey, itemKey []byte, spillDir string) (*otParts, error) {
	plan, err := params.Plan()
	if err != nil {
		return nil, err
	}
	n, err := ss.party.Len(ctx)
	if err != nil {
		return nil, err
	}
	ps := &otParts{n: n}
	if n > otSpillAbove {
		f, err := os.CreateTemp(spillDir, "ot-items-*.tmp")
		if err != nil {
			return nil, fmt.Errorf("node: OT spill file: %w", err)
		}
		// Unlinked at once (where the system allows): the file goes with the
		// process, and with the session (its finaliser closes it) if the
		// job is abandoned.
		_ = os.Remove(f.Name())
		ps.f = f
		ps.segs = make([][]otSeg, plan.Partitions)
		ps.buf = make([][]otRec, plan.Partitions)
	} else {
		ps.mem = make([][]otRec, plan.Partitions)
	}
	workers := runtime.GOMAXPROCS(0)
	hashers := make([]*itemHasher, workers)
	parters := make([]*kkrt.Partitioner, workers)
	for w := range workers {
		hashers[w] = newItemHasher(itemKey)
		if parters[w], err = kkrt.NewPartitioner(params, sessionKey); err != nil {
			ps.Close()
			return nil, err
		}
	}
	ids := make([][]byte, 0, otHashBatch)
	recs := make([]otRec, otHashBatch)
	parts := make([]int32, otHashBatch)
	first := 0
	flush := func() error {
		var wg sync.WaitGroup
		per := (len(ids) + workers - 1) / workers
		for w := range workers {
			lo, hi := w*per, min(len(ids), (w+1)*per)
			if lo >= hi {
				break
			}
			wg.Go(func() {
				for i := lo; i < hi; i++ {
					recs[i] = otRec{item: hashers[w].item(ids[i]), pos: uint64(first + i)}
					parts[i] = int32(parters[w].Of(&recs[i].item))
				}
			})
		}
		wg.Wait()
		for i := range ids {
			if err := ps.add(int(parts[i]), recs[i]); err != nil {
				return err
			}
		}
		first += len(ids)
		ids = ids[:0]
		return ctx.Err()
	}
	err = ss.otInput(ctx, func(pos int, id []byte) error {
		if pos != first+len(ids) {
			return fmt.Errorf("node: OT input out of order at position %d", pos)
		}
		ids = append(ids, id)
		if len(ids) == otHashBatch {
			return flush()
		}
		return nil
	})
	if err == nil && len(ids) > 0 {
		err = flush()
	}
	if err == nil && first != n {
		err = fmt.Errorf("node: OT input gave %d IDs of %d", first, n)
	}
	if err == nil && ps.f != nil {
		for p := range ps.buf {
			if err = ps.spill(p); err != nil {
				break
			}
		}
		ps.buf = nil
	}
	if err != nil {
		ps.Close()
		return nil, err
	}
	return ps, nil
}

func (ps *otParts) add(p int, r otRec) error {
	if ps.f == nil {
		ps.mem[p] = append(ps.mem[p], r)
		return nil
	}
	ps.buf[p] = append(ps.buf[p], r)
	if len(ps.buf[p]) == otSegRecs {
		return ps.spill(p)
	}
	return nil
}

// spill writes partition p's buffer as one segment.
func (ps *otParts) spill(p int) error {
	b := ps.buf[p]
	if len(b) == 0 {
		return nil
	}
	out := make([]byte, len(b)*otRecSize)
	for i, r := range b {
		copy(out[i*otRecSize:], r.item[:])
		binary.BigEndian.PutUint64(out[i*otRecSize+kkrt.ItemSize:], r.pos)
	}
	if _, err := ps.f.WriteAt(out, ps.end); err != nil {
		return fmt.Errorf("node: OT spill file: %w", err)
	}
	ps.segs[p] = append(ps.segs[p], otSeg{off: ps.end, n: len(b)})
	ps.end += int64(len(out))
	ps.buf[p] = b[:0]
	return nil
}

// Partition returns partition p's items and positions, positions
// ascending. A partition is read back once: its memory is then released.
func (ps *otParts) Partition(p int) ([]kkrt.Item, []uint64, error) {
	var recs []otRec
	if ps.f == nil {
		if ps.mem == nil || p < 0 || p >= len(ps.mem) {
			return nil, nil, fmt.Errorf("node: OT partition %d is not kept", p)
		}
		recs, ps.mem[p] = ps.mem[p], nil
	} else {
		if p < 0 || p >= len(ps.segs) {
			return nil, nil, fmt.Errorf("node: OT partition %d is not kept", p)
		}
		for _, sg := range ps.segs[p] {
			b := make([]byte, sg.n*otRecSize)
			if _, err := ps.f.ReadAt(b, sg.off); err != nil && err != io.EOF {
				return nil, nil, fmt.Errorf("node: OT spill file: %w", err)
			}
			for i := range sg.n {
				var r otRec
				copy(r.item[:], b[i*otRecSize:])
				r.pos = binary.BigEndian.Uint64(b[i*otRecSize+kkrt.ItemSize:])
				recs = append(recs, r)
			}
		}
		ps.segs[p] = nil
	}
	items := make([]kkrt.Item, len(recs))
	pos := make([]uint64, len(recs))
	for i, r := range recs {
		items[i], pos[i] = r.item, r.pos
	}
	return items, pos, nil
}

// Close releases the spill file, if any.
func (ps *otParts) Close() {
	if ps != nil && ps.f != nil {
		ps.f.Close()
		os.Remove(ps.f.Name()) // where the early unlink was not allowed
		ps.f = nil
	}
}
