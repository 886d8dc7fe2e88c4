package kkrt

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

func testKey(b byte) []byte {
	k := make([]byte, SessionKeySize)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

// newPair returns the two nodes of a session after (fake) base OTs.
func newPair(t testing.TB, params Params, key []byte, seed uint64) (*Receiver, *Sender) {
	t.Helper()
	r, err := NewReceiver(params, key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSender(params, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := fakeBaseOTs(r, s, testRand(seed)); err != nil {
		t.Fatal(err)
	}
	return r, s
}

// partitionOf splits items (positions = indices) by the session's
// partition function.
func partitionOf(t testing.TB, params Params, key []byte, items []Item) (parts [][]Item, pos [][]uint64) {
	t.Helper()
	pt, err := NewPartitioner(params, key)
	if err != nil {
		t.Fatal(err)
	}
	plan, _ := params.Plan()
	parts, pos = make([][]Item, plan.Partitions), make([][]uint64, plan.Partitions)
	for i := range items {
		p := pt.Of(&items[i])
		parts[p] = append(parts[p], items[i])
		pos[p] = append(pos[p], uint64(i))
	}
	return parts, pos
}

// session runs partitions by hand, with chunks applied in a shuffled order
// and concurrently, and joins through a Joiner fed in a shuffled order.
type session struct {
	r       *Receiver
	s       *Sender
	rp      []*ReceiverPartition
	toCoord [][]byte
	toNode  [][]byte
}

func runByHand(t *testing.T, params Params, key []byte, sender, receiver []Item, rng *rand.Rand) (*session, []Match) {
	t.Helper()
	r, s := newPair(t, params, key, rng.Uint64())
	plan := r.Plan()
	rItems, rPos := partitionOf(t, params, key, receiver)
	sItems, sPos := partitionOf(t, params, key, sender)
	ss := &session{r: r, s: s}
	order := rng.Perm(plan.Partitions)
	for _, p := range order {
		rp, err := r.Partition(p, rItems[p], rPos[p])
		if err != nil {
			t.Fatal(err)
		}
		ss.rp = append(ss.rp, rp)
		sp, err := s.Partition(p)
		if err != nil {
			t.Fatal(err)
		}
		chunks := make([][]byte, rp.Chunks())
		var wg sync.WaitGroup
		for c := range chunks {
			wg.Go(func() {
				msg, err := rp.Chunk(c)
				if err != nil {
					t.Error(err)
				}
				chunks[c] = msg
			})
		}
		wg.Wait()
		rng.Shuffle(len(chunks), func(i, j int) { chunks[i], chunks[j] = chunks[j], chunks[i] })
		for _, c := range chunks {
			wg.Go(func() {
				if err := sp.Apply(c); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		ss.toNode = append(ss.toNode, chunks...)
		vals, err := sp.Values(sItems[p], sPos[p])
		if err != nil {
			t.Fatal(err)
		}
		outs, err := rp.Outputs()
		if err != nil {
			t.Fatal(err)
		}
		ss.toCoord = append(ss.toCoord, vals...)
		ss.toCoord = append(ss.toCoord, outs...)
	}
	j, err := NewJoiner(plan.Partitions)
	if err != nil {
		t.Fatal(err)
	}
	msgs := slices.Clone(ss.toCoord)
	rng.Shuffle(len(msgs), func(i, k int) { msgs[i], msgs[k] = msgs[k], msgs[i] })
	var matches []Match
	for _, m := range msgs {
		ms, err := j.Add(m)
		if err != nil {
			t.Fatal(err)
		}
		matches = append(matches, ms...)
	}
	if !j.Done() {
		t.Fatal("joiner not done after every message")
	}
	slices.SortFunc(matches, func(a, b Match) int { return int(a.Receiver) - int(b.Receiver) })
	return ss, matches
}

func TestMessageDriven(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	sender, receiver := sets(rng, 3000, 2500, 1234)
	params := Params{ReceiverSize: 3000, SenderSize: 2500, PartitionSize: 700, ChunkRows: 128}
	_, matches := runByHand(t, params, testKey(1), sender, receiver, rng)
	if want := plainMatches(sender, receiver); !slices.Equal(matches, want) {
		t.Fatalf("%d matches, want %d", len(matches), len(want))
	}
}

// TestRehash forces cuckoo failures with an undersized table (both nodes
// patched the same way) and checks that the receiver moves to the next
// key, the sender follows it, and the answer is still right.
func TestRehash(t *testing.T) {
	params := Params{ReceiverSize: 4 * 118, SenderSize: 4 * 118, PartitionSize: 118}
	key := testKey(7)
	r, s := newPair(t, params, key, 5)
	for _, pl := range []*Plan{&r.plan, &s.plan} {
		pl.Bins, pl.Capacity, pl.ChunkRows, pl.Chunks = 128, 128, 128, 1 // ~1.08 bins per item: fails often
	}
	// Fill each partition with up to 118 items.
	pt, _ := NewPartitioner(params, key)
	var rItems, sItems [4][]Item
	var rPos, sPos [4][]uint64
	for v := uint64(0); ; v++ {
		x := item(v)
		p := pt.Of(&x)
		if len(rItems[p]) < 118 {
			rItems[p] = append(rItems[p], x)
			rPos[p] = append(rPos[p], v)
			if v%2 == 0 {
				sItems[p] = append(sItems[p], x)
				sPos[p] = append(sPos[p], v)
			}
		}
		if len(rItems[0])+len(rItems[1])+len(rItems[2])+len(rItems[3]) == 4*118 {
			break
		}
	}
	rehashed := 0
	for p := range 4 {
		rp, err := r.Partition(p, rItems[p], rPos[p])
		if err != nil {
			t.Fatal(err)
		}
		if rp.Attempt() > 0 {
			rehashed++
		}
		sp, _ := s.Partition(p)
		msg, err := rp.Chunk(0)
		if err != nil {
			t.Fatal(err)
		}
		if err := sp.Apply(msg); err != nil {
			t.Fatal(err)
		}
		vals, err := sp.Values(sItems[p], sPos[p])
		if err != nil {
			t.Fatal(err)
		}
		outs, _ := rp.Outputs()
		ro, _ := DecodeReceiverOutputs(outs[0])
		sv, _ := DecodeSenderValues(vals[0])
		ms, err := Join([]*ReceiverOutputs{ro}, []*SenderValues{sv})
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != len(sItems[p]) {
			t.Fatalf("partition %d (attempt %d): %d matches, want %d", p, rp.Attempt(), len(ms), len(sItems[p]))
		}
		for _, m := range ms {
			if m.Receiver != m.Sender {
				t.Fatalf("partition %d: match %v pairs different items", p, m)
			}
		}
	}
	if rehashed == 0 {
		t.Fatal("no partition needed a re-hash; the test does not exercise it")
	}
}

func TestStateErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	params := Params{ReceiverSize: 100, SenderSize: 100, PartitionSize: 50, ChunkRows: 128}
	key := testKey(3)
	sender, receiver := sets(rng, 100, 100, 50)
	rItems, rPos := partitionOf(t, params, key, receiver)
	sItems, sPos := partitionOf(t, params, key, sender)

	// Before the base OTs nothing else works.
	r0, _ := NewReceiver(params, key)
	s0, _ := NewSender(params, key)
	if _, err := r0.Partition(0, rItems[0], rPos[0]); !errors.Is(err, ErrState) {
		t.Fatalf("partition before base OTs: %v", err)
	}
	if _, err := s0.Partition(0); !errors.Is(err, ErrState) {
		t.Fatalf("sender partition before base OTs: %v", err)
	}
	if err := r0.Finish(make([]byte, seedsSize)); err == nil {
		t.Fatal("seeds before reply accepted")
	}
	if _, err := s0.Seeds(make([]byte, replySize)); err == nil {
		t.Fatal("reply before setup accepted")
	}

	r, s := newPair(t, params, key, 1)
	plan := r.Plan()
	if _, err := s.Setup(); !errors.Is(err, ErrState) {
		t.Fatalf("setup after the base OTs: %v", err)
	}
	rp, err := r.Partition(0, rItems[0], rPos[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Partition(0, rItems[0], rPos[0]); !errors.Is(err, ErrState) {
		t.Fatalf("partition started twice: %v", err)
	}
	if _, err := r.Partition(plan.Partitions, nil, nil); !errors.Is(err, ErrInput) {
		t.Fatalf("partition out of range: %v", err)
	}
	// Input checks.
	if _, err := r.Partition(1, rItems[0], rPos[0]); !errors.Is(err, ErrInput) {
		t.Fatalf("items of partition 0 given as partition 1: %v", err)
	}
	dup := append(slices.Clone(rItems[1]), rItems[1][0])
	dupPos := append(slices.Clone(rPos[1]), 1<<40)
	if _, err := r.Partition(1, dup, dupPos); !errors.Is(err, ErrInput) {
		t.Fatalf("duplicate item: %v", err)
	}
	badPos := slices.Clone(rPos[1])
	if len(badPos) > 1 {
		badPos[1] = badPos[0]
		if _, err := r.Partition(1, rItems[1], badPos); !errors.Is(err, ErrInput) {
			t.Fatalf("positions not increasing: %v", err)
		}
	}
	if _, err := r.Partition(1, rItems[1], rPos[1][:len(rPos[1])-1]); !errors.Is(err, ErrInput) {
		t.Fatalf("fewer positions than items: %v", err)
	}
	if _, err := r.Partition(1, make([]Item, plan.Capacity+1), make([]uint64, plan.Capacity+1)); !errors.Is(err, ErrPartitionOverflow) {
		t.Fatalf("over capacity: %v", err)
	}

	sp, _ := s.Partition(0)
	if _, err := s.Partition(0); !errors.Is(err, ErrState) {
		t.Fatalf("sender partition started twice: %v", err)
	}
	if _, err := sp.Values(sItems[0], sPos[0]); !errors.Is(err, ErrState) {
		t.Fatalf("values before the chunks: %v", err)
	}
	if _, err := rp.Outputs(); !errors.Is(err, ErrState) {
		t.Fatalf("outputs before the chunks: %v", err)
	}
	msg, err := rp.Chunk(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rp.Chunk(0); !errors.Is(err, ErrState) {
		t.Fatalf("chunk built twice: %v", err)
	}
	if _, err := rp.Chunk(plan.Chunks); !errors.Is(err, ErrInput) {
		t.Fatalf("chunk out of range: %v", err)
	}
	sp1, _ := s.Partition(1)
	if err := sp1.Apply(msg); !errors.Is(err, ErrMessage) {
		t.Fatalf("chunk of partition 0 applied to partition 1: %v", err)
	}
	// Another session's chunk (other key, so other tag).
	ro, so := newPair(t, params, testKey(99), 2)
	oItems, oPos := partitionOf(t, params, testKey(99), receiver)
	orp, _ := ro.Partition(0, oItems[0], oPos[0])
	other, _ := orp.Chunk(0)
	osp, _ := so.Partition(1)
	_ = osp
	if err := sp.Apply(other); !errors.Is(err, ErrMessage) {
		t.Fatalf("another session's chunk: %v", err)
	}
	if err := sp.Apply(msg); err != nil {
		t.Fatal(err)
	}
	if err := sp.Apply(msg); !errors.Is(err, ErrState) {
		t.Fatalf("chunk applied twice: %v", err)
	}
	for c := 1; c < plan.Chunks; c++ {
		m, err := rp.Chunk(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := sp.Apply(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sp.Values(sItems[1], sPos[1]); !errors.Is(err, ErrInput) {
		t.Fatalf("sender items of another partition: %v", err)
	}
	if _, err := sp.Values(sItems[0], sPos[0]); err != nil {
		t.Fatalf("values after a refused call: %v", err)
	}
	if _, err := sp.Values(sItems[0], sPos[0]); !errors.Is(err, ErrState) {
		t.Fatalf("values taken twice: %v", err)
	}
	if _, err := rp.Outputs(); err != nil {
		t.Fatal(err)
	}
	if _, err := rp.Outputs(); !errors.Is(err, ErrState) {
		t.Fatalf("outputs taken twice: %v", err)
	}
}

// The receiver refuses a Setup made for other parameters or another
// session, the base-OT flows refuse to run twice, tampered messages change
// nothing, and the extended OTs are correct: the sender's seed i is the
// receiver's seed i at choice bit s_i, and differs from the other one.
func TestBaseOTChecks(t *testing.T) {
	params := Params{ReceiverSize: 10, SenderSize: 10}
	s, _ := NewSender(params, testKey(1))
	setup, err := s.Setup()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Setup(); !errors.Is(err, ErrState) {
		t.Fatalf("setup twice: %v", err)
	}
	other, _ := NewReceiver(Params{ReceiverSize: 11, SenderSize: 10}, testKey(1))
	if _, err := other.Reply(setup); !errors.Is(err, ErrParams) {
		t.Fatalf("mismatched params: %v", err)
	}
	stranger, _ := NewReceiver(params, testKey(2))
	if _, err := stranger.Reply(setup); !errors.Is(err, ErrMessage) {
		t.Fatalf("another session's setup: %v", err)
	}
	// An invalid point is refused.
	bad := bytes.Clone(setup)
	for i := setupSize - pointSize; i < setupSize; i++ {
		bad[i] = 0xff
	}
	r, _ := NewReceiver(params, testKey(1))
	if _, err := r.Reply(bad); !errors.Is(err, ErrMessage) {
		t.Fatalf("invalid point: %v", err)
	}
	reply, err := r.Reply(setup)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reply(setup); !errors.Is(err, ErrState) {
		t.Fatalf("reply twice: %v", err)
	}
	seeds, err := s.Seeds(reply)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Seeds(reply); !errors.Is(err, ErrState) {
		t.Fatalf("seeds twice: %v", err)
	}
	// Tampered ciphertexts do not decrypt…
	bad = bytes.Clone(seeds)
	bad[headerSize+20] ^= 1
	bad[headerSize+sealedSize+20] ^= 1
	if err := r.Finish(bad); !errors.Is(err, ErrMessage) {
		t.Fatalf("tampered seeds: %v", err)
	}
	// …and change nothing: the genuine message still works.
	if err := r.Finish(seeds); err != nil {
		t.Fatal(err)
	}
	if err := r.Finish(seeds); !errors.Is(err, ErrState) {
		t.Fatalf("finish twice: %v", err)
	}
	var probe, want [16]byte
	ones := 0
	for i := range CodeBits {
		c := s.s[i/8] >> (i % 8) & 1
		ones += int(c)
		s.prg[i].Encrypt(probe[:], make([]byte, 16))
		r.prg[c][i].Encrypt(want[:], make([]byte, 16))
		if probe != want {
			t.Fatalf("extended OT %d: sender's seed is not the receiver's seed %d", i, c)
		}
		r.prg[1-c][i].Encrypt(want[:], make([]byte, 16))
		if probe == want {
			t.Fatalf("extended OT %d: both seeds equal", i)
		}
	}
	if ones < 180 || ones > 332 { // Bin(512, 1/2): mean 256, sd 11.3
		t.Fatalf("%d of 512 choice bits set", ones)
	}
}
