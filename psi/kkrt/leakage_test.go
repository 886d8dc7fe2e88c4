package kkrt

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// coordinatorValues collects every 16-byte value the coordinator receives.
func coordinatorValues(t *testing.T, msgs [][]byte) [][ValueSize]byte {
	t.Helper()
	var out [][ValueSize]byte
	for _, m := range msgs {
		k, _, err := Peek(m)
		if err != nil {
			t.Fatal(err)
		}
		switch k {
		case KindOutputs:
			ro, err := DecodeReceiverOutputs(m)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ro.Values...)
		case KindValues:
			sv, err := DecodeSenderValues(m)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range sv.Values {
				out = append(out, v[:]...)
			}
		}
	}
	return out
}

// TestCoordinatorView plays the coordinator across sessions on the same
// sets: it tries to link an item's values between sessions (to follow a
// non-matching ID from job to job) and to find structure within a session.
// Nothing repeats across sessions, whether the session key changes or only
// the base OTs do; within a session the only equal values are the matches
// (one receiver output and one sender value each); and the bits are
// balanced.
func TestCoordinatorView(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	sender, receiver := sets(rng, 2000, 2000, 500)
	params := Params{ReceiverSize: 2000, SenderSize: 2000, PartitionSize: 700}
	ss1, m1 := runByHand(t, params, testKey(1), sender, receiver, rng)
	ss2, _ := runByHand(t, params, testKey(2), sender, receiver, rng)
	ss3, _ := runByHand(t, params, testKey(1), sender, receiver, rng) // same key, new base OTs
	v1 := coordinatorValues(t, ss1.toCoord)
	seen := map[[ValueSize]byte]int{}
	for _, v := range v1 {
		seen[v]++
	}
	repeats := 0
	for _, c := range seen {
		switch {
		case c == 2:
			repeats++
		case c > 2:
			t.Fatalf("a value occurs %d times in one session", c)
		}
	}
	if repeats != len(m1) || len(m1) != 500 {
		t.Fatalf("%d repeated values, %d matches; want 500 of each", repeats, len(m1))
	}
	for name, ss := range map[string]*session{"other key": ss2, "same key, new base OTs": ss3} {
		for _, v := range coordinatorValues(t, ss.toCoord) {
			if seen[v] > 0 {
				t.Fatalf("%s: a value of session 1 reappears", name)
			}
		}
	}
	ones := 0
	for _, v := range v1 {
		for _, b := range v {
			ones += bits.OnesCount8(b)
		}
	}
	n := float64(len(v1) * ValueSize * 8)
	if z := (float64(ones) - n/2) / math.Sqrt(n/4); math.Abs(z) > 5 {
		t.Fatalf("bit balance off by %.1f standard deviations", z)
	}
}

// TestNoHashIndex plays the coordinator trying to learn which hash
// function placed a matching receiver item (a bit of information about the
// item's bins): its only clue is which of the sender's three sorted values
// matched. Over many matches, that slot is independent of the true hash
// index: every cell of the 3×3 table is near 1/9.
func TestNoHashIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	const n = 4000
	sender, receiver := sets(rng, n, n, n)
	params := Params{ReceiverSize: n, SenderSize: n}
	key := testKey(9)
	r, s := newPair(t, params, key, 3)
	rp, err := r.Partition(0, receiver, seq(n))
	if err != nil {
		t.Fatal(err)
	}
	// Receiver items sorted as sender items, so that position i is the
	// same item on both sides.
	occ := rp.occupantForTest()
	binOf := make([]uint32, n)
	for b, it := range occ {
		if it >= 0 {
			binOf[it] = uint32(b)
		}
	}
	sp, _ := s.Partition(0)
	for c := range rp.Chunks() {
		m, _ := rp.Chunk(c)
		if err := sp.Apply(m); err != nil {
			t.Fatal(err)
		}
	}
	outs, _ := rp.Outputs()
	// The sender gets the same items, in the receiver's order.
	_ = sender
	vals, err := sp.Values(receiver, seq(n))
	if err != nil {
		t.Fatal(err)
	}
	cands, _ := candidates(r.keys, r.plan.Bins, 0, rp.Attempt(), receiver, 1)
	var table [3][3]int
	var ro []*ReceiverOutputs
	for _, m := range outs {
		x, _ := DecodeReceiverOutputs(m)
		ro = append(ro, x)
	}
	var sv []*SenderValues
	for _, m := range vals {
		x, _ := DecodeSenderValues(m)
		sv = append(sv, x)
	}
	out := func(i int) [ValueSize]byte { return ro[i/MaxPerMessage].Values[i%MaxPerMessage] }
	val := func(i int) [3][ValueSize]byte { return sv[i/MaxPerMessage].Values[i%MaxPerMessage] }
	for i := range n {
		truth := -1
		for j, b := range cands[i] {
			if b == binOf[i] {
				truth = j
			}
		}
		slot := -1
		for k, v := range val(i) {
			if v == out(i) {
				slot = k
			}
		}
		if truth < 0 || slot < 0 {
			t.Fatalf("item %d: hash index %d, matching slot %d", i, truth, slot)
		}
		table[truth][slot]++
	}
	// Cuckoo insertion favours the first hash function, so the rows have
	// different totals; what must hold is that within each row the slot is
	// uniform, i.e. the slot carries no information about the index.
	for j := range 3 {
		nj := float64(table[j][0] + table[j][1] + table[j][2])
		sd := math.Sqrt(nj * (1.0 / 3) * (2.0 / 3))
		for k := range 3 {
			if math.Abs(float64(table[j][k])-nj/3) > 5*sd {
				t.Fatalf("hash index %d, slot %d: %d of %.0f (table %v): the slot reveals the hash function", j, k, table[j][k], nj, table)
			}
		}
	}
	t.Logf("hash index × matching slot: %v", table)
}

func seq(n int) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = uint64(i)
	}
	return s
}

// TestSenderViewSizes: the sender sees only the receiver's messages, whose
// sizes must depend on the Params alone. A receiver set crowded into one
// partition (as far as the capacity allows) and a spread-out set of the
// same size produce the same message sizes.
func TestSenderViewSizes(t *testing.T) {
	params := Params{ReceiverSize: 1000, SenderSize: 1000, PartitionSize: 250, ChunkRows: 128}
	key := testKey(4)
	plan, _ := params.Plan()
	pt, _ := NewPartitioner(params, key)
	var crowded, spread []Item
	counts := make([]int, plan.Partitions)
	for v := uint64(0); counts[0] < plan.Capacity; v++ { // fill partition 0 to capacity
		if x := item(v); pt.Of(&x) == 0 {
			crowded = append(crowded, x)
			counts[0]++
		}
	}
	for v := uint64(1 << 30); len(crowded) < 1000; v++ { // the rest elsewhere
		if x := item(v); pt.Of(&x) != 0 {
			crowded = append(crowded, x)
			counts[pt.Of(&x)]++
		}
	}
	for v := uint64(1 << 40); len(spread) < 1000; v++ {
		spread = append(spread, item(v))
	}
	sizes := func(set []Item) []int {
		rng := rand.New(rand.NewPCG(1, 1))
		ss, _ := runByHand(t, params, key, spread, set, rng)
		var out []int
		for _, m := range ss.toNode {
			out = append(out, len(m))
		}
		return out
	}
	a, b := sizes(crowded), sizes(spread)
	if counts[0] != plan.Capacity {
		t.Fatalf("crowded set has %d items in partition 0, capacity %d", counts[0], plan.Capacity)
	}
	if len(a) != len(b) {
		t.Fatalf("%d messages for a crowded set, %d for a spread one", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("message %d: %d bytes for a crowded set, %d for a spread one", i, a[i], b[i])
		}
	}
}

// Partitions are keyed by the session key: under another key an item
// lands in the same partition only by chance (about 1/P).
func TestPartitionKeyed(t *testing.T) {
	params := Params{ReceiverSize: 1 << 16, SenderSize: 1 << 16, PartitionSize: 1 << 12}
	a, _ := NewPartitioner(params, testKey(1))
	b, _ := NewPartitioner(params, testKey(2))
	same, n := 0, 20000
	for v := range uint64(n) {
		x := item(v)
		if a.Of(&x) == b.Of(&x) {
			same++
		}
	}
	if p := float64(same) / float64(n); p > 3.0/16 {
		t.Fatalf("%.3f of items share their partition across keys (P = 16)", p)
	}
}
