package kkrt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/unseen-data/unseen/psi/cuckoo"
)

// TestOPRFMatchesSpec recomputes a session's outputs and values bit by bit
// from the construction in the package documentation, with none of the
// engine's code paths (no transposes, no chunking): t_b has bit i equal to
// bit (p·m + b) of AES-CTR_{k_i^0}(0); q_b = t_b ⊕ (C(x_b) ∧ s); the
// receiver's output is H(p, b, t_b) and the sender's values are
// H(p, b_j, q_{b_j} ⊕ (C(y) ∧ s)).
func TestOPRFMatchesSpec(t *testing.T) {
	params := Params{ReceiverSize: 150, SenderSize: 150, PartitionSize: 80, ChunkRows: 128}
	key := testKey(0x21)
	r, s := newPair(t, params, key, 77)
	plan := r.Plan()
	// The same stream fakeBaseOTs read: choice bits, then seeds.
	rnd := testRand(77)
	var choice [CodeBytes]byte
	io.ReadFull(rnd, choice[:])
	seeds := make([][2][16]byte, CodeBits)
	for i := range seeds {
		io.ReadFull(rnd, seeds[i][0][:])
		io.ReadFull(rnd, seeds[i][1][:])
	}
	// Spec key schedule.
	prk, _ := hkdf.Extract(sha256.New, key, nil)
	tagB, _ := hkdf.Expand(sha256.New, prk, "unseen/kkrt/v1 tag", TagSize)
	var codeBlk [4]cipher.Block
	for i := range codeBlk {
		k, _ := hkdf.Expand(sha256.New, prk, fmt.Sprintf("unseen/kkrt/v1 code %d", i), 16)
		codeBlk[i], _ = aes.NewCipher(k)
	}
	code := func(x Item) (c [CodeBytes]byte) {
		for i := range codeBlk {
			codeBlk[i].Encrypt(c[16*i:], x[:])
		}
		return c
	}
	g := make([][]byte, CodeBits) // G(k_i^0) over every row of the session
	for i := range g {
		blk, _ := aes.NewCipher(seeds[i][0][:])
		g[i] = make([]byte, plan.Partitions*plan.Bins/8)
		cipher.NewCTR(blk, make([]byte, 16)).XORKeyStream(g[i], g[i])
	}
	h := func(p, b int, row [CodeBytes]byte) (v [ValueSize]byte) {
		in := append(append([]byte{}, tagB...), 0, 0, 0, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint32(in[TagSize:], uint32(p))
		binary.BigEndian.PutUint32(in[TagSize+4:], uint32(b))
		d := sha256.Sum256(append(in, row[:]...))
		copy(v[:], d[:])
		return v
	}

	rng := rand.New(rand.NewPCG(3, 3))
	sender, receiver := sets(rng, 150, 150, 60)
	rItems, rPos := partitionOf(t, params, key, receiver)
	sItems, sPos := partitionOf(t, params, key, sender)
	for p := range plan.Partitions {
		rp, err := r.Partition(p, rItems[p], rPos[p])
		if err != nil {
			t.Fatal(err)
		}
		sp, _ := s.Partition(p)
		for c := range rp.Chunks() {
			m, _ := rp.Chunk(c)
			if err := sp.Apply(m); err != nil {
				t.Fatal(err)
			}
		}
		// Rows t_b and q_b from the spec.
		tRow := func(b int) (row [CodeBytes]byte) {
			r := p*plan.Bins + b
			for i := range CodeBits {
				row[i/8] |= (g[i][r/8] >> (r % 8) & 1) << (i % 8)
			}
			return row
		}
		occ := rp.occupantForTest()
		outs, _ := rp.Outputs()
		ro, _ := DecodeReceiverOutputs(outs[0])
		for b, it := range occ {
			if it < 0 {
				continue
			}
			if want := h(p, b, tRow(b)); ro.Values[it] != want {
				t.Fatalf("partition %d bin %d: receiver output differs from the spec", p, b)
			}
		}
		qRow := func(b int) [CodeBytes]byte {
			row := tRow(b)
			if it := occ[b]; it >= 0 {
				c := code(rItems[p][it])
				for i := range row {
					row[i] ^= c[i] & choice[i]
				}
			}
			return row
		}
		ck, _ := hkdf.Expand(sha256.New, prk, "unseen/kkrt/v1 cuckoo"+string([]byte{0, 0, 0, byte(p), 0, 0, 0, byte(rp.Attempt())}), 16)
		hasher, _ := cuckoo.NewHasher(ck, plan.Bins)
		vals, err := sp.Values(sItems[p], sPos[p])
		if err != nil {
			t.Fatal(err)
		}
		sv, _ := DecodeSenderValues(vals[0])
		for i, y := range sItems[p] {
			cy := code(y)
			var want [3][ValueSize]byte
			for j, b := range hasher.Candidates(&y) {
				row := qRow(int(b))
				for k := range row {
					row[k] ^= cy[k] & choice[k]
				}
				want[j] = h(p, int(b), row)
			}
			sort3(&want)
			if sv.Values[i] != want {
				t.Fatalf("partition %d item %d: sender values differ from the spec", p, i)
			}
		}
	}
}
