package ceremony

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/heint"
	"github.com/tuneinsight/lattigo/v5/mhe"

	"github.com/unseen-data/unseen/compute/he"
)

func testParams(t testing.TB) *he.ParamSet {
	ps, err := he.InsecureTestParams(he.NameInsecureTestParamsSums)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func hpkeKeys(t testing.TB, ids ...NodeID) (map[NodeID]*HPKEKeyPair, map[NodeID][]byte) {
	kps, pubs := map[NodeID]*HPKEKeyPair{}, map[NodeID][]byte{}
	for _, id := range ids {
		kp, err := NewHPKEKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		kps[id], pubs[id] = kp, kp.Public()
	}
	return kps, pubs
}

func TestSetupValidation(t *testing.T) {
	ps := testParams(t)
	_, pubs := hpkeKeys(t, "a", "b", "c")
	ok := []NodeID{"c", "a", "b"}
	s, err := NewSetup("cer-1", ps, ok, 2, pubs)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Nodes(); got[0] != "a" || got[2] != "c" {
		t.Fatalf("roster not sorted: %v", got)
	}
	for i, p := range s.Points() {
		id, _ := s.NodeAt(p)
		if p == 0 || id != s.Nodes()[i] {
			t.Fatal("bad Shamir point mapping")
		}
	}
	cases := map[string]func() (*Setup, error){
		"bad ceremony id":  func() (*Setup, error) { return NewSetup("a b", ps, ok, 2, pubs) },
		"empty id":         func() (*Setup, error) { return NewSetup("", ps, ok, 2, pubs) },
		"duplicate node":   func() (*Setup, error) { return NewSetup("c", ps, []NodeID{"a", "a", "b"}, 2, pubs) },
		"bad node id":      func() (*Setup, error) { return NewSetup("c", ps, []NodeID{"a", "b", "c/d"}, 2, pubs) },
		"threshold 0":      func() (*Setup, error) { return NewSetup("c", ps, ok, 0, pubs) },
		"threshold > N":    func() (*Setup, error) { return NewSetup("c", ps, ok, 4, pubs) },
		"threshold 1 of 3": func() (*Setup, error) { return NewSetup("c", ps, ok, 1, pubs) },
		"missing hpke":     func() (*Setup, error) { return NewSetup("c", ps, []NodeID{"a", "b", "d"}, 2, pubs) },
		"bad hpke": func() (*Setup, error) {
			bad := map[NodeID][]byte{"a": pubs["a"], "b": pubs["b"], "c": {1, 2, 3}}
			return NewSetup("c", ps, ok, 2, bad)
		},
		"no nodes": func() (*Setup, error) { return NewSetup("c", ps, nil, 1, nil) },
	}
	for name, f := range cases {
		if _, err := f(); !errors.Is(err, ErrSetup) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCRSDeterministic(t *testing.T) {
	read := func(id, label string) []byte {
		p, err := CRS(id, label)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 64)
		io.ReadFull(p, b)
		return b
	}
	if !bytes.Equal(read("c1", "ckg"), read("c1", "ckg")) {
		t.Fatal("CRS not deterministic")
	}
	if bytes.Equal(read("c1", "ckg"), read("c2", "ckg")) || bytes.Equal(read("c1", "ckg"), read("c1", "rkg")) {
		t.Fatal("CRS does not depend on ceremony id and label")
	}
}

// sumKeys adds additive shares into the collective secret (test only).
func sumKeys(ps *he.ParamSet, shares []*rlwe.SecretKey) *rlwe.SecretKey {
	params := ps.Params()
	out := rlwe.NewSecretKey(params)
	for _, s := range shares {
		params.RingQP().Add(out.Value, s.Value, out.Value)
	}
	return out
}

func decryptsWith(t *testing.T, ps *he.ParamSet, cpk *he.PublicKey, sk *rlwe.SecretKey) bool {
	t.Helper()
	enc, _ := he.NewEncryptor(cpk)
	want := []int64{42, -7, 1 << 30}
	ct, err := enc.Encrypt(want, 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := he.NewDecoder(ps).Int64s(heint.NewDecryptor(ps.Params(), sk).DecryptNew(ct.RLWE()))
	if err != nil {
		t.Fatal(err)
	}
	return got[0] == want[0] && got[1] == want[1] && got[2] == want[2]
}

func TestCeremonyThresholds(t *testing.T) {
	ps := testParams(t)
	for _, c := range []struct{ n, t int }{{3, 3}, {3, 2}, {4, 2}, {1, 1}} {
		ids := []NodeID{"n1", "n2", "n3", "n4"}[:c.n]
		s, keys, cpk, err := RunInProcess("cer", ps, ids, c.t)
		if err != nil {
			t.Fatal(err)
		}
		if s.Thresholdized() != (c.t < c.n) {
			t.Fatal("thresholdized flag")
		}
		// Every t-subset reconstructs the collective secret.
		var subsets [][]mhe.ShamirPublicPoint
		var rec func(start int, cur []mhe.ShamirPublicPoint)
		rec = func(start int, cur []mhe.ShamirPublicPoint) {
			if len(cur) == c.t {
				subsets = append(subsets, append([]mhe.ShamirPublicPoint(nil), cur...))
				return
			}
			for i := start; i < c.n; i++ {
				rec(i+1, append(cur, mhe.ShamirPublicPoint(i+1)))
			}
		}
		rec(0, nil)
		for _, act := range subsets {
			var shares []*rlwe.SecretKey
			for _, p := range act {
				id, _ := s.NodeAt(p)
				sh, err := keys[id].AdditiveShare(act)
				if err != nil {
					t.Fatal(err)
				}
				shares = append(shares, sh)
			}
			if !decryptsWith(t, ps, cpk, sumKeys(ps, shares)) {
				t.Fatalf("%d-of-%d: active %v does not reconstruct the key", c.t, c.n, act)
			}
			// Fewer than t shares do not.
			if len(shares) > 1 && decryptsWith(t, ps, cpk, sumKeys(ps, shares[:len(shares)-1])) {
				t.Fatalf("%d-of-%d: t-1 shares decrypt", c.t, c.n)
			}
		}
	}
}

func TestAdditiveShareRefusesBadActiveSets(t *testing.T) {
	ps := testParams(t)
	for _, thr := range []int{2, 3} {
		_, keys, _, err := RunInProcess("cer", ps, []NodeID{"a", "b", "c"}, thr)
		if err != nil {
			t.Fatal(err)
		}
		k := keys["a"] // point 1
		bad := map[string][]mhe.ShamirPublicPoint{
			"too few":   {1},
			"too many":  {1, 2, 3, 1},
			"outsider":  []mhe.ShamirPublicPoint{1, 9, 2}[:thr],
			"zero":      []mhe.ShamirPublicPoint{1, 0, 2}[:thr],
			"duplicate": []mhe.ShamirPublicPoint{1, 1, 2}[:thr],
			"not self":  []mhe.ShamirPublicPoint{2, 3, 3}[:thr],
		}
		if thr == 3 {
			bad["not self"] = []mhe.ShamirPublicPoint{2, 3, 4}
		}
		for name, act := range bad {
			if _, err := k.AdditiveShare(act); !errors.Is(err, ErrActive) {
				t.Errorf("t=%d %s %v: %v", thr, name, act, err)
			}
		}
	}
}

func TestSealedSharesBinding(t *testing.T) {
	ps := testParams(t)
	ids := []NodeID{"a", "b", "c"}
	kps, pubs := hpkeKeys(t, ids...)
	s, err := NewSetup("cer", ps, ids, 2, pubs)
	if err != nil {
		t.Fatal(err)
	}
	pa, _ := NewParty(s, "a", kps["a"])
	pb, _ := NewParty(s, "b", kps["b"])
	pc, _ := NewParty(s, "c", kps["c"])
	sealed, err := pa.SealedShares()
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != 2 {
		t.Fatalf("%d sealed shares", len(sealed))
	}
	size, _ := SealedShareSize(ps)
	if len(sealed["b"]) != size {
		t.Fatalf("sealed size %d, want %d", len(sealed["b"]), size)
	}
	// The coordinator, holding no node's HPKE key, cannot open it.
	coord, _ := NewHPKEKeyPair()
	if _, err := open(s, coord, "a", "b", sealed["b"]); !errors.Is(err, ErrSealed) {
		t.Fatalf("coordinator opened a share: %v", err)
	}
	// Misrouted: b's share delivered to c.
	if err := pc.ReceiveSealedShare("a", sealed["b"]); !errors.Is(err, ErrSealed) {
		t.Fatalf("misrouted share accepted: %v", err)
	}
	// Relabelled sender.
	if err := pb.ReceiveSealedShare("c", sealed["b"]); !errors.Is(err, ErrSealed) {
		t.Fatalf("relabelled share accepted: %v", err)
	}
	// Tampered, truncated.
	tam := bytes.Clone(sealed["b"])
	tam[len(tam)/2] ^= 1
	if err := pb.ReceiveSealedShare("a", tam); !errors.Is(err, ErrSealed) {
		t.Fatalf("tampered share accepted: %v", err)
	}
	if err := pb.ReceiveSealedShare("a", sealed["b"][:100]); !errors.Is(err, ErrSealed) {
		t.Fatalf("truncated share accepted: %v", err)
	}
	// Another ceremony (same keys, different id) does not open it either.
	s2, _ := NewSetup("cer-other", ps, ids, 2, pubs)
	if _, err := open(s2, kps["b"], "a", "b", sealed["b"]); !errors.Is(err, ErrSealed) {
		t.Fatalf("share opened under another ceremony: %v", err)
	}
	if err := pb.ReceiveSealedShare("a", sealed["b"]); err != nil {
		t.Fatal(err)
	}
	if err := pb.ReceiveSealedShare("a", sealed["b"]); err == nil {
		t.Fatal("duplicate accepted")
	}
	// Wrong HPKE key for the party.
	if _, err := NewParty(s, "a", kps["b"]); !errors.Is(err, ErrSetup) {
		t.Fatalf("party with wrong HPKE key: %v", err)
	}
}

func TestNodeKeysRoundTrip(t *testing.T) {
	ps := testParams(t)
	for _, thr := range []int{2, 3} {
		_, keys, _, err := RunInProcess("cer", ps, []NodeID{"a", "b", "c"}, thr)
		if err != nil {
			t.Fatal(err)
		}
		b, err := keys["b"].MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		k2, err := UnmarshalNodeKeys(b, ps)
		if err != nil {
			t.Fatal(err)
		}
		if !k2.Equal(keys["b"]) || k2.Equal(keys["a"]) {
			t.Fatal("round trip mismatch")
		}
		for _, cut := range []int{0, 5, 20, len(b) / 2, len(b) - 1} {
			if _, err := UnmarshalNodeKeys(b[:cut], ps); err == nil {
				t.Fatalf("truncated at %d accepted", cut)
			}
		}
		if _, err := UnmarshalNodeKeys(append(bytes.Clone(b), 0), ps); err == nil {
			t.Fatal("extended accepted")
		}
		other, _ := he.InsecureTestParams(he.NameInsecureTestParamsSquares)
		if _, err := UnmarshalNodeKeys(b, other); err == nil {
			t.Fatal("wrong parameter set accepted")
		}
	}
}

// The lattigo behaviour AdditiveShare guards against, confirmed on v5.0.7:
// mhe.Combiner silently uses only the first t points of a longer list and
// panics on a point it was not built with.
func TestLattigoCombinerPitfall(t *testing.T) {
	ps := testParams(t)
	s, keys, _, err := RunInProcess("cer", ps, []NodeID{"a", "b", "c"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	params := *ps.Params().GetRLWEParameters()
	k := keys["a"]
	own, _ := s.Point("a")
	cmb := mhe.NewCombiner(params, own, s.Points(), 2)
	long := rlwe.NewSecretKey(params)
	if err := cmb.GenAdditiveShare([]mhe.ShamirPublicPoint{1, 2, 3}, own, *k.tsk, long); err != nil {
		t.Fatalf("lattigo now rejects a list longer than t: %v", err)
	}
	exact, _ := k.AdditiveShare([]mhe.ShamirPublicPoint{1, 2})
	if !long.Equal(exact) {
		t.Fatal("lattigo no longer truncates a long active list to its first t points")
	}
	panicked := func() (p bool) {
		defer func() { p = recover() != nil }()
		_ = cmb.GenAdditiveShare([]mhe.ShamirPublicPoint{1, 9}, own, *k.tsk, rlwe.NewSecretKey(params))
		return false
	}()
	if !panicked {
		t.Fatal("lattigo no longer panics on an unknown point")
	}
	if _, err := k.AdditiveShare([]mhe.ShamirPublicPoint{1, 9}); !errors.Is(err, ErrActive) {
		t.Fatalf("guard: %v", err)
	}
}
