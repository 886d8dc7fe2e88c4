package node_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
)

// FuzzOTMessages hands arbitrary messages, decoded as the transport
// decodes them, to the OT steps of a node that has prepared, opened and
// accepted an OT session (so frames reach the channel's decoder): it must
// never panic, and every error must be a typed refusal, never an internal
// failure or an audit outage. which picks the step: open, accept, next,
// deliver.
func FuzzOTMessages(f *testing.F) {
	spec := policy.Spec{Type: policy.PSICardinality, Purpose: "p", PSIProtocol: policy.PSIProtocolOT,
		Inputs: []policy.Input{{Dataset: "a.x", Key: "id_number"}, {Dataset: "b.y", Key: "id_number"}}}
	h := spec.Hash()
	hash := hex.EncodeToString(h[:])
	cfgs, _ := nodetest.Configs(f, map[string][]int{"a.x": rng(0, 50), "b.y": rng(20, 60)}, nil)
	svc := map[string]*node.Service{}
	var c node.Caller
	for _, d := range []string{"a", "b"} {
		s, err := node.New(cfgs[d], node.Options{Audit: &audit.MemLog{}})
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { s.Close() })
		svc[d] = s
		if c, err = s.Authenticate(nodetest.Token, "fuzz"); err != nil {
			f.Fatal(err)
		}
	}
	ctx := context.Background()
	hdr := func(i int, st nodeapi.Step) nodeapi.Header {
		return nodeapi.Header{Job: "j1", SpecHash: h, Attempt: 1, Party: i, Step: st}
	}
	var lengths []nodeapi.SignedLength
	for i, d := range []string{"a", "b"} {
		r, err := svc[d].Prepare(ctx, c, &nodeapi.PrepareRequest{Header: hdr(i, nodeapi.StepPrepare), Spec: spec, Requester: alice, Input: i, Parties: 2, Consents: nil})
		if err != nil {
			f.Fatal(err)
		}
		lengths = append(lengths, r.Length)
	}
	// b (40 keys) is the receiver. b accepts a's hello; a keeps its session
	// open for the fuzzer's hellos and frames.
	ha, err := svc["a"].OTOpen(ctx, c, &nodeapi.OTOpenRequest{Header: hdr(0, nodeapi.StepOTOpen), Peer: 1, Lengths: lengths})
	if err != nil {
		f.Fatal(err)
	}
	hb, err := svc["b"].OTOpen(ctx, c, &nodeapi.OTOpenRequest{Header: hdr(1, nodeapi.StepOTOpen), Peer: 0, Lengths: lengths})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := svc["b"].OTAccept(ctx, c, &nodeapi.OTAcceptRequest{Header: hdr(1, nodeapi.StepOTAccept), Peer: 0, Hello: ha.Hello}); err != nil {
		f.Fatal(err)
	}
	lj, _ := json.Marshal(lengths)
	hj, _ := json.Marshal(hb.Hello)
	head := `{"job":"j1","spec_hash":"` + hash + `","attempt":1,"party":0,`
	for i, s := range []string{
		head + `"step":"psi.ot.open","peer":1,"lengths":` + string(lj) + `}`,
		head + `"step":"psi.ot.accept","peer":1,"hello":` + string(hj) + `}`,
		head + `"step":"psi.ot.next","peer":1}`,
		head + `"step":"psi.ot.deliver","peer":1,"frame":"` + base64.StdEncoding.EncodeToString(make([]byte, 40)) + `"}`,
		head + `"step":"psi.ot.accept","peer":1,"hello":{"party":1,"peer":0,"role":"receiver","receiver_size":40,"sender_size":50,"ephemeral":"AAAA","signature":"AAAA"}}`,
		head + `"step":"psi.ot.open","peer":0,"lengths":[]}`,
	} {
		f.Add(uint8(i%4), []byte(s))
	}
	steps := []func([]byte) error{step(c, svc["a"].OTOpen), step(c, svc["a"].OTAccept), step(c, svc["a"].OTNext), step(c, svc["a"].OTDeliver)}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		err := steps[int(which)%len(steps)](body)
		if err == nil {
			return
		}
		var e *node.Error
		if !errors.As(err, &e) {
			t.Fatalf("untyped error %T: %v", err, err)
		}
		if e.Kind == node.KindInternal || e.Kind == node.KindUnavailable {
			t.Fatalf("%v (%s): %v", e.Kind, e.Code, e)
		}
	})
}
