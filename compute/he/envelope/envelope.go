// Package envelope is the authenticated wrapper that every homomorphic
// message of Unseen travels in.
//
// Lattigo's UnmarshalBinary methods trust the length prefixes inside their
// input: on truncated or corrupted bytes they can allocate without bound or
// recurse until the process dies (not a recoverable panic). So no HE payload
// is ever parsed before Open has checked, in this order:
//
//  1. the HMAC-SHA256 tag over the whole envelope (constant-time compare),
//     under a key the caller supplies (one per peer pair);
//  2. the parameter-set hash, the key-ceremony id, the protocol label and the
//     level against what the caller expects;
//  3. that the declared payload length equals both the bytes present and the
//     exact size the caller expects for that label and level.
//
// The package has no lattigo dependency: the expected size is computed by the
// caller (compute/he and its subpackages derive it from the parameters).
//
// Wire format (all integers big-endian):
//
//	magic       "UNSHE1"               6 bytes
//	params hash                       32 bytes
//	ceremony id  length (1 byte) ‖ bytes (1..64)
//	label        length (1 byte) ‖ bytes (1..64)
//	level                              1 byte
//	payload length                     4 bytes
//	payload
//	tag = HMAC-SHA256(key, "unseen/envelope/v1" ‖ everything above)   32 bytes
package envelope

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

const (
	magic = "UNSHE1"
	// MaxFieldLen bounds the ceremony id and the label.
	MaxFieldLen = 64
	// MaxPayload bounds any payload (a LogN 14 ciphertext at 4 levels is 1 MiB).
	MaxPayload = 64 << 20
	// MinKeyLen is the shortest MAC key accepted.
	MinKeyLen = 32
	tagLen    = sha256.Size
	macDomain = "unseen/envelope/v1"
)

// Errors returned by Open. They wrap nothing and are safe to compare with errors.Is.
var (
	ErrKey        = errors.New("he: envelope MAC key too short")
	ErrMalformed  = errors.New("he: envelope malformed")
	ErrMAC        = errors.New("he: envelope MAC mismatch")
	ErrParams     = errors.New("he: envelope parameter-set hash mismatch")
	ErrCeremony   = errors.New("he: envelope ceremony id mismatch")
	ErrLabel      = errors.New("he: envelope label mismatch")
	ErrLevel      = errors.New("he: envelope level mismatch")
	ErrLength     = errors.New("he: envelope payload length mismatch")
	ErrFieldValue = errors.New("he: envelope field invalid")
)

// Header is the authenticated metadata of an envelope.
type Header struct {
	ParamsHash [32]byte
	CeremonyID string
	Label      string
	Level      int
}

// Expect is what the receiver requires of an envelope: the header fields and
// the exact payload size for that label and level.
type Expect struct {
	Header
	Size int
}

func (h Header) check() error {
	if len(h.CeremonyID) == 0 || len(h.CeremonyID) > MaxFieldLen {
		return fmt.Errorf("%w: ceremony id must be 1..%d bytes", ErrFieldValue, MaxFieldLen)
	}
	if len(h.Label) == 0 || len(h.Label) > MaxFieldLen {
		return fmt.Errorf("%w: label must be 1..%d bytes", ErrFieldValue, MaxFieldLen)
	}
	if h.Level < 0 || h.Level > 255 {
		return fmt.Errorf("%w: level must be 0..255", ErrFieldValue)
	}
	return nil
}

func headerLen(h Header) int {
	return len(magic) + 32 + 1 + len(h.CeremonyID) + 1 + len(h.Label) + 1 + 4
}

// Seal wraps payload in an envelope authenticated under key.
func Seal(key []byte, h Header, payload []byte) ([]byte, error) {
	if len(key) < MinKeyLen {
		return nil, ErrKey
	}
	if err := h.check(); err != nil {
		return nil, err
	}
	if len(payload) > MaxPayload {
		return nil, fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrFieldValue, len(payload), MaxPayload)
	}
	out := make([]byte, 0, headerLen(h)+len(payload)+tagLen)
	out = append(out, magic...)
	out = append(out, h.ParamsHash[:]...)
	out = append(out, byte(len(h.CeremonyID)))
	out = append(out, h.CeremonyID...)
	out = append(out, byte(len(h.Label)))
	out = append(out, h.Label...)
	out = append(out, byte(h.Level))
	out = binary.BigEndian.AppendUint32(out, uint32(len(payload)))
	out = append(out, payload...)
	return append(out, tag(key, out)...), nil
}

func tag(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(macDomain))
	m.Write(body)
	return m.Sum(nil)
}

// Open authenticates msg under key, checks it against want and returns the
// payload (a sub-slice of msg). Nothing in msg is interpreted before the tag
// has been verified, and the payload is returned only if its length is the
// exact size want.Size.
func Open(key, msg []byte, want Expect) ([]byte, error) {
	if len(key) < MinKeyLen {
		return nil, ErrKey
	}
	if want.Size < 0 || want.Size > MaxPayload {
		return nil, fmt.Errorf("%w: expected size %d out of range", ErrFieldValue, want.Size)
	}
	minLen := len(magic) + 32 + 1 + 1 + 1 + 1 + 1 + 4 + tagLen
	maxLen := len(magic) + 32 + 2*(1+MaxFieldLen) + 1 + 4 + MaxPayload + tagLen
	if len(msg) < minLen || len(msg) > maxLen {
		return nil, ErrMalformed
	}
	body, got := msg[:len(msg)-tagLen], msg[len(msg)-tagLen:]
	if !hmac.Equal(got, tag(key, body)) {
		return nil, ErrMAC
	}
	h, payload, err := parse(body)
	if err != nil {
		return nil, err
	}
	if h.ParamsHash != want.ParamsHash {
		return nil, ErrParams
	}
	if h.CeremonyID != want.CeremonyID {
		return nil, ErrCeremony
	}
	if h.Label != want.Label {
		return nil, ErrLabel
	}
	if h.Level != want.Level {
		return nil, ErrLevel
	}
	if len(payload) != want.Size {
		return nil, fmt.Errorf("%w: got %d bytes, want exactly %d for %q at level %d", ErrLength, len(payload), want.Size, want.Label, want.Level)
	}
	return payload, nil
}

// PeekHeader parses the header of msg WITHOUT authenticating it, so a router
// can decide which key and expectation to use. Never act on its result other
// than to choose the arguments of Open.
func PeekHeader(msg []byte) (Header, error) {
	if len(msg) < tagLen {
		return Header{}, ErrMalformed
	}
	h, _, err := parse(msg[:len(msg)-tagLen])
	return h, err
}

// parse decodes body (the envelope without its tag) with every index bounds-checked.
func parse(body []byte) (Header, []byte, error) {
	var h Header
	r := body
	take := func(n int) ([]byte, bool) {
		if n < 0 || len(r) < n {
			return nil, false
		}
		b := r[:n]
		r = r[n:]
		return b, true
	}
	m, ok := take(len(magic))
	if !ok || string(m) != magic {
		return h, nil, ErrMalformed
	}
	ph, ok := take(32)
	if !ok {
		return h, nil, ErrMalformed
	}
	copy(h.ParamsHash[:], ph)
	for _, dst := range []*string{&h.CeremonyID, &h.Label} {
		l, ok := take(1)
		if !ok || l[0] == 0 || int(l[0]) > MaxFieldLen {
			return h, nil, ErrMalformed
		}
		v, ok := take(int(l[0]))
		if !ok {
			return h, nil, ErrMalformed
		}
		*dst = string(v)
	}
	lv, ok := take(1)
	if !ok {
		return h, nil, ErrMalformed
	}
	h.Level = int(lv[0])
	lb, ok := take(4)
	if !ok {
		return h, nil, ErrMalformed
	}
	n := binary.BigEndian.Uint32(lb)
	if uint64(n) != uint64(len(r)) || n > MaxPayload {
		return h, nil, fmt.Errorf("%w: declared payload length %d, %d bytes present", ErrLength, n, len(r))
	}
	return h, r, nil
}
