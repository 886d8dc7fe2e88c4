package nodeapi

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"

	"golang.org/x/crypto/hkdf"
)

func TestEnvelopeKey(t *testing.T) {
	sum := sha256.Sum256([]byte("token-1"))
	want := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, sum[:], nil, []byte("unseen/he/envelope/v1")), want); err != nil {
		t.Fatal(err)
	}
	got := EnvelopeKey(sum[:])
	if !bytes.Equal(got, want) || len(got) != 32 {
		t.Fatalf("EnvelopeKey = %x, want HKDF-SHA256(sha256(token), info) = %x", got, want)
	}
	c := NewClient("a", "http://x", "token-1")
	if !bytes.Equal(c.EnvelopeKey(), want) {
		t.Fatal("the coordinator's key differs from the node's")
	}
	if bytes.Equal(NewClient("a", "http://x", "token-2").EnvelopeKey(), want) {
		t.Fatal("different tokens give the same key")
	}
}
