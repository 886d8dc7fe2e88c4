package kkrt

import (
	"crypto/rand"
	"fmt"
	"runtime"
	"sync"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/ot/simot"
)

// Base OTs: CodeBits instances of circl's simot (the "simplest OT" of Chou
// and Orlandi, eprint 2015/267) over Ristretto255, run in parallel. The
// roles are the reverse of the PSI roles, as in IKNP: the PSI receiver is
// the base-OT sender, with two random 16-byte seeds (k_i^0, k_i^1) per
// instance; the PSI sender is the base-OT receiver, with choice bits s and
// learns k_i^{s_i}. Three flows: A_i (Setup), B_i (Reply), and the seeds
// under AES-GCM keys derived from the transcript (Seeds).

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

// baseOTSender is the PSI receiver's side of the base OTs.
type baseOTSender struct {
	ots   []simot.Sender
	seeds [][2][16]byte
}

func newBaseOTSender() (*baseOTSender, error) {
	s := &baseOTSender{ots: make([]simot.Sender, CodeBits), seeds: make([][2][16]byte, CodeBits)}
	for i := range s.seeds {
		for j := range 2 {
			if _, err := rand.Read(s.seeds[i][j][:]); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// first computes the A_i.
func (s *baseOTSender) first(points *[CodeBits][pointSize]byte, workers int) error {
	return forEach(CodeBits, workers, func(i int) error {
		m0, m1 := s.seeds[i][0], s.seeds[i][1]
		return marshalPoint(points[i][:], s.ots[i].InitSender(otGroup, m0[:], m1[:], i))
	})
}

// third encrypts the seeds under the keys the B_i imply.
func (s *baseOTSender) third(reply *replyMsg, sealed *[CodeBits][2][sealedSize]byte, workers int) error {
	bs := make([]group.Element, CodeBits)
	for i := range bs {
		var err error
		if bs[i], err = decodePoint(reply.points[i][:]); err != nil {
			return err
		}
	}
	return forEach(CodeBits, workers, func(i int) error {
		e0, e1 := s.ots[i].Round2Sender(bs[i])
		if len(e0) != sealedSize || len(e1) != sealedSize {
			return fmt.Errorf("kkrt: base OT ciphertexts of %d and %d bytes", len(e0), len(e1))
		}
		copy(sealed[i][0][:], e0)
		copy(sealed[i][1][:], e1)
		return nil
	})
}

// baseOTReceiver is the PSI sender's side of the base OTs.
type baseOTReceiver struct {
	ots    []simot.Receiver
	choice [CodeBytes]byte // s, bit i = choice of instance i
}

func newBaseOTReceiver() (*baseOTReceiver, error) {
	r := &baseOTReceiver{ots: make([]simot.Receiver, CodeBits)}
	if _, err := rand.Read(r.choice[:]); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *baseOTReceiver) bit(i int) int { return int(r.choice[i/8] >> (i % 8) & 1) }

// second computes the B_i from the A_i.
func (r *baseOTReceiver) second(setup *setupMsg, points *[CodeBits][pointSize]byte, workers int) error {
	as := make([]group.Element, CodeBits)
	for i := range as {
		var err error
		if as[i], err = decodePoint(setup.points[i][:]); err != nil {
			return err
		}
	}
	return forEach(CodeBits, workers, func(i int) error {
		return marshalPoint(points[i][:], r.ots[i].Round1Receiver(otGroup, r.bit(i), i, as[i]))
	})
}

// finish decrypts the chosen seeds.
func (r *baseOTReceiver) finish(seeds *seedsMsg, out *[CodeBits][16]byte, workers int) error {
	return forEach(CodeBits, workers, func(i int) error {
		c := r.bit(i)
		if err := r.ots[i].Round3Receiver(seeds.sealed[i][0][:], seeds.sealed[i][1][:], c); err != nil {
			return fmt.Errorf("%w: base OT %d does not decrypt", ErrMessage, i)
		}
		m := r.ots[i].Returnmc()
		if len(m) != 16 {
			return fmt.Errorf("%w: base OT %d seed of %d bytes", ErrMessage, i, len(m))
		}
		copy(out[i][:], m)
		return nil
	})
}
