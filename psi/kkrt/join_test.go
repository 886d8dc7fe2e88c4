package kkrt

import (
	"cmp"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

func randValue(rng *rand.Rand) (v [ValueSize]byte) {
	for i := range v {
		v[i] = byte(rng.Uint32())
	}
	return v
}

// Join agrees with a brute-force comparison, including values that share
// their first 8 bytes (so the radix pass alone cannot separate them).
func TestJoinBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	for _, c := range []struct{ nr, ns, common int }{{0, 0, 0}, {1, 0, 0}, {0, 1, 0}, {5, 5, 5}, {300, 200, 77}, {5000, 3000, 1000}} {
		ro := &ReceiverOutputs{Parts: 1}
		sv := &SenderValues{Parts: 1}
		for i := range c.nr {
			v := randValue(rng)
			if i%7 == 0 && i > 0 {
				copy(v[:8], ro.Values[i-1][:8]) // same prefix as the previous one
			}
			ro.Positions = append(ro.Positions, uint64(10*i))
			ro.Values = append(ro.Values, v)
		}
		for i := range c.ns {
			var vs [3][ValueSize]byte
			for k := range vs {
				vs[k] = randValue(rng)
			}
			if i < c.common {
				vs[rng.IntN(3)] = ro.Values[i]
			}
			sort3(&vs)
			sv.Positions = append(sv.Positions, uint64(3*i+1))
			sv.Values = append(sv.Values, vs)
		}
		got, err := Join([]*ReceiverOutputs{ro}, []*SenderValues{sv})
		if err != nil {
			t.Fatal(err)
		}
		var want []Match
		for i, r := range ro.Values {
			for j, s := range sv.Values {
				if slices.Contains(s[:], r) {
					want = append(want, Match{ro.Positions[i], sv.Positions[j]})
				}
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%+v: %d matches, want %d", c, len(got), len(want))
		}
	}
}

func TestJoinRepeatedValue(t *testing.T) {
	v := [ValueSize]byte{1}
	ro := &ReceiverOutputs{Parts: 1, Positions: []uint64{1, 2}, Values: [][ValueSize]byte{v, v}}
	if _, err := Join([]*ReceiverOutputs{ro}, nil); !errors.Is(err, ErrRepeatedValue) {
		t.Fatalf("repeated receiver value: %v", err)
	}
	sv := &SenderValues{Parts: 1, Positions: []uint64{1, 2}, Values: [][3][ValueSize]byte{{{1}, {2}, {3}}, {{0}, {2}, {4}}}}
	if _, err := Join(nil, []*SenderValues{sv}); !errors.Is(err, ErrRepeatedValue) {
		t.Fatalf("repeated sender value: %v", err)
	}
	// A misbehaving node that sends many equal values cannot make the
	// coordinator sort in quadratic time: equal prefixes go to pdqsort.
	big := &ReceiverOutputs{Parts: 1}
	for i := range 50000 {
		big.Positions = append(big.Positions, uint64(i))
		big.Values = append(big.Values, [ValueSize]byte{15: byte(i), 14: byte(i >> 8), 13: byte(i >> 16)})
	}
	if _, err := Join([]*ReceiverOutputs{big}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestJoinerChecks(t *testing.T) {
	msgs := sampleMessages(t) // partition 0 of a 3-partition session
	if _, err := NewJoiner(0); !errors.Is(err, ErrParams) {
		t.Fatalf("zero partitions: %v", err)
	}
	j, _ := NewJoiner(3)
	if _, err := j.Add(msgs[KindCorrection]); !errors.Is(err, ErrMessage) {
		t.Fatalf("a node-to-node message: %v", err)
	}
	if _, err := j.Add(msgs[KindOutputs]); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Add(msgs[KindOutputs]); !errors.Is(err, ErrState) {
		t.Fatalf("a part twice: %v", err)
	}
	// Another session's message (other tag).
	o := &ReceiverOutputs{Tag: [TagSize]byte{1}, Partition: 1, Parts: 1}
	b, _ := o.MarshalBinary()
	if _, err := j.Add(b); !errors.Is(err, ErrMessage) {
		t.Fatalf("another session: %v", err)
	}
	ro, _ := DecodeReceiverOutputs(msgs[KindOutputs])
	// A partition beyond the session's.
	o = &ReceiverOutputs{Tag: ro.Tag, Partition: 3, Parts: 1}
	b, _ = o.MarshalBinary()
	if _, err := j.Add(b); !errors.Is(err, ErrMessage) {
		t.Fatalf("partition out of range: %v", err)
	}
	// Parts must agree within a side.
	o = &ReceiverOutputs{Tag: ro.Tag, Partition: 1, Part: 0, Parts: 2}
	b, _ = o.MarshalBinary()
	if _, err := j.Add(b); err != nil {
		t.Fatal(err)
	}
	o = &ReceiverOutputs{Tag: ro.Tag, Partition: 1, Part: 1, Parts: 3}
	b, _ = o.MarshalBinary()
	if _, err := j.Add(b); !errors.Is(err, ErrMessage) {
		t.Fatalf("inconsistent parts: %v", err)
	}
	ms, err := j.Add(msgs[KindValues])
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || j.Done() {
		t.Fatalf("partition 0 joined with %d matches, done=%v", len(ms), j.Done())
	}
	if _, err := j.Add(msgs[KindValues]); !errors.Is(err, ErrState) {
		t.Fatalf("a message for a joined partition: %v", err)
	}
}

func TestSortMatches(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 44))
	m := make([]Match, 5000)
	for i := range m {
		m[i] = Match{Receiver: rng.Uint64N(1 << 48), Sender: rng.Uint64N(100)}
		if i%10 == 0 && i > 0 {
			m[i].Receiver = m[i-1].Receiver // ties, ordered by sender
		}
	}
	want := slices.Clone(m)
	slices.SortFunc(want, func(a, b Match) int {
		if c := cmp.Compare(a.Receiver, b.Receiver); c != 0 {
			return c
		}
		return cmp.Compare(a.Sender, b.Sender)
	})
	sortMatches(m)
	if !slices.Equal(m, want) {
		t.Fatal("sortMatches disagrees with slices.SortFunc")
	}
}
