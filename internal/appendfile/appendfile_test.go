package appendfile

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

type seen struct {
	line    int
	off     int64
	data    string
	tooLong bool
}

// scanAll reads every record front to back.
func scanAll(t *testing.T, b []byte, limit int) ([]seen, Tail) {
	t.Helper()
	sc := NewScanner(bytes.NewReader(b), limit)
	var out []seen
	for sc.Scan() {
		r := sc.Record()
		if r.TooLong != (r.Data == nil) || (!r.TooLong && r.Len != len(r.Data)) {
			t.Fatalf("record %+v: inconsistent", r)
		}
		out = append(out, seen{r.Line, r.Off, string(r.Data), r.TooLong})
	}
	if sc.Err() != nil {
		t.Fatal(sc.Err())
	}
	return out, sc.Tail()
}

func TestAppendScanReopen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	f, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	recs := []string{"one", "", "three three"}
	var offs []int64
	for _, r := range recs {
		off, err := f.Append([]byte(r))
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
	if _, err := f.Append([]byte("a\nb")); !errors.Is(err, ErrRecord) {
		t.Fatalf("record with a newline: %v", err)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	if got, want := f.Size(), int64(len("one\n\nthree three\n")); got != want {
		t.Fatalf("size %d, want %d", got, want)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Append([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}

	f, err = Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := f.Section(f.Size())
	if err != nil {
		t.Fatal(err)
	}
	sc := NewScanner(r, 100)
	for i := 0; sc.Scan(); i++ {
		rec := sc.Record()
		if rec.Line != i+1 || rec.Off != offs[i] || string(rec.Data) != recs[i] {
			t.Fatalf("record %d: %+v", i, rec)
		}
	}
	if sc.Tail().Len != 0 || sc.Err() != nil {
		t.Fatalf("tail %+v err %v", sc.Tail(), sc.Err())
	}
	// Appends continue after what was there.
	if off, err := f.Append([]byte("four")); err != nil || off != int64(len("one\n\nthree three\n")) {
		t.Fatalf("append after reopen: offset %d, %v", off, err)
	}
}

func TestScannerTailAndLongLines(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []seen
		tail Tail
	}{
		{"", nil, Tail{}},
		{"abc", nil, Tail{0, 3}},
		{"a\nbc", []seen{{1, 0, "a", false}}, Tail{2, 2}},
		{"a\n\n", []seen{{1, 0, "a", false}, {2, 2, "", false}}, Tail{}},
		{"12345\nab\n", []seen{{1, 0, "", true}, {2, 6, "ab", false}}, Tail{}},
		{"ab\n123456", []seen{{1, 0, "ab", false}}, Tail{3, 6}},
		{"1234\n", []seen{{1, 0, "1234", false}}, Tail{}},
	} {
		got, tail := scanAll(t, []byte(c.in), 4)
		if len(got) != len(c.want) {
			t.Fatalf("%q: %+v", c.in, got)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Fatalf("%q: record %d = %+v, want %+v", c.in, i, got[i], c.want[i])
			}
		}
		if tail != c.tail {
			t.Fatalf("%q: tail %+v, want %+v", c.in, tail, c.tail)
		}
	}
}

// backward reads the records of b through ScanBack.
func backward(b []byte, limit int) ([]seen, error) {
	var out []seen
	err := ScanBack(bytes.NewReader(b), int64(len(b)), limit, func(r Record) (bool, error) {
		out = append(out, seen{0, r.Off, string(r.Data), false})
		return false, nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}

// ScanBack finds the same records as the forward scanner, across block
// boundaries, for records up to (and past) its bound.
func TestScanBackMatchesScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const limit = 100 << 10
	for round := 0; round < 40; round++ {
		var b []byte
		for n := rng.IntN(30); n > 0; n-- {
			size := rng.IntN(20)
			if rng.IntN(4) == 0 {
				size = rng.IntN(limit + 1) // crosses 64 KiB blocks
			}
			rec := bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, size)
			b = append(append(b, rec...), '\n')
		}
		fwd, tail := scanAll(t, b, limit)
		if tail.Len != 0 {
			t.Fatal("tail in a file of complete records")
		}
		back, err := backward(b, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(back) != len(fwd) {
			t.Fatalf("round %d: %d records backwards, %d forwards", round, len(back), len(fwd))
		}
		for i := range fwd {
			if back[i].off != fwd[i].off || back[i].data != fwd[i].data {
				t.Fatalf("round %d record %d: backwards %d/%d bytes, forwards %d/%d", round, i, back[i].off, len(back[i].data), fwd[i].off, len(fwd[i].data))
			}
		}
	}
	// A record longer than the bound is an error, not a huge allocation.
	long := append(bytes.Repeat([]byte("x"), 200<<10), '\n')
	if _, err := backward(long, limit); err == nil {
		t.Fatal("an over-long record was read backwards")
	}
	// The end must be the end of a record.
	if err := ScanBack(bytes.NewReader([]byte("ab\ncd")), 5, limit, func(Record) (bool, error) { return false, nil }); err == nil {
		t.Fatal("ScanBack from the middle of a record")
	}
	// stop ends the scan.
	n := 0
	err := ScanBack(bytes.NewReader([]byte("a\nb\nc\n")), 6, limit, func(r Record) (bool, error) { n++; return string(r.Data) == "b", nil })
	if err != nil || n != 2 {
		t.Fatalf("stopped after %d records, %v", n, err)
	}
}

func FuzzScanBack(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc\n"), uint8(3))
	f.Add([]byte("\n"), uint8(0))
	f.Add([]byte("abcdef\nab\n"), uint8(4))
	f.Fuzz(func(t *testing.T, b []byte, limit uint8) {
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			b = b[:i+1]
		} else {
			b = nil
		}
		fwd, _ := scanAll(t, b, int(limit))
		back, err := backward(b, int(limit))
		tooLong := false
		for _, r := range fwd {
			tooLong = tooLong || r.tooLong
		}
		if tooLong {
			if err == nil {
				t.Fatal("ScanBack read a record longer than its bound")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(back) != len(fwd) {
			t.Fatalf("%d records backwards, %d forwards", len(back), len(fwd))
		}
		for i := range fwd {
			if back[i].off != fwd[i].off || back[i].data != fwd[i].data {
				t.Fatalf("record %d differs", i)
			}
		}
	})
}

func TestTruncateCutsATornTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("good\ntor"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _ := f.Section(f.Size())
	_, tail := scanAll(t, mustRead(t, r, f.Size()), 10)
	if tail != (Tail{5, 3}) {
		t.Fatalf("tail %+v", tail)
	}
	if err := f.Truncate(tail.Off); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Append([]byte("next")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "good\nnext\n" {
		t.Fatalf("file %q", b)
	}
}

func mustRead(t *testing.T, r interface {
	ReadAt([]byte, int64) (int, error)
}, n int64) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := r.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// A write that fails half-way (the file-size limit stands in for a full
// disk) leaves no partial record behind: the next record starts on a line
// of its own.
func TestFailedAppendTakesItsBytesBack(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	f, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Append([]byte("first")); err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = uint64(f.Size()) + 10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		// Lowering a soft limit below the hard one is always allowed.
		t.Fatalf("cannot lower the file-size limit: %v", err)
	}
	_, err = f.Append(bytes.Repeat([]byte("y"), 100))
	if rerr := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); rerr != nil {
		t.Fatal(rerr)
	}
	if err == nil {
		t.Fatal("a write past the file-size limit succeeded")
	}
	if b, _ := os.ReadFile(p); string(b) != "first\n" {
		t.Fatalf("after the failed append the file is %q", b)
	}
	if _, err := f.Append([]byte("second")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "first\nsecond\n" {
		t.Fatalf("file %q", b)
	}
}

// When the partial bytes cannot be taken back, the file refuses appends.
func TestUndoableFailureBreaksTheFile(t *testing.T) {
	f, err := Open("/dev/full", Options{})
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer f.Close()
	if _, err := f.Append([]byte("x")); err == nil {
		t.Fatal("append to /dev/full succeeded")
	}
	if _, err := f.Append([]byte("x")); !errors.Is(err, ErrBroken) {
		t.Fatalf("second append: %v, want ErrBroken", err)
	}
}

// An exclusive File refuses a second exclusive writer until it is closed.
func TestExclusive(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	a, err := Open(p, Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p, Options{Exclusive: true}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second exclusive open: %v, want ErrLocked", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := Open(p, Options{Exclusive: true})
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	b.Close()
}
