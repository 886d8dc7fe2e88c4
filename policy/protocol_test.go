package policy

import (
	"strings"
	"testing"
)

func psiSpec(proto string, n int) *Spec {
	s := &Spec{Type: PSICardinality, Purpose: "p", PSIProtocol: proto}
	for i := range n {
		s.Inputs = append(s.Inputs, Input{Dataset: string(rune('a'+i)) + ".x", Key: "id_number"})
	}
	return s
}

func TestPSIProtocolValidated(t *testing.T) {
	for _, p := range []string{"", PSIProtocolECDH, PSIProtocolOT} {
		if err := psiSpec(p, 2).Validate(); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
	if err := psiSpec("kkrt", 2).Validate(); err == nil || !strings.Contains(err.Error(), "psi_protocol") {
		t.Errorf("unknown protocol: %v", err)
	}
	agg := &Spec{Type: Aggregate, Purpose: "p", Inputs: []Input{{Dataset: "a.x"}}, Stats: []string{"count"}, PSIProtocol: PSIProtocolOT}
	if err := agg.Validate(); err == nil {
		t.Error("an aggregate job took a PSI protocol")
	}
	if _, err := DecodeSpec([]byte(`{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"a.x","key":"k"},{"dataset":"b.y","key":"k"}],"psi_protocol":"ot"}`)); err != nil {
		t.Errorf("decode: %v", err)
	}
}

// The protocol is part of the spec's hash, and a spec without one hashes
// as before the field existed (the encoding omits it): every job already
// bound at a node keeps its binding.
func TestPSIProtocolInHash(t *testing.T) {
	none, ecdh, ot := psiSpec("", 2), psiSpec(PSIProtocolECDH, 2), psiSpec(PSIProtocolOT, 2)
	if none.Hash() == ecdh.Hash() || ecdh.Hash() == ot.Hash() || none.Hash() == ot.Hash() {
		t.Fatal("the protocol does not change the spec hash")
	}
	if strings.Contains(string(none.Encode()), "psi_protocol") {
		t.Fatalf("encoding of a spec without a protocol: %s", none.Encode())
	}
}

func TestChoosePSIProtocol(t *testing.T) {
	half := AutoOTMinElements / 2
	for _, c := range []struct {
		spec *Spec
		lens []int
		want string
	}{
		{psiSpec("", 2), []int{half, half}, PSIProtocolOT},
		{psiSpec("", 2), []int{half, half - 1}, PSIProtocolECDH},
		{psiSpec("", 2), []int{10, AutoOTMinElements}, PSIProtocolOT},
		{psiSpec("", 2), []int{10, OTMaxSetSize + 1}, PSIProtocolECDH},
		{psiSpec("", 3), []int{1 << 20, 1 << 20, 1 << 20}, PSIProtocolECDH},
		{psiSpec(PSIProtocolOT, 3), []int{5, 5, 5}, PSIProtocolOT},
		{psiSpec(PSIProtocolECDH, 2), []int{1 << 20, 1 << 20}, PSIProtocolECDH},
	} {
		got, err := ChoosePSIProtocol(c.spec, c.lens)
		if err != nil || got != c.want {
			t.Errorf("%q %v: got %q, %v; want %q", c.spec.PSIProtocol, c.lens, got, err, c.want)
		}
	}
	if _, err := ChoosePSIProtocol(psiSpec("", 2), []int{1}); err == nil {
		t.Error("lengths of the wrong count accepted")
	}
}
