package nodeapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
)

// Every homomorphic wire type whose shape the exact statistics changed,
// with every field set, round-trips through JSON (strictly decoded).
func TestHEWireTypesRoundTrip(t *testing.T) {
	spec := policy.Spec{Type: policy.Aggregate, Purpose: "p", Stats: []string{"sum", "variance"},
		Inputs: []policy.Input{{Dataset: "a.x", Value: "allowance_fen", Filter: "district = 'x'"}, {Dataset: "b.y", Value: "monthly_allowance_fen"}}}
	h := nodeapi.Header{Job: "j1", SpecHash: spec.Hash(), Step: nodeapi.StepHEAggregate, Attempt: 2, Party: 1}
	req := policy.Requester{User: "alice", Department: "a"}
	lanes := make([][]byte, he.ISLanes)
	for l := range lanes {
		lanes[l] = bytes.Repeat([]byte{byte(l + 1)}, 8)
	}
	for _, v := range []any{
		&nodeapi.HEAggregateRequest{Header: h, Spec: spec, Requester: req, Input: 1, Groups: []string{"a", "b"}, MaxRows: he.MaxJobRows},
		&nodeapi.HEAggregateResponse{Sums: []byte{1}, SumsSignature: []byte{2}, Squares: []byte{3}, SquaresSignature: []byte{4}},
		&nodeapi.HEValuesRequest{Header: h, Offset: 3, Count: 4, Squares: true},
		&nodeapi.HEValuesResponse{Total: 9, Groups: []string{"", "x"}, LayoutSignature: []byte{5},
			Chunks: []nodeapi.HEValuesChunk{{Index: 3, Group: 1, Positions: []int{0, -1, 7}, Lanes: lanes}}},
		&nodeapi.HEReleaseRequest{Header: h, Spec: spec, Requester: req, Output: 11, Params: he.NameSquares, Active: []string{"a", "b"}, Level: 2,
			Ciphertext: []byte{6}, ReleaseKey: []byte{7}, Contributions: []nodeapi.HEContribution{{Input: 1, Ciphertext: []byte{8}, Signature: []byte{9}}},
			Layout: &nodeapi.HELayout{Groups: 2, Chunks: 9, Signature: []byte{10}}},
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

// The layout statement is v2 (six outputs per group): a v1 signature,
// made when a group had three, does not verify as a v2 one.
func TestLayoutStatementEncoding(t *testing.T) {
	hash := sha256.Sum256([]byte("spec"))
	s := nodeapi.LayoutStatement{JobRef: nodeapi.JobRef{Job: "j1", SpecHash: hash, Attempt: 2}, Groups: 3, Chunks: 40}
	want := bytes.Join([][]byte{field([]byte("unseen/node/he-layout/v2")), field([]byte("j1")), field(hash[:]), i64(2), i64(3), i64(40)}, nil)
	if got := s.Message().Encoded(); !bytes.Equal(got, want) {
		t.Fatalf("layout statement:\n got %x\nwant %x", got, want)
	}
}
