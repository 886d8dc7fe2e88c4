package psi

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func buildList(t *testing.T, dir string, runSize int, ids [][]byte) *List {
	t.Helper()
	l, err := BuildList(context.Background(), testSecret(0), "job", testSpecHash, ListOptions{Dir: dir, RunSize: runSize}, func(add func([]byte) error) error {
		for _, id := range ids {
			if err := add(id); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

// A list built on disk, in small runs, from IDs with duplicates read in
// any order has exactly NewLocalParty's positions, the same chunks, and a
// digest that depends on the set alone.
func TestListMatchesLocalParty(t *testing.T) {
	ids := numberedIDs(500)
	var in [][]byte
	for i, id := range ids {
		in = append(in, id)
		if i%3 == 0 {
			in = append(in, id, id) // duplicates, within and across runs
		}
	}
	mem, err := NewLocalParty(testSecret(0), "job", testSpecHash, 1, in)
	require.NoError(t, err)
	dir := t.TempDir()
	for _, runSize := range []int{1, 7, 64, 10000} {
		rand.Shuffle(len(in), func(i, j int) { in[i], in[j] = in[j], in[i] })
		l := buildList(t, dir, runSize, in)
		require.Equal(t, 500, l.Len())
		p, err := NewListParty(testSecret(0), "job", testSpecHash, 1, l)
		require.NoError(t, err)
		for i := range 500 {
			require.Equal(t, mem.IDAt(i), p.IDAt(i), "run size %d, position %d", runSize, i)
		}
		require.Nil(t, p.IDAt(500))
		require.Nil(t, p.IDAt(-1))
		a, err := mem.OwnElements(context.Background(), 123, 77)
		require.NoError(t, err)
		b, err := p.OwnElements(context.Background(), 123, 77)
		require.NoError(t, err)
		require.Equal(t, a, b)
		_, err = p.OwnElements(context.Background(), 450, 51)
		require.ErrorIs(t, err, ErrRange)
		var seen int
		require.NoError(t, p.EachID(context.Background(), func(pos int, id []byte) error {
			require.Equal(t, seen, pos)
			require.Equal(t, mem.IDAt(pos), id)
			seen++
			return nil
		}))
		require.Equal(t, 500, seen)
		if runSize > 1 {
			require.Equal(t, buildList(t, dir, 1, in).Digest(), l.Digest(), "digest depends on the run size")
		}
	}
	other := buildList(t, dir, 7, ids[1:])
	require.NotEqual(t, buildList(t, dir, 7, ids).Digest(), other.Digest())
	require.Len(t, buildList(t, dir, 7, ids).Digest(), 64)
}

// Close removes the list's files; a failed build leaves nothing behind;
// RemoveStaleLists clears what a dead process left.
func TestListFiles(t *testing.T) {
	dir := t.TempDir()
	l := buildList(t, dir, 3, numberedIDs(10))
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	require.Len(t, left, 1)
	require.NoError(t, l.Close())
	left, _ = filepath.Glob(filepath.Join(dir, "*"))
	require.Empty(t, left)
	_, err := l.IDs(0, 1)
	require.Error(t, err, "read after close")

	boom := errors.New("source failed")
	_, err = BuildList(context.Background(), testSecret(0), "job", testSpecHash, ListOptions{Dir: dir, RunSize: 2}, func(add func([]byte) error) error {
		for _, id := range numberedIDs(5) {
			require.NoError(t, add(id))
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	left, _ = filepath.Glob(filepath.Join(dir, "*"))
	require.Empty(t, left)

	_, err = BuildList(context.Background(), testSecret(0), "job", testSpecHash, ListOptions{Dir: dir}, func(add func([]byte) error) error {
		return add(nil)
	})
	require.ErrorIs(t, err, ErrRange)

	require.NoError(t, os.MkdirAll(filepath.Join(dir, "list-123", "x"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "keep"), nil, 0o600))
	require.NoError(t, RemoveStaleLists(dir))
	left, _ = filepath.Glob(filepath.Join(dir, "*"))
	require.Equal(t, []string{filepath.Join(dir, "keep")}, left)

	empty := buildList(t, dir, 3, nil)
	require.Equal(t, 0, empty.Len())
	got, err := empty.IDs(0, 0)
	require.NoError(t, err)
	require.Empty(t, got)
}
