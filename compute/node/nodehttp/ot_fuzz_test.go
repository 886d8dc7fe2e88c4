package nodehttp_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/unseen-data/unseen/compute/nodeapi"
)

// FuzzOTEndpoints sends arbitrary bodies to the OT protocol's endpoints of
// a real node: it must never panic or answer 5xx, and every answer is JSON.
func FuzzOTEndpoints(f *testing.F) {
	paths := []string{nodeapi.PathOTOpen, nodeapi.PathOTAccept, nodeapi.PathOTNext, nodeapi.PathOTDeliver}
	for i, s := range []string{
		`{"job":"j1","spec_hash":"0000000000000000000000000000000000000000000000000000000000000000","step":"psi.ot.open","attempt":1,"party":0,"peer":1,"lengths":[{"list":0,"len":1,"signature":"AAAA"},{"list":1,"len":5,"signature":"AAAA"}]}`,
		`{"job":"j1","step":"psi.ot.accept","attempt":1,"party":0,"peer":1,"hello":{"party":1,"peer":0,"role":"receiver","receiver_size":1,"sender_size":1,"ephemeral":"AAAA","signature":"AAAA"}}`,
		`{"job":"j1","step":"psi.ot.next","attempt":1,"party":0,"peer":1}`,
		`{"job":"j1","step":"psi.ot.deliver","attempt":1,"party":0,"peer":1,"frame":"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="}`,
		`{}`, `null`, `{"frame":`,
	} {
		f.Add(uint8(i), []byte(s))
	}
	// The binary bodies of next and deliver.
	hd := nodeapi.Header{Job: "j1", Step: nodeapi.StepOTDeliver, Attempt: 1}
	dq, _ := (&nodeapi.OTDeliverRequest{Header: hd, Peer: 1, Frame: make([]byte, 40)}).MarshalBinary()
	hd.Step = nodeapi.StepOTNext
	nq, _ := (&nodeapi.OTNextRequest{Header: hd, Peer: 1}).MarshalBinary()
	f.Add(uint8(3), dq)
	f.Add(uint8(2), nq)
	h := fuzzNode(f)
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		path := paths[int(which)%len(paths)]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer fuzz")
		if path == nodeapi.PathOTNext || path == nodeapi.PathOTDeliver {
			req.Header.Set("Content-Type", nodeapi.OTContentType)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s answered %d: %s", path, rec.Code, rec.Body.String())
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" && !(rec.Code == 200 && ct == nodeapi.OTContentType) {
			t.Fatalf("%s answered content type %q", path, ct)
		}
	})
}
