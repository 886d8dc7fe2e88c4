package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
)

// FileLog keeps a chain as JSON lines in one file, fsynced per append. It is
// the log of every node and of the coordinator's embedded backend.
type FileLog struct {
	mu   sync.Mutex
	f    *os.File
	path string
	last *Entry
	all  []Entry // kept in memory: logs of one process are small next to RAM
}

// OpenFile opens (or creates, mode 0600) the log at path and verifies the
// chain already in it against its head (the sidecar file path+".head"); a
// broken or truncated chain is an error, not something to append to.
func OpenFile(path string) (*FileLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	entries, err := readEntries(f)
	if err == nil {
		var h Head
		if h, err = readHead(path); err == nil {
			err = VerifyHead(entries, h)
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: %s: %w", path, err)
	}
	l := &FileLog{f: f, path: path, all: entries}
	if n := len(entries); n > 0 {
		l.last = &l.all[n-1]
	}
	return l, nil
}

// headPath is the sidecar that records the chain's head.
func headPath(path string) string { return path + ".head" }

// readHead reads the sidecar; a missing one means an empty chain.
func readHead(path string) (Head, error) {
	b, err := os.ReadFile(headPath(path))
	if errors.Is(err, os.ErrNotExist) {
		return Head{}, nil
	}
	if err != nil {
		return Head{}, fmt.Errorf("audit: %w", err)
	}
	var h Head
	if err := json.Unmarshal(bytes.TrimSpace(b), &h); err != nil {
		return Head{}, fmt.Errorf("%w: head file %s: %v", ErrDecode, headPath(path), err)
	}
	return h, nil
}

// VerifyFile checks a log file's chain against its head file.
func VerifyFile(path string) (int, error) {
	es, err := ReadFile(path)
	if err != nil {
		return 0, err
	}
	h, err := readHead(path)
	if err != nil {
		return len(es), err
	}
	return len(es), VerifyHead(es, h)
}

// ReadFile reads every entry of a log file without opening it for writing
// (for `unseen audit verify`).
func ReadFile(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	return readEntries(f)
}

func readEntries(f *os.File) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), MaxEntryBytes+1)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		e, err := Decode(b)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %v", ErrDecode, line+1, err)
	}
	return out, nil
}

// Append seals e after the last entry, writes and fsyncs it. On any error
// nothing is recorded in memory, so the caller's change must not happen.
func (l *FileLog) Append(ctx context.Context, e Entry) (Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return Entry{}, ErrClosed
	}
	e.Seal(l.last)
	b := append(e.Encode(), '\n')
	if len(b) > MaxEntryBytes {
		return Entry{}, fmt.Errorf("audit: entry larger than %d bytes", MaxEntryBytes)
	}
	if _, err := l.f.Write(b); err != nil {
		return Entry{}, fmt.Errorf("audit: write %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return Entry{}, fmt.Errorf("audit: sync %s: %w", l.path, err)
	}
	if err := writeHead(l.path, Head{Seq: e.Seq, Hash: e.Hash}); err != nil {
		return Entry{}, err
	}
	l.all = append(l.all, e)
	l.last = &l.all[len(l.all)-1]
	return e, nil
}

// writeHead replaces the sidecar atomically (write, fsync, rename).
func writeHead(path string, h Head) error {
	b, _ := json.Marshal(h)
	tmp := headPath(path) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("audit: head: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("audit: head: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("audit: head: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("audit: head: %w", err)
	}
	if err := os.Rename(tmp, headPath(path)); err != nil {
		return fmt.Errorf("audit: head: %w", err)
	}
	return nil
}

// Head is the chain's recorded head.
func (l *FileLog) Head(ctx context.Context) (Head, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return readHead(l.path)
}

// Entries returns the entries matching f, oldest first.
func (l *FileLog) Entries(ctx context.Context, f Filter) ([]Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return filterEntries(l.all, f), nil
}

// All returns a copy of the chain.
func (l *FileLog) All(ctx context.Context) ([]Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Entry(nil), l.all...), nil
}

// Close closes the file.
func (l *FileLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

func filterEntries(all []Entry, f Filter) []Entry {
	var out []Entry
	for i := range all {
		if f.Match(&all[i]) {
			out = append(out, all[i])
		}
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[len(out)-f.Limit:]
	}
	return out
}

// MemLog is an in-memory chain, for tests and the demo's throwaway runs.
type MemLog struct {
	mu  sync.Mutex
	all []Entry
	// Fail, when set, makes Append fail: a test's stand-in for a full disk.
	Fail error
}

// Append seals and stores e.
func (l *MemLog) Append(ctx context.Context, e Entry) (Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Fail != nil {
		return Entry{}, l.Fail
	}
	var prev *Entry
	if n := len(l.all); n > 0 {
		prev = &l.all[n-1]
	}
	e.Seal(prev)
	l.all = append(l.all, e)
	return e, nil
}

// Entries returns the entries matching f.
func (l *MemLog) Entries(ctx context.Context, f Filter) ([]Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return filterEntries(l.all, f), nil
}

// Head is the last entry's sequence number and hash.
func (l *MemLog) Head(ctx context.Context) (Head, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return HeadOf(l.all), nil
}

// All returns a copy of the chain.
func (l *MemLog) All(ctx context.Context) ([]Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Entry(nil), l.all...), nil
}
