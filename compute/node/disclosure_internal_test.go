package node

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/policy/disclosure/iblt"
)

func sketchOf(ids ...uint64) *iblt.Sketch {
	s := iblt.New()
	for _, id := range ids {
		s.Insert(id)
	}
	return s
}

func span(lo, hi uint64, drop ...uint64) *iblt.Sketch {
	var ids []uint64
	for i := lo; i < hi; i++ {
		keep := true
		for _, d := range drop {
			keep = keep && i != d
		}
		if keep {
			ids = append(ids, i)
		}
	}
	return sketchOf(ids...)
}

// The node's differencing ledger: refusals record nothing, a flag records,
// a job's retry replaces its own sketch, old sketches leave the window,
// the oldest go past the per-dataset bound, and all of it survives a
// restart (node.db).
func TestDifferenceLedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	st, err := openState(path)
	require.NoError(t, err)
	defer func() { st.Close() }()
	now := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	const k, window, per = 10, 90 * 24 * time.Hour, 4

	ov, err := st.difference("a.x", "j1", span(0, 200), k, true, now, window, per)
	require.NoError(t, err)
	require.Empty(t, ov)

	// One person fewer: refused, naming j1 and the size; nothing recorded.
	ov, err = st.difference("a.x", "j2", span(0, 200, 150), k, true, now, window, per)
	require.ErrorIs(t, err, errDifferencing)
	require.Equal(t, "j1", ov[0].Job)
	require.Equal(t, 1, ov[0].Difference)
	n, _ := st.sketches("a.x")
	require.Equal(t, 1, n)

	// k or more people apart, or none at all, or another dataset: fine.
	for _, c := range []struct {
		ds, job string
		s       *iblt.Sketch
	}{{"a.x", "j3", span(0, 190)}, {"a.x", "j4", span(0, 200)}, {"a.y", "j5", span(0, 199)}} {
		ov, err = st.difference(c.ds, c.job, c.s, k, true, now, window, per)
		require.NoError(t, err, c.job)
		require.Empty(t, ov, c.job)
	}

	// The same job again (a retry) is not compared with itself.
	ov, err = st.difference("a.x", "j1", span(0, 200, 7), k, true, now, window, per)
	require.ErrorIs(t, err, errDifferencing, "but with j4, which kept j1's old input")
	require.Equal(t, "j4", ov[0].Job)

	// Flag mode: takes part, reports, records.
	ov, err = st.difference("a.x", "j6", span(0, 200, 3, 4), k, false, now, window, per)
	require.NoError(t, err)
	require.Len(t, ov, 2) // j1 and j4; j3 is 12 people away (190..199, and 3, 4)
	n, _ = st.sketches("a.x")
	require.Equal(t, 4, n)

	// Past the bound per dataset the oldest go (j1 first).
	_, err = st.difference("a.x", "j7", span(1000, 2000), k, true, now.Add(time.Second), window, per)
	require.NoError(t, err)
	n, _ = st.sketches("a.x")
	require.Equal(t, per, n)

	// Restart: kept.
	require.NoError(t, st.Close())
	st, err = openState(path)
	require.NoError(t, err)
	ov, err = st.difference("a.x", "j8", span(1000, 2000, 1500), k, true, now.Add(2*time.Second), window, per)
	require.ErrorIs(t, err, errDifferencing)
	require.Equal(t, "j7", ov[0].Job)

	// Past the window, forgotten.
	ov, err = st.difference("a.x", "j8", span(1000, 2000, 1500), k, true, now.Add(window+2*time.Second), window, per)
	require.NoError(t, err)
	require.Empty(t, ov)
	n, _ = st.sketches("a.x")
	require.Equal(t, 1, n)
}

// BenchmarkDifferenceFullWindow is the differencing check of one job
// against a full window (256 earlier sketches of the dataset), in one
// bbolt transaction with its fsync: what a Prepare or he.aggregate adds.
func BenchmarkDifferenceFullWindow(b *testing.B) {
	st, err := openState(filepath.Join(b.TempDir(), "node.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	for i := range 256 {
		if _, err := st.difference("a.x", fmt.Sprint("old", i), span(uint64(i*1000), uint64(i*1000+500)), 10, true, now, time.Hour, 256); err != nil {
			b.Fatal(err)
		}
	}
	s := span(1<<40, 1<<40+500)
	b.ResetTimer()
	for i := range b.N {
		if _, err := st.difference("a.x", "new", s, 10, true, now.Add(time.Duration(i)), time.Hour, 257); err != nil {
			b.Fatal(err)
		}
	}
}
