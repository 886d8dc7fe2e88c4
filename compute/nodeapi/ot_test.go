package nodeapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/psi/kkrt"
)

// Every OT wire type, with every field set, round-trips through strict
// JSON decoding.
func TestOTWireTypesRoundTrip(t *testing.T) {
	h := nodeapi.Header{Job: "j1", SpecHash: sha256.Sum256([]byte("spec")), Step: nodeapi.StepOTDeliver, Attempt: 3, Party: 1}
	hello := nodeapi.OTHello{Party: 1, Peer: 0, Role: nodeapi.OTReceiver, ReceiverSize: 10, SenderSize: 20, Ephemeral: bytes.Repeat([]byte{1}, 32), Signature: bytes.Repeat([]byte{2}, 64)}
	for _, v := range []any{
		&nodeapi.OTOpenRequest{Header: h, Peer: 0, Lengths: []nodeapi.SignedLength{{List: 0, Len: 20, Signature: []byte{3}}, {List: 1, Len: 10, Signature: []byte{4}}}},
		&nodeapi.OTOpenResponse{Hello: hello},
		&nodeapi.OTAcceptRequest{Header: h, Peer: 0, Hello: hello},
		&nodeapi.OTAcceptResponse{Frame: []byte{5, 6}},
		&nodeapi.OTDeliverRequest{Header: h, Peer: 0, Frame: []byte{7}},
		&nodeapi.OTDeliverResponse{Frame: []byte{8}, Values: [][]byte{{9}, {10}}},
		&nodeapi.OTNextRequest{Header: h, Peer: 0},
		&nodeapi.OTNextResponse{Partition: 2, Chunk: 1, Frame: []byte{11}, Outputs: [][]byte{{12}}},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		back := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(back); err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		if !reflect.DeepEqual(v, back) {
			t.Fatalf("%T does not round-trip:\n%#v\n%#v", v, v, back)
		}
	}
}

// The bytes a node signs in its hello, pinned; and every field of the
// statement changes them (a relay cannot move a hello to another job,
// attempt, pair, role, size or key).
func TestOTHelloStatementEncoding(t *testing.T) {
	hash := sha256.Sum256([]byte("spec"))
	ref := nodeapi.JobRef{Job: "j1", SpecHash: hash, Attempt: 2}
	key := bytes.Repeat([]byte{9}, 32)
	s := nodeapi.OTHelloStatement{JobRef: ref, Party: 1, Peer: 0, Role: nodeapi.OTReceiver, ReceiverSize: 10, SenderSize: 20, Ephemeral: key}
	want := bytes.Join([][]byte{field([]byte("unseen/node/psi-ot-hello/v1")), field([]byte("j1")), field(hash[:]), i64(2),
		i64(1), i64(0), field([]byte("receiver")), i64(10), i64(20), i64(kkrt.DefaultPartitionSize), i64(kkrt.DefaultChunkRows), field(key)}, nil)
	if got := s.Message().Encoded(); !bytes.Equal(got, want) {
		t.Fatalf("hello statement:\n got %x\nwant %x", got, want)
	}
	base := s.Message().Encoded()
	for name, mut := range map[string]func(*nodeapi.OTHelloStatement){
		"job":      func(s *nodeapi.OTHelloStatement) { s.Job = "j2" },
		"spec":     func(s *nodeapi.OTHelloStatement) { s.SpecHash[0] ^= 1 },
		"attempt":  func(s *nodeapi.OTHelloStatement) { s.Attempt++ },
		"party":    func(s *nodeapi.OTHelloStatement) { s.Party = 2 },
		"peer":     func(s *nodeapi.OTHelloStatement) { s.Peer = 2 },
		"role":     func(s *nodeapi.OTHelloStatement) { s.Role = nodeapi.OTSender },
		"receiver": func(s *nodeapi.OTHelloStatement) { s.ReceiverSize++ },
		"sender":   func(s *nodeapi.OTHelloStatement) { s.SenderSize++ },
		"key":      func(s *nodeapi.OTHelloStatement) { s.Ephemeral = bytes.Repeat([]byte{8}, 32) },
	} {
		c := s
		mut(&c)
		if bytes.Equal(c.Message().Encoded(), base) {
			t.Errorf("the hello's signature does not cover its %s", name)
		}
	}
}

func TestOTCentre(t *testing.T) {
	for _, c := range []struct {
		lens []int
		want int
	}{{[]int{5, 3}, 1}, {[]int{3, 5}, 0}, {[]int{4, 4}, 0}, {[]int{9, 2, 2, 7}, 1}} {
		if got := nodeapi.OTCentre(c.lens); got != c.want {
			t.Errorf("OTCentre(%v) = %d, want %d", c.lens, got, c.want)
		}
	}
}

// The binary OT bodies round-trip, and the decoders refuse what they must.
func TestOTBinaryRoundTrip(t *testing.T) {
	h := nodeapi.Header{Job: "j1", SpecHash: sha256.Sum256([]byte("spec")), Step: nodeapi.StepOTDeliver, Attempt: 3, Party: 1}
	dq := &nodeapi.OTDeliverRequest{Header: h, Peer: 0, Frame: bytes.Repeat([]byte{7}, 1000)}
	b, err := dq.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if back, err := nodeapi.DecodeOTDeliverRequest(b); err != nil || !reflect.DeepEqual(back, dq) {
		t.Fatalf("deliver request: %v %#v", err, back)
	}
	h.Step = nodeapi.StepOTNext
	nq := &nodeapi.OTNextRequest{Header: h, Peer: 2}
	b, _ = nq.MarshalBinary()
	if back, err := nodeapi.DecodeOTNextRequest(b); err != nil || !reflect.DeepEqual(back, nq) {
		t.Fatalf("next request: %v %#v", err, back)
	}
	np := &nodeapi.OTNextResponse{Partition: 3, Chunk: 1, Frame: []byte{1, 2}, Outputs: [][]byte{{3}, {4, 5}}}
	b, _ = np.MarshalBinary()
	if back, err := nodeapi.DecodeOTNextResponse(b); err != nil || !reflect.DeepEqual(back, np) {
		t.Fatalf("next response: %v %#v", err, back)
	}
	dp := &nodeapi.OTDeliverResponse{Frame: []byte{9}, Values: [][]byte{{8}}}
	b, _ = dp.MarshalBinary()
	if back, err := nodeapi.DecodeOTDeliverResponse(b); err != nil || !reflect.DeepEqual(back, dp) {
		t.Fatalf("deliver response: %v %#v", err, back)
	}
	empty := &nodeapi.OTDeliverResponse{}
	b, _ = empty.MarshalBinary()
	if back, err := nodeapi.DecodeOTDeliverResponse(b); err != nil || !reflect.DeepEqual(back, empty) {
		t.Fatalf("empty deliver response: %v %#v", err, back)
	}
	// Refused: trailing bytes, truncation, another version, a frame on a
	// next request, a length past the end.
	good, _ := dq.MarshalBinary()
	nb, _ := nq.MarshalBinary()
	for name, bad := range map[string][]byte{
		"trailing":  append(bytes.Clone(good), 0),
		"truncated": good[:len(good)-1],
		"version":   append([]byte{2}, good[1:]...),
		"frame on next": func() []byte {
			b := bytes.Clone(nb)
			b = b[:len(b)-4]
			return append(b, 0, 0, 0, 1, 7)
		}(),
		"long field": append(bytes.Clone(nb[:len(nb)-4]), 0xff, 0xff, 0xff, 0xff),
	} {
		var err error
		if name == "frame on next" || name == "long field" {
			_, err = nodeapi.DecodeOTNextRequest(bad)
		} else {
			_, err = nodeapi.DecodeOTDeliverRequest(bad)
		}
		if !errors.Is(err, nodeapi.ErrOTWire) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzOTWire: the binary decoders never panic, and what they accept
// re-encodes to the same bytes (one encoding per value).
func FuzzOTWire(f *testing.F) {
	h := nodeapi.Header{Job: "j1", SpecHash: sha256.Sum256([]byte("spec")), Step: nodeapi.StepOTDeliver, Attempt: 3, Party: 1}
	for _, m := range []interface{ MarshalBinary() ([]byte, error) }{
		&nodeapi.OTDeliverRequest{Header: h, Peer: 0, Frame: []byte{1, 2, 3}},
		&nodeapi.OTNextRequest{Header: h, Peer: 0},
		&nodeapi.OTNextResponse{Partition: 1, Chunk: 2, Frame: []byte{4}, Outputs: [][]byte{{5}}},
		&nodeapi.OTDeliverResponse{Frame: []byte{6}, Values: [][]byte{{7}, {8}}},
	} {
		b, _ := m.MarshalBinary()
		for k := range 4 {
			f.Add(uint8(k), b)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		var m interface{ MarshalBinary() ([]byte, error) }
		var err error
		switch which % 4 {
		case 0:
			m, err = nodeapi.DecodeOTDeliverRequest(b)
		case 1:
			m, err = nodeapi.DecodeOTNextRequest(b)
		case 2:
			m, err = nodeapi.DecodeOTNextResponse(b)
		case 3:
			m, err = nodeapi.DecodeOTDeliverResponse(b)
		}
		if err != nil {
			return
		}
		again, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded but does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("two encodings of one value:\n%x\n%x", b, again)
		}
	})
}
