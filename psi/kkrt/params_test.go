package kkrt

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

func TestPlan(t *testing.T) {
	for _, c := range []struct {
		p    Params
		want Plan
	}{
		{Params{}, Plan{Partitions: 1, Capacity: 0, Bins: 128, ChunkRows: 128, Chunks: 1}},
		{Params{ReceiverSize: 1000, SenderSize: 10}, Plan{1, 1000, 1664, 1664, 1}},
		{Params{ReceiverSize: 1 << 20, SenderSize: 1 << 20}, Plan{32, 34209, 43520, 1 << 14, 3}},
		{Params{ReceiverSize: 1 << 20, SenderSize: 1 << 20, PartitionSize: 1 << 18}, Plan{4, 266061, 337920, 1 << 14, 21}},
		{Params{ReceiverSize: 10, SenderSize: 1 << 20}, Plan{32, 10, 128, 128, 1}},
	} {
		got, err := c.p.Plan()
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%+v: plan %+v, want %+v", c.p, got, c.want)
		}
		if got.Bins%rowAlign != 0 || got.Bins < 127*got.Capacity/100 || got.Chunks*got.ChunkRows < got.Bins {
			t.Errorf("%+v: inconsistent plan %+v", c.p, got)
		}
	}
	for _, bad := range []Params{
		{ReceiverSize: -1}, {SenderSize: MaxSetSize + 1}, {PartitionSize: 8}, {PartitionSize: MaxPartitionSize + 1},
		{ChunkRows: 100}, {ChunkRows: MaxChunkRows + 128},
		{ReceiverSize: MaxSetSize, PartitionSize: MinPartitionSize},
	} {
		if _, err := bad.Plan(); !errors.Is(err, ErrParams) {
			t.Errorf("%+v: err %v, want ErrParams", bad, err)
		}
	}
	if _, err := NewReceiver(Params{}, make([]byte, 31)); !errors.Is(err, ErrParams) {
		t.Errorf("short session key: %v", err)
	}
}

// The partition capacity is never exceeded in simulation, and it is tight
// enough: the padding stays a few percent at realistic sizes.
func TestPartitionCapacity(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, c := range []struct{ n, parts int }{{1000, 4}, {20000, 16}, {100000, 3}} {
		capacity := partitionCapacity(c.n, c.parts)
		worst := 0
		for range 200 {
			counts := make([]int, c.parts)
			for range c.n {
				counts[rng.IntN(c.parts)]++
			}
			for _, x := range counts {
				worst = max(worst, x)
			}
		}
		if worst > capacity {
			t.Fatalf("n=%d P=%d: a partition got %d > capacity %d", c.n, c.parts, worst, capacity)
		}
		t.Logf("n=%d P=%d: mean %d, worst of 200 %d, capacity %d", c.n, c.parts, c.n/c.parts, worst, capacity)
	}
	if c := partitionCapacity(1<<27, 512); float64(c) > 1.02*float64(1<<27)/512 {
		t.Fatalf("capacity %d pads more than 2%% at 2^27 items", c)
	}
}

// TestCodeDistanceBound computes, exactly, the probability that two
// independent random 512-bit code words differ in fewer than κ = 128
// bits, and checks the package documentation's claim: ≤ 2^-102 per pair,
// so all n_X·3n_Y ≤ 3·2^54 pairs at MaxSetSize are κ apart except with
// probability < 2^-46. It also measures distances between real code words.
func TestCodeDistanceBound(t *testing.T) {
	tail := new(big.Int)
	for i := range 128 {
		tail.Add(tail, new(big.Int).Binomial(CodeBits, int64(i)))
	}
	f, _ := new(big.Float).SetInt(tail).Float64()
	log2p := math.Log2(f) - CodeBits
	pairs := math.Log2(3) + 2*math.Log2(MaxSetSize)
	t.Logf("Pr[Bin(512,1/2) < 128] = 2^%.2f; over 2^%.2f pairs: 2^%.2f", log2p, pairs, log2p+pairs)
	if log2p > -102 || log2p+pairs > -46 {
		t.Fatalf("bound 2^%.2f per pair, 2^%.2f in all", log2p, log2p+pairs)
	}
	k, _ := deriveKeys(testKey(1))
	cd := newCoder(k)
	minD := CodeBits
	var prev [CodeBytes]byte
	for v := range uint64(5000) {
		x := item(v)
		var c [CodeBytes]byte
		cd.code(c[:], &x)
		if v > 0 {
			d := 0
			for i := range c {
				d += popcount(c[i] ^ prev[i])
			}
			minD = min(minD, d)
		}
		prev = c
	}
	if minD < 180 { // mean 256, sd 11.3: 180 is 6.7 sd below
		t.Fatalf("two code words only %d bits apart", minD)
	}
}

func popcount(b byte) int {
	n := 0
	for ; b != 0; b &= b - 1 {
		n++
	}
	return n
}
