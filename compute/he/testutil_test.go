package he

import (
	"crypto/sha256"
	"testing"

	"github.com/tuneinsight/lattigo/v5/utils/sampling"
)

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

func mustPRNG(t testing.TB) *sampling.KeyedPRNG {
	p, err := sampling.NewKeyedPRNG([]byte("test"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
