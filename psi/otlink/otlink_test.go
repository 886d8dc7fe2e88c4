package otlink

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
)

// pair establishes both ends of a link over one transcript.
func pair(t testing.TB) (r, s *Link) {
	t.Helper()
	er, err := NewEphemeral(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	es, err := NewEphemeral(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tr := append(er.Public(), es.Public()...)
	if r, err = Establish(er, es.Public(), Receiver, tr); err != nil {
		t.Fatal(err)
	}
	if s, err = Establish(es, er.Public(), Sender, tr); err != nil {
		t.Fatal(err)
	}
	return r, s
}

func TestRoundTrip(t *testing.T) {
	r, s := pair(t)
	if !bytes.Equal(r.SessionKey(), s.SessionKey()) || !bytes.Equal(r.ItemKey(), s.ItemKey()) {
		t.Fatal("the two ends derived different keys")
	}
	if bytes.Equal(r.SessionKey(), r.ItemKey()) {
		t.Fatal("session and item keys are equal")
	}
	for i, msg := range [][]byte{{}, []byte("setup"), bytes.Repeat([]byte{7}, 1<<16)} {
		f, err := s.Seal(msg)
		if err != nil {
			t.Fatal(err)
		}
		if len(f) != len(msg)+Overhead {
			t.Fatalf("frame %d: %d bytes for a %d-byte message", i, len(f), len(msg))
		}
		got, err := r.Open(f)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("frame %d: %v", i, err)
		}
		// The other direction has its own key and numbers.
		g, err := r.Seal(msg)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.Open(g); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("reply %d: %v", i, err)
		}
	}
	if r.Received() != 3 || s.Sent() != 3 {
		t.Fatalf("counters %d, %d", r.Received(), s.Sent())
	}
}

// A frame cannot be sent back to its sender: each direction has its key.
func TestReflectedFrameRefused(t *testing.T) {
	r, s := pair(t)
	f, _ := s.Seal([]byte("to the receiver"))
	if _, err := s.Open(f); !errors.Is(err, ErrAuth) {
		t.Fatalf("reflected frame: %v", err)
	}
	_ = r
}

// The relay's attacks on the frames, each refused, and each closing the
// link for good.
func TestRelayAttacks(t *testing.T) {
	seal := func(l *Link, n int) [][]byte {
		var fs [][]byte
		for i := range n {
			f, err := l.Seal([]byte{byte(i), 1, 2, 3})
			if err != nil {
				t.Fatal(err)
			}
			fs = append(fs, f)
		}
		return fs
	}
	cases := []struct {
		name   string
		attack func(fs [][]byte) [][]byte // what the relay delivers
		want   error
	}{
		{"replay", func(fs [][]byte) [][]byte { return [][]byte{fs[0], fs[1], fs[1]} }, ErrReplay},
		{"drop", func(fs [][]byte) [][]byte { return [][]byte{fs[0], fs[2]} }, ErrGap},
		{"reorder", func(fs [][]byte) [][]byte { return [][]byte{fs[1], fs[0]} }, ErrGap},
		{"tamper body", func(fs [][]byte) [][]byte {
			f := bytes.Clone(fs[0])
			f[headerSize] ^= 1
			return [][]byte{f}
		}, ErrAuth},
		{"tamper tag", func(fs [][]byte) [][]byte {
			f := bytes.Clone(fs[0])
			f[len(f)-1] ^= 0x80
			return [][]byte{f}
		}, ErrAuth},
		{"renumber", func(fs [][]byte) [][]byte {
			// Frame 1 presented as frame 0: the number is authenticated.
			f := bytes.Clone(fs[1])
			f[8] = 0
			return [][]byte{f}
		}, ErrAuth},
		{"truncate", func(fs [][]byte) [][]byte { return [][]byte{fs[0][:len(fs[0])-1]} }, ErrAuth},
		{"short", func(fs [][]byte) [][]byte { return [][]byte{fs[0][:Overhead-1]} }, ErrFrame},
		{"version", func(fs [][]byte) [][]byte {
			f := bytes.Clone(fs[0])
			f[0] = 2
			return [][]byte{f}
		}, ErrFrame},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, s := pair(t)
			fs := seal(s, 3)
			var err error
			for _, f := range c.attack(fs) {
				if _, err = r.Open(f); err != nil {
					break
				}
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			// Closed for good: even the genuine next frame is refused.
			if _, err := r.Open(fs[r.Received()]); !errors.Is(err, ErrClosed) {
				t.Fatalf("after a refusal: %v", err)
			}
		})
	}
}

// A relay that puts its own ephemeral key in the middle derives other keys
// than either node (the signatures on the keys are the caller's check; this
// shows what the keys alone give it): frames it relays across do not open.
func TestMiddleKeysDiffer(t *testing.T) {
	er, _ := NewEphemeral(rand.Reader)
	es, _ := NewEphemeral(rand.Reader)
	em, _ := NewEphemeral(rand.Reader)
	// The receiver thinks em is the sender's; the sender thinks em is the
	// receiver's. Each transcript names the keys its node saw.
	r, err := Establish(er, em.Public(), Receiver, append(er.Public(), em.Public()...))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Establish(es, em.Public(), Sender, append(em.Public(), es.Public()...))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(r.SessionKey(), s.SessionKey()) {
		t.Fatal("nodes agree on a key through a man in the middle")
	}
	f, _ := s.Seal([]byte("setup"))
	if _, err := r.Open(f); !errors.Is(err, ErrAuth) {
		t.Fatalf("frame across the middle: %v", err)
	}
}

// Different transcripts (e.g. another attempt or job in the signed
// statements) give different keys from the same key pairs.
func TestTranscriptBindsKeys(t *testing.T) {
	er, _ := NewEphemeral(rand.Reader)
	es, _ := NewEphemeral(rand.Reader)
	a, _ := Establish(er, es.Public(), Receiver, []byte("job 1"))
	b, _ := Establish(er, es.Public(), Receiver, []byte("job 2"))
	if bytes.Equal(a.SessionKey(), b.SessionKey()) {
		t.Fatal("transcript does not bind the keys")
	}
}

func TestBadPeerKey(t *testing.T) {
	e, _ := NewEphemeral(rand.Reader)
	for _, k := range [][]byte{nil, make([]byte, 31), make([]byte, 32)} { // the last is a low-order point
		if _, err := Establish(e, k, Receiver, nil); !errors.Is(err, ErrKey) {
			t.Fatalf("peer key %x: %v", k, err)
		}
	}
}

// Known answer: fixed key pairs and transcript give fixed keys and frames
// (RFC 7748 §6.1's key pairs, whose shared secret the RFC gives; the keys
// and the frame were computed independently of this code, in Python with
// hmac/hashlib for HKDF-SHA256 and pyca/cryptography's AESGCM, from the
// derivation the package documents, so a change of labels or order shows).
const (
	knownSession = "61488003b632912ff098d8bf0ecfb9005be32f668288992e3e0e9beb0d5440b4"
	knownItems   = "4ac5b121094c09d1981a94d3af543032742fd5e2a65df8869292a1e58fd2e363"
	knownFrame   = "010000000000000000094e5a47cc66a831b624acf35db13e26af90898b80f1"
)

func TestKnownAnswer(t *testing.T) {
	a, _ := hex.DecodeString("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	b, _ := hex.DecodeString("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
	ka, _ := ecdh.X25519().NewPrivateKey(a)
	kb, _ := ecdh.X25519().NewPrivateKey(b)
	r, err := Establish(&Ephemeral{ka}, kb.PublicKey().Bytes(), Receiver, []byte("transcript"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Establish(&Ephemeral{kb}, ka.PublicKey().Bytes(), Sender, []byte("transcript"))
	if err != nil {
		t.Fatal(err)
	}
	f, _ := r.Seal([]byte("unseen"))
	want := map[string]string{
		"session": knownSession,
		"items":   knownItems,
		"frame":   knownFrame,
	}
	got := map[string]string{
		"session": hex.EncodeToString(s.SessionKey()),
		"items":   hex.EncodeToString(s.ItemKey()),
		"frame":   hex.EncodeToString(f),
	}
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("%s: got %s, want %s", k, got[k], want[k])
		}
	}
	if m, err := s.Open(f); err != nil || string(m) != "unseen" {
		t.Fatal(err)
	}
}
