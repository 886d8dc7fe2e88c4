// Package appendfile is the one way Unseen keeps an append-only file of
// records (the audit logs, the decryption ledger): one record per line,
// appended with O_APPEND to a file created 0600 and fsynced before Append
// returns, so that an acknowledged record survives a crash.
//
// A crash (or a full disk) can leave the last record written in part. The
// Scanner reports such a torn tail — bytes after the last newline — and
// Truncate cuts it off; which tails are safe to cut is the caller's call,
// since only the caller knows whether a record could have been acknowledged.
// A failed Append takes its partial bytes back, so that the next record does
// not land after half of this one.
package appendfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

var (
	// ErrClosed is returned by operations on a closed File.
	ErrClosed = errors.New("appendfile: closed")
	// ErrBroken is returned by Append after a failed write whose partial
	// bytes could not be taken back: the file's end is unknown until it is
	// opened and scanned again.
	ErrBroken = errors.New("appendfile: a failed write could not be undone; reopen the file")
	// ErrLocked is returned by Open (Exclusive) when another exclusive File,
	// in this process or another, has the file open.
	ErrLocked = errors.New("appendfile: the file is open for writing elsewhere")
	// ErrRecord is returned by Append for a record with a newline in it.
	ErrRecord = errors.New("appendfile: a record may not contain a newline")
)

// File is an append-only file of newline-terminated records. It is safe
// for concurrent use; appends are serialised.
type File struct {
	mu     sync.Mutex
	f      *os.File
	path   string
	size   int64 // bytes known to be in the file: through the last record
	broken bool
}

// Options adjust Open.
type Options struct {
	// Exclusive locks the file (flock, released when the File is closed or
	// the process dies, however it dies) so that a second writer — which
	// would interleave records with this one — is refused (ErrLocked).
	Exclusive bool
}

// Open opens path for appending, creating it (mode 0600) if it does not
// exist. It reads nothing: scan the file (NewScanner over Section) before
// appending, and cut a torn tail first.
func Open(path string, o Options) (*File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if o.Exclusive {
		if err := lock(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &File{f: f, path: path, size: st.Size()}, nil
}

// Path is the file's name as opened.
func (a *File) Path() string { return a.path }

// Size is the file's length: at Open, then after each Append and Truncate.
func (a *File) Size() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.size
}

// Section returns a reader of the file's first n bytes. Reads go through
// pread and do not disturb appends, so a reader may run alongside them.
func (a *File) Section(n int64) (*io.SectionReader, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil, ErrClosed
	}
	return io.NewSectionReader(a.f, 0, n), nil
}

// Append writes rec and a newline and fsyncs the file. It returns the
// record's offset. On error the record is not in the file: its partial
// bytes are cut off again, or, if even that fails, the File refuses every
// later Append (ErrBroken).
func (a *File) Append(rec []byte) (int64, error) {
	if bytes.IndexByte(rec, '\n') >= 0 {
		return 0, ErrRecord
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.f == nil:
		return 0, ErrClosed
	case a.broken:
		return 0, ErrBroken
	}
	off := a.size
	line := make([]byte, len(rec)+1)
	copy(line, rec)
	line[len(rec)] = '\n'
	_, err := a.f.Write(line)
	if err == nil {
		if err = a.f.Sync(); err != nil {
			err = fmt.Errorf("fsync %s: %w", a.path, err)
		}
	} else {
		err = fmt.Errorf("write %s: %w", a.path, err)
	}
	if err != nil {
		if terr := a.truncateLocked(off); terr != nil {
			a.broken = true
			return 0, fmt.Errorf("appendfile: %w (and taking the partial record back failed: %v)", err, terr)
		}
		return 0, fmt.Errorf("appendfile: %w", err)
	}
	a.size = off + int64(len(line))
	return off, nil
}

// Truncate cuts the file to n bytes (a torn tail, or a record the caller
// takes back) and fsyncs the cut.
func (a *File) Truncate(n int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return ErrClosed
	}
	if err := a.truncateLocked(n); err != nil {
		a.broken = true
		return fmt.Errorf("appendfile: %w", err)
	}
	a.broken = false
	return nil
}

func (a *File) truncateLocked(n int64) error {
	if err := a.f.Truncate(n); err != nil {
		return fmt.Errorf("truncate %s: %w", a.path, err)
	}
	if err := a.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", a.path, err)
	}
	a.size = n
	return nil
}

// Close closes the file.
func (a *File) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	return err
}

// Record is one line of the file, without its newline.
type Record struct {
	Line int   // 1-based line number
	Off  int64 // offset of its first byte
	Len  int   // its length, without the newline
	// Data is the record's bytes (valid until the next Scan), or nil if it
	// is longer than the scanner's bound (TooLong).
	Data    []byte
	TooLong bool
}

// Tail is what follows the last newline: bytes of a record whose write did
// not finish. Len 0: the file ends cleanly.
type Tail struct {
	Off int64
	Len int64
}

// Scanner reads a file's records front to back, with their line numbers
// and offsets, holding at most one record (of at most limit bytes) at a time.
type Scanner struct {
	r     *bufio.Reader
	limit int
	off   int64
	line  int
	rec   Record
	buf   []byte
	tail  Tail
	err   error
}

// NewScanner reads records of at most limit bytes from r; a longer one is
// reported (TooLong) without being held.
func NewScanner(r io.Reader, limit int) *Scanner {
	return &Scanner{r: bufio.NewReaderSize(r, 64<<10), limit: limit}
}

// Scan advances to the next complete (newline-terminated) record. It
// returns false at the end of the file or on a read error (Err); bytes
// after the last newline are not a record but the Tail.
func (s *Scanner) Scan() bool {
	if s.err != nil || s.tail.Len > 0 {
		return false
	}
	s.buf = s.buf[:0]
	n, tooLong := 0, false
	for {
		chunk, err := s.r.ReadSlice('\n')
		n += len(chunk)
		if !tooLong {
			if len(s.buf)+len(chunk) > s.limit+1 {
				tooLong, s.buf = true, s.buf[:0]
			} else {
				s.buf = append(s.buf, chunk...)
			}
		}
		switch {
		case err == nil:
			s.line++
			s.rec = Record{Line: s.line, Off: s.off, Len: n - 1, TooLong: tooLong}
			if !tooLong {
				s.rec.Data = s.buf[:n-1]
			}
			s.off += int64(n)
			return true
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if n > 0 {
				s.tail = Tail{Off: s.off, Len: int64(n)}
			}
			return false
		default:
			s.err = err
			return false
		}
	}
}

// Record is the record Scan found.
func (s *Scanner) Record() Record { return s.rec }

// Tail is the unterminated end of the file, once Scan has returned false.
func (s *Scanner) Tail() Tail { return s.tail }

// Err is the read error that stopped Scan, if any.
func (s *Scanner) Err() error { return s.err }

// ScanBack reads the complete records of r[0:end) from the last to the
// first, calling fn with each (its bytes are valid only during the call;
// Line is 0: unknown going backwards) until fn returns stop or an error.
// r[end-1] must be a newline (end is the end of a record, or 0). It holds
// at most two blocks and one record of at most limit bytes; a longer record
// is an error.
func ScanBack(r io.ReaderAt, end int64, limit int, fn func(rec Record) (stop bool, err error)) error {
	if end == 0 {
		return nil
	}
	const block = 64 << 10
	var last [1]byte
	if _, err := r.ReadAt(last[:], end-1); err != nil {
		return err
	}
	if last[0] != '\n' {
		return fmt.Errorf("appendfile: offset %d is not the end of a record", end)
	}
	// buf holds the bytes [lo, hi); hi is just past a newline.
	lo, hi := end, end
	var buf []byte
	for hi > 0 {
		// The record ending at hi-1 starts after the newline before it.
		i := bytes.LastIndexByte(buf[:max(len(buf)-1, 0)], '\n')
		if i < 0 && lo > 0 {
			if len(buf) > limit+1 {
				return fmt.Errorf("appendfile: record ending at offset %d is longer than %d bytes", hi, limit)
			}
			n := int64(block)
			if lo < n {
				n = lo
			}
			nb := make([]byte, int(n)+len(buf))
			if _, err := r.ReadAt(nb[:n], lo-n); err != nil {
				return err
			}
			copy(nb[n:], buf)
			buf, lo = nb, lo-n
			continue
		}
		start := i + 1 // 0 when i < 0 and lo == 0: the file's first record
		rec := buf[start : len(buf)-1]
		if len(rec) > limit {
			return fmt.Errorf("appendfile: record at offset %d is longer than %d bytes", lo+int64(start), limit)
		}
		stop, err := fn(Record{Off: lo + int64(start), Len: len(rec), Data: rec})
		if err != nil || stop {
			return err
		}
		buf, hi = buf[:start], lo+int64(start)
	}
	return nil
}
