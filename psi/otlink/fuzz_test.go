package otlink

import (
	"bytes"
	"crypto/ecdh"
	"testing"
)

// fixedPair is a link pair from fixed keys, so that fuzz seeds stay valid.
func fixedPair(t testing.TB) (r, s *Link) {
	ka, _ := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{1}, 32))
	kb, _ := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{2}, 32))
	r, err := Establish(&Ephemeral{ka}, kb.PublicKey().Bytes(), Receiver, []byte("fuzz"))
	if err != nil {
		t.Fatal(err)
	}
	s, err = Establish(&Ephemeral{kb}, ka.PublicKey().Bytes(), Sender, []byte("fuzz"))
	if err != nil {
		t.Fatal(err)
	}
	return r, s
}

// FuzzOpen: the receiving end opens whatever bytes the relay sends without
// panicking; only the genuine first frame opens, and anything else closes
// the link.
func FuzzOpen(f *testing.F) {
	_, s := fixedPair(f)
	genuine, _ := s.Seal([]byte("first"))
	f.Add(genuine)
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1}, make([]byte, 16)...))
	f.Fuzz(func(t *testing.T, frame []byte) {
		r, s := fixedPair(t)
		want, _ := s.Seal([]byte("first"))
		msg, err := r.Open(frame)
		if bytes.Equal(frame, want) {
			if err != nil || string(msg) != "first" {
				t.Fatalf("genuine frame refused: %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("forged frame %x opened to %q", frame, msg)
		}
		if _, err := r.Open(want); err == nil {
			t.Fatal("link still open after a refused frame")
		}
	})
}
