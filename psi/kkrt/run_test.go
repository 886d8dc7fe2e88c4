package kkrt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
)

// item returns a distinct test item for each v.
func item(v uint64) Item {
	var it Item
	binary.LittleEndian.PutUint64(it[:], v)
	binary.LittleEndian.PutUint64(it[8:], v*0x9e3779b97f4a7c15^0x5555)
	return it
}

// plainMatches is the reference: the intersection computed in the clear,
// as (receiver index, sender index) pairs of first occurrences.
func plainMatches(sender, receiver []Item) []Match {
	first := map[Item]int{}
	for i, x := range sender {
		if _, ok := first[x]; !ok {
			first[x] = i
		}
	}
	seen := map[Item]bool{}
	var out []Match
	for i, x := range receiver {
		if seen[x] {
			continue
		}
		seen[x] = true
		if j, ok := first[x]; ok {
			out = append(out, Match{Receiver: uint64(i), Sender: uint64(j)})
		}
	}
	return out
}

// sets returns a receiver set of nr items and a sender set of ns items
// sharing common items, shuffled.
func sets(rng *rand.Rand, nr, ns, common int) (sender, receiver []Item) {
	base := rng.Uint64()
	for i := range common {
		receiver = append(receiver, item(base+uint64(i)))
		sender = append(sender, item(base+uint64(i)))
	}
	for i := common; i < nr; i++ {
		receiver = append(receiver, item(base+1<<40+uint64(i)))
	}
	for i := common; i < ns; i++ {
		sender = append(sender, item(base+2<<40+uint64(i)))
	}
	rng.Shuffle(len(receiver), func(i, j int) { receiver[i], receiver[j] = receiver[j], receiver[i] })
	rng.Shuffle(len(sender), func(i, j int) { sender[i], sender[j] = sender[j], sender[i] })
	return sender, receiver
}

func checkRun(t *testing.T, sender, receiver []Item, opts *Options) *Result {
	t.Helper()
	res, err := Run(context.Background(), sender, receiver, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := plainMatches(sender, receiver)
	if !slices.Equal(res.Matches, want) {
		t.Fatalf("got %d matches, want %d (first got %v, want %v)", len(res.Matches), len(want), head(res.Matches), head(want))
	}
	return res
}

func head(m []Match) []Match { return m[:min(len(m), 5)] }

// testRand is a deterministic byte stream for fake base OTs.
func testRand(seed uint64) io.Reader {
	return rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 1})
}

// TestRunSizes checks the engine against the plaintext intersection over
// many shapes: empty sets, singletons, all-match, none-match, very unequal
// sizes, one and many partitions, one and many chunks per partition. The
// base OTs are replaced by their outcome (TestRunRealBaseOTs runs them).
func TestRunSizes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ nr, ns, common int }{
		{0, 0, 0}, {0, 7, 0}, {7, 0, 0}, {1, 1, 1}, {1, 1, 0}, {2, 3, 1},
		{100, 100, 100}, {100, 100, 0}, {1000, 800, 333}, {5000, 5000, 2500},
		{10, 20000, 10}, {20000, 10, 5}, {3, 3000, 2}, {40000, 40000, 1},
	} {
		for _, psize := range []int{0, 500} {
			t.Run(fmt.Sprintf("nr=%d/ns=%d/common=%d/psize=%d", c.nr, c.ns, c.common, psize), func(t *testing.T) {
				sender, receiver := sets(rng, c.nr, c.ns, c.common)
				res := checkRun(t, sender, receiver, &Options{PartitionSize: psize, ChunkRows: 256, fakeBaseOTs: testRand(rng.Uint64())})
				if len(res.Matches) != c.common {
					t.Fatalf("%d matches, want %d", len(res.Matches), c.common)
				}
				ps := psize
				if ps == 0 {
					ps = DefaultPartitionSize
				}
				wantParts := max(1, (max(c.nr, c.ns)+ps-1)/ps)
				if res.Stats.Plan.Partitions != wantParts {
					t.Fatalf("%d partitions, want %d", res.Stats.Plan.Partitions, wantParts)
				}
			})
		}
	}
}

// Sets with repeats: an item counts once, by its first index, on both sides.
func TestRunDuplicates(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	sender, receiver := sets(rng, 300, 400, 100)
	// Repeat some items, common and not, several times.
	for i := range 50 {
		receiver = append(receiver, receiver[i*3], receiver[i])
		sender = append(sender, sender[i*5])
	}
	rng.Shuffle(len(receiver), func(i, j int) { receiver[i], receiver[j] = receiver[j], receiver[i] })
	res := checkRun(t, sender, receiver, &Options{PartitionSize: 64, fakeBaseOTs: testRand(9)})
	if len(res.Matches) != 100 {
		t.Fatalf("%d matches, want 100 (duplicates must not count twice)", len(res.Matches))
	}
	all := append(slices.Clone(receiver), receiver...)
	res = checkRun(t, all, all, &Options{fakeBaseOTs: testRand(10)})
	if len(res.Matches) != 300 {
		t.Fatalf("a set against itself twice over: %d matches, want 300", len(res.Matches))
	}
}

// The real base OTs (circl simot) feed the same engine.
func TestRunRealBaseOTs(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, c := range []struct{ nr, ns, common, psize int }{{0, 0, 0, 0}, {2000, 1500, 700, 512}} {
		sender, receiver := sets(rng, c.nr, c.ns, c.common)
		res := checkRun(t, sender, receiver, &Options{PartitionSize: c.psize})
		if res.Stats.Messages < 3 || res.Stats.NodeBytes < setupSize+replySize+seedsSize {
			t.Fatalf("stats %+v do not count the base OTs", res.Stats)
		}
	}
}

func TestRunProgressAndCancel(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	sender, receiver := sets(rng, 3000, 3000, 10)
	var calls, last, total int
	_, err := Run(context.Background(), sender, receiver, &Options{PartitionSize: 1000, ChunkRows: 128, fakeBaseOTs: testRand(1),
		Progress: func(done, tot int) { calls++; last, total = done, tot }})
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || last != total || calls != total {
		t.Fatalf("progress: %d calls, last %d of %d", calls, last, total)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, sender, receiver, &Options{fakeBaseOTs: testRand(2)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: err %v", err)
	}
}
