package nodeapi_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
)

func framedSamples() (*nodeapi.ElementsResponse, *nodeapi.ReblindRequest) {
	spec := policy.Spec{Type: policy.PSICardinality, Purpose: "p", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number"}, {Dataset: "b.y", Key: "id_number"}}}
	h := nodeapi.Header{Job: "j1", SpecHash: spec.Hash(), Step: nodeapi.StepReblind, Attempt: 3, Party: 1}
	els := bytes.Repeat([]byte{9, 8, 7, 6}, 3*32/4)
	length := nodeapi.SignedLength{List: 0, Len: 30, Signature: bytes.Repeat([]byte{3}, 64)}
	return &nodeapi.ElementsResponse{Elements: els, Proof: bytes.Repeat([]byte{4}, 64)},
		&nodeapi.ReblindRequest{Header: h, List: 0, Offset: 4, Elements: els, Proof: bytes.Repeat([]byte{5}, 64), Length: length}
}

// Every framed wire type, with every field set, round-trips; the points
// are the frame's last 32·n bytes, verbatim (what the signatures cover).
func TestPSIFrameRoundTrip(t *testing.T) {
	resp, req := framedSamples()
	b, err := resp.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[len(b)-len(resp.Elements):], resp.Elements) {
		t.Fatal("the points are not the frame's tail")
	}
	back, err := nodeapi.DecodeElementsResponse(b)
	if err != nil || !reflect.DeepEqual(back, resp) {
		t.Fatalf("ElementsResponse does not round-trip (%v):\n%#v\n%#v", err, resp, back)
	}
	b, err = req.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	rq, err := nodeapi.DecodeReblindRequest(b)
	if err != nil || !reflect.DeepEqual(rq, req) {
		t.Fatalf("ReblindRequest does not round-trip (%v):\n%#v\n%#v", err, req, rq)
	}
	// No points (the node refuses an empty chunk itself, as in JSON).
	empty := &nodeapi.ElementsResponse{Elements: []byte{}, Proof: []byte{1}}
	b, _ = empty.MarshalBinary()
	if back, err := nodeapi.DecodeElementsResponse(b); err != nil || len(back.Elements) != 0 {
		t.Fatalf("empty frame: %v %v", back, err)
	}
}

func TestPSIFrameEncodeRefuses(t *testing.T) {
	for _, els := range [][]byte{make([]byte, 31), make([]byte, 33), make([]byte, (nodeapi.MaxChunk+1)*32)} {
		if _, err := (&nodeapi.ElementsResponse{Elements: els}).MarshalBinary(); !errors.Is(err, nodeapi.ErrPSIWire) {
			t.Fatalf("%d bytes of elements framed: %v", len(els), err)
		}
	}
}

// Every body that is not exactly its frame is refused before its head is
// decoded: truncated, extended, re-framed, oversized, or another version.
func TestPSIFrameDecodeRefuses(t *testing.T) {
	_, req := framedSamples()
	good, err := req.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	hlen := int(binary.BigEndian.Uint32(good[5:9]))
	head := good[9 : 9+hlen]
	frame := func(version byte, n, hl uint32, rest ...[]byte) []byte {
		b := append([]byte{version}, binary.BigEndian.AppendUint32(nil, n)...)
		b = binary.BigEndian.AppendUint32(b, hl)
		return append(b, bytes.Join(rest, nil)...)
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, b := range map[string][]byte{
		"empty":                         {},
		"prefix only":                   good[:9],
		"truncated by a byte":           good[:len(good)-1],
		"truncated by a point":          good[:len(good)-32],
		"extended by a byte":            append(bytes.Clone(good), 0),
		"extended by a point":           append(bytes.Clone(good), make([]byte, 32)...),
		"n one more":                    mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[1:5], 4); return b }),
		"n one less":                    mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[1:5], 2); return b }),
		"n beyond MaxChunk":             mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[1:5], nodeapi.MaxChunk+1); return b }),
		"n 2^32-1":                      mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[1:5], 1<<32-1); return b }),
		"head length off by one":        mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[5:9], uint32(hlen+1)); return b }),
		"head length 2^32-1":            mutate(func(b []byte) []byte { binary.BigEndian.PutUint32(b[5:9], 1<<32-1); return b }),
		"version 2":                     mutate(func(b []byte) []byte { b[0] = 2; return b }),
		"re-framed: a point into head":  frame(1, 2, uint32(hlen+32), head, req.Elements),
		"head with elements":            frame(1, 0, uint32(len(`{"elements":"AA=="}`)), []byte(`{"elements":"AA=="}`)),
		"head with an unknown field":    frame(1, 0, 12, []byte(`{"debug":1} `)),
		"head with trailing data":       frame(1, 0, 4, []byte(`{}{}`)),
		"head not JSON":                 frame(1, 0, 3, []byte(`abc`)),
		"head truncated JSON":           frame(1, 0, 5, []byte(`{"job`)),
		"oversized head, declared only": frame(1, 0, 1<<20),
	} {
		t.Run(name, func(t *testing.T) {
			if r, err := nodeapi.DecodeReblindRequest(b); !errors.Is(err, nodeapi.ErrPSIWire) {
				t.Fatalf("accepted (%v): %+v", err, r)
			}
			if r, err := nodeapi.DecodeElementsResponse(b); !errors.Is(err, nodeapi.ErrPSIWire) {
				t.Fatalf("accepted as a response (%v): %+v", err, r)
			}
		})
	}
}

// FuzzPSIFrame: the frame decoders never panic; what they accept has
// exactly its declared length, and re-encodes to a frame that decodes to
// the same value.
func FuzzPSIFrame(f *testing.F) {
	resp, req := framedSamples()
	rb, _ := resp.MarshalBinary()
	qb, _ := req.MarshalBinary()
	f.Add(uint8(0), rb)
	f.Add(uint8(1), qb)
	f.Add(uint8(1), qb[:len(qb)-1])
	f.Add(uint8(0), append(bytes.Clone(rb), 0))
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		if which%2 == 0 {
			r, err := nodeapi.DecodeElementsResponse(b)
			if err != nil {
				return
			}
			if len(r.Elements)%32 != 0 || uint32(len(r.Elements)/32) != binary.BigEndian.Uint32(b[1:5]) {
				t.Fatalf("accepted %d bytes of points for a declared %d", len(r.Elements), binary.BigEndian.Uint32(b[1:5]))
			}
			again, err := r.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			r2, err := nodeapi.DecodeElementsResponse(again)
			if err != nil || !reflect.DeepEqual(r, r2) {
				t.Fatalf("re-encoding changed the value (%v)", err)
			}
			return
		}
		r, err := nodeapi.DecodeReblindRequest(b)
		if err != nil {
			return
		}
		if len(r.Elements)%32 != 0 || len(b) < 9+len(r.Elements) {
			t.Fatalf("accepted %d bytes of points", len(r.Elements))
		}
		again, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		r2, err := nodeapi.DecodeReblindRequest(again)
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("re-encoding changed the value (%v)", err)
		}
	})
}
