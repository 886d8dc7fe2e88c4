package nodeapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/policy/disclosure"
)

// Every PSI wire type, with every field set, encodes to JSON and decodes
// back (strictly, as the node's transport decodes) to the same value.
func TestPSIWireTypesRoundTrip(t *testing.T) {
	spec := policy.Spec{Type: policy.PSIMembers, Purpose: "p", Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number", Filter: "amount > 1"}, {Dataset: "b.y", Key: "id_number"}}}
	h := nodeapi.Header{Job: "j1", SpecHash: spec.Hash(), Step: nodeapi.StepReblind, Attempt: 3, Party: 1}
	req := policy.Requester{User: "alice", Department: "a"}
	until := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	consent := attest.SignedConsent{Statement: &attest.Consent{JobRef: attest.Ref("j1", &spec, req), Dataset: "a.x", Approve: true, Reason: "ok", Until: until, Owner: "cora"}, Signature: bytes.Repeat([]byte{1}, 64)}
	approval := &attest.SignedApproval{Statement: &attest.Approval{JobRef: attest.Ref("j1", &spec, req), Result: sha256.Sum256([]byte("r")), Recipient: sha256.Sum256([]byte("k")), Reviewer: "rita", At: until}, Signature: bytes.Repeat([]byte{2}, 64)}
	length := nodeapi.SignedLength{List: 1, Len: 30, Signature: bytes.Repeat([]byte{3}, 64)}
	for _, v := range []any{
		&nodeapi.PrepareRequest{Header: h, Spec: spec, Requester: req, Input: 1, Parties: 2, Consents: []attest.SignedConsent{consent}},
		&nodeapi.PrepareResponse{Len: 30, InvalidIDs: 2, Length: length, Overlaps: []disclosure.Overlap{{Job: "j0", Dataset: "a.x", Difference: 1}}},
		&nodeapi.OwnRequest{Header: h, Offset: 4, N: 5},
		&nodeapi.ElementsResponse{Elements: bytes.Repeat([]byte{9}, 64), Proof: bytes.Repeat([]byte{4}, 64)},
		&nodeapi.ReblindRequest{Header: h, List: 0, Offset: 4, Elements: bytes.Repeat([]byte{9}, 64), Proof: bytes.Repeat([]byte{4}, 64), Length: length},
		&nodeapi.MembersRequest{Header: h, Positions: []int{1, 5}, RecipientKey: []byte{7, 7}, Recipient: "alice"},
		&nodeapi.MembersResponse{Count: 2, SealedSHA256: sha256.Sum256([]byte("sealed"))},
		&nodeapi.DeliverRequest{Header: h, Approval: approval, Result: []byte(`{"count": 2, "note": "<exact bytes>"}`)},
		&nodeapi.DeliverResponse{Ciphertext: []byte{5, 6}},
		&nodeapi.HEAggregateResponse{Sums: []byte{1}, SumsSignature: []byte{2}, Squares: []byte{3}, SquaresSignature: []byte{4}, Overlaps: []disclosure.Overlap{{Job: "j0", Dataset: "a.x", Difference: 3}}},
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

// field is one length-prefixed field of a statement's encoding, written
// out by hand (not with attest.Message) so the encoding is pinned.
func field(b []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...)
}

func i64(v int64) []byte { return field(binary.BigEndian.AppendUint64(nil, uint64(v))) }

// The bytes the nodes sign for a chunk and a length: a node of another
// version must produce exactly these, or its peers refuse its chunks.
func TestPSIStatementEncodings(t *testing.T) {
	hash := sha256.Sum256([]byte("spec"))
	digest := sha256.Sum256([]byte("elements"))
	ref := nodeapi.JobRef{Job: "j1", SpecHash: hash, Attempt: 2}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	chunk := nodeapi.ChunkStatement{JobRef: ref, List: 1, Hop: 2, Offset: 4096, N: 100, Elements: digest}
	want := cat(field([]byte("unseen/node/psi-chunk/v1")), field([]byte("j1")), field(hash[:]), i64(2), i64(1), i64(2), i64(4096), i64(100), field(digest[:]))
	if got := chunk.Message().Encoded(); !bytes.Equal(got, want) {
		t.Fatalf("chunk statement:\n got %x\nwant %x", got, want)
	}
	l := nodeapi.LengthStatement{JobRef: ref, List: 1, Len: 65536}
	want = cat(field([]byte("unseen/node/psi-length/v1")), field([]byte("j1")), field(hash[:]), i64(2), i64(1), i64(65536))
	if got := l.Message().Encoded(); !bytes.Equal(got, want) {
		t.Fatalf("length statement:\n got %x\nwant %x", got, want)
	}
}
