// Package otlink is the end-to-end channel between the two nodes of an OT
// PSI session (psi/kkrt), whose messages the coordinator relays.
//
// Each node makes an ephemeral X25519 key pair for the session and signs
// its public half, with the job, the spec hash, the attempt, both parties
// and the session's sizes, with its Ed25519 node key (the caller does the
// signing and checks the peer's signature against the peer's key in its own
// configuration; this package takes the two checked statements as the
// transcript). Establish then derives, with HKDF-SHA256 from the X25519
// shared secret and salted with the transcript:
//
//   - the 32-byte kkrt session key;
//   - the 32-byte key under which both nodes hash IDs into items
//     (kkrt.HashItem);
//   - one AES-256-GCM key per direction (receiver → sender, sender →
//     receiver).
//
// Every relayed message is a Frame: version ‖ sequence number ‖ AES-GCM
// ciphertext, the nonce being the sequence number and the additional data
// the version and sequence number. Sequence numbers count from 0 in each
// direction, and Open takes only the next one: a replayed frame (an old
// number), a dropped one (the next frame's number is too high, and a
// session whose last frame is dropped never completes), a reordered one
// (either) and a tampered one (the tag fails) are refused, and the link is
// then closed for good: a node that has seen the relay misbehave trusts
// nothing more from this session.
//
// Who learns what: the relay sees both public keys, both signed
// statements, the sizes and number of frames (fixed by the public session
// sizes), and nothing else: without one of the ephemeral private keys it
// cannot compute the shared secret, and without the peer's Ed25519 key it
// cannot sign a key of its own into the exchange (a man in the middle is
// refused by the signature check). The ephemeral private keys are dropped
// once the keys are derived, so a node key stolen later does not open
// recorded traffic.
package otlink

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Role is a node's side of the session.
type Role byte

const (
	// Receiver is the kkrt receiver (the star's centre).
	Receiver Role = 1
	// Sender is the kkrt sender.
	Sender Role = 2
)

func (r Role) String() string {
	switch r {
	case Receiver:
		return "receiver"
	case Sender:
		return "sender"
	}
	return fmt.Sprintf("Role(%d)", byte(r))
}

// Sizes.
const (
	// PublicKeySize is the size of an ephemeral public key.
	PublicKeySize = 32
	// KeySize is the size of the derived session and item keys.
	KeySize = 32
	// Overhead is what a Frame adds to its message.
	Overhead = headerSize + 16
	// MaxMessage bounds a sealed message (a 4 MiB kkrt correction chunk
	// and its header fit).
	MaxMessage = 5 << 20

	version    = 1
	headerSize = 1 + 8
)

var (
	// ErrFrame reports a malformed frame.
	ErrFrame = errors.New("otlink: malformed frame")
	// ErrReplay reports a frame whose sequence number was taken already.
	ErrReplay = errors.New("otlink: replayed frame")
	// ErrGap reports a frame past the next sequence number: a frame before
	// it was dropped or the frames were reordered.
	ErrGap = errors.New("otlink: frame out of order (a frame was dropped or reordered)")
	// ErrAuth reports a frame that does not authenticate: tampered, or
	// sealed under another key.
	ErrAuth = errors.New("otlink: frame does not authenticate")
	// ErrClosed reports a link closed by an earlier refused frame.
	ErrClosed = errors.New("otlink: link closed after a refused frame")
	// ErrKey reports an invalid ephemeral public key.
	ErrKey = errors.New("otlink: invalid ephemeral key")
)

// Ephemeral is one node's ephemeral key pair for one session.
type Ephemeral struct{ priv *ecdh.PrivateKey }

// NewEphemeral draws a key pair from rand (crypto/rand.Reader in use).
func NewEphemeral(rand io.Reader) (*Ephemeral, error) {
	k, err := ecdh.X25519().GenerateKey(rand)
	if err != nil {
		return nil, err
	}
	return &Ephemeral{priv: k}, nil
}

// Public returns the public key, to be signed and sent to the peer.
func (e *Ephemeral) Public() []byte { return e.priv.PublicKey().Bytes() }

// Link is an established channel: the derived keys and the two directions'
// sequence numbers. Seal and Open are safe for concurrent use (each
// direction is serialised).
type Link struct {
	role       Role
	sessionKey [KeySize]byte
	itemKey    [KeySize]byte

	sendMu  sync.Mutex
	send    cipher.AEAD
	sendSeq uint64

	recvMu  sync.Mutex
	recv    cipher.AEAD
	recvSeq uint64
	closed  error
}

// Establish derives the link of a node in role role from its ephemeral key,
// the peer's ephemeral public key and the transcript: the encoding of both
// signed statements, receiver's first, which both nodes must compute
// identically (and which must contain both public keys). e must not be used
// again.
func Establish(e *Ephemeral, peer []byte, role Role, transcript []byte) (*Link, error) {
	if e == nil || e.priv == nil {
		return nil, errors.New("otlink: no ephemeral key")
	}
	if role != Receiver && role != Sender {
		return nil, fmt.Errorf("otlink: bad role %d", role)
	}
	pub, err := ecdh.X25519().NewPublicKey(peer)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	// ECDH refuses a low-order peer key (all-zero shared secret).
	shared, err := e.priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	salt := sha256.Sum256(append([]byte("unseen/otlink/v1 transcript\x00"), transcript...))
	prk, err := hkdf.Extract(sha256.New, shared, salt[:])
	if err != nil {
		return nil, err
	}
	expand := func(label string) ([]byte, error) {
		return hkdf.Expand(sha256.New, prk, "unseen/otlink/v1 "+label, KeySize)
	}
	l := &Link{role: role}
	sk, err := expand("kkrt session")
	if err != nil {
		return nil, err
	}
	ik, err := expand("items")
	if err != nil {
		return nil, err
	}
	copy(l.sessionKey[:], sk)
	copy(l.itemKey[:], ik)
	rs, err := aead(expand, "receiver to sender")
	if err != nil {
		return nil, err
	}
	sr, err := aead(expand, "sender to receiver")
	if err != nil {
		return nil, err
	}
	if role == Receiver {
		l.send, l.recv = rs, sr
	} else {
		l.send, l.recv = sr, rs
	}
	return l, nil
}

func aead(expand func(string) ([]byte, error), label string) (cipher.AEAD, error) {
	k, err := expand(label)
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Role is the link's side.
func (l *Link) Role() Role { return l.role }

// SessionKey is the kkrt session key the two nodes now share.
func (l *Link) SessionKey() []byte { return l.sessionKey[:] }

// ItemKey is the key both nodes hash IDs under (kkrt.HashItem).
func (l *Link) ItemKey() []byte { return l.itemKey[:] }

// Sent and Received are the numbers of frames sealed and opened so far.
func (l *Link) Sent() uint64 {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	return l.sendSeq
}

// Received is the number of frames opened so far.
func (l *Link) Received() uint64 {
	l.recvMu.Lock()
	defer l.recvMu.Unlock()
	return l.recvSeq
}

// Seal seals msg as the next frame to the peer.
func (l *Link) Seal(msg []byte) ([]byte, error) {
	if len(msg) > MaxMessage {
		return nil, fmt.Errorf("%w: message of %d bytes (at most %d)", ErrFrame, len(msg), MaxMessage)
	}
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	seq := l.sendSeq
	l.sendSeq++
	out := make([]byte, headerSize, headerSize+len(msg)+l.send.Overhead())
	out[0] = version
	binary.BigEndian.PutUint64(out[1:], seq)
	return l.send.Seal(out, nonce(seq), msg, out[:headerSize]), nil
}

// Open opens the next frame from the peer. Any refusal closes the link:
// every later Open fails with ErrClosed.
func (l *Link) Open(frame []byte) ([]byte, error) {
	l.recvMu.Lock()
	defer l.recvMu.Unlock()
	if l.closed != nil {
		return nil, fmt.Errorf("%w (%v)", ErrClosed, l.closed)
	}
	msg, err := l.open(frame)
	if err != nil {
		l.closed = err
		return nil, err
	}
	l.recvSeq++
	return msg, nil
}

func (l *Link) open(frame []byte) ([]byte, error) {
	seq, err := ParseFrame(frame)
	if err != nil {
		return nil, err
	}
	switch {
	case seq < l.recvSeq:
		return nil, fmt.Errorf("%w: frame %d, after frame %d was taken", ErrReplay, seq, l.recvSeq-1)
	case seq > l.recvSeq:
		return nil, fmt.Errorf("%w: frame %d where frame %d was due", ErrGap, seq, l.recvSeq)
	}
	msg, err := l.recv.Open(nil, nonce(seq), frame[headerSize:], frame[:headerSize])
	if err != nil {
		return nil, fmt.Errorf("%w: frame %d", ErrAuth, seq)
	}
	return msg, nil
}

// ParseFrame checks a frame's header and length and returns its sequence
// number (the relay may read it; it is authenticated with the rest).
func ParseFrame(frame []byte) (uint64, error) {
	if len(frame) < Overhead {
		return 0, fmt.Errorf("%w: %d bytes, shorter than a frame's overhead", ErrFrame, len(frame))
	}
	if len(frame) > MaxMessage+Overhead {
		return 0, fmt.Errorf("%w: %d bytes (at most %d)", ErrFrame, len(frame), MaxMessage+Overhead)
	}
	if frame[0] != version {
		return 0, fmt.Errorf("%w: version %d, want %d", ErrFrame, frame[0], version)
	}
	return binary.BigEndian.Uint64(frame[1:headerSize]), nil
}

// nonce is the 12-byte GCM nonce of frame seq: each key seals each
// sequence number once, so no nonce repeats under a key.
func nonce(seq uint64) []byte {
	var n [12]byte
	binary.BigEndian.PutUint64(n[4:], seq)
	return n[:]
}
