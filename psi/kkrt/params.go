package kkrt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"

	"github.com/unseen-data/unseen/psi/cuckoo"
)

const (
	// CodeBits is w, the width of the pseudo-random code, and so the number
	// of base OTs and of columns of the OT-extension matrix.
	CodeBits = 512
	// CodeBytes is CodeBits/8, the size of one row of the matrix.
	CodeBytes = CodeBits / 8
	// ItemSize is the size of an Item.
	ItemSize = 16
	// ValueSize is the size of an OPRF output as the coordinator sees it.
	ValueSize = 16
	// SessionKeySize is the size of the session key the two nodes share.
	SessionKeySize = 32
	// TagSize is the size of the session tag every message carries.
	TagSize = 8

	// DefaultPartitionSize is the default target number of items per
	// partition (of the larger set). Smaller partitions cost a few percent
	// more padding but keep the sender's matrix Q (about 90 bytes per
	// item) in cache: at 2^15 the whole run used about 10% less CPU than at
	// 2^16 and 20% less than at 2^18 on the development machine.
	DefaultPartitionSize = 1 << 15
	// MinPartitionSize and MaxPartitionSize bound Params.PartitionSize.
	MinPartitionSize = 16
	MaxPartitionSize = 1 << 20
	// DefaultChunkRows is the default number of bins per correction chunk
	// (a 1 MiB message).
	DefaultChunkRows = 1 << 14
	// MaxChunkRows bounds Params.ChunkRows: a correction chunk carries
	// CodeBytes per row, so at most 4 MiB of matrix (plus a 26-byte
	// header).
	MaxChunkRows = 1 << 16
	// MaxSetSize bounds each set: the code width and the output length are
	// chosen for sets up to this size (see the package documentation).
	MaxSetSize = 1 << 27
	// MaxPartitions bounds the number of partitions.
	MaxPartitions = 1 << 16
	// MaxPerMessage is the number of items whose outputs or values one
	// coordinator-bound message carries at most (≤ 3.5 MiB).
	MaxPerMessage = 1 << 16
	// MaxPosition bounds the positions callers attach to items.
	MaxPosition = 1<<48 - 1
	// MaxAttempts is the number of cuckoo hash keys the receiver tries per
	// partition (each fails with probability ≤ 2^-40).
	MaxAttempts = 8

	// rowAlign: every partition has a multiple of 128 bins, so that a
	// column's bits for a partition or chunk start on an AES block.
	rowAlign = 128
)

// Item is one set element: 16 bytes, typically HashItem of an ID under a
// key the two nodes share. The engine requires items to be distinct within
// a set.
type Item = [ItemSize]byte

// HashItem maps an arbitrary byte string to an Item: the first 16 bytes of
// HMAC-SHA256(key, id). Both nodes must use the same key; the coordinator
// must not know it.
func HashItem(key, id []byte) Item {
	m := hmac.New(sha256.New, key)
	m.Write(id)
	var it Item
	copy(it[:], m.Sum(nil))
	return it
}

var (
	// ErrParams reports invalid or mismatched parameters.
	ErrParams = errors.New("kkrt: invalid parameters")
	// ErrInput reports a caller error: items not distinct, not in the
	// partition, positions not ascending, and the like.
	ErrInput = errors.New("kkrt: invalid input")
	// ErrState reports a call in the wrong protocol state (a message
	// applied twice, a partition started twice, outputs before all chunks).
	ErrState = errors.New("kkrt: wrong protocol state")
	// ErrMessage reports a malformed or unexpected message.
	ErrMessage = errors.New("kkrt: malformed message")
	// ErrPartitionOverflow reports a receiver partition with more items than
	// the plan's capacity (probability ≤ 2^-40 for a set of the declared
	// size; the session must be restarted with a new session key).
	ErrPartitionOverflow = errors.New("kkrt: partition exceeds its capacity")
	// ErrCuckoo reports that MaxAttempts cuckoo keys all failed.
	ErrCuckoo = errors.New("kkrt: cuckoo hashing failed for every key")
)

// Params are the public parameters of a session. Both nodes must use the
// same Params; the receiver's first message carries them and the sender
// refuses a mismatch.
type Params struct {
	// ReceiverSize and SenderSize are the numbers of (distinct) items of
	// each side. They are public: they fix the partitioning and the padded
	// table sizes, so message sizes reveal nothing else about the sets.
	ReceiverSize, SenderSize int
	// PartitionSize is the target number of items per partition of the
	// larger set; 0 means DefaultPartitionSize. Memory per partition in
	// flight is O(PartitionSize) on every side.
	PartitionSize int
	// ChunkRows is the number of bins per correction chunk, a multiple of
	// 128 up to MaxChunkRows; 0 means DefaultChunkRows.
	ChunkRows int
}

// Plan is what Params imply; both nodes compute it.
type Plan struct {
	// Partitions is P, the number of partitions.
	Partitions int
	// Capacity is the most receiver items a partition may hold.
	Capacity int
	// Bins is the number of cuckoo bins (OT rows) of every partition, a
	// multiple of 128, whatever the partition's actual item count.
	Bins int
	// ChunkRows is the number of bins per correction chunk (the last chunk
	// of a partition may be shorter).
	ChunkRows int
	// Chunks is the number of correction chunks per partition.
	Chunks int
}

// chunkRows returns the rows of chunk c.
func (pl Plan) chunkRows(c int) int {
	return min(pl.ChunkRows, pl.Bins-c*pl.ChunkRows)
}

// Plan validates p and computes its Plan.
func (p Params) Plan() (Plan, error) {
	switch {
	case p.ReceiverSize < 0 || p.ReceiverSize > MaxSetSize:
		return Plan{}, fmt.Errorf("%w: receiver size %d not in [0, %d]", ErrParams, p.ReceiverSize, MaxSetSize)
	case p.SenderSize < 0 || p.SenderSize > MaxSetSize:
		return Plan{}, fmt.Errorf("%w: sender size %d not in [0, %d]", ErrParams, p.SenderSize, MaxSetSize)
	case p.PartitionSize != 0 && (p.PartitionSize < MinPartitionSize || p.PartitionSize > MaxPartitionSize):
		return Plan{}, fmt.Errorf("%w: partition size %d not in [%d, %d]", ErrParams, p.PartitionSize, MinPartitionSize, MaxPartitionSize)
	case p.ChunkRows != 0 && (p.ChunkRows < rowAlign || p.ChunkRows > MaxChunkRows || p.ChunkRows%rowAlign != 0):
		return Plan{}, fmt.Errorf("%w: chunk rows %d not a multiple of %d in [%d, %d]", ErrParams, p.ChunkRows, rowAlign, rowAlign, MaxChunkRows)
	}
	psize := p.PartitionSize
	if psize == 0 {
		psize = DefaultPartitionSize
	}
	rows := p.ChunkRows
	if rows == 0 {
		rows = DefaultChunkRows
	}
	parts := max(1, (max(p.ReceiverSize, p.SenderSize)+psize-1)/psize)
	if parts > MaxPartitions {
		return Plan{}, fmt.Errorf("%w: %d partitions (more than %d); raise the partition size", ErrParams, parts, MaxPartitions)
	}
	capacity := partitionCapacity(p.ReceiverSize, parts)
	bins := roundUp(cuckoo.Bins(capacity), rowAlign)
	rows = min(rows, bins)
	return Plan{
		Partitions: parts,
		Capacity:   capacity,
		Bins:       bins,
		ChunkRows:  rows,
		Chunks:     (bins + rows - 1) / rows,
	}, nil
}

func roundUp(x, m int) int { return (x + m - 1) / m * m }

// partitionCapacity returns the smallest c such that, with n items thrown
// into parts partitions by a random function, some partition receives more
// than c with probability ≤ 2^-40. By Bernstein's inequality, for X ~
// Bin(n, 1/P) with mean μ, Pr[X ≥ μ+t] ≤ exp(−t²/(2(μ+t/3))); a union
// bound over P partitions asks t²/(2(μ+t/3)) ≥ L = (40 + log₂P)·ln 2, i.e.
// t ≥ L/3 + √(L²/9 + 2Lμ).
func partitionCapacity(n, parts int) int {
	if parts <= 1 {
		return n
	}
	mu := float64(n) / float64(parts)
	l := (40 + math.Log2(float64(parts))) * math.Ln2
	t := l/3 + math.Sqrt(l*l/9+2*l*mu)
	return min(n, int(math.Ceil(mu+t)))
}

// reduce64 maps a uniform 64-bit value to [0, n) by multiply-shift.
func reduce64(x uint64, n int) int {
	hi, _ := bits.Mul64(x, uint64(n))
	return int(hi)
}

// keys is the per-session key schedule, derived from the session key by
// HKDF-SHA256 with distinct labels, so every use has its own key.
type keys struct {
	tag       [TagSize]byte
	partition cipher.Block                 // item → partition (and a fingerprint)
	code      [CodeBits / 128]cipher.Block // the pseudo-random code
	prk       []byte                       // HKDF pseudo-random key, for cuckoo keys
}

const kdfLabel = "unseen/kkrt/v1 "

func deriveKeys(sessionKey []byte) (*keys, error) {
	if len(sessionKey) != SessionKeySize {
		return nil, fmt.Errorf("%w: session key is %d bytes, want %d", ErrParams, len(sessionKey), SessionKeySize)
	}
	prk, err := hkdf.Extract(sha256.New, sessionKey, nil)
	if err != nil {
		return nil, err
	}
	k := &keys{prk: prk}
	tag, err := hkdf.Expand(sha256.New, prk, kdfLabel+"tag", TagSize)
	if err != nil {
		return nil, err
	}
	copy(k.tag[:], tag)
	if k.partition, err = expandBlock(prk, kdfLabel+"partition"); err != nil {
		return nil, err
	}
	for i := range k.code {
		if k.code[i], err = expandBlock(prk, fmt.Sprintf("%scode %d", kdfLabel, i)); err != nil {
			return nil, err
		}
	}
	return k, nil
}

func expandBlock(prk []byte, label string) (cipher.Block, error) {
	key, err := hkdf.Expand(sha256.New, prk, label, 16)
	if err != nil {
		return nil, err
	}
	return aes.NewCipher(key)
}

// cuckooKey is the key of the cuckoo hash functions for a partition and
// attempt: the i-th re-hash of partition p uses attempt i.
func (k *keys) cuckooKey(p, attempt int) ([]byte, error) {
	var info [len(kdfLabel) + 6 + 8]byte
	n := copy(info[:], kdfLabel+"cuckoo")
	binary.BigEndian.PutUint32(info[n:], uint32(p))
	binary.BigEndian.PutUint32(info[n+4:], uint32(attempt))
	return hkdf.Expand(sha256.New, k.prk, string(info[:]), 16)
}
