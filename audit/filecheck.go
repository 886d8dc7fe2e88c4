package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/unseen-data/unseen/internal/appendfile"
)

// maxPastHead is how many entries may follow the recorded head and still be
// a crash's doing (see FileLog).
const maxPastHead = 1

// fileState is what one pass over a log file finds.
type fileState struct {
	entries  int
	last     *Entry
	prevHash string // hash of the entry before last
	end      int64  // offset just past last's line
	torn     *Torn
	headHash string // hash of the entry at the head's seq, if seen

	head     Head        // the head file, as read after the pass
	headSet  bool        // a head file exists
	signed   *SignedHead // the head file's signature, if it has one
	pastHead int         // entries past the head (adopted at Open)
}

func (s *fileState) lastSeq() uint64 {
	if s.last == nil {
		return 0
	}
	return s.last.Seq
}

// hashAt returns the hash of the entry at seq among the last two (ok false
// if seq is older).
func (s *fileState) hashAt(seq uint64) (string, bool) {
	switch {
	case seq == 0:
		return "", true
	case s.last != nil && seq == s.last.Seq:
		return s.last.Hash, true
	case s.last != nil && seq+1 == s.last.Seq:
		return s.prevHash, true
	}
	return "", false
}

// scanChain reads a log file front to back, holding one entry at a time:
// every entry must decode and chain on from the one before, except the
// last line, which may be torn (no newline, or does not decode). It notes
// the hash of the entry at head.Seq and calls fn, if set, with each entry.
func scanChain(ctx context.Context, r *io.SectionReader, head Head, fn func(*Entry) error) (*fileState, error) {
	st := &fileState{}
	sc := appendfile.NewScanner(r, MaxEntryBytes)
	type badLine struct {
		line int
		off  int64
		err  error
	}
	var bad *badLine
	for sc.Scan() {
		rec := sc.Record()
		var b []byte
		if !rec.TooLong {
			if b = bytes.TrimSpace(rec.Data); len(b) == 0 {
				continue
			}
		}
		if bad != nil { // a line that does not decode, with more after it
			return st, fmt.Errorf("line %d: %w", bad.line, bad.err)
		}
		if rec.TooLong {
			bad = &badLine{rec.Line, rec.Off, fmt.Errorf("%w: longer than %d bytes", ErrDecode, MaxEntryBytes)}
			continue
		}
		e, err := Decode(b)
		if err != nil {
			bad = &badLine{rec.Line, rec.Off, err}
			continue
		}
		if why := link(st.last, &e); why != "" {
			return st, fmt.Errorf("line %d: %w", rec.Line, &VerifyError{st.entries, e.Seq, why})
		}
		if head.Seq != 0 && e.Seq == head.Seq {
			st.headHash = e.Hash
		}
		if st.last != nil {
			st.prevHash = st.last.Hash
		}
		st.last, st.entries, st.end = &e, st.entries+1, rec.Off+int64(rec.Len)+1
		if fn != nil {
			if err := fn(&e); err != nil {
				return st, err
			}
		}
		if st.entries%4096 == 0 && ctx.Err() != nil {
			return st, ctx.Err()
		}
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("audit: read: %w", err)
	}
	var off int64 = -1
	if bad != nil {
		off = bad.off
	} else if t := sc.Tail(); t.Len > 0 {
		off = t.Off
	}
	if off >= 0 {
		h := sha256.New()
		n, err := io.Copy(h, io.NewSectionReader(r, off, r.Size()-off))
		if err != nil {
			return st, fmt.Errorf("audit: read: %w", err)
		}
		st.torn = &Torn{Offset: off, Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}
	}
	return st, nil
}

// inspect reads a log file and its head and decides: nil if the file is
// intact or in a shape a crash leaves (st says what to repair), an error
// otherwise. It changes nothing. The head is read before and after the
// pass, so that a log being written meanwhile (entry, then head) passes:
// with h1 and h2 the two heads and n the file's last seq, a writer keeps
// h1 ≤ n ≤ h2+1.
// open gives the file to read, and is called after the first head read.
func inspect(path string, open func() (*io.SectionReader, error), fn func(*Entry) error) (*fileState, error) {
	h1, ok1, err := readHead(path)
	if err != nil {
		return nil, err
	}
	r, err := open()
	if err != nil {
		return nil, err
	}
	st, err := scanChain(context.Background(), r, h1, fn)
	if err != nil {
		return nil, err
	}
	hf2, ok2, err := readHeadFile(path)
	if err != nil {
		return nil, err
	}
	h2 := Head{Seq: hf2.Seq, Hash: hf2.Hash}
	st.head, st.headSet, st.signed = h2, ok2, hf2.signed()
	n := st.lastSeq()
	tornNote := ""
	if st.torn != nil {
		tornNote = fmt.Sprintf(" (not counting a torn final line of %d bytes at offset %d)", st.torn.Bytes, st.torn.Offset)
	}
	switch {
	case ok1 && !ok2, h2.Seq < h1.Seq:
		return nil, fmt.Errorf("audit: the head file %s went back from seq %d to %d while it was read", headPath(path), h1.Seq, h2.Seq)
	case n < h1.Seq:
		return nil, &VerifyError{int(n), n + 1, fmt.Sprintf("the file ends at seq %d%s, but its recorded head is seq %d: entries were cut off its end (no automatic repair: keep both files for investigation)", n, tornNote, h1.Seq)}
	case h1.Seq != 0 && st.headHash != h1.Hash:
		return nil, &VerifyError{int(h1.Seq) - 1, h1.Seq, "the entry at the recorded head's seq has another hash: the chain was rewritten (no automatic repair: keep both files for investigation)"}
	}
	if h2 != h1 && h2.Seq <= n {
		if hh, ok := st.hashAt(h2.Seq); !ok || hh != h2.Hash {
			return nil, &VerifyError{int(h2.Seq) - 1, h2.Seq, "the entry at the recorded head's seq has another hash"}
		}
	}
	if n > h2.Seq {
		st.pastHead = int(n - h2.Seq)
	}
	if st.pastHead > maxPastHead {
		why := fmt.Sprintf("%d entries follow the recorded head (seq %d); a crash leaves at most %d: the head file was replaced (no automatic repair)", st.pastHead, h2.Seq, maxPastHead)
		if !ok2 {
			why = fmt.Sprintf("the file holds %d entries but there is no head file %s; a crash leaves at most %d without one: the head file was removed (no automatic repair)", n, headPath(path), maxPastHead)
		}
		return nil, &VerifyError{int(h2.Seq) + 1, h2.Seq + 2, why}
	}
	return st, nil
}

// FileCheck is what ScanFile found.
type FileCheck struct {
	Entries int  // entries in the chain (a torn line aside)
	Head    Head // the recorded head
	// PastHead entries follow the recorded head, and Torn is a final line
	// written in part: a writer stopped between its two writes (or is
	// writing now). The next Open repairs both (see FileLog).
	PastHead int
	Torn     *Torn
	// Signed is the head file's signed head, if the keeper signs its heads
	// (check it with SignedHead.Verify and the keeper's public key).
	Signed *SignedHead
}

// ScanFile checks a log file without opening it for writing (for auditors
// and `unseen audit verify`): it passes exactly when Open would open the
// file, possibly after repairing it, and then says what Open would
// repair. fn, if set, gets every entry of the chain as it is read — before
// the whole file is known to be good, so discard them on error. It holds
// one entry at a time and may run while the log's owner appends.
func ScanFile(path string, fn func(*Entry) error) (FileCheck, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileCheck{}, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	st, err := inspect(path, func() (*io.SectionReader, error) {
		info, err := f.Stat() // after the head: the file reaches at least that far
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		return io.NewSectionReader(f, 0, info.Size()), nil
	}, fn)
	if err != nil {
		return FileCheck{}, fmt.Errorf("%s: %w", path, err)
	}
	return FileCheck{Entries: st.entries, Head: st.head, PastHead: st.pastHead, Torn: st.torn, Signed: st.signed}, nil
}

// VerifyFile checks a log file's chain against its head file (ScanFile)
// and returns its number of entries.
func VerifyFile(path string) (int, error) {
	c, err := ScanFile(path, nil)
	return c.Entries, err
}

// ReadFile reads every entry of a log file that ScanFile accepts, without
// opening it for writing. It holds the whole chain: for a long log, prefer
// ScanFile with a callback.
func ReadFile(path string) ([]Entry, error) {
	var out []Entry
	_, err := ScanFile(path, func(e *Entry) error {
		out = append(out, *e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
