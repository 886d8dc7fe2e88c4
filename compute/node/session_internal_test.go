package node

import (
	"math/rand/v2"
	"testing"

	"github.com/unseen-data/unseen/policy/attest"
)

// claimReblind against a plain model (a bool per position and the chunks
// by offset), over random chunks of lists whose lengths cross word
// boundaries: the same answer every time.
func TestClaimReblindModel(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, length := range []int{1, 63, 64, 65, 130, 1000} {
		ss := &session{attempt: 1}
		done := make([]bool, length)
		type chunk struct {
			n  int
			in attest.Digest
		}
		chunks := map[int]chunk{}
		for range 2000 {
			off := rnd.IntN(length+4) - 2
			n := rnd.IntN(70) + rnd.IntN(2)*-1 // sometimes 0 or -1
			in := attest.Digest{byte(rnd.IntN(2))}
			want := ""
			switch c, ok := chunks[off]; {
			case off < 0 || n < 1 || off+n > length:
				want = "over_length"
			case ok && c.n == n && c.in == in:
			default:
				for i := off; i < off+n; i++ {
					if done[i] {
						want = "repeated_position"
					}
				}
				if want == "" {
					for i := off; i < off+n; i++ {
						done[i] = true
					}
					chunks[off] = chunk{n, in}
				}
			}
			err := ss.claimReblind(1, length, off, n, in)
			got := ""
			if err != nil {
				got = err.(*Error).Code
			}
			if got != want {
				t.Fatalf("length %d, chunk [%d, %d+%d): got %q, want %q", length, off, off, n, got, want)
			}
		}
		r := ss.reblinds[1]
		for i, d := range done {
			if r.any(i, i+1) != d {
				t.Fatalf("length %d: position %d is %v, want %v", length, i, !d, d)
			}
		}
	}
	// The declared length of a list cannot change within an attempt.
	ss := &session{attempt: 1}
	if err := ss.claimReblind(0, 10, 0, 5, attest.Digest{}); err != nil {
		t.Fatal(err)
	}
	if err := ss.claimReblind(0, 20, 10, 5, attest.Digest{}); err == nil || err.(*Error).Code != "bad_length" {
		t.Fatalf("another length for the same list: %v", err)
	}
}
