package release

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/heint"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/he/ceremony"
	"github.com/unseen-data/unseen/compute/he/envelope"
	"github.com/unseen-data/unseen/compute/he/ledger"
)

func insecure(t testing.TB, name string) *he.ParamSet {
	t.Helper()
	ps, err := he.InsecureTestParams(name)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

type row struct {
	group int
	x     int64
}

// moments are small exact totals (the values here stay far from 2^63).
type moments struct{ N, Sum, SumSq int64 }

func (m moments) he() he.Moments {
	return he.Moments{N: m.N, Sum: big.NewInt(m.Sum), SumSq: big.NewInt(m.SumSq)}
}

// plainStats are the exact per-group moments over rows.
func plainStats(rows []row, groups int) []moments {
	m := make([]moments, groups)
	for _, r := range rows {
		m[r.group].N++
		m[r.group].Sum += r.x
		m[r.group].SumSq += r.x * r.x
	}
	return m
}

func randRows(r *rand.Rand, n, groups int, lim int64) []row {
	out := make([]row, n)
	for i := range out {
		out[i] = row{group: r.IntN(groups), x: r.Int64N(2*lim+1) - lim}
	}
	return out
}

func checkMoments(t *testing.T, what string, got, want []moments) {
	t.Helper()
	for g := range want {
		if got[g] != want[g] {
			t.Fatalf("%s group %d: got %+v want %+v", what, g, got[g], want[g])
		}
		if want[g].N == 0 {
			continue
		}
		gm, _ := got[g].he().MeanRat()
		wm := new(big.Rat).SetFrac64(want[g].Sum, want[g].N)
		if gm.Cmp(wm) != 0 {
			t.Fatalf("%s group %d: mean %v want %v", what, g, gm, wm)
		}
		gv, _ := got[g].he().Variance()
		mu := float64(want[g].Sum) / float64(want[g].N)
		v := float64(want[g].SumSq)/float64(want[g].N) - mu*mu
		if math.Abs(gv-v) > 1e-6*math.Max(1, math.Abs(v)) {
			t.Fatalf("%s group %d: variance %v want %v", what, g, gv, v)
		}
	}
}

// Horizontal `aggregate`: every node encrypts its local per-group count and
// Σx (Sums) and Σx² (Squares); the coordinator adds; t nodes release.
func TestAggregateGroupByEqualsPlaintext(t *testing.T) {
	for _, c := range []struct{ n, t int }{{3, 3}, {3, 2}} {
		sums := newFed(t, insecure(t, he.NameInsecureTestParamsSums), c.n, c.t)
		sq := newFed(t, insecure(t, he.NameInsecureTestParamsSquares), c.n, c.t)
		r := rand.New(rand.NewPCG(uint64(c.n), uint64(c.t)))
		const groups = 5
		var all []row
		var cs, cq []*he.Ciphertext
		for _, id := range sums.ids {
			rows := randRows(r, 300+r.IntN(200), groups, 1_000_000)
			all = append(all, rows...)
			local := plainStats(rows, groups)
			v1 := make([]int64, 2*groups)
			v2 := make([]int64, groups)
			for g, m := range local {
				v1[g], v1[groups+g], v2[g] = m.N, m.Sum, m.SumSq
			}
			cs = append(cs, sums.encryptAt(t, id, v1, c.n))
			cq = append(cq, sq.encryptAt(t, id, v2, c.n))
		}
		s1, err := he.Sum(he.NewEvaluator(sums.ps), cs, 2)
		if err != nil {
			t.Fatal(err)
		}
		s2, err := he.Sum(he.NewEvaluator(sq.ps), cq, 2)
		if err != nil {
			t.Fatal(err)
		}
		// A t-subset other than the first for t < N.
		active := sums.ids[len(sums.ids)-c.t:]
		r1, err := sums.release(t, s1, active)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := sq.release(t, s2, active)
		if err != nil {
			t.Fatal(err)
		}
		v1, v2 := r1.Values(), r2.Values()
		got := make([]moments, groups)
		for g := range got {
			got[g] = moments{N: v1[g], Sum: v1[groups+g], SumSq: v2[g]}
		}
		checkMoments(t, "aggregate", got, plainStats(all, groups))
	}
}

// `intersection_stats`: the value node lays its rows out group-major, one
// row per slot; the coordinator multiplies by the 0/1 match mask and adds
// per group; every node adds a zero-sum mask; t nodes release one total per
// group.
func TestIntersectionStatsMaskedEqualsPlaintext(t *testing.T) {
	for _, c := range []struct{ n, t int }{{3, 2}, {3, 3}} {
		sums := newFed(t, insecure(t, he.NameInsecureTestParamsSums), c.n, c.t)
		sq := newFed(t, insecure(t, he.NameInsecureTestParamsSquares), c.n, c.t)
		r := rand.New(rand.NewPCG(7, uint64(c.t)))
		slots := sums.ps.Slots()
		groupRows := []int{slots + 300, 700, 90} // group 0 needs two ciphertexts
		const maxTerms = 4096
		value := sums.ids[0]
		want := make([]moments, len(groupRows))
		perGroup := make([][]*he.Ciphertext, len(groupRows)) // Sums: masked x and masked ones
		perGroupOnes := make([][]*he.Ciphertext, len(groupRows))
		perGroupSq := make([][]*he.Ciphertext, len(groupRows))
		evS, evQ := he.NewEvaluator(sums.ps), he.NewEvaluator(sq.ps)
		for g, nrows := range groupRows {
			for off := 0; off < nrows; off += slots {
				n := min(slots, nrows-off)
				xs, ones, xx := make([]int64, n), make([]int64, n), make([]int64, n)
				match := make([]bool, n)
				for i := range xs {
					xs[i] = r.Int64N(2_000_001) - 1_000_000
					ones[i] = 1
					xx[i] = xs[i] * xs[i]
					match[i] = r.IntN(3) == 0
					if match[i] {
						want[g].N++
						want[g].Sum += xs[i]
						want[g].SumSq += xx[i]
					}
				}
				cx := sums.encryptAt(t, value, xs, maxTerms)
				c1 := sums.encryptAt(t, value, ones, maxTerms)
				cxx := sq.encryptAt(t, value, xx, maxTerms)
				mS, _ := sums.ps.NewMask(match, sums.ps.MaxLevel())
				mQ, _ := sq.ps.NewMask(match, sq.ps.MaxLevel())
				for _, p := range []struct {
					ev  *he.Evaluator
					ct  *he.Ciphertext
					m   *he.Mask
					dst *[]*he.Ciphertext
				}{{evS, cx, mS, &perGroup[g]}, {evS, c1, mS, &perGroupOnes[g]}, {evQ, cxx, mQ, &perGroupSq[g]}} {
					mc, err := p.ev.MulMask(p.ct, p.m)
					if err != nil {
						t.Fatal(err)
					}
					*p.dst = append(*p.dst, mc)
				}
			}
		}
		got := make([]moments, len(groupRows))
		for g := range groupRows {
			zs, zq := sums.zeroSumMasks(t), sq.zeroSumMasks(t)
			var totals [3]int64
			for k, p := range []struct {
				f   *fed
				ev  *he.Evaluator
				cts []*he.Ciphertext
				z   []*he.Ciphertext
			}{{sums, evS, perGroup[g], zs}, {sums, evS, perGroupOnes[g], zs}, {sq, evQ, perGroupSq[g], zq}} {
				plain, err := he.Sum(p.ev, p.cts, 2)
				if err != nil {
					t.Fatal(err)
				}
				masked, err := he.Sum(p.ev, append([]*he.Ciphertext{plain}, p.z...), 1)
				if err != nil {
					t.Fatal(err)
				}
				res, err := p.f.release(t, masked, nil)
				if err != nil {
					t.Fatal(err)
				}
				totals[k] = res.Total()
				if k == 0 {
					// For the test only: release the unmasked sum too and
					// check that masking changed the slots, not the total.
					ures, err := p.f.release(t, plain, nil)
					if err != nil {
						t.Fatal(err)
					}
					a, b := ures.Slots(), res.Slots()
					same := 0
					for i := range a {
						if a[i] == b[i] {
							same++
						}
					}
					if same > len(a)/100 {
						t.Fatalf("%d of %d masked slots equal the unmasked ones", same, len(a))
					}
					if ures.Total() != res.Total() {
						t.Fatalf("masking changed the total: %d vs %d", ures.Total(), res.Total())
					}
				}
			}
			got[g] = moments{Sum: totals[0], N: totals[1], SumSq: totals[2]}
		}
		checkMoments(t, "intersection", got, want)
	}
}

// At the real Sums parameters (LogN 13), 2-of-3: sums of three nodes, a
// masked (MulMask) vector (big-integer smudging path) and zero-sum masking.
func TestReleaseAtRealSumsParams(t *testing.T) {
	f := newFed(t, he.Sums(), 3, 2)
	r := rand.New(rand.NewPCG(11, 12))
	n := f.ps.Slots()
	lim, _ := f.ps.InputLimit(3 * n)
	var cts []*he.Ciphertext
	want := make([]int64, n)
	var wantMasked int64
	match := make([]bool, n)
	for i := range match {
		match[i] = r.IntN(2) == 0
	}
	for _, id := range f.ids {
		v := make([]int64, n)
		for i := range v {
			v[i] = r.Int64N(2*lim+1) - lim
			want[i] += v[i]
		}
		cts = append(cts, f.encryptAt(t, id, v, 3*n))
	}
	ev := he.NewEvaluator(f.ps)
	sum, err := he.Sum(ev, cts, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		if match[i] {
			wantMasked += w
		}
	}
	mask, _ := f.ps.NewMask(match, f.ps.MaxLevel())
	masked, err := ev.MulMask(sum, mask)
	if err != nil {
		t.Fatal(err)
	}
	masked, err = he.Sum(ev, append([]*he.Ciphertext{masked}, f.zeroSumMasks(t)...), 1)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.release(t, sum, []ceremony.NodeID{"dept1", "dept3"})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range res.Values() {
		if v != want[i] {
			t.Fatalf("slot %d: %d want %d", i, v, want[i])
		}
	}
	sm, _ := f.ps.SmudgingFor(masked.Noise(), masked.Level(), 2)
	if !sm.BigPath {
		t.Fatal("expected the big-integer smudging path for a masked ciphertext")
	}
	res, err = f.release(t, masked, []ceremony.NodeID{"dept2", "dept3"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total() != wantMasked {
		t.Fatalf("masked total %d want %d", res.Total(), wantMasked)
	}
}

// At the real Squares parameters (LogN 14, 59-bit T), 3-of-3: Σx² of three nodes.
func TestReleaseAtRealSquaresParams(t *testing.T) {
	f := newFed(t, he.Squares(), 3, 3)
	r := rand.New(rand.NewPCG(13, 14))
	n := f.ps.Slots()
	var cts []*he.Ciphertext
	want := make([]int64, n)
	for _, id := range f.ids {
		v := make([]int64, n)
		for i := range v {
			x := r.Int64N(1 << 20)
			v[i] = x * x
			want[i] += v[i]
		}
		cts = append(cts, f.encryptAt(t, id, v, 3*n))
	}
	sum, err := he.Sum(he.NewEvaluator(f.ps), append(cts, f.zeroSumMasks(t)...), 2)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.release(t, sum, nil)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, w := range want {
		total += w
	}
	// Zero-sum masked: only the total is meaningful, and it is exact.
	if got := res.Total(); got != total {
		t.Fatalf("total %d, want %d", got, total)
	}
}

// The coordinator's own state — release key, collective public key,
// ciphertexts — does not decrypt anything.
func TestCoordinatorAloneCannotDecrypt(t *testing.T) {
	f := newFed(t, insecure(t, he.NameInsecureTestParamsSums), 3, 2)
	n := f.ps.Slots()
	v := make([]int64, n)
	for i := range v {
		v[i] = int64(i % 100)
	}
	ct := f.encryptAt(t, "dept1", v, 1)
	params := f.ps.Params()
	d := he.NewDecoder(f.ps)
	for name, sk := range map[string]any{"release key": f.rk.sk, "zero key": nil} {
		dec := heint.NewDecryptor(params, f.rk.sk)
		if sk == nil {
			z := f.rk.sk.CopyNew()
			z.Value.Q.Zero()
			z.Value.P.Zero()
			dec = heint.NewDecryptor(params, z)
		}
		got, err := d.Int64s(dec.DecryptNew(ct.RLWE()))
		if err != nil {
			t.Fatal(err)
		}
		same := 0
		for i := range v {
			if got[i] == v[i] {
				same++
			}
		}
		if same > n/100 {
			t.Fatalf("%s: %d of %d slots decrypted", name, same, n)
		}
	}
	// A key switch with no node shares (all-zero share) is garbage too.
	as, _ := NewActiveSet(f.setup, []ceremony.NodeID{"dept1", "dept2"})
	cmb, _ := NewCombiner(f.setup, as, ct, f.rk)
	if _, err := cmb.Decrypt(); !errors.Is(err, ErrShare) {
		t.Fatalf("decrypt without shares: %v", err)
	}
	pcks, _ := mhe.NewPublicKeySwitchProtocol(params, params.Xe())
	zero := pcks.AllocateShare(ct.Level())
	out := heint.NewCiphertext(params, 1, ct.Level())
	pcks.KeySwitch(ct.RLWE(), zero, out)
	got, _ := d.Int64s(heint.NewDecryptor(params, f.rk.sk).DecryptNew(out))
	same := 0
	for i := range v {
		if got[i] == v[i] {
			same++
		}
	}
	if same > n/100 {
		t.Fatalf("zero-share key switch: %d of %d slots decrypted", same, n)
	}
	// With t-1 real shares it is still garbage (and Combiner refuses it).
	one := make([]*Share, 0)
	sh, err := f.nodes["dept1"].Share([]ceremony.NodeID{"dept1", "dept2"}, ct, f.rk.PublicKey(), dec(ct))
	if err != nil {
		t.Fatal(err)
	}
	one = append(one, sh)
	cmb2, _ := NewCombiner(f.setup, as, ct, f.rk)
	cmb2.Add("dept1", one[0])
	if _, err := cmb2.Decrypt(); !errors.Is(err, ErrShare) {
		t.Fatalf("decrypt with t-1 shares: %v", err)
	}
}

func TestLedgerRefusesSecondDecryption(t *testing.T) {
	ps := insecure(t, he.NameInsecureTestParamsSums)
	f := newFed(t, ps, 3, 2)
	// dept1 uses a file-backed ledger.
	lpath := filepath.Join(t.TempDir(), "dept1.ledger")
	fl, err := ledger.OpenFile(lpath)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	f.nodes["dept1"], _ = NewNode(f.keys["dept1"], fl)
	ct := f.encryptAt(t, "dept2", []int64{5, 6, 7}, 1)
	res, err := f.release(t, ct, []ceremony.NodeID{"dept1", "dept2"})
	if err != nil {
		t.Fatal(err)
	}
	if v := res.Values(); v[0] != 5 || v[2] != 7 {
		t.Fatalf("got %v", v[:3])
	}
	// Again, same active set: refused by the first node's ledger.
	if _, err := f.release(t, ct, []ceremony.NodeID{"dept1", "dept2"}); !errors.Is(err, ledger.ErrAlreadyDecrypted) {
		t.Fatalf("second decryption: %v", err)
	}
	// Again with dept1 and dept3: dept1 refuses again.
	if _, err := f.release(t, ct, []ceremony.NodeID{"dept3", "dept1"}); !errors.Is(err, ledger.ErrAlreadyDecrypted) {
		t.Fatalf("second decryption, other set: %v", err)
	}
	// The refusal survives a restart of dept1.
	fl.Close()
	fl2, err := ledger.OpenFile(lpath)
	if err != nil {
		t.Fatal(err)
	}
	defer fl2.Close()
	n2, _ := NewNode(f.keys["dept1"], fl2)
	if _, err := n2.Share([]ceremony.NodeID{"dept1", "dept3"}, ct, f.rk.PublicKey(), dec(ct)); !errors.Is(err, ledger.ErrAlreadyDecrypted) {
		t.Fatalf("after restart: %v", err)
	}
}

func TestWrongActiveSetRefusedBeforeAnyShare(t *testing.T) {
	for _, thr := range []int{2, 3} {
		f := newFed(t, insecure(t, he.NameInsecureTestParamsSums), 3, thr)
		ct := f.encryptAt(t, "dept1", []int64{1}, 1)
		id, _ := ct.Hash()
		bad := map[string][]ceremony.NodeID{
			"too few":    {"dept1"},
			"too many":   {"dept1", "dept2", "dept3", "dept1"},
			"outsider":   append([]ceremony.NodeID{"dept1", "mallory"}, "dept2")[:thr],
			"duplicates": append([]ceremony.NodeID{"dept1", "dept1"}, "dept2")[:thr],
			"empty":      nil,
		}
		if thr == 2 {
			bad["without self"] = []ceremony.NodeID{"dept2", "dept3"}
			bad["too many"] = []ceremony.NodeID{"dept1", "dept2", "dept3"}
		}
		for name, act := range bad {
			if _, err := NewActiveSet(f.setup, act); err == nil && name != "without self" {
				t.Errorf("t=%d %s: NewActiveSet accepted %v", thr, name, act)
			}
			if _, err := f.nodes["dept1"].Share(act, ct, f.rk.PublicKey(), dec(ct)); !errors.Is(err, ErrActiveSet) {
				t.Errorf("t=%d %s: Share: %v", thr, name, err)
			}
		}
		for _, l := range f.ledgers {
			if ok, _ := l.Contains(id); ok {
				t.Fatalf("t=%d: a refused request reached the ledger", thr)
			}
		}
	}
}

func TestCombinerRefusesWrongContributors(t *testing.T) {
	f := newFed(t, insecure(t, he.NameInsecureTestParamsSums), 3, 2)
	ct := f.encryptAt(t, "dept1", []int64{1, 2}, 1)
	ct2 := f.encryptAt(t, "dept1", []int64{3, 4}, 1)
	act := []ceremony.NodeID{"dept1", "dept2"}
	as, _ := NewActiveSet(f.setup, act)
	s1, err := f.nodes["dept1"].Share(act, ct, f.rk.PublicKey(), dec(ct))
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := f.nodes["dept2"].Share(act, ct, f.rk.PublicKey(), dec(ct))
	s3other, _ := f.nodes["dept3"].Share([]ceremony.NodeID{"dept3", "dept2"}, ct2, f.rk.PublicKey(), dec(ct2))
	s2other, _ := f.nodes["dept2"].Share(act, ct2, f.rk.PublicKey(), dec(ct2))
	cmb, _ := NewCombiner(f.setup, as, ct, f.rk)
	if err := cmb.Add("dept3", s3other); !errors.Is(err, ErrShare) {
		t.Fatalf("non-active contributor: %v", err)
	}
	if err := cmb.Add("dept2", s1); !errors.Is(err, ErrShare) {
		t.Fatalf("share relabelled to another node: %v", err)
	}
	if err := cmb.Add("dept2", s2other); !errors.Is(err, ErrShare) {
		t.Fatalf("share for another ciphertext: %v", err)
	}
	if err := cmb.Add("dept1", s1); err != nil {
		t.Fatal(err)
	}
	if err := cmb.Add("dept1", s1); !errors.Is(err, ErrShare) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := cmb.Decrypt(); !errors.Is(err, ErrShare) {
		t.Fatalf("t-1 shares: %v", err)
	}
	// A share made for another active set of the same ciphertext.
	ct3 := f.encryptAt(t, "dept1", []int64{9}, 1)
	x, _ := f.nodes["dept2"].Share([]ceremony.NodeID{"dept2", "dept3"}, ct3, f.rk.PublicKey(), dec(ct3))
	cmb3, _ := NewCombiner(f.setup, as, ct3, f.rk)
	if err := cmb3.Add("dept2", x); !errors.Is(err, ErrShare) {
		t.Fatalf("share for another active set: %v", err)
	}
	if err := cmb.Add("dept2", s2); err != nil {
		t.Fatal(err)
	}
	res, err := cmb.Decrypt()
	if err != nil {
		t.Fatal(err)
	}
	if v := res.Values(); v[0] != 1 || v[1] != 2 {
		t.Fatalf("got %v", v[:2])
	}
}

// The smudging pitfall itself, measured through lattigo directly: with
// 6σ ≥ q_i on v5.0.7 the switched ciphertext decrypts to garbage, silently.
// The guard refuses exactly that σ; σ ≥ 2^80 works.
func TestSmudgingPitfallAndGuard(t *testing.T) {
	ps := he.Sums()
	params := ps.Params()
	kg := heint.NewKeyGenerator(params)
	sk, pk := kg.GenKeyPairNew()
	rk := NewReleaseKey(ps)
	enc, _ := he.NewEncryptor(ps.WrapPublicKey(pk))
	want := []int64{1, -2, 3, 1 << 40}
	ct, _ := enc.Encrypt(want, 1)
	d := he.NewDecoder(ps)
	try := func(log2 float64) (ok bool, panicked bool) {
		defer func() {
			if recover() != nil {
				panicked = true
			}
		}()
		sigma := math.Exp2(log2)
		pcks, err := mhe.NewPublicKeySwitchProtocol(params, ring.DiscreteGaussian{Sigma: sigma, Bound: 6 * sigma})
		if err != nil {
			t.Fatal(err)
		}
		sh := pcks.AllocateShare(ct.Level())
		pcks.GenShare(sk, rk.pk.RLWE(), ct.RLWE(), &sh)
		out := heint.NewCiphertext(params, 1, ct.Level())
		pcks.KeySwitch(ct.RLWE(), sh, out)
		got, _ := d.Int64s(heint.NewDecryptor(params, rk.sk).DecryptNew(out))
		for i := range want {
			if got[i] != want[i] {
				return false, false
			}
		}
		return true, false
	}
	for _, c := range []struct {
		log2      float64
		lattigoOK bool
	}{{50, true}, {55, false}, {60, false}, {85, true}} {
		ok, panicked := try(c.log2)
		if ok != c.lattigoOK && !panicked {
			t.Errorf("σ = 2^%v: lattigo decrypts correctly = %v, expected %v (pitfall changed?)", c.log2, ok, c.lattigoOK)
		}
		guardOK := ps.CheckSmudging(math.Exp2(c.log2)) == nil
		if guardOK != c.lattigoOK {
			t.Errorf("σ = 2^%v: guard accepts = %v, lattigo correct = %v", c.log2, guardOK, c.lattigoOK)
		}
	}
	// The node-side share path refuses a σ in the broken band outright.
	if _, err := genShare(ps, he.Smudging{Sigma: math.Exp2(55)}, sk, rk.PublicKey(), ct); !errors.Is(err, he.ErrSmudging) {
		t.Fatalf("genShare with σ = 2^55: %v", err)
	}
}

// Nodes are used from many goroutines at once (one release per job).
func TestConcurrentReleases(t *testing.T) {
	f := newFed(t, insecure(t, he.NameInsecureTestParamsSums), 3, 2)
	const jobs = 4
	cts := make([]*he.Ciphertext, jobs)
	for j := range cts {
		cts[j] = f.encryptAt(t, "dept2", []int64{int64(j), int64(-j)}, 1)
	}
	var wg sync.WaitGroup
	errs := make([]error, jobs)
	vals := make([][]int64, jobs)
	for j := 0; j < jobs; j++ {
		wg.Add(1)
		go func(j int) {
			defer wg.Done()
			res, err := f.release(t, cts[j], []ceremony.NodeID{"dept1", "dept3"})
			if err != nil {
				errs[j] = err
				return
			}
			vals[j] = res.Values()
		}(j)
	}
	wg.Wait()
	for j := range errs {
		if errs[j] != nil {
			t.Fatal(errs[j])
		}
		if vals[j][0] != int64(j) || vals[j][1] != int64(-j) {
			t.Fatalf("job %d: %v", j, vals[j][:2])
		}
	}
}

// Every wire type: marshal → seal → open (exact size) → unmarshal → equal.
func TestWireTypesRoundTripThroughEnvelopes(t *testing.T) {
	ps := insecure(t, he.NameInsecureTestParamsSums)
	f := newFed(t, ps, 3, 2)
	rt := func(label string, level int, b []byte) []byte {
		t.Helper()
		size := len(b)
		switch label {
		case he.LabelCiphertext, he.LabelPublicKey, he.LabelCKGShare, he.LabelPKSShare, he.LabelShamirShare:
			var err error
			if size, err = ps.WireSize(label, level); err != nil {
				t.Fatal(err)
			}
		case ceremony.LabelSealedShamirShare:
			size, _ = ceremony.SealedShareSize(ps)
		case LabelShare:
			size, _ = ShareSize(ps, level)
		}
		p, err := f.open("dept1", label, level, size, f.seal(t, "dept1", label, level, b))
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		return p
	}
	L := ps.MaxLevel()
	ct := f.encryptAt(t, "dept1", []int64{1, 2, 3}, 1)
	b, _ := ct.MarshalBinary()
	ct2, err := ps.UnmarshalCiphertext(rt(he.LabelCiphertext, L, b), L)
	if err != nil || !ct2.Equal(ct) {
		t.Fatalf("ciphertext: %v", err)
	}
	for _, pk := range []*he.PublicKey{f.cpk, f.rk.PublicKey()} {
		b, _ = pk.MarshalBinary()
		pk2, err := ps.UnmarshalPublicKey(rt(he.LabelPublicKey, L, b))
		if err != nil || !pk2.Equal(pk) {
			t.Fatalf("public key: %v", err)
		}
	}
	// Ceremony messages.
	kps, pubs := map[ceremony.NodeID]*ceremony.HPKEKeyPair{}, map[ceremony.NodeID][]byte{}
	for _, id := range f.ids {
		kps[id], _ = ceremony.NewHPKEKeyPair()
		pubs[id] = kps[id].Public()
	}
	s, _ := ceremony.NewSetup("rt", ps, f.ids, 2, pubs)
	p1, _ := ceremony.NewParty(s, "dept1", kps["dept1"])
	p2, _ := ceremony.NewParty(s, "dept2", kps["dept2"])
	b, _ = p1.PublicKeyShare()
	sh, err := ps.UnmarshalCKGShare(rt(he.LabelCKGShare, L, b))
	if err != nil {
		t.Fatal(err)
	}
	if b2, _ := sh.MarshalBinary(); !bytes.Equal(b, b2) {
		t.Fatal("ckg share round trip")
	}
	sealed, _ := p1.SealedShares()
	if err := p2.ReceiveSealedShare("dept1", rt(ceremony.LabelSealedShamirShare, L, sealed["dept2"])); err != nil {
		t.Fatalf("sealed share: %v", err)
	}
	// Decryption share, and release key persistence.
	share, err := f.nodes["dept1"].Share([]ceremony.NodeID{"dept1", "dept2"}, ct, f.rk.PublicKey(), dec(ct))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = share.MarshalBinary()
	share2, err := UnmarshalShare(ps, rt(LabelShare, L, b), L)
	if err != nil || !share2.Equal(share) {
		t.Fatalf("share: %v", err)
	}
	b, _ = f.rk.MarshalBinary()
	rk2, err := UnmarshalReleaseKey(ps, b)
	if err != nil || !rk2.sk.Equal(f.rk.sk) || !rk2.pk.Equal(f.rk.pk) {
		t.Fatalf("release key: %v", err)
	}
	if _, err := UnmarshalReleaseKey(ps, b[:len(b)-1]); err == nil {
		t.Fatal("truncated release key accepted")
	}
}

// Tampered messages carrying real HE payloads are rejected with an error
// and the process survives — including correctly MAC'd payloads whose
// internal length prefixes were corrupted (a misbehaving peer).
func TestTamperedHEMessagesRejected(t *testing.T) {
	ps := insecure(t, he.NameInsecureTestParamsSums)
	f := newFed(t, ps, 3, 2)
	ct := f.encryptAt(t, "dept1", []int64{1, 2, 3}, 1)
	b, _ := ct.MarshalBinary()
	L := ps.MaxLevel()
	size, _ := ps.WireSize(he.LabelCiphertext, L)
	msg := f.seal(t, "dept1", he.LabelCiphertext, L, b)
	open := func(m []byte, label string, level int, cer string) error {
		h := f.hdr(label, level)
		h.CeremonyID = cer
		p, err := envelope.Open(f.mac["dept1"], m, envelope.Expect{Header: h, Size: size})
		if err != nil {
			return err
		}
		_, err = ps.UnmarshalCiphertext(p, level)
		return err
	}
	cer := f.setup.CeremonyID()
	flipped := bytes.Clone(msg)
	flipped[len(flipped)/2] ^= 0x40
	cases := map[string]error{
		"truncated":      open(msg[:len(msg)-1], he.LabelCiphertext, L, cer),
		"extended":       open(append(bytes.Clone(msg), 0), he.LabelCiphertext, L, cer),
		"bit flipped":    open(flipped, he.LabelCiphertext, L, cer),
		"wrong label":    open(msg, he.LabelPublicKey, L, cer),
		"wrong level":    open(msg, he.LabelCiphertext, L-1, cer),
		"wrong ceremony": open(msg, he.LabelCiphertext, L, "other"),
		"other peer key": func() error {
			_, err := envelope.Open(f.mac["dept2"], msg, envelope.Expect{Header: f.hdr(he.LabelCiphertext, L), Size: size})
			return err
		}(),
	}
	for name, err := range cases {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Authenticated but internally corrupted: every structural byte of the
	// lattigo encoding (its length prefixes and metadata) in turn.
	corrupted := 0
	for i := 16; i < 16+400 && i < len(b); i++ {
		p := bytes.Clone(b)
		p[i] ^= 0xff
		m := f.seal(t, "dept1", he.LabelCiphertext, L, p)
		if open(m, he.LabelCiphertext, L, cer) != nil {
			corrupted++
		}
	}
	if corrupted < 200 {
		t.Fatalf("only %d of 400 corrupted headers rejected", corrupted)
	}
}

// withDescriptor re-encodes ct with another noise descriptor, as a
// coordinator that lies about how a ciphertext was computed would send it.
func withDescriptor(t *testing.T, ct *he.Ciphertext, n he.Noise) *he.Ciphertext {
	t.Helper()
	b, err := ct.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint64(b[:8], n.Terms)
	binary.BigEndian.PutUint64(b[8:16], n.Masked)
	out, err := ct.ParamSet().UnmarshalCiphertext(b, ct.Level())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The smudging of a share is sized by the bound the node passes in
// (Decryption.Noise), never by the descriptor that came with the
// ciphertext: measured. Each case releases a fresh encryption of zero, so
// what the release key decrypts is the noise alone; its standard deviation
// is that of t smudging samples, √t·σ, with σ = 2^40 × the node's bound.
func TestShareSmudgingFromNodeBound(t *testing.T) {
	ps := insecure(t, he.NameInsecureTestParamsSums)
	f := newFed(t, ps, 3, 2)
	params := ps.Params()
	L := ps.MaxLevel()
	active := []ceremony.NodeID{"dept1", "dept2"}
	measure := func(job string, descriptor, bound he.Noise) float64 {
		t.Helper()
		ct := withDescriptor(t, f.encryptAt(t, "dept3", make([]int64, 8), 1), descriptor)
		require.Equal(t, descriptor, ct.Noise())
		pcks, err := mhe.NewPublicKeySwitchProtocol(params, params.Xe())
		require.NoError(t, err)
		agg := pcks.AllocateShare(L)
		for i, id := range active {
			sh, err := f.nodes[id].Share(active, ct, f.rk.PublicKey(), Decryption{Noise: bound, Output: ledger.OutputKey(job, 0)})
			require.NoError(t, err)
			if i == 0 {
				agg.Value[0].Copy(sh.share.Value[0])
				agg.Value[1].Copy(sh.share.Value[1])
				continue
			}
			require.NoError(t, pcks.AggregateShares(agg, *sh.share, &agg))
		}
		out := heint.NewCiphertext(params, 1, L)
		pcks.KeySwitch(ct.RLWE(), agg, out)
		std, _, _ := rlwe.Norm(out, rlwe.NewDecryptor(params, f.rk.sk))
		return std
	}
	expect := func(bound he.Noise) float64 {
		sm, err := ps.SmudgingFor(bound, L, len(active))
		require.NoError(t, err)
		return math.Log2(sm.Sigma) + 0.5*math.Log2(float64(len(active)))
	}
	honest := he.Noise{Terms: 1}
	wide := he.Noise{Terms: 1 << 8}  // 16× the bound: 4 bits more smudging
	huge := he.Noise{Terms: 1 << 12} // σ = 2^40·B falls in lattigo's bad band: raised to 2^80
	for _, c := range []struct {
		name              string
		descriptor, bound he.Noise
	}{
		{"descriptor claims far more noise", he.Noise{Terms: 1 << 30, Masked: 1 << 30}, honest},
		{"descriptor honest", honest, honest},
		{"descriptor claims less than the node's bound", honest, wide},
		{"descriptor claims a masked sum", he.Noise{Terms: 4, Masked: 3}, wide},
		{"node's bound on the big-integer path", honest, huge},
	} {
		got, want := measure(c.name, c.descriptor, c.bound), expect(c.bound)
		t.Logf("%s: log2 std of the released noise %.2f, node's bound gives %.2f", c.name, got, want)
		require.InDelta(t, want, got, 0.5, c.name)
	}
}

// A node that names no bound (the zero Decryption) gets a refusal, not a
// default, and nothing is burnt in its ledger.
func TestShareNeedsNodeBound(t *testing.T) {
	ps := insecure(t, he.NameInsecureTestParamsSums)
	f := newFed(t, ps, 3, 2)
	ct := f.encryptAt(t, "dept1", []int64{1}, 1)
	require.Equal(t, he.FreshNoise, ct.Noise())
	_, err := f.nodes["dept1"].Share([]ceremony.NodeID{"dept1", "dept2"}, ct, f.rk.PublicKey(), Decryption{})
	require.Error(t, err)
	id, _ := ct.Hash()
	for _, k := range [][32]byte{id, {}} {
		ok, _ := f.ledgers["dept1"].Contains(k)
		require.False(t, ok, "a refused share burnt a ledger entry")
	}
}

// The ledger is keyed by output: a second ciphertext for an output already
// decrypted (ct + Enc(0): the same values, other bytes) is refused, and so
// is the same ciphertext offered as another output.
func TestLedgerKeyedByOutput(t *testing.T) {
	ps := insecure(t, he.NameInsecureTestParamsSums)
	f := newFed(t, ps, 3, 2)
	ct := f.encryptAt(t, "dept1", []int64{5, 6}, 1)
	zero := f.encryptAt(t, "dept2", []int64{0}, 1)
	rerand, err := he.NewEvaluator(ps).Add(ct, zero)
	require.NoError(t, err)
	a, b := ct.Hash()
	require.NoError(t, b)
	c, _ := rerand.Hash()
	require.NotEqual(t, a, c, "re-randomised bytes differ")
	act := []ceremony.NodeID{"dept1", "dept2"}
	share := func(x *he.Ciphertext, job string, out int) error {
		_, err := f.nodes["dept1"].Share(act, x, f.rk.PublicKey(), Decryption{Noise: he.Noise{Terms: 2}, Output: ledger.OutputKey(job, out)})
		return err
	}
	require.NoError(t, share(ct, "job-a", 0))
	require.ErrorIs(t, share(rerand, "job-a", 0), ledger.ErrAlreadyDecrypted, "ct + Enc(0) for the same output")
	require.ErrorIs(t, share(ct, "job-a", 1), ledger.ErrAlreadyDecrypted, "the same bytes as another output")
	require.ErrorIs(t, share(ct, "job-b", 0), ledger.ErrAlreadyDecrypted, "the same bytes as another job's output")
	require.NoError(t, share(rerand, "job-b", 0), "another job's own output")
}

// A node that adds a zero-sum vector to its share (Decryption.ZeroSum)
// leaves only the total of the result: its slots are uniform, even though
// the ciphertext itself was never masked (a sender that skipped the
// coordinator's zero-sum masks gains nothing). Without it, slots decrypt.
func TestShareZeroSum(t *testing.T) {
	ps := insecure(t, he.NameInsecureTestParamsSums)
	f := newFed(t, ps, 3, 2)
	act := []ceremony.NodeID{"dept1", "dept3"}
	as, err := NewActiveSet(f.setup, act)
	require.NoError(t, err)
	values := []int64{5, -6, 7, 1000}
	release := func(zeroSum int) *Result {
		ct := f.encryptAt(t, "dept2", values, 1)
		cmb, err := NewCombiner(f.setup, as, ct, f.rk)
		require.NoError(t, err)
		for _, id := range act {
			d := dec(ct)
			d.ZeroSum = zeroSum
			sh, err := f.nodes[id].Share(act, ct, f.rk.PublicKey(), d)
			require.NoError(t, err)
			require.NoError(t, cmb.Add(id, sh))
		}
		res, err := cmb.Decrypt()
		require.NoError(t, err)
		return res
	}
	plain := release(0)
	require.Equal(t, values, plain.Values()[:4])
	require.Equal(t, int64(1006), plain.Total())

	masked := release(ps.Slots())
	require.Equal(t, int64(1006), masked.Total(), "the total survives")
	v := masked.Values()
	same := 0
	for i := range v {
		want := int64(0)
		if i < len(values) {
			want = values[i]
		}
		if v[i] == want {
			same++
		}
	}
	require.Zero(t, same, "slots of a zero-summed release are uniform mod T (a match has chance 2^-42 each); %d of %d were the plaintext", same, len(v))
}

// BenchmarkShareZeroSum measures what the node's own zero-sum vector adds
// to a decryption share (intersection_stats outputs) at the production
// sums parameters: plain and zero-summed shares alternate in one run, and
// zerosum-ratio is their time ratio.
func BenchmarkShareZeroSum(b *testing.B) {
	f := newFed(b, he.Sums(), 3, 2)
	act := []ceremony.NodeID{"dept1", "dept2"}
	cts := make([]*he.Ciphertext, 2*b.N)
	for i := range cts {
		cts[i] = f.encryptAt(b, "dept3", []int64{int64(i)}, 1)
	}
	var plain, zs time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k, z := range []int{0, he.Sums().Slots()} {
			ct := cts[2*i+k]
			d := dec(ct)
			d.ZeroSum = z
			t0 := time.Now()
			if _, err := f.nodes["dept1"].Share(act, ct, f.rk.PublicKey(), d); err != nil {
				b.Fatal(err)
			}
			if z == 0 {
				plain += time.Since(t0)
			} else {
				zs += time.Since(t0)
			}
		}
	}
	b.ReportMetric(plain.Seconds()/float64(b.N), "plain-s/op")
	b.ReportMetric(zs.Seconds()/float64(b.N), "zerosum-s/op")
	b.ReportMetric(zs.Seconds()/plain.Seconds(), "zerosum-ratio")
}
