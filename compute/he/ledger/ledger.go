// Package ledger records, at each node, what the node has helped decrypt,
// so that it helps decrypt each thing at most once, ever.
//
// What is recorded is a set of 32-byte keys. A node records, for every
// decryption share it makes, the output it decrypts — OutputKey(job,
// index): each result of each job is decrypted at most once, whatever
// ciphertext is offered for it (so re-randomising a result, ct + Enc(0),
// buys nothing) — and the hash of the ciphertext itself (the same bytes
// are never decrypted as two outputs).
//
// A node must Record the keys, durably, BEFORE it produces its decryption
// share: if the record cannot be written the share is not made (fail
// closed), and a crash after the record leaves the output burnt rather than
// decryptable twice.
package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/unseen-data/unseen/internal/appendfile"
)

// ErrAlreadyDecrypted is returned by Record for a key already recorded.
var ErrAlreadyDecrypted = errors.New("he: ledger: this has already been decrypted once; refusing a second decryption")

// OutputKey is the ledger key of result `index` of job `job`:
// SHA-256("unseen/he/ledger/output/v1" ‖ len(job) ‖ job ‖ index), domain-
// separated from ciphertext hashes (he.Ciphertext.Hash) that share the set.
func OutputKey(job string, index int) [32]byte {
	h := sha256.New()
	h.Write([]byte("unseen/he/ledger/output/v1"))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(job)))
	h.Write(n[:])
	h.Write([]byte(job))
	binary.BigEndian.PutUint64(n[:], uint64(index))
	h.Write(n[:])
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Ledger is an append-only set of 32-byte keys.
type Ledger interface {
	// Record adds every key, durably and in order, or returns
	// ErrAlreadyDecrypted, recording none, if any is present. It must be
	// safe for concurrent use and atomic: of two concurrent calls that
	// share a key, exactly one succeeds.
	Record(keys ...[32]byte) error
	// Contains reports whether h has been recorded.
	Contains(h [32]byte) (bool, error)
}

// Memory is an in-memory Ledger for tests and for processes that keep no state.
type Memory struct {
	mu   sync.Mutex
	seen map[[32]byte]struct{}
}

// NewMemory returns an empty in-memory ledger.
func NewMemory() *Memory { return &Memory{seen: map[[32]byte]struct{}{}} }

// Record implements Ledger.
func (m *Memory) Record(keys ...[32]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := fresh(m.seen, keys); err != nil {
		return err
	}
	for _, h := range keys {
		m.seen[h] = struct{}{}
	}
	return nil
}

// fresh checks that no key is in seen, nor twice in keys.
func fresh(seen map[[32]byte]struct{}, keys [][32]byte) error {
	if len(keys) == 0 {
		return errors.New("he: ledger: nothing to record")
	}
	for i, h := range keys {
		if _, ok := seen[h]; ok {
			return ErrAlreadyDecrypted
		}
		for _, o := range keys[:i] {
			if o == h {
				return ErrAlreadyDecrypted
			}
		}
	}
	return nil
}

// Contains implements Ledger.
func (m *Memory) Contains(h [32]byte) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.seen[h]
	return ok, nil
}

// File is a file-backed Ledger: one lowercase hex hash and '\n' per entry,
// appended (internal/appendfile: O_APPEND, created 0600) and fsynced before
// Record returns. It keeps the set of hashes in memory (32 bytes each).
// One process must hold one File per path: two would each miss the other's
// records. (Not locked yet: tests restart a node in-process without closing
// the old one's ledger.)
type File struct {
	mu   sync.Mutex
	af   *appendfile.File
	seen map[[32]byte]struct{}
	cut  *appendfile.Tail
}

const recordLen = 2 * 32

// OpenFile opens (creating if needed) the ledger at path and loads it,
// logging to slog.Default().
//
// A final line without its newline is a Record that a crash interrupted:
// Record had not returned, so no share was made, and the line is cut off
// (and logged). Any other malformed line — including a complete last line
// — is an error: without a head to prove it was never acknowledged, the
// node must not run on a ledger it cannot fully read (fail closed).
func OpenFile(path string) (*File, error) { return Open(path, nil) }

// Open is OpenFile with a logger (nil: slog.Default()).
func Open(path string, log *slog.Logger) (*File, error) {
	if log == nil {
		log = slog.Default()
	}
	af, err := appendfile.Open(path, appendfile.Options{})
	if err != nil {
		return nil, fmt.Errorf("he: ledger: %w", err)
	}
	l := &File{af: af, seen: map[[32]byte]struct{}{}}
	if err := l.load(log); err != nil {
		af.Close()
		return nil, err
	}
	return l, nil
}

func (l *File) load(log *slog.Logger) error {
	r, err := l.af.Section(l.af.Size())
	if err != nil {
		return fmt.Errorf("he: ledger: %w", err)
	}
	sc := appendfile.NewScanner(r, recordLen)
	for sc.Scan() {
		rec := sc.Record()
		var h [32]byte
		if rec.Len != recordLen {
			return fmt.Errorf("he: ledger: %s: entry %d (offset %d) is malformed: %d bytes, want %d", l.af.Path(), rec.Line, rec.Off, rec.Len, recordLen)
		}
		if _, err := hex.Decode(h[:], rec.Data); err != nil {
			return fmt.Errorf("he: ledger: %s: entry %d (offset %d): %w", l.af.Path(), rec.Line, rec.Off, err)
		}
		l.seen[h] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("he: ledger: %w", err)
	}
	if t := sc.Tail(); t.Len > 0 {
		if err := l.af.Truncate(t.Off); err != nil {
			return fmt.Errorf("he: ledger: cutting a torn final line: %w", err)
		}
		l.cut = &t
		log.Warn("he: ledger: cut a final line written in part by a crash (its share was never made)", "file", l.af.Path(), "offset", t.Off, "bytes", t.Len)
	}
	return nil
}

// Cut reports the torn final line OpenFile cut off, if any.
func (l *File) Cut() (appendfile.Tail, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut == nil {
		return appendfile.Tail{}, false
	}
	return *l.cut, true
}

// Record implements Ledger: check every key, then append and fsync each
// in turn, remembering it once it is on disk. If an append fails, the keys
// already written stay recorded (burnt, never decryptable twice) and the
// error is returned, so no share is made.
func (l *File) Record(keys ...[32]byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.af == nil {
		return errors.New("he: ledger: closed")
	}
	if err := fresh(l.seen, keys); err != nil {
		return err
	}
	line := make([]byte, recordLen)
	for _, h := range keys {
		hex.Encode(line, h[:])
		if _, err := l.af.Append(line); err != nil {
			return fmt.Errorf("he: ledger: %w", err)
		}
		l.seen[h] = struct{}{}
	}
	return nil
}

// Contains implements Ledger.
func (l *File) Contains(h [32]byte) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.seen[h]
	return ok, nil
}

// Len is the number of entries.
func (l *File) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

// Close closes the file.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.af == nil {
		return nil
	}
	err := l.af.Close()
	l.af = nil
	return err
}
