package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/internal/appendfile"
)

// crashFiles is a log as a crash could leave it, built byte by byte: the
// file's lines and the head file's content (nil: no head file).
type crashFiles struct {
	log  []byte
	head []byte
	tmp  []byte // a leftover head.jsonl.head.tmp, if not nil
}

func encodeLines(es []Entry) [][]byte {
	out := make([][]byte, len(es))
	for i, e := range es {
		out[i] = append(e.Encode(), '\n')
	}
	return out
}

func headBytes(h Head) []byte {
	b, _ := json.Marshal(h)
	return append(b, '\n')
}

func (c crashFiles) write(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	require.NoError(t, os.WriteFile(p, c.log, 0o600))
	if c.head != nil {
		require.NoError(t, os.WriteFile(headPath(p), c.head, 0o600))
	}
	if c.tmp != nil {
		require.NoError(t, os.WriteFile(headPath(p)+".tmp", c.tmp, 0o600))
	}
	return p
}

// snapshot is the two files' bytes (for "a refusal changes nothing").
func snapshot(t *testing.T, p string) string {
	t.Helper()
	a, err := os.ReadFile(p)
	require.NoError(t, err)
	b, err := os.ReadFile(headPath(p))
	if errors.Is(err, os.ErrNotExist) {
		b = []byte("<none>")
	} else {
		require.NoError(t, err)
	}
	return string(a) + "\x00" + string(b)
}

var (
	fixedNow = func() time.Time { return time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC) }
	quiet    = FileOptions{Now: fixedNow, Logger: slog.New(slog.DiscardHandler)}
)

// openOK opens p, and checks that the result is a clean log: its chain and
// head verify (and nothing is left to repair), and it continues.
func openOK(t *testing.T, p string) *FileLog {
	t.Helper()
	l, err := Open(p, quiet)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	c, err := ScanFile(p, nil)
	require.NoError(t, err)
	require.Zero(t, c.PastHead)
	require.Nil(t, c.Torn)
	n, err := l.Verify(context.Background())
	require.NoError(t, err)
	require.Equal(t, c.Entries, n)
	return l
}

// requireRefused opens p, expecting a refusal mentioning want, and checks
// that the files are as they were and that ScanFile refuses too.
func requireRefused(t *testing.T, p, want string) error {
	t.Helper()
	before := snapshot(t, p)
	_, err := Open(p, quiet)
	require.Error(t, err)
	require.Contains(t, err.Error(), want)
	require.Equal(t, before, snapshot(t, p), "a refused open changed the files")
	_, serr := ScanFile(p, nil)
	require.Error(t, serr, "ScanFile passed a file Open refuses")
	return err
}

func recoveredEntry(t *testing.T, l *FileLog) Entry {
	t.Helper()
	es, err := l.Entries(context.Background(), Filter{Limit: 1})
	require.NoError(t, err)
	require.Len(t, es, 1)
	require.Equal(t, ActionRecovered, es[0].Action)
	return es[0]
}

// A kill between the entry's write and its head's: the entry is adopted,
// the head rewritten, and the recovery audited.
func TestOpenAdoptsTheEntryPastItsHead(t *testing.T) {
	es := chain(t, 4)
	lines := encodeLines(es)
	p := crashFiles{log: bytes.Join(lines, nil), head: headBytes(HeadOf(es[:3]))}.write(t)
	c, err := ScanFile(p, nil)
	require.NoError(t, err, "a crashed log must verify as recoverable")
	require.Equal(t, FileCheck{Entries: 4, Head: HeadOf(es[:3]), PastHead: 1}, c)

	var logged bytes.Buffer
	l, err := Open(p, FileOptions{Now: fixedNow, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	require.NoError(t, err)
	defer l.Close()
	require.Contains(t, logged.String(), "adopted an entry")
	require.Contains(t, logged.String(), "recorded_head_seq=3")
	rec := l.Recovery()
	require.NotNil(t, rec)
	require.Equal(t, 1, rec.Adopted)
	require.Equal(t, HeadOf(es[:3]), rec.RecordedHead)
	require.Equal(t, HeadOf(es), rec.Head)
	require.Nil(t, rec.Torn)
	e := recoveredEntry(t, l)
	require.Equal(t, uint64(5), e.Seq)
	require.Equal(t, es[3].Hash, e.PrevHash)
	require.Equal(t, map[string]string{"recorded_head_seq": "3", "adopted": "1", "adopted_seq": "4", "adopted_hash": es[3].Hash}, e.Detail)
	require.Equal(t, "system", e.Role)
	require.Equal(t, fixedNow(), e.Time)

	// The first entry of a log, written before its first head ever was.
	p = crashFiles{log: lines[0]}.write(t)
	l = openOK(t, p)
	require.Equal(t, 1, l.Recovery().Adopted)
	require.Equal(t, "0", recoveredEntry(t, l).Detail["recorded_head_seq"])
}

// Every point at which a kill can stop the last entry's write: a torn
// line is cut and reported, and the log opens at the entry before.
func TestOpenCutsATornLastEntryAtEveryLength(t *testing.T) {
	es := chain(t, 3)
	lines := encodeLines(es)
	prefix := bytes.Join(lines[:2], nil)
	last := lines[2]
	for n := 0; n <= len(last); n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			p := crashFiles{log: append(append([]byte(nil), prefix...), last[:n]...), head: headBytes(HeadOf(es[:2]))}.write(t)
			l := openOK(t, p)
			rec := l.Recovery()
			switch n {
			case 0: // nothing written
				require.Nil(t, rec)
				require.Equal(t, Head{Seq: 2, Hash: es[1].Hash}, HeadOf(lastSlice(l.last)))
				return
			case len(last): // whole entry: adopted, not cut
				require.Equal(t, 1, rec.Adopted)
				require.Nil(t, rec.Torn)
				return
			}
			sum := sha256.Sum256(last[:n])
			require.Equal(t, &Torn{Offset: int64(len(prefix)), Bytes: int64(n), SHA256: hex.EncodeToString(sum[:])}, rec.Torn)
			require.Zero(t, rec.Adopted)
			e := recoveredEntry(t, l)
			require.Equal(t, uint64(3), e.Seq, "the recovery entry takes the torn entry's place")
			require.Equal(t, fmt.Sprint(len(prefix)), e.Detail["torn_offset"])
			require.Equal(t, fmt.Sprint(n), e.Detail["torn_bytes"])
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			require.Equal(t, string(prefix), string(b[:len(prefix)]), "entries before the torn one were changed")
			require.Equal(t, 3, bytes.Count(b, []byte("\n")))
		})
	}
	// A torn entry the head says was written: entries were lost, refuse.
	for _, n := range []int{1, len(last) / 2, len(last) - 1} {
		p := crashFiles{log: append(append([]byte(nil), prefix...), last[:n]...), head: headBytes(HeadOf(es))}.write(t)
		requireRefused(t, p, "recorded head is seq 3")
	}
}

// A final line that ends in a newline but does not decode (a power cut
// can leave zeros) is torn too; the same line before another is not.
func TestOpenCutsAnUndecodableLastLine(t *testing.T) {
	es := chain(t, 3)
	lines := encodeLines(es)
	zeros := append(make([]byte, len(lines[2])-1), '\n')
	p := crashFiles{log: bytes.Join([][]byte{lines[0], lines[1], zeros}, nil), head: headBytes(HeadOf(es[:2]))}.write(t)
	l := openOK(t, p)
	require.Equal(t, int64(len(zeros)), l.Recovery().Torn.Bytes)

	p = crashFiles{log: bytes.Join([][]byte{lines[0], zeros, lines[1]}, nil), head: headBytes(HeadOf(es[:2]))}.write(t)
	requireRefused(t, p, "line 2")
}

// Every point at which a kill can stop the head's write (a temporary file,
// fsynced, renamed over the head): before the rename the entry is adopted;
// after it the log is intact.
func TestOpenAtEveryPointOfTheHeadWrite(t *testing.T) {
	es := chain(t, 3)
	log := bytes.Join(encodeLines(es), nil)
	oldHead, newHead := headBytes(HeadOf(es[:2])), headBytes(HeadOf(es))
	for n := 0; n <= len(newHead); n++ {
		p := crashFiles{log: log, head: oldHead, tmp: newHead[:n]}.write(t)
		l := openOK(t, p)
		require.Equal(t, 1, l.Recovery().Adopted, "tmp of %d bytes", n)
	}
	p := crashFiles{log: log, head: newHead}.write(t)
	require.Nil(t, openOK(t, p).Recovery())

	// The head file itself is never written in place, so a torn one is not
	// a crash's doing: refuse.
	for n := 0; n < len(newHead)-1; n++ {
		p := crashFiles{log: log, head: newHead[:n]}.write(t)
		requireRefused(t, p, "head file")
	}
}

// A kill during the recovery itself (its entry written, its head not)
// leaves a log that recovers again, with a second recovery entry.
func TestRecoveryOfARecovery(t *testing.T) {
	es := chain(t, 2)
	p := crashFiles{log: bytes.Join(encodeLines(es), nil), head: headBytes(HeadOf(es[:1]))}.write(t)
	l := openOK(t, p)
	rec1 := l.Recovery().Entry
	require.Equal(t, uint64(3), rec1.Seq)
	require.NoError(t, l.Close())
	// Put the head back before the recovery entry, as if the kill came
	// between its write and its head's.
	require.NoError(t, os.WriteFile(headPath(p), headBytes(HeadOf(es)), 0o600))
	l = openOK(t, p)
	rec2 := l.Recovery()
	require.Equal(t, 1, rec2.Adopted)
	require.Equal(t, Head{Seq: 3, Hash: rec1.Hash}, rec2.Head)
	require.Equal(t, uint64(4), rec2.Entry.Seq)
	all, err := l.All(context.Background())
	require.NoError(t, err)
	require.Len(t, all, 4)
}

// Everything that is not a crash's doing is refused, and changes nothing.
func TestOpenRefuses(t *testing.T) {
	es := chain(t, 4)
	lines := encodeLines(es)
	join := func(ls ...[]byte) []byte { return bytes.Join(ls, nil) }
	edited := es[1]
	edited.Actor = "mallory"
	relinked := es[2] // seq 3, linked to entry 1
	relinked.PrevHash = es[0].Hash
	relinked.Hash = relinked.ComputeHash()
	for _, c := range []struct {
		name  string
		files crashFiles
		want  string
	}{
		{"entry edited before the head", crashFiles{log: join(lines[0], edited.Encode(), []byte("\n"), lines[2], lines[3]), head: headBytes(HeadOf(es))}, "hash does not match"},
		{"entry removed before the head", crashFiles{log: join(lines[0], lines[2], lines[3]), head: headBytes(HeadOf(es))}, "sequence 3, want 2"},
		{"entries swapped", crashFiles{log: join(lines[0], lines[2], lines[1], lines[3]), head: headBytes(HeadOf(es))}, "sequence 3, want 2"},
		{"entry past the head that does not chain", crashFiles{log: join(lines[0], lines[1], relinked.Encode(), []byte("\n")), head: headBytes(HeadOf(es[:2]))}, "prev_hash does not match"},
		{"past the head, wrong prev_hash", crashFiles{log: join(lines[0], lines[1], lines[2], lines[2]), head: headBytes(HeadOf(es[:3]))}, "sequence 3, want 4"},
		{"tail cut (head ahead of the file)", crashFiles{log: join(lines[0], lines[1]), head: headBytes(HeadOf(es))}, "entries were cut off its end"},
		{"head hash differs", crashFiles{log: join(lines...), head: headBytes(Head{Seq: 4, Hash: es[2].Hash})}, "another hash"},
		{"two entries past the head", crashFiles{log: join(lines...), head: headBytes(HeadOf(es[:2]))}, "2 entries follow the recorded head"},
		{"head file removed", crashFiles{log: join(lines...)}, "no head file"},
		{"undecodable line in the middle", crashFiles{log: join(lines[0], []byte("{oops}\n"), lines[1]), head: headBytes(HeadOf(es[:2]))}, "line 2"},
		{"over-long line in the middle", crashFiles{log: join(lines[0], bytes.Repeat([]byte("x"), MaxEntryBytes+10), []byte("\n"), lines[1]), head: headBytes(HeadOf(es[:2]))}, "longer than"},
		{"head with unknown fields", crashFiles{log: join(lines...), head: []byte(`{"seq":4,"hash":"` + es[3].Hash + `","x":1}`)}, "head file"},
		{"head with seq but no hash", crashFiles{log: join(lines...), head: []byte(`{"seq":4}`)}, "head file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := c.files.write(t)
			requireRefused(t, p, c.want)
		})
	}
	// A broken chain is an ErrBroken (a VerifyError) for callers.
	p := crashFiles{log: join(lines[0], lines[1]), head: headBytes(HeadOf(es))}.write(t)
	err := requireRefused(t, p, "cut off")
	require.ErrorIs(t, err, ErrBroken)
	var ve *VerifyError
	require.True(t, errors.As(err, &ve))
}

// A second writer is refused while the first has the log open.
func TestOpenLocks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openOK(t, p)
	_, err := OpenFile(p)
	require.ErrorIs(t, err, appendfile.ErrLocked)
	require.NoError(t, l.Close())
	l2, err := OpenFile(p)
	require.NoError(t, err)
	require.NoError(t, l2.Close())
}

// ScanFile passes on a log being written, whatever the moment it reads
// the two files at (the entry is written before its head).
func TestScanFileWhileAppending(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openOK(t, p)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 3000; i++ { // bounded: every check rescans the whole file
			select {
			case <-stop:
				return
			default:
			}
			if _, err := l.Append(ctx, Entry{Actor: "n", Action: "x", Detail: map[string]string{"i": fmt.Sprint(i)}}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	pending := 0
	for i := 0; i < 60; i++ {
		c, err := ScanFile(p, nil)
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("check %d of a log being written: %v", i, err)
		}
		pending += c.PastHead
		es, err := l.Entries(ctx, Filter{Limit: 5})
		require.NoError(t, err)
		for j := 1; j < len(es); j++ {
			require.Equal(t, es[j-1].Hash, es[j].PrevHash)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d of 60 checks saw an entry past its head", pending)
	_, err := l.Verify(ctx)
	require.NoError(t, err)
}

// Entries reads back from the end, checked against the chain's last entry:
// the newest matches, oldest first; an edit made after Open is an error.
func TestFileLogEntries(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	l := openOK(t, p)
	for i := 0; i < 50; i++ {
		job := "j_even"
		if i%2 == 1 {
			job = "j_odd"
		}
		_, err := l.Append(ctx, Entry{Actor: "n", Action: "x", Job: job, Datasets: []string{fmt.Sprintf("d.%d", i%5)}, Detail: map[string]string{"i": fmt.Sprint(i)}})
		require.NoError(t, err)
	}
	all, err := l.All(ctx)
	require.NoError(t, err)
	require.Len(t, all, 50)
	require.NoError(t, Verify(all))
	for _, f := range []Filter{{}, {Limit: 3}, {Job: "j_odd"}, {Job: "j_odd", Limit: 4}, {Dataset: "d.3", Limit: 100}, {Action: "nope"}, {Limit: 50}, {Limit: 51}} {
		got, err := l.Entries(ctx, f)
		require.NoError(t, err)
		require.Equal(t, filterEntries(all, f), got, "filter %+v", f)
	}
	// Someone edits an old entry after Open: reading back to it fails.
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, bytes.Replace(b, []byte(`"i":"3"`), []byte(`"i":"4"`), 1), 0o600))
	_, err = l.Entries(ctx, Filter{Limit: 3})
	require.NoError(t, err, "entries after the edit are still good")
	_, err = l.Entries(ctx, Filter{})
	require.ErrorIs(t, err, ErrBroken)
	_, err = l.Verify(ctx)
	require.ErrorIs(t, err, ErrBroken)
}

// FuzzOpen feeds the opener arbitrary log and head files: it never panics,
// and either opens a log whose chain and head verify (ScanFile agreeing
// beforehand) or refuses and changes nothing.
func FuzzOpen(f *testing.F) {
	es := chain(&testing.T{}, 3)
	lines := encodeLines(es)
	full := bytes.Join(lines, nil)
	f.Add(full, headBytes(HeadOf(es)), true)
	f.Add(full, headBytes(HeadOf(es[:2])), true)
	f.Add(full[:len(full)-7], headBytes(HeadOf(es[:2])), true)
	f.Add(full[:len(full)-7], headBytes(HeadOf(es)), true)
	f.Add(lines[0], []byte(nil), false)
	f.Add([]byte("\n\n{}\n"), []byte("{}"), true)
	f.Add([]byte{}, []byte(`{"seq":0,"hash":""}`), true)
	f.Fuzz(func(t *testing.T, log, head []byte, hasHead bool) {
		c := crashFiles{log: log}
		if hasHead {
			c.head = head
		}
		p := c.write(t)
		before := snapshot(t, p)
		check, serr := ScanFile(p, nil)
		l, err := Open(p, quiet)
		if (serr == nil) != (err == nil) {
			t.Fatalf("ScanFile says %v, Open says %v", serr, err)
		}
		if err != nil {
			if after := snapshot(t, p); after != before {
				t.Fatalf("a refused open changed the files")
			}
			return
		}
		defer l.Close()
		if (check.PastHead > 0 || check.Torn != nil) != (l.Recovery() != nil) {
			t.Fatalf("ScanFile foresaw %+v, Open recovered %+v", check, l.Recovery())
		}
		after, err := ScanFile(p, nil)
		if err != nil || after.PastHead != 0 || after.Torn != nil {
			t.Fatalf("after Open: %+v, %v", after, err)
		}
		if _, err := l.Verify(context.Background()); err != nil {
			t.Fatalf("after Open: %v", err)
		}
		all, err := l.All(context.Background())
		if err != nil || VerifyHead(all, HeadOf(all)) != nil {
			t.Fatalf("after Open, All: %v", err)
		}
		if _, err := l.Append(context.Background(), Entry{Actor: "n", Action: "x"}); err != nil {
			t.Fatalf("append after Open: %v", err)
		}
		if !strings.HasSuffix(snapshot(t, p), "\n") {
			t.Fatal("head file without its newline")
		}
	})
}
