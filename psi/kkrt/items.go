package kkrt

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sync"

	"github.com/unseen-data/unseen/psi/cuckoo"
)

// checkItems validates one partition's input on either side: as many
// positions as items, positions strictly increasing and ≤ MaxPosition,
// every item in partition p, and no item twice. Duplicates would let the
// coordinator see two equal value lists (sender) or break the cuckoo
// analysis (receiver), so they are refused, not silently merged: callers
// de-duplicate first (Run does).
func checkItems(k *keys, parts, p int, items []Item, pos []uint64, workers int) error {
	if len(items) != len(pos) {
		return fmt.Errorf("%w: %d items, %d positions", ErrInput, len(items), len(pos))
	}
	for i, x := range pos {
		if x > MaxPosition {
			return fmt.Errorf("%w: position %d above %d", ErrInput, x, uint64(MaxPosition))
		}
		if i > 0 && x <= pos[i-1] {
			return fmt.Errorf("%w: positions not increasing at index %d", ErrInput, i)
		}
	}
	fps := make([]uint64, len(items))
	err := forRanges(len(items), workers, func(lo, hi int) error {
		pt := newPartitioner(k, parts)
		for i := lo; i < hi; i++ {
			q, fp := pt.of(&items[i])
			if q != p {
				return fmt.Errorf("%w: item at position %d belongs to partition %d, not %d", ErrInput, pos[i], q, p)
			}
			fps[i] = fp
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Open addressing on the fingerprints (pseudo-random: AES outputs).
	size := 1 << bits.Len(uint(2*len(items)))
	mask := uint64(size - 1)
	slots := make([]int32, size) // item index + 1, or 0
	for i, fp := range fps {
		for h := fp & mask; ; h = (h + 1) & mask {
			j := slots[h] - 1
			if j < 0 {
				slots[h] = int32(i + 1)
				break
			}
			if fps[j] == fp && items[j] == items[i] {
				return fmt.Errorf("%w: the item at position %d repeats the one at position %d", ErrInput, pos[i], pos[j])
			}
		}
	}
	return nil
}

// candidates computes every item's cuckoo candidates for partition p and
// the given attempt.
func candidates(k *keys, bins, p, attempt int, items []Item, workers int) ([][cuckoo.Hashes]uint32, error) {
	key, err := k.cuckooKey(p, attempt)
	if err != nil {
		return nil, err
	}
	h, err := cuckoo.NewHasher(key, bins)
	if err != nil {
		return nil, err
	}
	cands := make([][cuckoo.Hashes]uint32, len(items))
	err = forRanges(len(items), workers, func(lo, hi int) error {
		h.AppendCandidates(cands[lo:lo], items[lo:hi]) // fills cands[lo:hi] in place
		return nil
	})
	return cands, err
}

// place cuckoo-hashes a receiver partition, trying attempts 0, 1, … in
// turn; it returns the attempt used and each bin's item index (or −1).
func place(k *keys, bins, p int, items []Item, workers int) (int, []int32, error) {
	for a := range MaxAttempts {
		cands, err := candidates(k, bins, p, a, items, workers)
		if err != nil {
			return 0, nil, err
		}
		occ, err := cuckoo.Build(cands, bins)
		if err == nil {
			return a, occ, nil
		}
		if !errors.Is(err, cuckoo.ErrNoAssignment) {
			return 0, nil, err
		}
	}
	return 0, nil, fmt.Errorf("%w: partition %d", ErrCuckoo, p)
}

// ctrXOR XORs dst with the keystream of AES-CTR under blk from 128-bit
// block index idx on: G(k) for one column, from row 128·idx.
func ctrXOR(blk cipher.Block, idx uint64, dst []byte) {
	var iv [16]byte
	binary.BigEndian.PutUint64(iv[8:], idx)
	cipher.NewCTR(blk, iv[:]).XORKeyStream(dst, dst)
}

// scratch recycles the chunk-sized work buffers.
var scratch sync.Pool

func getScratch(n int) *[]byte {
	if b, ok := scratch.Get().(*[]byte); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n)
	return &b
}

func putScratch(b *[]byte) { scratch.Put(b) }

// splitParts returns the number of coordinator-bound messages for n items.
func splitParts(n int) int { return max(1, (n+MaxPerMessage-1)/MaxPerMessage) }
