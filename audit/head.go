package audit

// Signed and witnessed heads. A head alone guards against a tail lost by
// accident; whoever can rewrite a log and its head file can cut the tail
// and hide it. Two things stop that:
//
//   - the log's keeper signs its head (SignHead; FileLog writes the
//     signature into its head file), so rewriting the head needs the
//     keeper's key: `unseen audit verify --key` refuses a head that does
//     not verify;
//   - the parties witness each other's heads: the coordinator records in
//     its own log the signed heads a node returns at the end of a job, and
//     the node records the coordinator's (entry Detail "witness.<log>", the
//     head's text form). A keeper who cuts its own log and re-signs the
//     head (it holds the key) is still caught by any other party's copy:
//     CheckWitnessed finds that a head the other party witnessed is not in
//     the chain.

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// WitnessPrefix starts the Detail key under which an entry records another
// log's signed head: "witness." and that log's name.
const WitnessPrefix = "witness."

// CoordinatorLog is the name of the coordinator's log in signed heads.
const CoordinatorLog = "coordinator"

var (
	// ErrHeadSignature: a signed head does not verify (forged, altered,
	// or signed by another key).
	ErrHeadSignature = errors.New("audit: head signature does not verify")
	// ErrWitness: a head another party witnessed is not in the log (its
	// tail was cut, or it was rewritten).
	ErrWitness = errors.New("audit: a witnessed head is not in the log")
)

// SignedHead is a log's head (its last entry's seq and hash) signed by the
// log's keeper, naming the log: a node's department, or CoordinatorLog.
type SignedHead struct {
	Log  string `json:"log"`
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
	Sig  []byte `json:"sig"`
}

const headDomain = "unseen/audit/head/v1"

// headMessage is what a keeper signs: a domain-separated, length-prefixed
// encoding of the log's name, seq and hash (so a head signature is worth
// nothing as any other statement the same key signs, or for another log).
func headMessage(log string, h Head) []byte {
	var b bytes.Buffer
	field := func(p []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		b.Write(n[:])
		b.Write(p)
	}
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], h.Seq)
	field([]byte(headDomain))
	field([]byte(log))
	field(seq[:])
	field([]byte(h.Hash))
	return b.Bytes()
}

// validLogName: letters, digits, '_', '-', '.'; 1 to 64 bytes (so the
// text form's separator cannot appear in it).
func validLogName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// SignHead signs head h of log with the keeper's key.
func SignHead(priv ed25519.PrivateKey, log string, h Head) (SignedHead, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return SignedHead{}, errors.New("audit: not an Ed25519 private key")
	}
	if !validLogName(log) {
		return SignedHead{}, fmt.Errorf("audit: %q is not a log name", log)
	}
	return SignedHead{Log: log, Seq: h.Seq, Hash: h.Hash, Sig: ed25519.Sign(priv, headMessage(log, h))}, nil
}

// Head is the head signed.
func (s SignedHead) Head() Head { return Head{Seq: s.Seq, Hash: s.Hash} }

// Verify checks the signature with the keeper's public key.
func (s SignedHead) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize || len(s.Sig) != ed25519.SignatureSize || !ed25519.Verify(pub, headMessage(s.Log, s.Head()), s.Sig) {
		return fmt.Errorf("%w (log %s, seq %d)", ErrHeadSignature, s.Log, s.Seq)
	}
	return nil
}

// String is the head's text form, as witnessing entries record it:
// "LOG:SEQ:HASH:SIGNATURE" (the signature in standard base64).
func (s SignedHead) String() string {
	return s.Log + ":" + strconv.FormatUint(s.Seq, 10) + ":" + s.Hash + ":" + base64.StdEncoding.EncodeToString(s.Sig)
}

// ParseSignedHead reads the text form (it does not check the signature).
func ParseSignedHead(v string) (SignedHead, error) {
	parts := strings.Split(v, ":")
	if len(parts) != 4 {
		return SignedHead{}, fmt.Errorf("%w: a signed head is LOG:SEQ:HASH:SIGNATURE", ErrDecode)
	}
	seq, err := strconv.ParseUint(parts[1], 10, 64)
	if err != nil || !validLogName(parts[0]) || !validHash(parts[2]) {
		return SignedHead{}, fmt.Errorf("%w: signed head %.80q", ErrDecode, v)
	}
	sig, err := base64.StdEncoding.DecodeString(parts[3])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return SignedHead{}, fmt.Errorf("%w: signed head: signature is not 64 bytes of base64", ErrDecode)
	}
	return SignedHead{Log: parts[0], Seq: seq, Hash: parts[2], Sig: sig}, nil
}

// validHash: 64 lowercase hex characters, as ComputeHash writes them.
func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, r := range h {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// Witnessed is a head of one log recorded in an entry of another.
type Witnessed struct {
	In   uint64 // seq of the recording entry, in the witnessing log
	Head SignedHead
}

// WitnessedHeads returns the heads of log name that entries record
// (Detail "witness.<name>"), in order. A recorded value that does not
// parse, or names another log, is an error.
func WitnessedHeads(entries []Entry, name string) ([]Witnessed, error) {
	var out []Witnessed
	key := WitnessPrefix + name
	for i := range entries {
		v, ok := entries[i].Detail[key]
		if !ok {
			continue
		}
		h, err := ParseSignedHead(v)
		if err != nil {
			return nil, fmt.Errorf("entry seq %d: %s: %w", entries[i].Seq, key, err)
		}
		if h.Log != name {
			return nil, fmt.Errorf("%w: entry seq %d records under %s a head of log %q", ErrDecode, entries[i].Seq, key, h.Log)
		}
		out = append(out, Witnessed{In: entries[i].Seq, Head: h})
	}
	return out, nil
}

// WitnessCheck is what CheckWitnessed found.
type WitnessCheck struct {
	Checked int // witnessed heads found in the chain, hash and all
	// Before counts witnessed heads older than the chain's first entry
	// (the chain given is a window, e.g. an export of the newest entries):
	// they could not be checked.
	Before int
	// Newest is the highest seq witnessed (0 if none).
	Newest uint64
}

// CheckWitnessed checks each witnessed head against chain: the entry at
// the head's seq must be in it with the head's hash, so a log cut short,
// or rewritten from some entry on, is caught by any head witnessed past
// the cut. With pub set, each head's signature must verify under it too
// (the log's keeper signed it). chain must be contiguous (Verify or
// VerifyFrom it first); it may start past seq 1 (see WitnessCheck.Before).
func CheckWitnessed(chain []Entry, heads []Witnessed, pub ed25519.PublicKey) (WitnessCheck, error) {
	var c WitnessCheck
	first, last := uint64(1), uint64(0)
	if len(chain) > 0 {
		first, last = chain[0].Seq, chain[len(chain)-1].Seq
	}
	var beyond *Witnessed // the newest head past the chain's end
	for i, w := range heads {
		h := w.Head
		if pub != nil {
			if err := h.Verify(pub); err != nil {
				return c, fmt.Errorf("head of %s at seq %d witnessed in entry %d: %w", h.Log, h.Seq, w.In, err)
			}
		}
		c.Newest = max(c.Newest, h.Seq)
		switch {
		case h.Seq == 0:
			c.Checked++ // an empty log's head: nothing to find
		case h.Seq > last:
			if beyond == nil || h.Seq > beyond.Head.Seq {
				beyond = &heads[i]
			}
		case h.Seq < first:
			c.Before++
		default:
			if got := chain[h.Seq-first].Hash; got != h.Hash {
				return c, fmt.Errorf("%w: entry seq %d of %s's log has hash %.16s…, but entry %d of the witness recorded %.16s…: the log was rewritten from there on",
					ErrWitness, h.Seq, h.Log, got, w.In, h.Hash)
			}
			c.Checked++
		}
	}
	if beyond != nil {
		return c, fmt.Errorf("%w: the log of %s ends at seq %d, but entry %d of the witness recorded its head at seq %d: entries were cut off its end (or this copy is older than the witness's)",
			ErrWitness, beyond.Head.Log, last, beyond.In, beyond.Head.Seq)
	}
	return c, nil
}
