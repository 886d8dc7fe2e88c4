package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/internal/appendfile"
)

func TestFileLedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger")
	l, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	a, b := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))
	if err := l.Record(a); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(a); !errors.Is(err, ErrAlreadyDecrypted) {
		t.Fatalf("second record: %v", err)
	}
	if err := l.Record(b); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	// Survives a restart.
	l2, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l2.Len() != 2 {
		t.Fatalf("%d entries after reopen", l2.Len())
	}
	if err := l2.Record(b); !errors.Is(err, ErrAlreadyDecrypted) {
		t.Fatalf("after reopen: %v", err)
	}
	if ok, _ := l2.Contains(a); !ok {
		t.Fatal("lost entry")
	}
}

func hexLine(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:]) + "\n"
}

// Malformed complete lines are refused, wherever they are, and the file is
// left as it was: without a head, a complete line may have been
// acknowledged, so it is not cut (fail closed).
func TestFileLedgerRefusesCorruption(t *testing.T) {
	dir := t.TempDir()
	good := hexLine("a")
	for name, content := range map[string]string{
		"short line":             "abcd\n",
		"not hex":                string(make([]byte, 64)) + "\n",
		"bad line in the middle": good + "xyz\n" + good,
		"long last line":         good + good[:64] + "00\n",
		"empty line":             good + "\n",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		_, err := Open(p, quiet)
		require.Error(t, err, name)
		b, _ := os.ReadFile(p)
		require.Equal(t, content, string(b), "%s: a refused ledger was changed", name)
	}
}

var quiet = slog.New(slog.DiscardHandler)

// A Record interrupted at any byte leaves a final line without its
// newline: it is cut off, and the ciphertext can be recorded once.
func TestFileLedgerCutsATornRecord(t *testing.T) {
	prefix := hexLine("a") + hexLine("b")
	torn := hexLine("c")
	var c [32]byte
	hex.Decode(c[:], []byte(torn[:64]))
	for n := 0; n <= len(torn); n++ {
		p := filepath.Join(t.TempDir(), "ledger")
		require.NoError(t, os.WriteFile(p, []byte(prefix+torn[:n]), 0o600))
		l, err := Open(p, quiet)
		require.NoError(t, err, "%d bytes of the last record", n)
		cut, ok := l.Cut()
		switch n {
		case 0, len(torn):
			require.False(t, ok)
			require.Equal(t, 2+n/len(torn), l.Len())
		default:
			require.True(t, ok)
			require.Equal(t, appendfile.Tail{Off: int64(len(prefix)), Len: int64(n)}, cut)
			require.Equal(t, 2, l.Len())
			require.NoError(t, l.Record(c))
			require.ErrorIs(t, l.Record(c), ErrAlreadyDecrypted)
			b, _ := os.ReadFile(p)
			require.Equal(t, prefix+torn, string(b))
		}
		require.NoError(t, l.Close())
	}
}

// A Record whose write fails (the file-size limit stands in for a full
// disk) returns an error, leaves nothing behind, and remembers nothing:
// the share is not made, and a later Record of the same ciphertext wins.
func TestFileLedgerFailsClosed(t *testing.T) {
	p := filepath.Join(t.TempDir(), "ledger")
	l, err := Open(p, quiet)
	require.NoError(t, err)
	defer l.Close()
	a := sha256.Sum256([]byte("a"))
	require.NoError(t, l.Record(a))
	var old syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old))
	lim := old
	lim.Cur = uint64(len(hexLine("a"))) + 10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		// Lowering a soft limit below the hard one is always allowed.
		t.Fatalf("cannot lower the file-size limit: %v", err)
	}
	b := sha256.Sum256([]byte("b"))
	err = l.Record(b)
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old))
	require.Error(t, err)
	ok, _ := l.Contains(b)
	require.False(t, ok)
	content, _ := os.ReadFile(p)
	require.Equal(t, hexLine("a"), string(content))
	require.NoError(t, l.Record(b))
	require.NoError(t, l.Close())
	require.ErrorContains(t, l.Record(sha256.Sum256([]byte("c"))), "closed")
}

func TestLedgerConcurrentRecord(t *testing.T) {
	l, err := OpenFile(filepath.Join(t.TempDir(), "ledger"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, led := range []Ledger{l, NewMemory()} {
		h := sha256.Sum256([]byte("x"))
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if led.Record(h) == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if ok != 1 {
			t.Fatalf("%d concurrent records succeeded", ok)
		}
	}
}

// Output keys name (job, index) and nothing else: distinct per job and per
// index, unambiguous where a job id ends, and stable (they are on disk).
func TestOutputKey(t *testing.T) {
	seen := map[[32]byte]string{}
	for _, job := range []string{"j", "j1", "j\x00", ""} {
		for i := range 4 {
			k := OutputKey(job, i)
			name := fmt.Sprintf("%q/%d", job, i)
			require.NotContains(t, seen, k, "%s collides with %s", name, seen[k])
			seen[k] = name
		}
	}
	require.Equal(t, OutputKey("job-1", 2), OutputKey("job-1", 2))
	// SHA-256("unseen/he/ledger/output/v1" ‖ be64(len(job)) ‖ job ‖ be64(index)),
	// computed independently: the keys are on every node's disk.
	k := OutputKey("job-1", 2)
	require.Equal(t, "33396511dd1b4fbd", hex.EncodeToString(k[:8]))
}

// Several keys are recorded all or none: one already present (or given
// twice) refuses the whole call and records nothing; the File keeps them
// across a restart.
func TestRecordSeveralKeys(t *testing.T) {
	a, b, c := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b")), sha256.Sum256([]byte("c"))
	path := filepath.Join(t.TempDir(), "ledger")
	fl, err := OpenFile(path)
	require.NoError(t, err)
	for name, l := range map[string]Ledger{"memory": NewMemory(), "file": fl} {
		require.NoError(t, l.Record(a, b), name)
		require.ErrorIs(t, l.Record(c, b), ErrAlreadyDecrypted, name)
		ok, _ := l.Contains(c)
		require.False(t, ok, "%s: a refused call recorded its other keys", name)
		require.ErrorIs(t, l.Record(c, c), ErrAlreadyDecrypted, "%s: a key twice in one call", name)
		require.Error(t, l.Record(), name)
		require.NoError(t, l.Record(c), name)
	}
	require.NoError(t, fl.Close())
	fl2, err := OpenFile(path)
	require.NoError(t, err)
	defer fl2.Close()
	require.Equal(t, 3, fl2.Len())
}
