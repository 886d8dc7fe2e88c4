package kkrt

import (
	"context"
	"encoding/binary"
	"fmt"
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

func TestRunSizes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ nr, ns, common int }{
		{0, 0, 0}, {0, 7, 0}, {7, 0, 0}, {1, 1, 1}, {1, 1, 0}, {2, 3, 1},
		{100, 100, 100}, {100, 100, 0}, {1000, 800, 333}, {5000, 5000, 2500},
		{10, 20000, 10}, {20000, 10, 5}, {3, 3000, 2},
	} {
		for _, psize := range []int{0, 500} {
			t.Run(fmt.Sprintf("nr=%d/ns=%d/common=%d/psize=%d", c.nr, c.ns, c.common, psize), func(t *testing.T) {
				sender, receiver := sets(rng, c.nr, c.ns, c.common)
				res := checkRun(t, sender, receiver, &Options{PartitionSize: psize, ChunkRows: 256})
				if len(res.Matches) != c.common {
					t.Fatalf("%d matches, want %d", len(res.Matches), c.common)
				}
			})
		}
	}
}
