package kkrt

import (
	"crypto/aes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/ot/simot"
)

// Base OTs. KKRT needs CodeBits = 512 OTs in which the PSI receiver
// holds random seed pairs (k_i^0, k_i^1) and the PSI sender random choice
// bits s and k_i^{s_i}. Public-key OTs are the fixed cost of a session, so
// only κ = 128 are run (circl's ot/simot, the "simplest OT" of Chou and
// Orlandi, eprint 2015/267, over Ristretto255) and extended to 512 with
// one IKNP step (Ishai, Kilian, Nissim, Petrank, Crypto 2003), roles
// reversed:
//
//  1. Setup (sender → receiver): the PSI sender is the base-OT sender, with
//     random seeds (a_j^0, a_j^1), j < 128: it sends the simot A_j.
//  2. Reply (receiver → sender): the PSI receiver is the base-OT receiver,
//     with random choice bits Δ ∈ {0,1}^128: it sends the B_j.
//  3. Seeds (sender → receiver): the seeds under simot's AES-GCM keys, and
//     u_j = G(a_j^0) ⊕ G(a_j^1) ⊕ s (512 bits each), s ∈ {0,1}^512 random.
//     The receiver learns a_j^{Δ_j} and computes Q_j = G(a_j^{Δ_j}) ⊕
//     Δ_j·u_j = T_j ⊕ Δ_j·s, T_j = G(a_j^0). With t_i, q_i the 128-bit rows
//     of T and Q, q_i = t_i ⊕ s_i·Δ, and
//
//	k_i^0 = H'(i, q_i), k_i^1 = H'(i, q_i ⊕ Δ)  (receiver),  k_i^{s_i} = H'(i, t_i)  (sender),
//
// with H'(i, x) the first 16 bytes of SHA-256("unseen/kkrt/v1 base" ‖ tag
// ‖ uint32be(i) ‖ x), the random oracle of IKNP's proof. The receiver
// learns nothing about s (u_j is masked by G(a_j^{1−Δ_j})), the sender
// nothing about Δ, so k_i^{1−s_i} = H'(i, t_i ⊕ Δ) stays hidden from it.
// G here is AES-128-CTR from counter 0, as for the extension itself.

// baseOTs is κ, the number of public-key base OTs.
const baseOTs = 128

var otGroup = group.Ristretto255

// decodePoint decodes a Ristretto255 element, refusing invalid encodings
// and the identity (which would make the OT degenerate).
func decodePoint(b []byte) (group.Element, error) {
	e := otGroup.NewElement()
	if err := e.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("%w: invalid group element: %v", ErrMessage, err)
	}
	if e.IsIdentity() {
		return nil, fmt.Errorf("%w: identity group element", ErrMessage)
	}
	return e, nil
}

func marshalPoint(dst []byte, e group.Element) error {
	b, err := e.MarshalBinary()
	if err != nil {
		return err
	}
	if len(b) != pointSize {
		return fmt.Errorf("kkrt: group element of %d bytes", len(b))
	}
	copy(dst, b)
	return nil
}

// forRanges splits [0, n) into up to workers contiguous ranges, runs f on
// each in its own goroutine and returns the first error.
func forRanges(n, workers int, f func(lo, hi int) error) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, n))
	if workers == 1 {
		return f(0, n)
	}
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	per := (n + workers - 1) / workers
	for lo := 0; lo < n; lo += per {
		hi := min(n, lo+per)
		wg.Go(func() {
			if err := f(lo, hi); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// forEach runs f(i) for every i in [0, n) on up to workers goroutines.
func forEach(n, workers int, f func(i int) error) error {
	return forRanges(n, workers, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			if err := f(i); err != nil {
				return err
			}
		}
		return nil
	})
}

// baseOTSender is the PSI sender's side of the base OTs and of the IKNP
// step.
type baseOTSender struct {
	ots   []simot.Sender
	seeds [baseOTs][2][16]byte
	s     [CodeBytes]byte // the extended OTs' choice bits: the OPRF key
}

func newBaseOTSender() (*baseOTSender, error) {
	b := &baseOTSender{ots: make([]simot.Sender, baseOTs)}
	for i := range b.seeds {
		for j := range 2 {
			if _, err := rand.Read(b.seeds[i][j][:]); err != nil {
				return nil, err
			}
		}
	}
	if _, err := rand.Read(b.s[:]); err != nil {
		return nil, err
	}
	return b, nil
}

// first computes the A_j.
func (b *baseOTSender) first(points *[baseOTs][pointSize]byte, workers int) error {
	return forEach(baseOTs, workers, func(i int) error {
		m0, m1 := b.seeds[i][0], b.seeds[i][1]
		return marshalPoint(points[i][:], b.ots[i].InitSender(otGroup, m0[:], m1[:], i))
	})
}

// third encrypts the seeds under the keys the B_j imply, computes u, and
// returns the sender's extended seeds k_i^{s_i} = H'(i, t_i).
func (b *baseOTSender) third(tag *[TagSize]byte, reply *replyMsg, out *seedsMsg, workers int) ([][16]byte, error) {
	bs := make([]group.Element, baseOTs)
	for i := range bs {
		var err error
		if bs[i], err = decodePoint(reply.points[i][:]); err != nil {
			return nil, err
		}
	}
	err := forEach(baseOTs, workers, func(i int) error {
		e0, e1 := b.ots[i].Round2Sender(bs[i])
		if len(e0) != sealedSize || len(e1) != sealedSize {
			return fmt.Errorf("kkrt: base OT ciphertexts of %d and %d bytes", len(e0), len(e1))
		}
		copy(out.sealed[i][0][:], e0)
		copy(out.sealed[i][1][:], e1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var t [baseOTs][CodeBytes]byte
	for j := range baseOTs {
		if err := prgBlock(b.seeds[j][0][:], t[j][:]); err != nil {
			return nil, err
		}
		if err := prgBlock(b.seeds[j][1][:], out.u[j][:]); err != nil {
			return nil, err
		}
		subtle.XORBytes(out.u[j][:], out.u[j][:], t[j][:])
		subtle.XORBytes(out.u[j][:], out.u[j][:], b.s[:])
	}
	rows := transposeBase(&t)
	chosen := make([][16]byte, CodeBits)
	for i := range chosen {
		chosen[i] = baseHash(tag, i, &rows[i])
	}
	return chosen, nil
}

// baseOTReceiver is the PSI receiver's side of the base OTs and of the
// IKNP step.
type baseOTReceiver struct {
	ots   []simot.Receiver
	delta [baseOTs / 8]byte // Δ, bit j = choice of base OT j
}

func newBaseOTReceiver() (*baseOTReceiver, error) {
	r := &baseOTReceiver{ots: make([]simot.Receiver, baseOTs)}
	if _, err := rand.Read(r.delta[:]); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *baseOTReceiver) bit(j int) int { return int(r.delta[j/8] >> (j % 8) & 1) }

// second computes the B_j from the A_j.
func (r *baseOTReceiver) second(setup *setupMsg, points *[baseOTs][pointSize]byte, workers int) error {
	as := make([]group.Element, baseOTs)
	for i := range as {
		var err error
		if as[i], err = decodePoint(setup.points[i][:]); err != nil {
			return err
		}
	}
	return forEach(baseOTs, workers, func(i int) error {
		return marshalPoint(points[i][:], r.ots[i].Round1Receiver(otGroup, r.bit(i), i, as[i]))
	})
}

// finish decrypts the chosen seeds a_j^{Δ_j}, computes Q and returns the
// receiver's extended seed pairs (k_i^0, k_i^1).
func (r *baseOTReceiver) finish(tag *[TagSize]byte, seeds *seedsMsg, workers int) ([][2][16]byte, error) {
	var chosen [baseOTs][16]byte
	err := forEach(baseOTs, workers, func(i int) error {
		if err := r.ots[i].Round3Receiver(seeds.sealed[i][0][:], seeds.sealed[i][1][:], r.bit(i)); err != nil {
			return fmt.Errorf("%w: base OT %d does not decrypt", ErrMessage, i)
		}
		m := r.ots[i].Returnmc()
		if len(m) != 16 {
			return fmt.Errorf("%w: base OT %d seed of %d bytes", ErrMessage, i, len(m))
		}
		copy(chosen[i][:], m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var q [baseOTs][CodeBytes]byte
	for j := range baseOTs {
		if err := prgBlock(chosen[j][:], q[j][:]); err != nil {
			return nil, err
		}
		if r.bit(j) == 1 {
			subtle.XORBytes(q[j][:], q[j][:], seeds.u[j][:])
		}
	}
	rows := transposeBase(&q)
	out := make([][2][16]byte, CodeBits)
	for i := range out {
		out[i][0] = baseHash(tag, i, &rows[i])
		var x [baseOTs / 8]byte
		subtle.XORBytes(x[:], rows[i][:], r.delta[:])
		out[i][1] = baseHash(tag, i, &x)
	}
	return out, nil
}

// prgBlock writes the first len(dst) bytes of G(seed) to dst.
func prgBlock(seed, dst []byte) error {
	blk, err := aes.NewCipher(seed)
	if err != nil {
		return err
	}
	clear(dst)
	ctrXOR(blk, 0, dst)
	return nil
}

// transposeBase turns the κ×512 IKNP matrix (row j = 512 bits) into its
// 512 rows of κ = 128 bits. It runs once per session; a plain bit loop
// is fast enough.
func transposeBase(m *[baseOTs][CodeBytes]byte) *[CodeBits][baseOTs / 8]byte {
	var out [CodeBits][baseOTs / 8]byte
	for j := range baseOTs {
		for i := range CodeBits {
			out[i][j/8] |= (m[j][i/8] >> (i % 8) & 1) << (j % 8)
		}
	}
	return &out
}

// baseHash is H'(i, x).
func baseHash(tag *[TagSize]byte, i int, x *[baseOTs / 8]byte) [16]byte {
	var in [len(kdfLabel) + 4 + TagSize + 4 + baseOTs/8]byte
	n := copy(in[:], kdfLabel+"base")
	n += copy(in[n:], tag[:])
	binary.BigEndian.PutUint32(in[n:], uint32(i))
	copy(in[n+4:], x[:])
	d := sha256.Sum256(in[:])
	return [16]byte(d[:16])
}
