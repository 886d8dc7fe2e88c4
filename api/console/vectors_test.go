package console

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

// Vectors are what canon.js must reproduce byte for byte, made by the Go
// code the nodes run. The browser test (cmd/unseen, TestConsole) runs
// canon.js over them in Chromium.
type Vectors struct {
	Strings   []StringVector  `json:"strings"`
	Specs     []SpecVector    `json:"specs"`
	Approvals []MessageVector `json:"approvals"`
	Consents  []MessageVector `json:"consents"`
	Raw       []RawVector     `json:"raw"`
	Key       KeyVector       `json:"key"`
}

type StringVector struct {
	In  string `json:"in"`
	Out string `json:"out"` // Go's json.Marshal of In
}

type SpecVector struct {
	// Shown is the spec as a coordinator might show it: another field
	// order, indented, with a field Go's decoder ignores.
	Shown     string `json:"shown"`
	Canonical string `json:"canonical"` // policy.Spec.Encode
	Hash      string `json:"hash"`      // policy.Spec.Hash, hex
}

type MessageVector struct {
	Statement json.RawMessage `json:"statement"` // as Go marshals it
	Message   string          `json:"message"`   // hex of Message()
	Signature string          `json:"signature"` // hex, by Key
}

type RawVector struct {
	Doc  string   `json:"doc"`
	Path []string `json:"path"`
	Raw  *string  `json:"raw"` // json.RawMessage after decoding Doc; nil: absent
}

type KeyVector struct {
	PEM         string `json:"pem"`
	Public      string `json:"public"` // attest.FormatPublicKey
	Fingerprint string `json:"fingerprint"`
}

func testKey() ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("unseen console test vectors"))
	return ed25519.NewKeyFromSeed(seed[:])
}

func strp(s string) *string { return &s }

func makeVectors(t *testing.T) *Vectors {
	v := &Vectors{}
	tricky := []string{
		"", "plain", `quote " and backslash \`, "<script>&amp;</script>", "line\u2028sep\u2029para",
		"tab\tnl\ncr\rbs\bff\f", "\x00\x01\x1f\x7f", "天河区 低保 ≥ 1500", "emoji 😀 and U+FFFD \ufffd",
		"district = '天河区' AND monthly_benefit_fen > 150000", "it''s", "/slash/ and ~tilde",
	}
	for c := 0; c < 0x20; c++ {
		tricky = append(tricky, string(rune(c)))
	}
	for _, s := range tricky {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		v.Strings = append(v.Strings, StringVector{In: s, Out: string(b)})
	}

	specs := []policy.Spec{
		{Type: policy.PSICardinality, Purpose: "Eligibility audit <2026> & Q4", Inputs: []policy.Input{
			{Dataset: "hrss.unemployment_benefits", Key: "id_number", Filter: "district = '天河区' AND monthly_benefit_fen > 150000"},
			{Dataset: "housing.property_owners", Key: "id_number"},
		}},
		{Type: policy.IntersectionStats, Purpose: "per district\u2028with a line separator", Inputs: []policy.Input{
			{Dataset: "a.x", Key: "id_number", Filter: "name IN ('O''Brien', 'x<y')"}, {Dataset: "b.y", Key: "id_number"},
		}, Value: &policy.ColumnRef{Dataset: "a.x", Column: "amount"}, Stats: []string{"count", "sum", "mean"}, GroupBy: &policy.ColumnRef{Dataset: "a.x", Column: "district"}},
		{Type: policy.Aggregate, Purpose: "histogram, large edges", Inputs: []policy.Input{{Dataset: "civil.allowance"}},
			Value: &policy.ColumnRef{Column: "fen"}, Stats: []string{"count", "histogram"},
			Bins: []int64{-9223372036854775808, -1, 0, 100000, 9007199254740993, 9223372036854775807}},
		{Type: policy.PSIMembers, Purpose: "empty stats are left out", Inputs: []policy.Input{{Dataset: "a.x", Key: "k"}, {Dataset: "b.y", Key: "k"}}, Stats: []string{}, Bins: []int64{}},
	}
	for _, s := range specs {
		shown := map[string]any{"bins": s.Bins, "group_by": s.GroupBy, "value": s.Value, "stats": s.Stats, "inputs": s.Inputs, "purpose": s.Purpose, "type": s.Type, "ignored_by_go": []int{1, 2}}
		if s.GroupBy == nil {
			shown["group_by"] = nil
		}
		if s.Value == nil {
			shown["value"] = nil
		}
		b, err := json.MarshalIndent(shown, "", "   ")
		if err != nil {
			t.Fatal(err)
		}
		h := s.Hash()
		v.Specs = append(v.Specs, SpecVector{Shown: string(b), Canonical: string(s.Encode()), Hash: hex.EncodeToString(h[:])})
	}

	priv := testKey()
	pem, err := attest.MarshalPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	v.Key = KeyVector{PEM: string(pem), Public: attest.FormatPublicKey(pub), Fingerprint: attest.Fingerprint(pub)}
	at := time.Date(2026, 3, 1, 9, 30, 15, 0, time.UTC)
	ref := attest.Ref("j_abcdefghijklmnopqrstuvwxyz", &specs[1], policy.Requester{User: "alice", Department: "hrss"})
	approvals := []*attest.Approval{
		{JobRef: ref, Result: sha256.Sum256([]byte(`{"count":42}`)), Reviewer: "rita", At: at},
		{JobRef: ref, Result: sha256.Sum256([]byte(`{"count":7,"sealed_sha256":"00"}`)), Recipient: sha256.Sum256([]byte("analyst key")), Reviewer: "审核人", At: at.Add(-400 * 24 * time.Hour)},
	}
	for _, a := range approvals {
		s, err := attest.SignApproval(priv, a)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := json.Marshal(s.Statement)
		v.Approvals = append(v.Approvals, MessageVector{Statement: st, Message: hex.EncodeToString(a.Message()), Signature: hex.EncodeToString(s.Signature)})
	}
	consents := []*attest.Consent{
		{JobRef: ref, Dataset: "civil.allowance", Approve: true, Reason: "within our agreement <§3>", Until: at.Add(30 * 24 * time.Hour), Owner: "cora"},
		{JobRef: ref, Dataset: "civil.allowance", Approve: false, Until: at, Owner: "cora"},
	}
	for _, c := range consents {
		s, err := attest.SignConsent(priv, c)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := json.Marshal(s.Statement)
		v.Consents = append(v.Consents, MessageVector{Statement: st, Message: hex.EncodeToString(c.Message()), Signature: hex.EncodeToString(s.Signature)})
	}

	docs := []struct {
		doc  string
		path []string
	}{
		{`{"job":{"id":"x","spec":{"type":"t"}},"review":{"result":{"count":42,"groups":{"天河区":{"suppressed":"fewer than k = 10 rows"}}},"checks":[]}}`, []string{"review", "result"}},
		{"{ \"review\" : { \"checks\" : [ {\"result\":1} ], \"result\" :\n  { \"a\" : [1, 2.5e3, -0, true, null, \"}\\\"{\"] } } }", []string{"review", "result"}},
		{`{"review":{"result":1},"review":{"result":"last one wins"}}`, []string{"review", "result"}},
		{`{"result":{"count":1},"review":{"checks":null}}`, []string{"review", "result"}},
		{`{"job":{"spec":{"type":"psi_members","inputs":[{"dataset":"a.x"}]},"id":"j"}}`, []string{"job", "spec"}},
		{`{"spec":{"bins":[9007199254740993]}}`, []string{"spec"}},
	}
	for _, d := range docs {
		var holder map[string]json.RawMessage
		if err := json.Unmarshal([]byte(d.doc), &holder); err != nil {
			t.Fatal(err)
		}
		var raw *string
		cur := holder
		for i, k := range d.path {
			r, ok := cur[k]
			if !ok {
				break
			}
			if i == len(d.path)-1 {
				raw = strp(string(r))
				break
			}
			cur = nil
			if err := json.Unmarshal(r, &cur); err != nil || cur == nil {
				break
			}
		}
		v.Raw = append(v.Raw, RawVector{Doc: d.doc, Path: d.path, Raw: raw})
	}
	return v
}

// TestVectorsCurrent fails when testdata/vectors.json is not what the Go
// code makes today (go test ./api/console -run Vectors -update rewrites it).
func TestVectorsCurrent(t *testing.T) {
	want, err := json.MarshalIndent(makeVectors(t), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	path := filepath.Join("testdata", "vectors.json")
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s is stale: run go test ./api/console -run Vectors -update", path)
	}
}

// TestVectorsBite: the vectors would catch an encoder that forgot Go's
// HTML escaping or its omitempty rules.
func TestVectorsBite(t *testing.T) {
	v := makeVectors(t)
	found := map[string]bool{}
	for _, s := range v.Strings {
		for _, esc := range []string{`\u003c`, `\u0026`, `\u2028`, `\u0000`, `\b`, `\f`} {
			if json.Valid([]byte(s.Out)) && contains(s.Out, esc) {
				found[esc] = true
			}
		}
	}
	if len(found) != 6 {
		t.Fatalf("string vectors cover only %v", found)
	}
	if contains(v.Specs[3].Canonical, `"stats"`) || contains(v.Specs[3].Canonical, `"bins"`) {
		t.Fatalf("empty stats and bins should be left out: %s", v.Specs[3].Canonical)
	}
	if !contains(v.Specs[2].Canonical, "9007199254740993") {
		t.Fatalf("a bin past 2^53 must stay exact: %s", v.Specs[2].Canonical)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
