// Package ledger records, at each node, the ciphertexts the node has helped
// decrypt, so that it helps decrypt each one at most once, ever.
//
// A node must Record a ciphertext's hash, durably, BEFORE it produces its
// decryption share: if the record cannot be written the share is not made
// (fail closed), and a crash after the record leaves the ciphertext burnt
// rather than decryptable twice.
package ledger

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
)

// ErrAlreadyDecrypted is returned by Record for a hash already recorded.
var ErrAlreadyDecrypted = errors.New("he: ledger: this ciphertext has already been decrypted once; refusing a second decryption")

// Ledger is an append-only set of 32-byte ciphertext hashes.
type Ledger interface {
	// Record adds h, durably, or returns ErrAlreadyDecrypted if h is present.
	// It must be safe for concurrent use and atomic: of two concurrent calls
	// with the same h, exactly one succeeds.
	Record(h [32]byte) error
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
func (m *Memory) Record(h [32]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.seen[h]; ok {
		return ErrAlreadyDecrypted
	}
	m.seen[h] = struct{}{}
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
// appended with O_APPEND and fsynced before Record returns. The file is
// created 0600.
type File struct {
	mu   sync.Mutex
	f    *os.File
	seen map[[32]byte]struct{}
}

const lineLen = 2*32 + 1

// OpenFile opens (creating if needed) the ledger at path and loads it. A
// malformed or partially written entry is an error: the node must not run
// on a ledger it cannot fully read.
func OpenFile(path string) (*File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("he: ledger: %w", err)
	}
	l := &File{f: f, seen: map[[32]byte]struct{}{}}
	if err := l.load(); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

func (l *File) load() error {
	if _, err := l.f.Seek(0, 0); err != nil {
		return fmt.Errorf("he: ledger: %w", err)
	}
	r := bufio.NewReader(l.f)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(line) == 0 && err != nil {
			break
		}
		if len(line) != lineLen || line[lineLen-1] != '\n' {
			return fmt.Errorf("he: ledger: entry %d is malformed or truncated", n)
		}
		var h [32]byte
		if _, err := hex.Decode(h[:], bytes.TrimSuffix(line, []byte{'\n'})); err != nil {
			return fmt.Errorf("he: ledger: entry %d: %w", n, err)
		}
		l.seen[h] = struct{}{}
		if err != nil {
			break
		}
	}
	return nil
}

// Record implements Ledger: check, append, fsync, then remember.
func (l *File) Record(h [32]byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return errors.New("he: ledger: closed")
	}
	if _, ok := l.seen[h]; ok {
		return ErrAlreadyDecrypted
	}
	line := make([]byte, lineLen)
	hex.Encode(line, h[:])
	line[lineLen-1] = '\n'
	if _, err := l.f.Write(line); err != nil {
		return fmt.Errorf("he: ledger: append: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("he: ledger: fsync: %w", err)
	}
	l.seen[h] = struct{}{}
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
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
