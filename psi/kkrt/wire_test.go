package kkrt

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
)

// sampleMessages returns one valid message of every kind, from a real
// session (base OTs included), plus the decoders.
func sampleMessages(t testing.TB) map[Kind][]byte {
	t.Helper()
	params := Params{ReceiverSize: 300, SenderSize: 200, PartitionSize: 100, ChunkRows: 128}
	key := testKey(5)
	r, _ := NewReceiver(params, key)
	s, _ := NewSender(params, key)
	setup, err := s.Setup()
	if err != nil {
		t.Fatal(err)
	}
	reply, err := r.Reply(setup)
	if err != nil {
		t.Fatal(err)
	}
	seeds, err := s.Seeds(reply)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Finish(seeds); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	sender, receiver := sets(rng, 300, 200, 50)
	rItems, rPos := partitionOf(t, params, key, receiver)
	sItems, sPos := partitionOf(t, params, key, sender)
	rp, err := r.Partition(0, rItems[0], rPos[0])
	if err != nil {
		t.Fatal(err)
	}
	sp, _ := s.Partition(0)
	var first []byte
	for c := range rp.Chunks() {
		m, err := rp.Chunk(c)
		if err != nil {
			t.Fatal(err)
		}
		if c == 0 {
			first = m
		}
		if err := sp.Apply(m); err != nil {
			t.Fatal(err)
		}
	}
	outs, err := rp.Outputs()
	if err != nil {
		t.Fatal(err)
	}
	vals, err := sp.Values(sItems[0], sPos[0])
	if err != nil {
		t.Fatal(err)
	}
	return map[Kind][]byte{KindSetup: setup, KindReply: reply, KindSeeds: seeds, KindCorrection: first, KindOutputs: outs[0], KindValues: vals[0]}
}

// decode decodes any message by its kind and re-encodes it.
func decodeEncode(k Kind, b []byte) (any, []byte, error) {
	switch k {
	case KindSetup:
		m, err := decodeSetup(b)
		if err != nil {
			return nil, nil, err
		}
		return m, m.marshal(), nil
	case KindReply:
		m, err := decodeReply(b)
		if err != nil {
			return nil, nil, err
		}
		return m, m.marshal(), nil
	case KindSeeds:
		m, err := decodeSeeds(b)
		if err != nil {
			return nil, nil, err
		}
		return m, m.marshal(), nil
	case KindCorrection:
		m, err := decodeCorrection(b)
		if err != nil {
			return nil, nil, err
		}
		return m, m.marshal(), nil
	case KindOutputs:
		m, err := DecodeReceiverOutputs(b)
		if err != nil {
			return nil, nil, err
		}
		e, err := m.MarshalBinary()
		return m, e, err
	case KindValues:
		m, err := DecodeSenderValues(b)
		if err != nil {
			return nil, nil, err
		}
		e, err := m.MarshalBinary()
		return m, e, err
	}
	return nil, nil, errors.New("unknown kind")
}

func TestWireRoundTrip(t *testing.T) {
	for k, b := range sampleMessages(t) {
		m, enc, err := decodeEncode(k, b)
		if err != nil {
			t.Fatalf("%v: %v", k, err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("%v: decode→encode changed the bytes", k)
		}
		m2, _, err := decodeEncode(k, enc)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("%v: encode→decode changed the message (%v)", k, err)
		}
		if got, _, err := Peek(b); err != nil || got != k {
			t.Fatalf("%v: Peek says %v, %v", k, got, err)
		}
	}
}

// Truncated, over-long, wrong-version, wrong-kind and garbled messages are
// all refused with ErrMessage, and nothing panics.
func TestWireRefuses(t *testing.T) {
	for k, b := range sampleMessages(t) {
		cases := map[string][]byte{
			"empty":        nil,
			"header only":  b[:headerSize],
			"truncated":    b[:len(b)-1],
			"half":         b[:len(b)/2],
			"over-long":    append(bytes.Clone(b), 0),
			"version 0":    append([]byte{0}, b[1:]...),
			"version 2":    append([]byte{2}, b[1:]...),
			"unknown kind": append([]byte{wireVersion, 99}, b[2:]...),
		}
		other := Kind(byte(k)%6 + 1)
		cases["other kind"] = append([]byte{wireVersion, byte(other)}, b[2:]...)
		for name, bad := range cases {
			_, _, err := decodeEncode(k, bad)
			if !errors.Is(err, ErrMessage) {
				t.Errorf("%v %s: err %v, want ErrMessage", k, name, err)
			}
		}
	}
}

func TestListFieldChecks(t *testing.T) {
	good := &ReceiverOutputs{Partition: 1, Part: 0, Parts: 1, Positions: []uint64{3, 9, 10}, Values: make([][ValueSize]byte, 3)}
	if _, err := good.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]*ReceiverOutputs{
		"part ≥ parts":       {Partition: 1, Part: 1, Parts: 1},
		"no parts":           {Partition: 1, Part: 0, Parts: 0},
		"positions repeat":   {Parts: 1, Positions: []uint64{3, 3}, Values: make([][ValueSize]byte, 2)},
		"positions decrease": {Parts: 1, Positions: []uint64{3, 2}, Values: make([][ValueSize]byte, 2)},
		"position too big":   {Parts: 1, Positions: []uint64{MaxPosition + 1}, Values: make([][ValueSize]byte, 1)},
		"counts differ":      {Parts: 1, Positions: []uint64{1}, Values: make([][ValueSize]byte, 2)},
		"partition too big":  {Partition: MaxPartitions, Parts: 1},
		"too many items":     {Parts: 1, Positions: make([]uint64, MaxPerMessage+1), Values: make([][ValueSize]byte, MaxPerMessage+1)},
	} {
		if _, err := m.MarshalBinary(); !errors.Is(err, ErrMessage) {
			t.Errorf("%s: err %v", name, err)
		}
	}
	// Values must be sorted within an item (no hash-function order).
	v := &SenderValues{Parts: 1, Positions: []uint64{0}, Values: [][3][ValueSize]byte{{{2}, {1}, {3}}}}
	if _, err := v.MarshalBinary(); !errors.Is(err, ErrMessage) {
		t.Fatalf("unsorted values: err %v", err)
	}
	v.Values[0] = [3][ValueSize]byte{{1}, {2}, {3}}
	b, err := v.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	copy(b[len(b)-3*ValueSize:], bytes.Repeat([]byte{9}, ValueSize)) // first value now the largest
	if _, err := DecodeSenderValues(b); !errors.Is(err, ErrMessage) {
		t.Fatalf("decoded unsorted values: err %v", err)
	}
	// A non-minimal uvarint position is refused (one encoding per message).
	o, _ := (&ReceiverOutputs{Parts: 1, Positions: []uint64{5}, Values: make([][ValueSize]byte, 1)}).MarshalBinary()
	nonMin := append(append(bytes.Clone(o[:listHead]), 0x85, 0x00), o[listHead+1:]...)
	if _, err := DecodeReceiverOutputs(nonMin); !errors.Is(err, ErrMessage) {
		t.Fatalf("non-minimal position: err %v", err)
	}
}
