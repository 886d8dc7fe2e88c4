package ledger

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
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

func TestFileLedgerRefusesCorruption(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"truncated": "abcd",
		"not hex":   string(make([]byte, 64)) + "\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := OpenFile(p); err == nil {
			t.Fatalf("%s ledger accepted", name)
		}
	}
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
