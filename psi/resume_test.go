package psi

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// countingParty counts the elements a party blinds (Own and Reblind): one
// scalar multiplication each.
type countingParty struct {
	Party
	n *atomic.Int64
}

func (p countingParty) Own(ctx context.Context, offset, n int) (Chunk, error) {
	c, err := p.Party.Own(ctx, offset, n)
	p.n.Add(int64(len(c.Elements)))
	return c, err
}

func (p countingParty) Reblind(ctx context.Context, list, offset int, in Chunk) (Chunk, error) {
	c, err := p.Party.Reblind(ctx, list, offset, in)
	p.n.Add(int64(len(c.Elements)))
	return c, err
}

func counted(ps []Party) ([]Party, *atomic.Int64) {
	var n atomic.Int64
	out := make([]Party, len(ps))
	for i, p := range ps {
		out[i] = countingParty{p, &n}
	}
	return out, &n
}

type chunkKey struct{ list, offset int }

// TestRunWithResumes: a run stopped after 80 % of its chunks (its context
// cancelled from OnChunk, a signal), then a second run given the first
// one's chunks computes only the rest — under half the scalar
// multiplications of a full run — and finds exactly the full run's result.
func TestRunWithResumes(t *testing.T) {
	const chunkSize = 16
	rng := rand.New(rand.NewPCG(7, 11))
	sets := overlapping(rng, []int{400, 333, 250}, 120)
	var bs [][][]byte
	for _, s := range sets {
		bs = append(bs, toBytes(s))
	}
	f := newFederation(t, bs)

	full, fullWork := counted(f.parties)
	want, err := Run(t.Context(), full, 0, chunkSize, nil)
	require.NoError(t, err)
	require.Equal(t, len(intersection(sets)), want.Count)
	require.Zero(t, want.ResumedChunks)

	// The first attempt: interrupted once 80 % of the chunks are saved.
	var (
		mu    sync.Mutex
		saved = map[chunkKey][]byte{}
	)
	stop := int(0.8 * float64(want.Chunks))
	ctx, cancel := context.WithCancel(t.Context())
	first, firstWork := counted(f.parties)
	_, err = RunWith(ctx, first, RunOptions{ChunkSize: chunkSize, OnChunk: func(list, offset int, ts []Token) error {
		mu.Lock()
		defer mu.Unlock()
		saved[chunkKey{list, offset}] = EncodeTokens(ts)
		if len(saved) == stop {
			cancel()
		}
		return nil
	}})
	require.ErrorIs(t, err, context.Canceled)
	require.GreaterOrEqual(t, len(saved), stop)
	require.Less(t, len(saved), want.Chunks, "the interrupted run finished anyway")

	// The second attempt resumes.
	second, secondWork := counted(f.parties)
	var progress []int
	var computed atomic.Int64
	got, err := RunWith(t.Context(), second, RunOptions{
		ChunkSize: chunkSize,
		Progress:  func(done, total int) { progress = append(progress, done) },
		Done: func(list, offset, n int) ([]Token, bool) {
			b, ok := saved[chunkKey{list, offset}]
			if !ok {
				return nil, false
			}
			ts, err := DecodeTokens(b, n)
			return ts, err == nil
		},
		OnChunk: func(list, offset int, ts []Token) error {
			if _, ok := saved[chunkKey{list, offset}]; ok {
				return errors.New("a resumed chunk was computed again")
			}
			computed.Add(1)
			return nil
		},
	})
	require.NoError(t, err)
	require.Equal(t, want.Count, got.Count)
	require.Equal(t, want.Positions, got.Positions)
	require.Equal(t, len(saved), got.ResumedChunks)
	require.Equal(t, want.Chunks, got.Chunks)
	require.EqualValues(t, want.Chunks-len(saved), computed.Load())
	ratio := float64(secondWork.Load()) / float64(fullWork.Load())
	require.Less(t, ratio, 0.5, "the resumed run's scalar multiplications ÷ a full run's")
	require.Equal(t, len(saved)*len(sets), progress[0], "resumed hops reported first")
	require.Equal(t, want.Chunks*len(sets), progress[len(progress)-1])
	t.Logf("full run %d scalar multiplications; interrupted run %d; resumed run %d (%.0f %% of full), %d of %d chunks resumed",
		fullWork.Load(), firstWork.Load(), secondWork.Load(), 100*ratio, got.ResumedChunks, got.Chunks)
}

// TestRunWithIgnoresBadCheckpoints: a Done answer of the wrong length is
// computed instead; an OnChunk error stops the run and is returned.
func TestRunWithIgnoresBadCheckpoints(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sets := overlapping(rng, []int{50, 40}, 20)
	f := newFederation(t, [][][]byte{toBytes(sets[0]), toBytes(sets[1])})
	want, err := Run(t.Context(), f.parties, 0, 8, nil)
	require.NoError(t, err)
	got, err := RunWith(t.Context(), f.parties, RunOptions{ChunkSize: 8, Done: func(list, offset, n int) ([]Token, bool) {
		return make([]Token, n-1), true
	}})
	require.NoError(t, err)
	require.Zero(t, got.ResumedChunks)
	require.Equal(t, want.Positions, got.Positions)

	boom := errors.New("checkpoint store refused")
	_, err = RunWith(t.Context(), f.parties, RunOptions{ChunkSize: 8, OnChunk: func(int, int, []Token) error { return boom }})
	require.ErrorIs(t, err, boom)

	_, err = DecodeTokens(make([]byte, 17), 1)
	require.ErrorIs(t, err, ErrTokens)
	ts := []Token{{1, 2}, {3}}
	back, err := DecodeTokens(EncodeTokens(ts), 2)
	require.NoError(t, err)
	require.Equal(t, ts, back)
}
