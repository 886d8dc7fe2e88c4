package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func chain(t *testing.T, n int) []Entry {
	t.Helper()
	l := &MemLog{}
	for i := 0; i < n; i++ {
		_, err := l.Append(context.Background(), Entry{Time: time.Unix(int64(1700000000+i), 0), Actor: "alice", Role: "analyst", Action: "job.queued", Job: "j_x", Datasets: []string{"a.b"}, Detail: map[string]string{"i": string(rune('a' + i))}})
		require.NoError(t, err)
	}
	es, err := l.All(context.Background())
	require.NoError(t, err)
	return es
}

func TestVerifyDetectsEveryTamper(t *testing.T) {
	es := chain(t, 6)
	require.NoError(t, Verify(es))

	// Flip one bit in every byte of every entry's encoding that decodes: all
	// must be detected (or fail to decode).
	for i := range es {
		enc := es[i].Encode()
		for j := range enc {
			for bit := 0; bit < 8; bit++ {
				bad := append([]byte(nil), enc...)
				bad[j] ^= 1 << bit
				e, err := Decode(bad)
				if err != nil {
					continue
				}
				cp := append([]Entry(nil), es...)
				cp[i] = e
				if Verify(cp) == nil && string(e.Encode()) != string(enc) {
					t.Fatalf("entry %d byte %d bit %d: tamper not detected", i, j, bit)
				}
			}
		}
	}
	// Delete any entry: the chain alone shows every deletion but the last
	// entry's; the head kept apart shows that one too.
	head := HeadOf(es)
	for i := range es {
		cp := append(append([]Entry(nil), es[:i]...), es[i+1:]...)
		require.Error(t, VerifyHead(cp, head), "deleting entry %d", i)
		if i < len(es)-1 {
			require.Error(t, Verify(cp), "deleting entry %d", i)
		}
	}
	// Swap any two adjacent entries.
	for i := 0; i+1 < len(es); i++ {
		cp := append([]Entry(nil), es...)
		cp[i], cp[i+1] = cp[i+1], cp[i]
		err := Verify(cp)
		require.Error(t, err)
		var ve *VerifyError
		require.True(t, errors.As(err, &ve))
		require.ErrorIs(t, err, ErrBroken)
	}
}

func TestCanonicalIgnoresTimezone(t *testing.T) {
	e := Entry{Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("CST", 8*3600)), Actor: "a", Action: "x"}
	e.Seal(nil)
	d, err := Decode(e.Encode())
	require.NoError(t, err)
	require.Equal(t, e.Hash, d.ComputeHash())
}

func TestDecodeStrict(t *testing.T) {
	_, err := Decode([]byte(`{"seq":1,"bogus":2}`))
	require.ErrorIs(t, err, ErrDecode)
	_, err = Decode([]byte(`{"seq":1} {}`))
	require.ErrorIs(t, err, ErrDecode)
	_, err = Decode(make([]byte, MaxEntryBytes+1))
	require.ErrorIs(t, err, ErrDecode)
}

func TestFileLogPersistsAndRefusesBrokenChain(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenFile(p)
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		_, err := l.Append(ctx, Entry{Time: time.Now(), Actor: "n", Action: "psi.own"})
		require.NoError(t, err)
	}
	require.NoError(t, l.Close())
	_, err = l.Append(ctx, Entry{Actor: "n", Action: "x"})
	require.ErrorIs(t, err, ErrClosed)

	info, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	// Reopen: the chain continues.
	l, err = OpenFile(p)
	require.NoError(t, err)
	e, err := l.Append(ctx, Entry{Time: time.Now(), Actor: "n", Action: "psi.finish"})
	require.NoError(t, err)
	require.Equal(t, uint64(4), e.Seq)
	require.NoError(t, l.Close())
	es, err := ReadFile(p)
	require.NoError(t, err)
	require.NoError(t, Verify(es))

	n, err := VerifyFile(p)
	require.NoError(t, err)
	require.Equal(t, 4, n)

	// Cut the last line off: the head file shows it.
	b0, err := os.ReadFile(p)
	require.NoError(t, err)
	cut := b0[:len(b0)-1]
	cut = cut[:bytes.LastIndexByte(cut, '\n')+1]
	require.NoError(t, os.WriteFile(p, cut, 0o600))
	_, err = VerifyFile(p)
	require.ErrorIs(t, err, ErrBroken)
	_, err = OpenFile(p)
	require.Error(t, err)
	require.NoError(t, os.WriteFile(p, b0, 0o600))

	// Corrupt one byte inside the file: opening refuses it.
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	i := len(b) / 2
	for b[i] == '"' || b[i] == '\n' || b[i] == '\\' {
		i++
	}
	b[i] ^= 0x01
	require.NoError(t, os.WriteFile(p, b, 0o600))
	_, err = OpenFile(p)
	require.Error(t, err)
}

// An entry whose head cannot be written is taken back: Append fails, the
// chain is as before, and the next Append continues it.
func TestFileLogFailsClosed(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := OpenFile(p)
	require.NoError(t, err)
	defer l.Close()
	_, err = l.Append(ctx, Entry{Actor: "n", Action: "first"})
	require.NoError(t, err)
	before, err := os.ReadFile(p)
	require.NoError(t, err)
	// A folder where the head's temporary file goes: the head write fails.
	require.NoError(t, os.Mkdir(p+".head.tmp", 0o700))
	_, err = l.Append(ctx, Entry{Actor: "n", Action: "second"})
	require.Error(t, err)
	after, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, string(before), string(after), "the entry stayed in the file")
	all, err := l.All(ctx)
	require.NoError(t, err)
	require.Len(t, all, 1)

	require.NoError(t, os.Remove(p+".head.tmp"))
	e, err := l.Append(ctx, Entry{Actor: "n", Action: "third"})
	require.NoError(t, err)
	require.Equal(t, uint64(2), e.Seq)
	n, err := VerifyFile(p)
	require.NoError(t, err)
	require.Equal(t, 2, n)

	// Closed: nothing is appended.
	require.NoError(t, l.Close())
	_, err = l.Append(ctx, Entry{Actor: "n", Action: "x"})
	require.ErrorIs(t, err, ErrClosed)
	_, err = l.Entries(ctx, Filter{})
	require.ErrorIs(t, err, ErrClosed)
}

func TestSealer(t *testing.T) {
	_, err := NewSealer([]byte("short"))
	require.ErrorIs(t, err, ErrBadSeal)
	s, err := NewSealer(make([]byte, 32))
	require.NoError(t, err)
	require.Equal(t, s.Seal("x"), s.Seal("x"))
	require.NotEqual(t, s.Seal("x"), s.Seal("y"))
	require.NotContains(t, s.Seal("440106199001011234"), "440106")
}

func TestFilter(t *testing.T) {
	es := chain(t, 5)
	f := Filter{Job: "j_x", Dataset: "a.b", Limit: 2}
	out := filterEntries(es, f)
	require.Len(t, out, 2)
	require.Equal(t, uint64(5), out[1].Seq)
	require.Empty(t, filterEntries(es, Filter{Dataset: "c.d"}))
}

func FuzzDecode(f *testing.F) {
	for _, e := range chain(&testing.T{}, 2) {
		f.Add(e.Encode())
	}
	f.Add([]byte(`{"seq":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			return
		}
		// Canonical: what decodes re-encodes to something that decodes to
		// the same entry, with the same hash.
		e2, err := Decode(e.Encode())
		if err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if e2.ComputeHash() != e.ComputeHash() || string(e2.Encode()) != string(e.Encode()) {
			t.Fatalf("encoding not canonical")
		}
	})
}
