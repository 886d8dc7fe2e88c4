package cuckoo

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// Hashes is the number of hash functions: every item has this many distinct
// candidate bins.
const Hashes = 3

// MaxBins bounds the table size: bin indices are drawn from 42-bit slices
// of one AES block (see Hasher), so the table must stay far below 2^42 for
// the rounding bias (< bins/2^42 relative) to be negligible.
const MaxBins = 1 << 30

// LargeTable is the capacity above which Bins uses BinFactor; up to it,
// Bins uses smallBins.
const LargeTable = 2048

// BinFactor is ε·100: a table for more than LargeTable items has
// ⌈1.27·capacity⌉ bins (PSTY19; see the package documentation).
const BinFactor = 127

// smallBins[j] is the least bin count m for which the union bound of the
// package documentation, for 2^j items, is at most 2^-40 (j ≥ 2; fewer than
// four items can always be placed in three or more bins). The bound grows
// with the number of items, so the entry for the next power of two covers
// every smaller table. TestSmallBinsCertified recomputes it.
var smallBins = [...]int{2: 41, 3: 67, 4: 97, 5: 136, 6: 188, 7: 258, 8: 428, 9: 827, 10: 1626, 11: 3225}

var (
	// ErrNoAssignment means no stash-less placement of the items exists:
	// some k items have fewer than k candidate bins between them. The
	// caller re-hashes with another key.
	ErrNoAssignment = errors.New("cuckoo: no placement of the items exists")
	// ErrBins is returned for a table size outside [Hashes, MaxBins].
	ErrBins = errors.New("cuckoo: bin count out of range")
)

// Bins returns the number of bins for a table that must hold up to capacity
// items with failure probability at most 2^-40: for capacity ≤ LargeTable
// the certified smallBins entry of the next power of two, above it
// ⌈1.27·capacity⌉. It uses integer arithmetic only, so that two machines
// always agree.
func Bins(capacity int) int {
	switch {
	case capacity <= 3:
		return Hashes
	case capacity <= LargeTable:
		return smallBins[bits.Len(uint(capacity-1))]
	default:
		return (BinFactor*capacity + 99) / 100
	}
}

// Hasher maps an item to its Hashes distinct candidate bins. It is keyed:
// without the key, nobody can tell which bins an item may occupy.
type Hasher struct {
	block cipher.Block
	bins  uint64
}

// NewHasher returns the Hasher for a 16-byte key and a table of bins bins.
func NewHasher(key []byte, bins int) (*Hasher, error) {
	if len(key) != 16 {
		return nil, fmt.Errorf("cuckoo: key is %d bytes, want 16", len(key))
	}
	if bins < Hashes || bins > MaxBins {
		return nil, fmt.Errorf("%w: %d", ErrBins, bins)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return &Hasher{block: b, bins: uint64(bins)}, nil
}

// Candidates returns the item's candidate bins, all distinct, in the order
// of the hash functions. With v = AES_key(item), the three 42-bit slices
// v₀, v₁, v₂ of v (little-endian) pick, by multiply-shift, the first bin
// out of m, the second out of the m−1 others and the third out of the m−2
// others: a sample without replacement.
func (h *Hasher) Candidates(item *[16]byte) [Hashes]uint32 {
	var c [1][Hashes]uint32
	h.AppendCandidates(c[:0], [][16]byte{*item})
	return c[0]
}

// AppendCandidates appends the candidates of every item to dst. It is safe
// for concurrent use.
func (h *Hasher) AppendCandidates(dst [][Hashes]uint32, items [][16]byte) [][Hashes]uint32 {
	v := make([]byte, 16) // one scratch block per call, not per item
	for i := range items {
		h.block.Encrypt(v, items[i][:])
		dst = append(dst, pick((*[16]byte)(v), h.bins))
	}
	return dst
}

func pick(v *[16]byte, m uint64) [Hashes]uint32 {
	lo := binary.LittleEndian.Uint64(v[0:8])
	hi := binary.LittleEndian.Uint64(v[8:16])
	const mask = 1<<42 - 1
	s0 := lo & mask
	s1 := (lo>>42 | hi<<22) & mask
	s2 := hi >> 20 & mask
	b0 := reduce(s0, m)
	b1 := reduce(s1, m-1)
	if b1 >= b0 {
		b1++
	}
	b2 := reduce(s2, m-2)
	first, second := min(b0, b1), max(b0, b1)
	if b2 >= first {
		b2++
	}
	if b2 >= second {
		b2++
	}
	return [Hashes]uint32{uint32(b0), uint32(b1), uint32(b2)}
}

// reduce maps a uniform 42-bit value to [0, n) by multiply-shift.
func reduce(x, n uint64) uint64 {
	hi, lo := bits.Mul64(x, n)
	return hi<<22 | lo>>42
}

// table is a stash-less cuckoo table over a fixed number of bins.
type table struct {
	occupant []int32 // item index in each bin, or −1
	cands    [][Hashes]uint32
	// Breadth-first search scratch: visited stamps, parents and the queue.
	stamp  []uint32
	parent []int32
	queue  []int32
	gen    uint32
}

// newTable returns an empty table of bins bins.
func newTable(bins int) (*table, error) {
	if bins < Hashes || bins > MaxBins {
		return nil, fmt.Errorf("%w: %d", ErrBins, bins)
	}
	t := &table{
		occupant: make([]int32, bins),
		stamp:    make([]uint32, bins),
		parent:   make([]int32, bins),
	}
	for i := range t.occupant {
		t.occupant[i] = -1
	}
	return t, nil
}

// Build places every item (given by its candidate bins) in one of its
// candidates, with no stash. It returns, for each bin, the index of the
// item in it or −1. It fails with ErrNoAssignment exactly when no placement
// exists: items are inserted one at a time, and an insertion that finds all
// three candidates full searches breadth-first for a chain of moves ending
// in an empty bin (an augmenting path), which exists whenever the items so
// far plus the new one can all be placed.
func Build(cands [][Hashes]uint32, bins int) ([]int32, error) {
	t, err := newTable(bins)
	if err != nil {
		return nil, err
	}
	t.cands = cands
	for i, c := range cands {
		for _, b := range c {
			if uint64(b) >= uint64(bins) {
				return nil, fmt.Errorf("%w: item %d has candidate %d of %d bins", ErrBins, i, b, bins)
			}
		}
		if !t.insert(int32(i)) {
			return nil, ErrNoAssignment
		}
	}
	return t.occupant, nil
}

func (t *table) insert(item int32) bool {
	c := &t.cands[item]
	for _, b := range c {
		if t.occupant[b] < 0 {
			t.occupant[b] = item
			return true
		}
	}
	// Breadth-first search over bins. parent[b] is the bin whose occupant
	// would move into b, or −1 for the new item's own candidates.
	t.gen++
	if t.gen == 0 { // wrapped: reset the stamps
		clear(t.stamp)
		t.gen = 1
	}
	q := t.queue[:0]
	for _, b := range c {
		if t.stamp[b] != t.gen {
			t.stamp[b] = t.gen
			t.parent[b] = -1
			q = append(q, int32(b))
		}
	}
	for head := 0; head < len(q); head++ {
		from := q[head]
		for _, b := range t.cands[t.occupant[from]] {
			if t.stamp[b] == t.gen {
				continue
			}
			t.stamp[b] = t.gen
			t.parent[b] = from
			if t.occupant[b] < 0 {
				// Shift every occupant one step along the path, then
				// place the new item at its start.
				for to := int32(b); ; {
					p := t.parent[to]
					if p < 0 {
						t.occupant[to] = item
						break
					}
					t.occupant[to] = t.occupant[p]
					to = p
				}
				t.queue = q
				return true
			}
			q = append(q, int32(b))
		}
	}
	t.queue = q
	return false
}
