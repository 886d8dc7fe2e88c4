package audit

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// writeLongLog writes a log of n entries (and its head) straight to disk,
// as a node would have after a long life, without n fsyncs.
func writeLongLog(t testing.TB, path string, n int) Head {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	w := bufio.NewWriterSize(f, 1<<20)
	var prev *Entry
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		e := Entry{Time: at.Add(time.Duration(i) * time.Millisecond), Actor: "coordinator", Role: "coordinator", Action: "psi.own", Job: fmt.Sprintf("j_%06d", i/10), Datasets: []string{"hrss.benefits"}, Detail: map[string]string{"offset": fmt.Sprint(i % 10 * 16384), "n": "16384"}}
		e.Seal(prev)
		w.Write(e.Encode())
		w.WriteByte('\n')
		prev = &e
	}
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	h := Head{Seq: prev.Seq, Hash: prev.Hash}
	require.NoError(t, writeHead(path, h))
	return h
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// A long-lived node's log costs it no memory per entry: after opening a
// log of 10^6 entries (10^5 with -short) the heap holds the last entry, not
// the history; reading the newest entries reads only the file's end.
func TestOpenLongLogMemory(t *testing.T) {
	// 10^5 entries show the heap does not grow with the log (it would by
	// ~30 MiB); UNSEEN_LONG=1 runs the 10^6 of the issue (slow under -race).
	n := 100_000
	if os.Getenv("UNSEEN_LONG") != "" {
		n = 1_000_000
	}
	if testing.Short() {
		n = 20_000
	}
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	h := writeLongLog(t, p, n)
	info, err := os.Stat(p)
	require.NoError(t, err)

	before := heapAfterGC()
	start := time.Now()
	l, err := OpenFile(p)
	require.NoError(t, err)
	openTook := time.Since(start)
	after := heapAfterGC()
	grew := int64(after) - int64(before)
	t.Logf("%d entries (%.0f MiB file): open took %v; heap %0.1f MiB before, %0.1f MiB after (%+d bytes)", n, float64(info.Size())/(1<<20), openTook.Round(time.Millisecond), float64(before)/(1<<20), float64(after)/(1<<20), grew)
	require.Less(t, grew, int64(16<<20), "heap grew with the log's length")
	got, err := l.Head(context.Background())
	require.NoError(t, err)
	require.Equal(t, h, got)

	start = time.Now()
	es, err := l.Entries(context.Background(), Filter{Limit: 100})
	require.NoError(t, err)
	require.Len(t, es, 100)
	require.Equal(t, h.Seq, es[99].Seq)
	t.Logf("newest 100 entries: %v", time.Since(start).Round(time.Microsecond))
	e, err := l.Append(context.Background(), Entry{Actor: "n", Action: "x"})
	require.NoError(t, err)
	require.Equal(t, h.Seq+1, e.Seq)
	runtime.KeepAlive(l)
	require.NoError(t, l.Close())
}
