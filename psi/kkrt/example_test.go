package kkrt_test

import (
	"crypto/rand"
	"fmt"

	"github.com/unseen-data/unseen/psi/kkrt"
)

// The message flow of one session, as two nodes and the coordinator would
// run it with a relay in between: every arrow is a []byte.
func Example() {
	ids := func(prefix string, n int) []kkrt.Item {
		var out []kkrt.Item
		for i := range n {
			out = append(out, kkrt.HashItem([]byte("job-key shared by the two nodes"), fmt.Appendf(nil, "%s%03d", prefix, i)))
		}
		return out
	}
	receiverSet := append(ids("common", 30), ids("receiver-only", 70)...)
	senderSet := append(ids("common", 30), ids("sender-only", 50)...)

	params := kkrt.Params{ReceiverSize: len(receiverSet), SenderSize: len(senderSet)}
	key := make([]byte, kkrt.SessionKeySize) // shared by the two nodes only
	rand.Read(key)
	r, _ := kkrt.NewReceiver(params, key)
	s, _ := kkrt.NewSender(params, key)

	// Base OTs: sender → receiver → sender → receiver.
	setup, _ := s.Setup()
	reply, _ := r.Reply(setup)
	seeds, _ := s.Seeds(reply)
	if err := r.Finish(seeds); err != nil {
		panic(err)
	}

	// Each node splits its set with the session's Partitioner; positions
	// are what the coordinator will report matches by.
	split := func(set []kkrt.Item) ([][]kkrt.Item, [][]uint64) {
		pt, _ := kkrt.NewPartitioner(params, key)
		plan, _ := params.Plan()
		items, pos := make([][]kkrt.Item, plan.Partitions), make([][]uint64, plan.Partitions)
		for i := range set {
			p := pt.Of(&set[i])
			items[p] = append(items[p], set[i])
			pos[p] = append(pos[p], uint64(i))
		}
		return items, pos
	}
	rItems, rPos := split(receiverSet)
	sItems, sPos := split(senderSet)

	plan := r.Plan()
	j, _ := kkrt.NewJoiner(plan.Partitions)
	var matches []kkrt.Match
	for p := range plan.Partitions { // every partition, even an empty one
		rp, _ := r.Partition(p, rItems[p], rPos[p])
		sp, _ := s.Partition(p)
		for c := range rp.Chunks() {
			chunk, _ := rp.Chunk(c) // receiver → sender
			if err := sp.Apply(chunk); err != nil {
				panic(err)
			}
		}
		outs, _ := rp.Outputs()                  // receiver → coordinator
		vals, _ := sp.Values(sItems[p], sPos[p]) // sender → coordinator
		for _, m := range append(outs, vals...) {
			ms, err := j.Add(m)
			if err != nil {
				panic(err)
			}
			matches = append(matches, ms...)
		}
	}
	fmt.Println("intersection size:", len(matches), "complete:", j.Done())
	// Output: intersection size: 30 complete: true
}
