package kkrt

import (
	"crypto/cipher"
	"crypto/sha256"
	"encoding/binary"
)

// coder computes the pseudo-random code C(x) = AES_{K0}(x) ‖ AES_{K1}(x) ‖
// AES_{K2}(x) ‖ AES_{K3}(x) (four 128-bit blocks, CodeBits = 512), with
// K0…K3 derived from the session key. It holds a scratch block so that
// encrypting through the cipher.Block interface does not allocate per
// call; a coder is not safe for concurrent use.
type coder struct {
	blocks *[CodeBits / 128]cipher.Block
	buf    []byte
}

func newCoder(k *keys) *coder {
	return &coder{blocks: &k.code, buf: make([]byte, CodeBytes)}
}

// code writes C(x) to dst (CodeBytes bytes).
func (c *coder) code(dst []byte, x *Item) {
	for i, b := range c.blocks {
		b.Encrypt(c.buf[16*i:16*i+16], x[:])
	}
	copy(dst[:CodeBytes], c.buf)
}

// partitioner maps items to partitions: v = AES_Kp(x), partition =
// ⌊LE64(v[0:8])·P / 2^64⌋; LE64(v[8:16]) serves as a fingerprint for the
// duplicate check. Not safe for concurrent use (scratch buffer).
type partitioner struct {
	block cipher.Block
	parts int
	buf   []byte
}

func newPartitioner(k *keys, parts int) *partitioner {
	return &partitioner{block: k.partition, parts: parts, buf: make([]byte, 16)}
}

func (p *partitioner) of(x *Item) (part int, fingerprint uint64) {
	p.block.Encrypt(p.buf, x[:])
	return reduce64(binary.LittleEndian.Uint64(p.buf[0:8]), p.parts), binary.LittleEndian.Uint64(p.buf[8:16])
}

// hashInputSize is the size of the input of the output hash H.
const hashInputSize = TagSize + 4 + 4 + CodeBytes

// outputHash is H: the first ValueSize bytes of
// SHA-256(tag ‖ uint32be(partition) ‖ uint32be(bin) ‖ row). The receiver
// applies it to its row t_b, the sender to q_b ⊕ (C(y) ∧ s). SHA-256 plays
// the random oracle of KKRT's proof (which needs H to be correlation
// robust for Hamming-distance-κ correlations); the tag, partition and bin
// separate instances, which the rows alone already do.
type outputHash struct {
	in [hashInputSize]byte
}

func newOutputHash(tag *[TagSize]byte, partition int) *outputHash {
	h := &outputHash{}
	copy(h.in[:], tag[:])
	binary.BigEndian.PutUint32(h.in[TagSize:], uint32(partition))
	return h
}

// sum returns H(bin, row) for a row of CodeBytes bytes.
func (h *outputHash) sum(bin int, row []byte) [ValueSize]byte {
	binary.BigEndian.PutUint32(h.in[TagSize+4:], uint32(bin))
	copy(h.in[TagSize+8:], row[:CodeBytes])
	d := sha256.Sum256(h.in[:])
	return [ValueSize]byte(d[:ValueSize])
}
