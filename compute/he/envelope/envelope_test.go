package envelope

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func key(t testing.TB) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func hdr() Header {
	return Header{ParamsHash: [32]byte{1, 2, 3}, CeremonyID: "cer-1", Label: "he/ciphertext/v1", Level: 2}
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := key(t)
	payload := bytes.Repeat([]byte{0xab}, 1000)
	msg, err := Seal(k, hdr(), payload)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(k, msg, Expect{Header: hdr(), Size: len(payload)})
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("round trip: %v", err)
	}
	h, err := PeekHeader(msg)
	if err != nil || h != hdr() {
		t.Fatalf("peek: %+v %v", h, err)
	}
}

func TestOpenRejects(t *testing.T) {
	k := key(t)
	payload := bytes.Repeat([]byte{7}, 64)
	msg, _ := Seal(k, hdr(), payload)
	want := Expect{Header: hdr(), Size: len(payload)}
	mod := func(f func(*Expect)) Expect { e := want; f(&e); return e }
	resealed := func(f func(*Header)) []byte {
		h := hdr()
		f(&h)
		m, err := Seal(k, h, payload)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	cases := []struct {
		name string
		key  []byte
		msg  []byte
		exp  Expect
		err  error
	}{
		{"truncated", k, msg[:len(msg)-1], want, ErrMAC},
		{"truncated to nothing", k, msg[:3], want, ErrMalformed},
		{"extended", k, append(bytes.Clone(msg), 0), want, ErrMAC},
		{"wrong key", key(t), msg, want, ErrMAC},
		{"short key", k[:16], msg, want, ErrKey},
		{"wrong params", k, resealed(func(h *Header) { h.ParamsHash[0] ^= 1 }), want, ErrParams},
		{"wrong ceremony", k, resealed(func(h *Header) { h.CeremonyID = "cer-2" }), want, ErrCeremony},
		{"wrong label", k, resealed(func(h *Header) { h.Label = "he/public-key/v1" }), want, ErrLabel},
		{"wrong level", k, resealed(func(h *Header) { h.Level = 1 }), want, ErrLevel},
		{"wrong size", k, msg, mod(func(e *Expect) { e.Size = 63 }), ErrLength},
		{"expected level differs", k, msg, mod(func(e *Expect) { e.Level = 0 }), ErrLevel},
	}
	for i := 0; i < len(msg); i += 7 {
		m := bytes.Clone(msg)
		m[i] ^= 1 << (i % 8)
		cases = append(cases, struct {
			name string
			key  []byte
			msg  []byte
			exp  Expect
			err  error
		}{"bit flip", k, m, want, ErrMAC})
	}
	for _, c := range cases {
		p, err := Open(c.key, c.msg, c.exp)
		if !errors.Is(err, c.err) || p != nil {
			t.Errorf("%s: got %v, want %v", c.name, err, c.err)
		}
	}
}

func TestSealRejectsBadHeaders(t *testing.T) {
	k := key(t)
	for name, h := range map[string]Header{
		"empty ceremony": {CeremonyID: "", Label: "x"},
		"long label":     {CeremonyID: "c", Label: string(bytes.Repeat([]byte("x"), 65))},
		"level 256":      {CeremonyID: "c", Label: "x", Level: 256},
		"negative level": {CeremonyID: "c", Label: "x", Level: -1},
	} {
		if _, err := Seal(k, h, nil); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

// A correctly MAC'd envelope whose declared length lies is rejected by the parser.
func TestDeclaredLengthMustMatch(t *testing.T) {
	k := key(t)
	msg, _ := Seal(k, hdr(), []byte("abcdef"))
	body := bytes.Clone(msg[:len(msg)-tagLen])
	lenOff := len(body) - 6 - 4
	body[lenOff+3] = 5 // declare 5 bytes, carry 6
	forged := append(body, tag(k, body)...)
	if _, err := Open(k, forged, Expect{Header: hdr(), Size: 6}); !errors.Is(err, ErrLength) {
		t.Fatalf("lying length: %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	k := bytes.Repeat([]byte{9}, 32)
	good, _ := Seal(k, hdr(), []byte("payload"))
	f.Add(good, 7)
	f.Add(good[:10], 7)
	f.Add([]byte{}, 0)
	f.Add(append([]byte(magic), make([]byte, 100)...), 0)
	f.Fuzz(func(t *testing.T, msg []byte, size int) {
		p, err := Open(k, msg, Expect{Header: hdr(), Size: size})
		if err == nil && len(p) != size {
			t.Fatalf("accepted %d bytes for size %d", len(p), size)
		}
		// The unauthenticated parser must not panic either.
		_, _ = PeekHeader(msg)
		// Fuzz the parser on a body with a valid tag too.
		if len(msg) > 0 {
			m := append(bytes.Clone(msg), tag(k, msg)...)
			if p, err := Open(k, m, Expect{Header: hdr(), Size: size}); err == nil && len(p) != size {
				t.Fatalf("accepted %d bytes for size %d", len(p), size)
			}
		}
	})
}
