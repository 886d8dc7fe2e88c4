// Package audit is Unseen's tamper-evident log: append-only entries, each
// carrying the hash of the one before, so that changing, removing or
// reordering any entry breaks the chain at that point (Verify finds it).
// The coordinator and every node keep one. Sensitive values are HMAC'd with
// a key only the log's owner holds (Sealer), never written in the clear.
//
// The package imports nothing else of Unseen but internal/appendfile;
// storage backends implement Log (a file here, FileLog, which survives
// crashes; Redis in package jobs).
//
// Who learns what: whoever can read a log learns who did what and when,
// with sensitive values only as MACs under the owner's key; the chain lets
// anyone holding the file (and its head) check that nothing was changed,
// removed or reordered.
package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// GenesisHash is the prev_hash of the first entry.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// MaxEntryBytes bounds one encoded entry; a longer line is corrupt.
const MaxEntryBytes = 64 << 10

// Entry is one audit record. Hash covers every other field (see Canonical).
type Entry struct {
	Seq      uint64            `json:"seq"`
	Time     time.Time         `json:"time"`
	Actor    string            `json:"actor"`
	Role     string            `json:"role,omitempty"`
	Action   string            `json:"action"`
	Job      string            `json:"job,omitempty"`
	Datasets []string          `json:"datasets,omitempty"`
	Detail   map[string]string `json:"detail,omitempty"`
	PrevHash string            `json:"prev_hash"`
	Hash     string            `json:"hash"`
}

var (
	ErrBroken  = errors.New("audit: chain broken")
	ErrDecode  = errors.New("audit: malformed entry")
	ErrClosed  = errors.New("audit: log closed")
	ErrBadSeal = errors.New("audit: sealing key too short")
)

// Canonical is the byte string an entry's hash is computed over: its JSON
// encoding with Hash emptied, times in UTC with nanoseconds, detail keys
// sorted (encoding/json sorts map keys).
func (e Entry) Canonical() []byte {
	e.Hash = ""
	e.Time = e.Time.UTC()
	if len(e.Datasets) == 0 {
		e.Datasets = nil
	}
	if len(e.Detail) == 0 {
		e.Detail = nil
	}
	b, err := json.Marshal(e)
	if err != nil { // strings, ints and a time only: cannot fail
		panic(err)
	}
	return b
}

// ComputeHash returns the hex SHA-256 of the canonical encoding.
func (e Entry) ComputeHash() string {
	sum := sha256.Sum256(e.Canonical())
	return hex.EncodeToString(sum[:])
}

// Seal fills in Seq, PrevHash and Hash to follow prev (nil for the first).
func (e *Entry) Seal(prev *Entry) {
	if prev == nil {
		e.Seq, e.PrevHash = 1, GenesisHash
	} else {
		e.Seq, e.PrevHash = prev.Seq+1, prev.Hash
	}
	e.Time = e.Time.UTC()
	e.Hash = e.ComputeHash()
}

// Encode returns the entry as one JSON line (with hash), the stored form.
func (e Entry) Encode() []byte {
	e.Time = e.Time.UTC()
	b, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	return b
}

// Decode parses one stored entry strictly (unknown fields and trailing data
// are errors). It does not check the hash; Verify does.
func Decode(b []byte) (Entry, error) {
	var e Entry
	if len(b) > MaxEntryBytes {
		return e, fmt.Errorf("%w: longer than %d bytes", ErrDecode, MaxEntryBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return Entry{}, fmt.Errorf("%w: %v", ErrDecode, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Entry{}, fmt.Errorf("%w: trailing data", ErrDecode)
	}
	return e, nil
}

// VerifyError says where a chain first goes wrong.
type VerifyError struct {
	Index int    // position in the slice checked
	Seq   uint64 // the entry's claimed sequence number
	Why   string
}

func (v *VerifyError) Error() string {
	return fmt.Sprintf("audit: chain broken at entry %d (seq %d): %s", v.Index, v.Seq, v.Why)
}

func (v *VerifyError) Unwrap() error { return ErrBroken }

// Verify checks a whole chain from its first entry: sequence numbers count
// up from 1, each prev_hash is the previous hash, each hash is right.
func Verify(entries []Entry) error {
	return VerifyFrom(nil, entries)
}

// VerifyFrom checks entries that follow prev (nil: from the start).
func VerifyFrom(prev *Entry, entries []Entry) error {
	for i := range entries {
		if why := link(prev, &entries[i]); why != "" {
			return &VerifyError{i, entries[i].Seq, why}
		}
		prev = &entries[i]
	}
	return nil
}

// link says why e does not follow prev (nil: e should be the first), or "".
func link(prev, e *Entry) string {
	wantSeq, wantPrev := uint64(1), GenesisHash
	if prev != nil {
		wantSeq, wantPrev = prev.Seq+1, prev.Hash
	}
	switch {
	case e.Seq != wantSeq:
		return fmt.Sprintf("sequence %d, want %d", e.Seq, wantSeq)
	case e.PrevHash != wantPrev:
		return "prev_hash does not match the previous entry"
	case e.ComputeHash() != e.Hash:
		return "hash does not match the entry's contents"
	}
	return ""
}

// Head is a chain's last sequence number and hash, kept apart from the
// entries (a sidecar file, a Redis key) so that cutting entries off the end
// of a chain — which leaves a shorter, valid chain — is detected too.
type Head struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// HeadOf returns the head of a chain (zero for an empty one).
func HeadOf(entries []Entry) Head {
	if len(entries) == 0 {
		return Head{}
	}
	e := entries[len(entries)-1]
	return Head{Seq: e.Seq, Hash: e.Hash}
}

// VerifyHead checks a whole chain and that it ends at head.
func VerifyHead(entries []Entry, head Head) error {
	if err := Verify(entries); err != nil {
		return err
	}
	if got := HeadOf(entries); got != head {
		return &VerifyError{len(entries), got.Seq, fmt.Sprintf("chain ends at seq %d, but its recorded head is seq %d: entries were removed or added", got.Seq, head.Seq)}
	}
	return nil
}

// HeadReader is a Log that keeps its head apart from its entries.
type HeadReader interface {
	Head(ctx context.Context) (Head, error)
}

// Verifier is a Log that checks its own chain without loading it whole.
type Verifier interface {
	// Verify checks the whole chain (and its head, if kept apart) and
	// returns its number of entries.
	Verify(ctx context.Context) (int, error)
}

// VerifyLog checks a log's whole chain, and its head if it keeps one.
func VerifyLog(ctx context.Context, l Log) (int, error) {
	if v, ok := l.(Verifier); ok {
		return v.Verify(ctx)
	}
	es, err := l.All(ctx)
	if err != nil {
		return 0, err
	}
	if hr, ok := l.(HeadReader); ok {
		h, err := hr.Head(ctx)
		if err != nil {
			return len(es), err
		}
		return len(es), VerifyHead(es, h)
	}
	return len(es), Verify(es)
}

// Filter selects entries; empty fields match anything.
type Filter struct {
	Job     string
	Dataset string
	Actor   string
	Action  string
	Limit   int // 0: no limit; otherwise the newest Limit matches
}

// Match reports whether e passes the filter (Limit aside).
func (f Filter) Match(e *Entry) bool {
	if f.Job != "" && e.Job != f.Job {
		return false
	}
	if f.Actor != "" && e.Actor != f.Actor {
		return false
	}
	if f.Action != "" && e.Action != f.Action {
		return false
	}
	if f.Dataset != "" {
		found := false
		for _, d := range e.Datasets {
			if d == f.Dataset {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// Log is an append-only chain. Append must be atomic with respect to other
// appends and fail closed: if the entry is not durably stored, it returns an
// error and the caller must not perform the change it describes.
type Log interface {
	Append(ctx context.Context, e Entry) (Entry, error)
	Entries(ctx context.Context, f Filter) ([]Entry, error)
	// All returns the whole chain in order, for verification.
	All(ctx context.Context) ([]Entry, error)
}

// Sealer HMACs sensitive values (IDs, free text from requesters) so an entry
// can show that two entries concern the same value without revealing it.
type Sealer struct{ key []byte }

// NewSealer returns a Sealer keyed by key (at least 32 bytes).
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) < 32 {
		return nil, ErrBadSeal
	}
	return &Sealer{key: append([]byte(nil), key...)}, nil
}

// Seal returns "hmac-sha256:" and the hex MAC of v.
func (s *Sealer) Seal(v string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(v))
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}
