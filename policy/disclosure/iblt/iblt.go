// Package iblt is an invertible Bloom lookup table (Goodrich and
// Mitzenmacher, 2011) used as a set-difference sketch (Eppstein, Goodrich,
// Uyeda and Varghese, "What's the Difference?", 2011): subtract the sketch
// of one set from another's and peel the result to list the elements in
// exactly one of them, when there are few enough.
//
// A node keeps one Sketch of each job's filtered input (the keyed hashes of
// its IDs) and compares a new job's sketch with earlier ones: two jobs whose
// inputs differ by fewer than k people would let an analyst subtract their
// results and learn about those few (differencing).
//
// Who learns what: a Sketch holds XORs and counts of 64-bit keyed hashes of
// IDs (Hasher, HMAC-SHA256 under a node secret). It never leaves the node.
// Decoding a difference reveals the hashes of the differing IDs, which are
// useless without the node's secret; the comparison's outcome that leaves
// the node is only the size of the difference.
//
// Geometry: 720 cells in 5 sub-tables of 144, each element in one cell of
// each; a cell is a 32-bit count (wrapping), a 64-bit key XOR and a 64-bit
// checksum XOR, 14,400 bytes in all. Peeling a difference of d < 100
// elements fails only if a small set of elements shares all its cells, with
// probability about C(d,2)/144^5 < 10⁻⁷ at d = 99; a difference far beyond
// the capacity (≈ 500) is reported as undecodable, never as a wrong small
// difference: a cell is taken as holding one element only if its checksum
// matches (false match 2⁻⁶⁴) and the element hashes to that very cell.
package iblt

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"math/bits"
)

// Geometry of every Sketch (fixed, so any two sketches can be compared).
const (
	Hashes   = 5
	SubCells = 144
	Cells    = Hashes * SubCells
)

// Sketch is an IBLT over 64-bit keys. The zero value is an empty sketch.
// It is a set sketch: insert each key at most once.
type Sketch struct {
	count [Cells]uint32 // wrapping: only differences are meaningful
	key   [Cells]uint64
	check [Cells]uint64
}

// New returns an empty sketch.
func New() *Sketch { return new(Sketch) }

// mix is SplitMix64's finaliser: a fixed bijection that spreads the bits of
// its input. Keys are already keyed hashes; mix only derives independent
// cell indices and checksums from them.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

var salts = [Hashes + 1]uint64{
	0x9e3779b97f4a7c15, 0xc2b2ae3d27d4eb4f, 0x165667b19e3779f9,
	0xd6e8feb86659fd93, 0xff51afd7ed558ccd, 0xc4ceb9fe1a85ec53,
}

// cell returns the cell of key in sub-table i.
func cell(key uint64, i int) int {
	hi, _ := bits.Mul64(mix(key^salts[i]), SubCells) // unbiased enough: 144/2^64
	return i*SubCells + int(hi)
}

func checksum(key uint64) uint64 { return mix(key ^ salts[Hashes]) }

func (s *Sketch) toggle(key uint64, delta uint32) {
	c := checksum(key)
	for i := range Hashes {
		j := cell(key, i)
		s.count[j] += delta
		s.key[j] ^= key
		s.check[j] ^= c
	}
}

// Insert adds key to the set.
func (s *Sketch) Insert(key uint64) { s.toggle(key, 1) }

// Remove takes key out of the set (or records it as only in the other set
// of a difference).
func (s *Sketch) Remove(key uint64) { s.toggle(key, ^uint32(0)) }

// Subtract returns s − o, the sketch of the elements of s not in o (count
// +1) and of o not in s (count −1).
func (s *Sketch) Subtract(o *Sketch) *Sketch {
	d := new(Sketch)
	for j := range Cells {
		d.count[j] = s.count[j] - o.count[j]
		d.key[j] = s.key[j] ^ o.key[j]
		d.check[j] = s.check[j] ^ o.check[j]
	}
	return d
}

// pure reports whether cell j holds exactly one element, and its sign.
func (s *Sketch) pure(j int) (uint64, uint32, bool) {
	c := s.count[j]
	if c != 1 && c != ^uint32(0) {
		return 0, 0, false
	}
	k := s.key[j]
	if s.check[j] != checksum(k) || cell(k, j/SubCells) != j {
		return 0, 0, false
	}
	return k, c, true
}

// Decode peels a difference sketch (from Subtract): onlyA are the keys
// counted +1, onlyB those counted −1. ok is false when the sketch cannot be
// peeled to empty (too many elements, or a sketch that is not the
// difference of two sets); the lists are then incomplete and must not be
// used. Decode does not modify s.
func (s *Sketch) Decode() (onlyA, onlyB []uint64, ok bool) {
	w := *s
	queue := make([]int, 0, Cells)
	for j := range Cells {
		if _, _, p := w.pure(j); p {
			queue = append(queue, j)
		}
	}
	// Each peel empties at least one cell's element for good; more peels
	// than cells can only come from a malformed sketch.
	for peels := 0; len(queue) > 0; {
		j := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		k, c, p := w.pure(j)
		if !p {
			continue
		}
		if peels++; peels > 4*Cells {
			return nil, nil, false
		}
		if c == 1 {
			onlyA = append(onlyA, k)
			w.toggle(k, ^uint32(0))
		} else {
			onlyB = append(onlyB, k)
			w.toggle(k, 1)
		}
		for i := range Hashes {
			if jj := cell(k, i); jj != j {
				if _, _, p := w.pure(jj); p {
					queue = append(queue, jj)
				}
			}
		}
	}
	for j := range Cells {
		if w.count[j] != 0 || w.key[j] != 0 || w.check[j] != 0 {
			return nil, nil, false
		}
	}
	return onlyA, onlyB, true
}

// SmallDifference reports |A Δ B| for the sets sketched by a and b, and
// whether it is small: 0 < |A Δ B| < k, decoded exactly. A difference that
// cannot be decoded is not small (d = −1); nor is an empty one (d = 0:
// the same input twice says nothing new).
func SmallDifference(a, b *Sketch, k int) (d int, small bool) {
	onlyA, onlyB, ok := a.Subtract(b).Decode()
	if !ok {
		return -1, false
	}
	d = len(onlyA) + len(onlyB)
	return d, d > 0 && d < k
}

// Encoding: version byte 1, the number of hashes (1 byte) and of cells
// (2 bytes, big-endian), then per cell its count (4 bytes), key and
// checksum (8 bytes each), big-endian.
const (
	version     = 1
	headerLen   = 4
	cellLen     = 20
	EncodedSize = headerLen + Cells*cellLen
)

var (
	errLength   = errors.New("iblt: encoded sketch has the wrong length")
	errVersion  = errors.New("iblt: unknown encoding version")
	errGeometry = errors.New("iblt: sketch geometry differs from this build's")
)

// MarshalBinary returns the canonical encoding (EncodedSize bytes).
func (s *Sketch) MarshalBinary() ([]byte, error) {
	b := make([]byte, EncodedSize)
	b[0], b[1] = version, Hashes
	binary.BigEndian.PutUint16(b[2:], Cells)
	for j := range Cells {
		o := headerLen + j*cellLen
		binary.BigEndian.PutUint32(b[o:], s.count[j])
		binary.BigEndian.PutUint64(b[o+4:], s.key[j])
		binary.BigEndian.PutUint64(b[o+12:], s.check[j])
	}
	return b, nil
}

// UnmarshalBinary decodes MarshalBinary's output; on error s is unchanged.
func (s *Sketch) UnmarshalBinary(b []byte) error {
	if len(b) != EncodedSize {
		return errLength
	}
	if b[0] != version {
		return errVersion
	}
	if b[1] != Hashes || binary.BigEndian.Uint16(b[2:]) != Cells {
		return errGeometry
	}
	var t Sketch
	for j := range Cells {
		o := headerLen + j*cellLen
		t.count[j] = binary.BigEndian.Uint32(b[o:])
		t.key[j] = binary.BigEndian.Uint64(b[o+4:])
		t.check[j] = binary.BigEndian.Uint64(b[o+12:])
	}
	*s = t
	return nil
}

// Hasher maps IDs to 64-bit keys with HMAC-SHA256 under a node secret, so
// that a stored sketch or a decoded difference cannot be matched against a
// list of candidate IDs by anyone without the secret. Not safe for
// concurrent use: give each goroutine its own.
type Hasher struct {
	mac hash.Hash
	sum []byte
}

// MinKeyLen is the shortest secret NewHasher accepts.
const MinKeyLen = 32

// NewHasher returns a Hasher keyed with secret (at least MinKeyLen bytes).
func NewHasher(secret []byte) (*Hasher, error) {
	if len(secret) < MinKeyLen {
		return nil, errors.New("iblt: hash secret shorter than 32 bytes")
	}
	return &Hasher{mac: hmac.New(sha256.New, secret), sum: make([]byte, 0, sha256.Size)}, nil
}

// Sum64 returns the key of id.
func (h *Hasher) Sum64(id []byte) uint64 {
	h.mac.Reset()
	h.mac.Write(id)
	h.sum = h.mac.Sum(h.sum[:0])
	return binary.BigEndian.Uint64(h.sum)
}
