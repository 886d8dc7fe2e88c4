package psi

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"runtime"
	"strings"

	"github.com/cloudflare/circl/dh/x25519"
	"golang.org/x/sync/errgroup"
)

// MinSecretSize is the shortest node secret DeriveKey accepts.
const MinSecretSize = 32

// Key is a party's blinding key for one job. The zero Key is not usable;
// get one from DeriveKey.
type Key struct {
	s x25519.Key
}

// String keeps the key out of logs.
func (k *Key) String() string { return "psi.Key(redacted)" }

// GoString keeps the key out of %#v output.
func (k *Key) GoString() string { return k.String() }

// deriveBytes returns HKDF-SHA256(secret, salt = none,
// info = domain ‖ "/" ‖ label ‖ 0x00 ‖ jobID ‖ 0x00 ‖ specHash), 32 bytes.
// Labels and job ids never contain 0x00, so the info string is unambiguous.
func deriveBytes(nodeSecret []byte, label, jobID string, specHash []byte) ([]byte, error) {
	if len(nodeSecret) < MinSecretSize {
		return nil, ErrShortSecret
	}
	if jobID == "" || strings.IndexByte(jobID, 0) >= 0 {
		return nil, ErrEmptyJobID
	}
	if len(specHash) != SpecHashSize {
		return nil, ErrSpecHash
	}
	return hkdf.Key(sha256.New, nodeSecret, nil, domain+"/"+label+"\x00"+jobID+"\x00"+string(specHash), 32)
}

// SpecHashSize is the length of the job spec hash keys are bound to.
const SpecHashSize = 32

// DeriveKey returns the party's key for one job:
// HKDF-SHA256(nodeSecret, info = "unseen/psi/v1/key" ‖ 0x00 ‖ jobID ‖ 0x00 ‖
// specHash). It is deterministic, so a retried step blinds identically;
// unrelated across jobs; and bound to the job's spec, so the same job id
// with another spec (a filter narrowed by one person between attempts) is
// blinded under an unrelated key. The node secret must have at least
// MinSecretSize bytes.
func DeriveKey(nodeSecret []byte, jobID string, specHash []byte) (*Key, error) {
	b, err := deriveBytes(nodeSecret, "key", jobID, specHash)
	if err != nil {
		return nil, err
	}
	k := new(Key)
	copy(k.s[:], b)
	return k, nil
}

// blindOne sets *dst = X25519(k, *src), rejecting low-order inputs. dst
// and src may alias.
func (k *Key) blindOne(dst, src *Element) error {
	if isLowOrder(src) {
		return ErrInvalidPoint
	}
	return k.ladder(dst, src)
}

// ladder sets *dst = X25519(k, *src) and fails if that is all zero, which
// happens exactly for low-order inputs: a second line of defence, so a gap
// in the filter can never yield a usable (and key-independent) value.
func (k *Key) ladder(dst, src *Element) error {
	in := x25519.Key(*src)
	var out x25519.Key
	// Shared's own low-order verdict is ignored: the caller has filtered,
	// and the result is checked below.
	x25519.Shared(&out, &k.s, &in)
	var zero x25519.Key
	if subtle.ConstantTimeCompare(out[:], zero[:]) == 1 {
		return ErrZeroResult
	}
	*dst = Element(out)
	return nil
}

// Blind sets dst[i] = src[i]^k (the X25519 function, which ignores bit 255
// of its input) for every i, on all cores. It fails on a low-order input
// or, should one ever occur, an all-zero result, reporting the first such
// index; dst is then unspecified. dst and src must have the same length and
// may be the same slice.
func (k *Key) Blind(dst, src []Element) error {
	if len(dst) != len(src) {
		return ErrLength
	}
	return parallel(len(src), func(i int) error {
		if err := k.blindOne(&dst[i], &src[i]); err != nil {
			return fmt.Errorf("%w (element %d)", err, i)
		}
		return nil
	})
}

// minPerWorker keeps goroutines worth starting: 16 scalar multiplications
// are about 0.4 ms.
const minPerWorker = 16

// parallel calls fn(i) for i in [0, n), split into contiguous ranges over
// up to GOMAXPROCS goroutines, and returns the error for the lowest failing
// range (a range stops at its first error).
func parallel(n int, fn func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), (n+minPerWorker-1)/minPerWorker)
	if workers <= 1 {
		for i := range n {
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	// Each range reports its own first error; the lowest range's wins, so
	// the index reported does not depend on scheduling.
	errs := make([]error, workers)
	var g errgroup.Group
	for w := range workers {
		lo, hi := w*n/workers, (w+1)*n/workers
		g.Go(func() error {
			for i := lo; i < hi; i++ {
				if err := fn(i); err != nil {
					errs[w] = err
					return nil
				}
			}
			return nil
		})
	}
	_ = g.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
