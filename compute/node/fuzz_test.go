package node_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/policy"
)

// FuzzServiceMessages hands arbitrary messages, decoded as the transport
// decodes them, to every protocol step of the Service directly (no HTTP):
// it must never panic, and every error must be a typed refusal, never an
// internal failure or an audit outage. Its inputs have the shape of
// nodehttp's FuzzProtocolMessages (the steps in the same order), whose
// corpus seeds this one.
func FuzzServiceMessages(f *testing.F) {
	const spec = `{"type":"psi_members","purpose":"p","inputs":[{"dataset":"hrss.benefits","key":"id_number"},{"dataset":"x.y","key":"id_number"}]}`
	var sp policy.Spec
	if err := json.Unmarshal([]byte(spec), &sp); err != nil {
		f.Fatal(err)
	}
	h := sp.Hash()
	hash := hex.EncodeToString(h[:])
	for i, s := range []string{
		`{"job":"j1","spec_hash":"` + hash + `","step":"psi.prepare","attempt":1,"party":0,"spec":` + spec + `,"requester":{"user":"a","department":"hrss"},"input":0,"parties":2}`,
		`{"job":"j1","spec_hash":"` + hash + `","step":"psi.own","attempt":1,"party":0,"offset":0,"n":5}`,
		`{"job":"j1","spec_hash":"` + hash + `","step":"psi.reblind","attempt":1,"party":0,"list":1,"offset":0,"elements":"AAAA","proof":"AAAA","length":{"list":1,"len":5,"signature":"AAAA"}}`,
		`{"job":"j1","spec_hash":"` + hash + `","step":"psi.members","attempt":1,"party":0,"positions":[0,1],"recipient":"a","recipient_key":""}`,
		`{"job":"j1","step":"job.finish","attempt":1,"party":0,"outcome":"ok"}`,
		`{"job":"j1","step":"job.outcome","attempt":1,"party":0,"outcome":"released","datasets":["hrss.benefits"]}`,
		`{"ceremony":"c1","step":"keys.begin","params":"sums","nodes":["hrss","b"],"threshold":2}`,
		`{"ceremony":"c1","step":"keys.shares","params":"sums","nodes":["hrss","b"],"threshold":2,"hpke_public_keys":{"hrss":"AAAA"}}`,
		`{"ceremony":"c1","step":"keys.finish","params":"sums","public_key_shares":{"hrss":"AAAA"}}`,
		`{"job":"j1","step":"he.groups","attempt":1,"party":0,"spec":{"type":"aggregate","purpose":"p","inputs":[{"dataset":"hrss.benefits"}],"group_by":{"dataset":"hrss.benefits","column":"district"},"stats":["count"]},"requester":{"user":"a","department":"hrss"},"input":0}`,
		`{"job":"j1","step":"he.aggregate","attempt":1,"party":0,"spec":{"type":"aggregate","purpose":"p","inputs":[{"dataset":"hrss.benefits"}],"stats":["count"]},"requester":{"user":"a","department":"hrss"},"input":0,"max_rows":10}`,
		`{"job":"j1","step":"he.values","attempt":1,"party":0,"offset":0,"count":1}`,
		`{"job":"j1","step":"he.zeromask","attempt":1,"party":0,"params":"sums","count":1}`,
		`{"job":"j1","step":"he.release","attempt":1}`,
		`{"job":"j1","spec_hash":"` + hash + `","step":"psi.deliver","attempt":1,"party":0,"approval":{"statement":{"job":"j1","spec_hash":"` + hash + `","requester":{"user":"a","department":"hrss"},"result_sha256":"` + hash + `","reviewer":"rita","at":"2026-01-01T00:00:00Z"},"signature":"AAAA"},"result":"e30="}`,
	} {
		f.Add(uint8(i), []byte(s))
	}
	// The signed ceremony messages and the release of a job's output (the
	// step index as above).
	for _, seed := range []struct {
		step uint8
		body string
	}{
		{7, `{"ceremony":"c1","step":"keys.shares","params":"sums","nodes":["hrss","b"],"threshold":2,"hpke_public_keys":{"hrss":"AAAA","b":"AAAA"},"hpke_signatures":{"hrss":"AAAA"}}`},
		{8, `{"ceremony":"c1","step":"keys.finish","params":"sums","public_key_shares":{"hrss":"AAAA"},"public_key_share_signatures":{"hrss":"AAAA"},"sealed_shares":{"b":"AAAA"},"sealed_share_signatures":{"b":""}}`},
		{13, `{"job":"j1","spec_hash":"0000000000000000000000000000000000000000000000000000000000000000","step":"he.release","attempt":1,"spec":{"type":"aggregate","purpose":"p","inputs":[{"dataset":"hrss.benefits"}],"stats":["count"]},"requester":{"user":"a","department":"hrss"},"output":0,"params":"sums","active":["hrss","b"],"level":2,"release_key":"AAAA","contributions":[{"input":0,"ciphertext":"AAAA","signature":"AAAA"}]}`},
		{13, `{"job":"j1","step":"he.release","attempt":1,"spec":{"type":"intersection_stats","purpose":"p","inputs":[{"dataset":"hrss.benefits","key":"id_number"},{"dataset":"x.y","key":"id_number"}],"value":{"dataset":"hrss.benefits","column":"amount"},"stats":["sum"]},"requester":{"user":"a","department":"hrss"},"output":4,"params":"sums","active":["hrss"],"level":2,"ciphertext":"AAAA","release_key":"AAAA","layout":{"groups":2,"chunks":3,"signature":"AAAA"}}`},
	} {
		f.Add(seed.step, []byte(seed.body))
	}
	cfgs, _ := nodetest.Configs(f, map[string][]int{"hrss.benefits": rng(0, 5)}, nil)
	s, err := node.New(cfgs["hrss"], node.Options{Audit: &audit.MemLog{}})
	if err != nil {
		f.Fatal(err)
	}
	c, err := s.Authenticate(nodetest.Token, "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	steps := []func([]byte) error{
		step(c, s.Prepare), step(c, s.Own), step(c, s.Reblind), step(c, s.Members), step(c, s.Finish), step(c, s.Outcome),
		step(c, s.KeysBegin), step(c, s.KeysShares), step(c, s.KeysFinish), step(c, s.HEGroups), step(c, s.HEAggregate),
		step(c, s.HEValues), step(c, s.HEZeroMask), step(c, s.HERelease), step(c, s.Deliver),
	}
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

// step decodes a body strictly into the method's request (a body the
// transport would refuse is skipped) and calls the method.
func step[Req, Resp any](c node.Caller, method func(context.Context, node.Caller, *Req) (*Resp, error)) func([]byte) error {
	return func(body []byte) error {
		var req Req
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if dec.Decode(&req) != nil {
			return nil
		}
		_, err := method(context.Background(), c, &req)
		return err
	}
}
