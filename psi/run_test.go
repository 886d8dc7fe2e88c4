package psi

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testJob = "job-test"

func testSecret(j int) []byte {
	s := make([]byte, 32)
	for i := range s {
		s[i] = byte(31*j + i + 1)
	}
	return s
}

// federation is n LocalParties wrapped in observers.
type federation struct {
	locals  []*LocalParty
	parties []Party
	obs     *observer
}

func newFederation(t *testing.T, sets [][][]byte) *federation {
	t.Helper()
	n := len(sets)
	f := &federation{}
	var secrets [][]byte
	for j := range n {
		secrets = append(secrets, testSecret(j))
		lp, err := NewLocalParty(secrets[j], testJob, testSpecHash, j, sets[j])
		require.NoError(t, err)
		f.locals = append(f.locals, lp)
	}
	f.obs = newObserver(t, testJob, secrets, sets)
	for _, lp := range f.locals {
		f.parties = append(f.parties, observedParty{lp, f.obs})
	}
	return f
}

func toBytes(ids []string) [][]byte {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = []byte(id)
	}
	return out
}

// withDuplicates appends copies of some of ids, shuffled.
func withDuplicates(rng *rand.Rand, ids []string) []string {
	out := slices.Clone(ids)
	for i := 0; i < len(ids); i += 3 {
		out = append(out, ids[rng.IntN(len(ids))])
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// overlapping returns n sets of the given sizes sharing `common` IDs.
func overlapping(rng *rand.Rand, sizes []int, common int) [][]string {
	var core []string
	for i := range common {
		core = append(core, fmt.Sprintf("core-%d-%d", i, rng.IntN(1e9)))
	}
	sets := make([][]string, len(sizes))
	for j, size := range sizes {
		take := min(common, size)
		sets[j] = append(sets[j], core[:take]...)
		for i := take; i < size; i++ {
			// Some extras are shared by a few parties, not all.
			if i%2 == 0 {
				sets[j] = append(sets[j], fmt.Sprintf("some-%d", i))
			} else {
				sets[j] = append(sets[j], fmt.Sprintf("own-%d-%d", j, i))
			}
		}
	}
	return sets
}

func intersection(sets [][]string) map[string]bool {
	in := map[string]bool{}
	for _, id := range sets[0] {
		in[id] = true
	}
	for _, s := range sets[1:] {
		has := map[string]bool{}
		for _, id := range s {
			has[id] = true
		}
		for id := range in {
			if !has[id] {
				delete(in, id)
			}
		}
	}
	return in
}

func TestRunMatchesPlaintext(t *testing.T) {
	const chunk = 4
	type scenario struct {
		name string
		sets func(rng *rand.Rand, n int) [][]string
	}
	same := func(size int) []int { return slices.Repeat([]int{size}, 1) }
	sized := func(size, common int) func(*rand.Rand, int) [][]string {
		return func(rng *rand.Rand, n int) [][]string {
			return overlapping(rng, slices.Repeat(same(size), n), common)
		}
	}
	scenarios := []scenario{
		{"all-empty", func(_ *rand.Rand, n int) [][]string { return make([][]string, n) }},
		{"one-empty", func(rng *rand.Rand, n int) [][]string {
			s := overlapping(rng, slices.Repeat(same(chunk+1), n), 3)
			s[n-1] = nil
			return s
		}},
		{"disjoint", func(_ *rand.Rand, n int) [][]string {
			s := make([][]string, n)
			for j := range s {
				for i := range chunk + 1 {
					s[j] = append(s[j], fmt.Sprintf("p%d-%d", j, i))
				}
			}
			return s
		}},
		{"identical", func(rng *rand.Rand, n int) [][]string {
			return overlapping(rng, slices.Repeat(same(2*chunk+1), n), 2*chunk+1)
		}},
		{"one-element-common", sized(1, 1)},
		{"one-element-disjoint", sized(1, 0)},
		{"chunk-1", sized(chunk-1, 2)},
		{"chunk", sized(chunk, 2)},
		{"chunk+1", sized(chunk+1, 3)},
		{"3chunk", sized(3*chunk, 5)},
		{"3chunk+1", sized(3*chunk+1, chunk)},
		{"mixed-sizes", func(rng *rand.Rand, n int) [][]string {
			sizes := make([]int, n)
			for j := range sizes {
				sizes[j] = []int{chunk - 1, chunk, chunk + 1, 2 * chunk, 3*chunk + 2}[j%5]
			}
			return overlapping(rng, sizes, 2)
		}},
	}
	for _, n := range []int{2, 3, 5} {
		for si, sc := range scenarios {
			for _, primary := range []int{0, n - 1} {
				t.Run(fmt.Sprintf("n=%d/%s/primary=%d", n, sc.name, primary), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(n), uint64(si)))
					plain := sc.sets(rng, n)
					sets := make([][][]byte, n)
					for j := range plain {
						sets[j] = toBytes(withDuplicates(rng, plain[j]))
					}
					f := newFederation(t, sets)

					var mu sync.Mutex
					calls, last, lastTotal := 0, 0, 0
					res, err := Run(context.Background(), f.parties, primary, chunk, func(done, total int) {
						mu.Lock()
						defer mu.Unlock()
						calls++
						assert.Equal(t, last+1, done, "progress must count up by one") // not require: another goroutine
						last, lastTotal = done, total
					})
					require.NoError(t, err)
					require.Empty(t, f.obs.check())

					want := intersection(plain)
					require.Equal(t, len(want), res.Count)
					require.True(t, slices.IsSorted(res.Positions))
					got := map[string]bool{}
					for _, pos := range res.Positions {
						id := f.locals[primary].IDAt(pos)
						require.NotNil(t, id, "position %d out of range", pos)
						require.False(t, got[string(id)], "position maps to a repeated ID")
						got[string(id)] = true
					}
					require.Equal(t, want, got)

					wantTotal := 0
					for j := range n {
						l, _ := f.locals[j].Len(context.Background())
						wantTotal += (l + chunk - 1) / chunk * n
					}
					require.Equal(t, wantTotal, calls)
					if calls > 0 {
						require.Equal(t, wantTotal, lastTotal)
					}
				})
			}
		}
	}
}

// TestRunRandomLarger runs a bigger random case with a chunk size that
// does not divide any list, and several chunks in flight at once.
func TestRunRandomLarger(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	plain := overlapping(rng, []int{150, 97, 123}, 40)
	for j := range plain {
		for i := range 30 { // IDs shared by two parties only
			plain[j] = append(plain[j], fmt.Sprintf("pair-%d-%d", i, j%2))
		}
	}
	sets := make([][][]byte, len(plain))
	for j := range plain {
		sets[j] = toBytes(withDuplicates(rng, plain[j]))
	}
	f := newFederation(t, sets)
	res, err := Run(context.Background(), f.parties, 1, 7, nil)
	require.NoError(t, err)
	require.Empty(t, f.obs.check())
	want := intersection(plain)
	require.Equal(t, len(want), res.Count)
	for _, pos := range res.Positions {
		require.True(t, want[string(f.locals[1].IDAt(pos))])
	}
}

// TestObserverCatchesMisrouting shows the privacy checks can fail: a
// coordinator that routes badly is reported.
func TestObserverCatchesMisrouting(t *testing.T) {
	ctx := context.Background()
	sets := [][][]byte{toBytes([]string{"a", "b", "c"}), toBytes([]string{"b", "c", "d"}), toBytes([]string{"c", "d", "e"})}

	t.Run("two full lists at one party", func(t *testing.T) {
		f := newFederation(t, sets)
		l0, err := f.parties[0].Own(ctx, 0, 3)
		require.NoError(t, err)
		l0, err = f.parties[1].Reblind(ctx, 0, 0, l0)
		require.NoError(t, err)
		_, err = f.parties[2].Reblind(ctx, 0, 0, l0) // list 0 full at party 2: allowed
		require.NoError(t, err)
		require.Empty(t, f.obs.check())
		l1, err := f.parties[1].Own(ctx, 0, 3)
		require.NoError(t, err)
		l1, err = f.parties[0].Reblind(ctx, 1, 0, l1)
		require.NoError(t, err)
		_, err = f.parties[2].Reblind(ctx, 1, 0, l1) // and list 1 too: not allowed
		require.NoError(t, err)
		require.Contains(t, fmt.Sprint(f.obs.check()), "party 2 handled 2 fully blinded lists")
	})
	t.Run("own list", func(t *testing.T) {
		f := newFederation(t, sets)
		l1, err := f.parties[1].Own(ctx, 0, 3)
		require.NoError(t, err)
		_, err = f.parties[1].Reblind(ctx, 1, 0, l1)
		require.ErrorIs(t, err, ErrOwnList)
		require.Contains(t, fmt.Sprint(f.obs.check()), "party 1 asked to reblind its own list")
	})
	t.Run("own list full, mislabelled", func(t *testing.T) {
		// List 0 taken to full degree, then shown to party 0 as "list 2".
		f := newFederation(t, sets)
		l0, err := f.parties[0].Own(ctx, 0, 3)
		require.NoError(t, err)
		l0, err = f.parties[1].Reblind(ctx, 0, 0, l0)
		require.NoError(t, err)
		l0, err = f.parties[2].Reblind(ctx, 0, 0, l0)
		require.NoError(t, err)
		_, _ = f.parties[0].Reblind(ctx, 2, 0, l0)
		require.Contains(t, fmt.Sprint(f.obs.check()), "not in that list")
	})
	t.Run("unblinded H(id)", func(t *testing.T) {
		f := newFederation(t, sets)
		_, _ = f.parties[1].Reblind(ctx, 0, 0, Chunk{Elements: []Element{HashID(testJob, []byte("a"))}})
		require.Contains(t, fmt.Sprint(f.obs.check()), `unblinded H("a")`)
	})
	t.Run("raw ID", func(t *testing.T) {
		f := newFederation(t, sets)
		var raw Element
		copy(raw[:], "a")
		_, _ = f.parties[1].Reblind(ctx, 0, 0, Chunk{Elements: []Element{raw}})
		require.Contains(t, fmt.Sprint(f.obs.check()), "unknown element")
	})
}

func TestRoute(t *testing.T) {
	require.Equal(t, []int{1}, Route(2, 0))
	require.Equal(t, []int{0}, Route(2, 1))
	require.Equal(t, []int{1, 2}, Route(3, 0))
	require.Equal(t, []int{0, 1}, Route(3, 2))
	require.Nil(t, Route(1, 0))
	require.Nil(t, Route(3, 3))
	require.Nil(t, Route(3, -1))
	for n := 2; n <= 9; n++ {
		lastHops := map[int]int{}
		for list := range n {
			r := Route(n, list)
			require.Len(t, r, n-1)
			require.NotContains(t, r, list, "a list never visits its owner")
			seen := map[int]bool{list: true}
			for _, h := range r {
				require.False(t, seen[h])
				seen[h] = true
			}
			lastHops[r[n-2]]++
			require.Equal(t, (list+n-1)%n, r[n-2])
		}
		require.Len(t, lastHops, n, "each party is the last hop of exactly one list")
	}
}

// faultyParty misbehaves in one way, for Run's error paths.
type faultyParty struct {
	Party
	lenErr, ownErr, reblindErr error
	length                     int
	short, lowOrder, block     bool
}

func (p *faultyParty) Len(ctx context.Context) (int, error) {
	if p.lenErr != nil || p.length != 0 {
		return p.length, p.lenErr
	}
	return p.Party.Len(ctx)
}

func (p *faultyParty) Own(ctx context.Context, off, n int) (Chunk, error) {
	if p.ownErr != nil {
		return Chunk{}, p.ownErr
	}
	return p.Party.Own(ctx, off, n)
}

func (p *faultyParty) Reblind(ctx context.Context, list, off int, in Chunk) (Chunk, error) {
	if p.block {
		<-ctx.Done()
		return Chunk{}, ctx.Err()
	}
	if p.reblindErr != nil {
		return Chunk{}, p.reblindErr
	}
	out, err := p.Party.Reblind(ctx, list, off, in)
	if err != nil {
		return Chunk{}, err
	}
	if p.short {
		out.Elements = out.Elements[:len(out.Elements)-1]
	}
	if p.lowOrder {
		out.Elements[0] = Element{1}
	}
	return out, nil
}

func TestRunErrors(t *testing.T) {
	ctx := context.Background()
	sets := [][][]byte{toBytes([]string{"a", "b", "c", "d", "e"}), toBytes([]string{"b", "c", "d"})}
	fed := func() []Party {
		var ps []Party
		for j := range sets {
			lp, err := NewLocalParty(testSecret(j), testJob, testSpecHash, j, sets[j])
			require.NoError(t, err)
			ps = append(ps, lp)
		}
		return ps
	}

	ps := fed()
	for _, c := range []struct {
		parties []Party
		primary int
		chunk   int
	}{
		{ps[:1], 0, 2}, {nil, 0, 2}, {ps, 2, 2}, {ps, -1, 2}, {ps, 0, 0}, {ps, 0, -1}, {[]Party{ps[0], nil}, 0, 2},
	} {
		_, err := Run(ctx, c.parties, c.primary, c.chunk, nil)
		require.ErrorIs(t, err, ErrInvalidRequest)
	}

	boom := errors.New("boom")
	for name, c := range map[string]struct {
		fault *faultyParty
		want  error
	}{
		"len error":       {&faultyParty{lenErr: boom}, boom},
		"negative len":    {&faultyParty{length: -1}, ErrRange},
		"huge len":        {&faultyParty{length: MaxListLen + 1}, ErrRange},
		"own error":       {&faultyParty{ownErr: boom}, boom},
		"reblind error":   {&faultyParty{reblindErr: boom}, boom},
		"short reply":     {&faultyParty{short: true}, ErrLength},
		"low-order reply": {&faultyParty{lowOrder: true}, ErrInvalidPoint},
		"len beyond list": {&faultyParty{length: 9}, ErrRange}, // Own refuses the range
	} {
		t.Run(name, func(t *testing.T) {
			ps := fed()
			c.fault.Party = ps[1]
			ps[1] = c.fault
			_, err := Run(ctx, ps, 0, 2, nil)
			require.ErrorIs(t, err, c.want)
		})
	}

	t.Run("cancelled", func(t *testing.T) {
		ps := fed()
		ps[1] = &faultyParty{Party: ps[1], block: true}
		ctx, cancel := context.WithCancel(ctx)
		go cancel()
		_, err := Run(ctx, ps, 0, 2, nil)
		require.ErrorIs(t, err, context.Canceled)
	})
}
