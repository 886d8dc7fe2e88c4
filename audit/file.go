package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/unseen-data/unseen/internal/appendfile"
)

// ActionRecovered is the action of the entry Open appends after repairing
// what a crash left (see FileLog).
const ActionRecovered = "audit.recovered"

// FileLog keeps a chain as JSON lines in one file (internal/appendfile:
// O_APPEND, 0600, fsynced per entry), with its head in a sidecar file
// (path + ".head", replaced atomically after each entry). It is the log of
// every node and of the coordinator's embedded backend.
//
// Memory: a FileLog holds only the chain's last entry, whatever the
// chain's length. Entries and All read the file (see their costs).
//
// Crash recovery. Append writes and fsyncs the entry, then the head, so a
// crash can leave (a) the last entry written but not the head, or (b) the
// last entry written in part. At open, and only in these two shapes:
//
//   - a complete, correctly chained entry just past the recorded head is
//     adopted: the head is rewritten to it. At most one: appends are
//     serialised and each writes its head before the next begins, so more
//     than one entry past the head is not a crash but a replaced head file.
//   - a torn final line (no newline, or one that does not decode as an
//     entry) is cut off. It was never acknowledged: Append returns only
//     after the head is written, and the head check below still stands, so
//     cutting can never hide an acknowledged entry.
//
// Either repair is logged and then audited: an entry with action
// ActionRecovered says what was adopted (seq, hash, the recorded head) and
// what was cut (offset, length, SHA-256 of the bytes). Everything else is
// refused, and a refusal changes nothing on disk: a chain broken anywhere,
// an entry that does not decode before the last line, a head the file does
// not reach (entries cut off its end), a head whose hash differs from the
// entry at its seq, an unreadable head file, entries without a head file
// beyond the first.
//
// Signed heads. With FileOptions.Signer the head file also carries the
// log's name and the keeper's signature (SignedHead), written with every
// head; Open refuses a head file signed otherwise (one rewritten without
// the key), and re-signs an unsigned one (a log from before heads were
// signed). Whoever holds the key and both files can still rewrite history:
// that is what witnesses are for (see CheckWitnessed).
type FileLog struct {
	mu     sync.Mutex
	af     *appendfile.File
	path   string
	last   *Entry // nil: the chain is empty
	end    int64  // the file's length through last
	rec    *Recovery
	signer ed25519.PrivateKey // nil: heads are not signed
	name   string             // the log's name in signed heads
}

// FileOptions adjust Open.
type FileOptions struct {
	// Logger receives recoveries (default slog.Default()).
	Logger *slog.Logger
	// Now stamps the recovery entry (default time.Now).
	Now func() time.Time
	// Signer, if set, signs every head written, as the log named Name (a
	// node's department, or CoordinatorLog).
	Signer ed25519.PrivateKey
	Name   string
}

// Recovery is what Open repaired.
type Recovery struct {
	// RecordedHead is the head file's content before the repair.
	RecordedHead Head
	// Adopted is the number of entries past RecordedHead taken into the
	// chain (0 or 1); Head is the chain's head after the repair.
	Adopted int
	Head    Head
	// Torn is the final line cut off, if any.
	Torn *Torn
	// Entry is the ActionRecovered entry appended.
	Entry Entry
}

// Torn is a final line cut off a log: where it began, its length and the
// SHA-256 of its bytes (to match against a copy, if someone kept one).
type Torn struct {
	Offset int64  `json:"offset"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// OpenFile is Open with default options.
func OpenFile(path string) (*FileLog, error) { return Open(path, FileOptions{}) }

// Open opens (or creates, mode 0600) the log at path, checks its chain
// against its head file, repairs what a crash leaves (see FileLog) and
// refuses anything else. It reads the whole file once, holding one entry
// at a time. The file is locked (flock) while open: a second writer would
// fork the chain.
func Open(path string, o FileOptions) (*FileLog, error) {
	if o.Signer != nil && (len(o.Signer) != ed25519.PrivateKeySize || !validLogName(o.Name)) {
		return nil, fmt.Errorf("audit: open %s: a head signer needs an Ed25519 key and a log name", path)
	}
	af, err := appendfile.Open(path, appendfile.Options{Exclusive: true})
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", path, err)
	}
	st, err := inspect(path, func() (*io.SectionReader, error) { return af.Section(af.Size()) }, nil)
	if err != nil {
		af.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	l := &FileLog{af: af, path: path, last: st.last, end: st.end, signer: o.Signer, name: o.Name}
	if o.Signer != nil && st.headSet {
		if st.signed != nil {
			if err := l.checkOwnHead(*st.signed); err != nil {
				af.Close()
				return nil, fmt.Errorf("audit: %s: %w (no automatic repair: keep both files for investigation)", path, err)
			}
		} else if st.torn == nil && st.pastHead == 0 {
			// A head from before heads were signed: sign it now.
			if err := l.writeHead(st.head); err != nil {
				af.Close()
				return nil, err
			}
		}
	}
	if st.torn != nil || st.pastHead > 0 {
		if err := l.recover(st, o); err != nil {
			af.Close()
			return nil, fmt.Errorf("audit: %s: recovering after a crash: %w", path, err)
		}
	}
	return l, nil
}

// checkOwnHead checks a signed head file against the keeper's own key.
func (l *FileLog) checkOwnHead(h SignedHead) error {
	if h.Log != l.name {
		return fmt.Errorf("%w: the head file is signed as log %q, not %q", ErrHeadSignature, h.Log, l.name)
	}
	if err := h.Verify(l.signer.Public().(ed25519.PublicKey)); err != nil {
		return fmt.Errorf("%w: the head file was signed with another key, or altered", err)
	}
	return nil
}

// writeHead writes h, signed if the log signs its heads.
func (l *FileLog) writeHead(h Head) error {
	hf := headFile{Seq: h.Seq, Hash: h.Hash}
	if l.signer != nil {
		sh, err := SignHead(l.signer, l.name, h)
		if err != nil {
			return err
		}
		hf.Log, hf.Sig = sh.Log, sh.Sig
	}
	return writeHeadFile(l.path, hf)
}

// recover applies the repairs inspect allowed, then audits them.
func (l *FileLog) recover(st *fileState, o FileOptions) error {
	log, now := o.Logger, o.Now
	if log == nil {
		log = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	rec := &Recovery{RecordedHead: st.head, Adopted: st.pastHead, Head: HeadOf(lastSlice(st.last))}
	d := map[string]string{"recorded_head_seq": strconv.FormatUint(st.head.Seq, 10)}
	if st.torn != nil {
		// Cut first: nothing may be appended after a partial line.
		if err := l.af.Truncate(st.torn.Offset); err != nil {
			return err
		}
		rec.Torn = st.torn
		d["torn_offset"] = strconv.FormatInt(st.torn.Offset, 10)
		d["torn_bytes"] = strconv.FormatInt(st.torn.Bytes, 10)
		d["torn_sha256"] = st.torn.SHA256
		log.Warn("audit: cut a final line written in part by a crash", "file", l.path, "offset", st.torn.Offset, "bytes", st.torn.Bytes, "sha256", st.torn.SHA256)
	}
	if st.pastHead > 0 {
		// The head first, then the entry that records it: a crash between
		// the two leaves again one entry past the head, which is adopted.
		if err := l.writeHead(rec.Head); err != nil {
			return err
		}
		d["adopted"] = strconv.Itoa(st.pastHead)
		d["adopted_seq"] = strconv.FormatUint(st.last.Seq, 10)
		d["adopted_hash"] = st.last.Hash
		log.Warn("audit: adopted an entry written just before a crash, past the recorded head", "file", l.path, "seq", st.last.Seq, "recorded_head_seq", st.head.Seq)
	}
	e, err := l.appendLocked(Entry{Time: now(), Actor: "audit", Role: "system", Action: ActionRecovered, Detail: d})
	if err != nil {
		return err
	}
	rec.Entry = e
	l.rec = rec
	return nil
}

func lastSlice(e *Entry) []Entry {
	if e == nil {
		return nil
	}
	return []Entry{*e}
}

// Recovery reports what Open repaired (nil if the log was intact).
func (l *FileLog) Recovery() *Recovery {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec
}

// headPath is the sidecar that records the chain's head.
func headPath(path string) string { return path + ".head" }

// headFile is the sidecar's content: the head and, if the keeper signs its
// heads, the log's name and the signature (a SignedHead).
type headFile struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
	Log  string `json:"log,omitempty"`
	Sig  []byte `json:"sig,omitempty"`
}

// signed is the file's signed head, or nil if it carries no signature.
func (hf headFile) signed() *SignedHead {
	if hf.Sig == nil && hf.Log == "" {
		return nil
	}
	return &SignedHead{Log: hf.Log, Seq: hf.Seq, Hash: hf.Hash, Sig: hf.Sig}
}

// readHead reads the sidecar's head; ok is false if there is none.
func readHead(path string) (h Head, ok bool, err error) {
	hf, ok, err := readHeadFile(path)
	return Head{Seq: hf.Seq, Hash: hf.Hash}, ok, err
}

// readHeadFile reads the sidecar; ok is false if there is none.
func readHeadFile(path string) (hf headFile, ok bool, err error) {
	b, err := os.ReadFile(headPath(path))
	if errors.Is(err, os.ErrNotExist) {
		return headFile{}, false, nil
	}
	if err != nil {
		return headFile{}, false, fmt.Errorf("audit: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hf); err != nil {
		return headFile{}, false, fmt.Errorf("%w: head file %s: %v (it is replaced atomically, so a crash cannot tear it: the file was changed by something else)", ErrDecode, headPath(path), err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return headFile{}, false, fmt.Errorf("%w: head file %s: trailing data", ErrDecode, headPath(path))
	}
	if (hf.Seq == 0) != (hf.Hash == "") {
		return headFile{}, false, fmt.Errorf("%w: head file %s: seq %d with hash %q", ErrDecode, headPath(path), hf.Seq, hf.Hash)
	}
	if (hf.Log == "") != (hf.Sig == nil) {
		return headFile{}, false, fmt.Errorf("%w: head file %s: a signed head has both a log name and a signature", ErrDecode, headPath(path))
	}
	return hf, true, nil
}

// writeHead replaces the sidecar with an unsigned head (see writeHeadFile).
func writeHead(path string, h Head) error {
	return writeHeadFile(path, headFile{Seq: h.Seq, Hash: h.Hash})
}

// writeHeadFile replaces the sidecar atomically (write, fsync, rename). The
// folder is not fsynced: a rename lost to a power cut leaves the previous
// head, one entry behind, which Open adopts.
func writeHeadFile(path string, h headFile) error {
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

// Append seals e after the last entry, writes and fsyncs it, then its
// head. On any error the entry is not in the chain (a written entry whose
// head could not follow is cut off again), so the caller's change must not
// happen.
func (l *FileLog) Append(ctx context.Context, e Entry) (Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.appendLocked(e)
}

func (l *FileLog) appendLocked(e Entry) (Entry, error) {
	if l.af == nil {
		return Entry{}, ErrClosed
	}
	e.Seal(l.last)
	b := e.Encode()
	if len(b) > MaxEntryBytes {
		return Entry{}, fmt.Errorf("audit: entry larger than %d bytes", MaxEntryBytes)
	}
	off, err := l.af.Append(b)
	if err != nil {
		return Entry{}, fmt.Errorf("audit: %w", err)
	}
	if err := l.writeHead(Head{Seq: e.Seq, Hash: e.Hash}); err != nil {
		if terr := l.af.Truncate(off); terr != nil {
			// The entry stays, past its head: the next Open adopts it.
			// Until then the file refuses appends (appendfile.ErrBroken).
			return Entry{}, fmt.Errorf("%w (and taking the entry back failed: %v)", err, terr)
		}
		return Entry{}, err
	}
	l.last = &e
	l.end = l.af.Size()
	return e, nil
}

// Head is the chain's recorded head, as its head file says.
func (l *FileLog) Head(ctx context.Context) (Head, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, _, err := readHead(l.path)
	return h, err
}

// SignedHead is the chain's head signed by the keeper (FileOptions.Signer;
// an error if the log does not sign its heads). It is signed afresh from
// the last entry held, not read from the head file.
func (l *FileLog) SignedHead(ctx context.Context) (SignedHead, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.signer == nil {
		return SignedHead{}, errors.New("audit: this log does not sign its heads")
	}
	return SignHead(l.signer, l.name, HeadOf(lastSlice(l.last)))
}

// snapshot is the chain as of now: its last entry and where it ends. The
// file is append-only, so its first end bytes stay what they are while
// later appends run.
func (l *FileLog) snapshot() (*Entry, int64, io.ReaderAt, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.af == nil {
		return nil, 0, nil, ErrClosed
	}
	r, err := l.af.Section(l.end)
	if err != nil {
		return nil, 0, nil, err
	}
	return l.last, l.end, r, nil
}

// Entries returns the entries matching f, oldest first. It reads the file
// backwards from its end, checking each entry's hash and its link to the
// one after it, anchored at the last entry held in memory — so what it
// returns is what the chain says, even if the file was edited since Open.
// Cost: it reads back until it has f.Limit matches, so the newest entries
// are cheap and a rare filter (or Limit 0: every match) reads the whole
// file; memory is f.Limit entries (Limit 0: every match). It does not
// block appends.
func (l *FileLog) Entries(ctx context.Context, f Filter) ([]Entry, error) {
	last, end, r, err := l.snapshot()
	if err != nil || last == nil {
		return nil, err
	}
	var out []Entry
	wantSeq, wantHash := last.Seq, last.Hash
	n := 0
	err = appendfile.ScanBack(r, end, MaxEntryBytes, func(rec appendfile.Record) (bool, error) {
		b := bytes.TrimSpace(rec.Data)
		if len(b) == 0 {
			return false, nil
		}
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return true, ctx.Err()
		}
		e, err := Decode(b)
		if err != nil {
			return true, fmt.Errorf("audit: %s: offset %d: %w", l.path, rec.Off, err)
		}
		switch {
		case e.Seq != wantSeq:
			return true, &VerifyError{int(wantSeq) - 1, e.Seq, fmt.Sprintf("at offset %d: sequence %d, want %d (the file changed after it was opened)", rec.Off, e.Seq, wantSeq)}
		case e.Hash != wantHash:
			return true, &VerifyError{int(wantSeq) - 1, e.Seq, fmt.Sprintf("at offset %d: hash is not the one the next entry links to (the file changed after it was opened)", rec.Off)}
		case e.ComputeHash() != e.Hash:
			return true, &VerifyError{int(wantSeq) - 1, e.Seq, "hash does not match the entry's contents"}
		case e.Seq == 1 && e.PrevHash != GenesisHash:
			return true, &VerifyError{0, 1, "the first entry does not start from the genesis hash"}
		}
		wantSeq, wantHash = e.Seq-1, e.PrevHash
		if f.Match(&e) {
			out = append(out, e)
		}
		return (f.Limit > 0 && len(out) == f.Limit) || e.Seq == 1, nil
	})
	if err != nil {
		return nil, err
	}
	if wantSeq != 0 && (f.Limit == 0 || len(out) < f.Limit) {
		return nil, &VerifyError{0, wantSeq, "the file ends before the chain's first entry (the file changed after it was opened)"}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// All returns the whole chain, checked (Entries with an empty filter):
// memory grows with the chain, so prefer Verify or Entries with a Limit on
// a long-lived log.
func (l *FileLog) All(ctx context.Context) ([]Entry, error) {
	return l.Entries(ctx, Filter{})
}

// Verify checks the whole chain front to back, one entry at a time, and
// that it ends at the entry held in memory and at the recorded head. It
// returns the number of entries.
func (l *FileLog) Verify(ctx context.Context) (int, error) {
	// The head is read with the snapshot, under the lock that Append holds
	// across its two writes, so they agree.
	l.mu.Lock()
	if l.af == nil {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	last, end := l.last, l.end
	r, err := l.af.Section(end)
	head, _, herr := readHead(l.path)
	l.mu.Unlock()
	if err != nil {
		return 0, err
	}
	st, err := scanChain(ctx, r, Head{}, nil)
	if err != nil {
		return st.entries, err
	}
	if st.torn != nil {
		return st.entries, &VerifyError{st.entries, 0, fmt.Sprintf("a line at offset %d does not decode", st.torn.Offset)}
	}
	if HeadOf(lastSlice(st.last)) != HeadOf(lastSlice(last)) {
		return st.entries, &VerifyError{st.entries, st.lastSeq(), "the file does not end at the chain's last entry (the file changed after it was opened)"}
	}
	if herr != nil {
		return st.entries, herr
	}
	if got := HeadOf(lastSlice(last)); got != head {
		return st.entries, &VerifyError{st.entries, got.Seq, fmt.Sprintf("chain ends at seq %d, but its recorded head is seq %d: entries were removed or added", got.Seq, head.Seq)}
	}
	return st.entries, nil
}

// Close closes the file.
func (l *FileLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.af == nil {
		return nil
	}
	err := l.af.Close()
	l.af = nil
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
