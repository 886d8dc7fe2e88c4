package he

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/heint"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/unseen-data/unseen/compute/he/envelope"
)

func insecure(t testing.TB, name string) *ParamSet {
	t.Helper()
	ps, err := InsecureTestParams(name)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

type testKeys struct {
	sk  *rlwe.SecretKey
	pk  *PublicKey
	dec *rlwe.Decryptor
	d   *Decoder
}

// singleKey is a one-party key pair: the evaluator does not care whether a
// public key is collective.
func singleKey(ps *ParamSet) testKeys {
	sk, pk := heint.NewKeyGenerator(ps.params).GenKeyPairNew()
	return testKeys{sk: sk, pk: ps.WrapPublicKey(pk), dec: heint.NewDecryptor(ps.params, sk), d: NewDecoder(ps)}
}

func (k testKeys) decrypt(t testing.TB, c *Ciphertext) []int64 {
	t.Helper()
	v, err := k.d.Int64s(k.dec.DecryptNew(c.ct))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (k testKeys) slots(t testing.TB, c *Ciphertext) []uint64 {
	t.Helper()
	v, err := k.d.Slots(k.dec.DecryptNew(c.ct))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParamsSecurity(t *testing.T) {
	for _, ps := range []*ParamSet{Sums(), Squares()} {
		bound, ok := ps.SecurityBound()
		if !ok {
			t.Fatalf("%s: no bound", ps.Name())
		}
		if err := ps.CheckSecurity(); err != nil {
			t.Fatal(err)
		}
		if ps.params.QPBigInt().BitLen() > bound || ps.LogQP() > float64(bound) {
			t.Fatalf("%s: logQP %.6f > %d", ps.Name(), ps.LogQP(), bound)
		}
		t.Logf("%s: LogN %d, slots %d, logQP %.6f ≤ %d, T %#x, hash %x", ps.Name(), ps.LogN(), ps.Slots(), ps.LogQP(), bound, ps.T(), ps.Hash())
	}
	if Sums().LogN() != 13 || Squares().LogN() != 14 || Sums().T() != 0x400000b0001 {
		t.Fatal("parameter sets differ from the design")
	}
	for _, lq := range Sums().params.LogQi() {
		if lq != 54 {
			t.Fatalf("Sums LogQ %v", Sums().params.LogQi())
		}
	}
	if Sums().MaxAbs() < 1<<41 {
		t.Fatal("Sums cannot hold ±2^41")
	}
	for _, n := range []string{NameInsecureTestParamsSums, NameInsecureTestParamsSquares} {
		ps := insecure(t, n)
		if ps.Secure() || ps.CheckSecurity() == nil {
			t.Fatalf("%s must fail the security check", n)
		}
		if _, err := ParamsByName(n); err == nil {
			t.Fatalf("ParamsByName must not serve %s", n)
		}
		if _, err := ParamsByHash(ps.Hash()); err == nil {
			t.Fatalf("ParamsByHash must not serve %s", n)
		}
	}
	for _, n := range []string{NameSums, NameSquares} {
		ps, err := ParamsByName(n)
		if err != nil || !ps.Secure() {
			t.Fatal(n, err)
		}
		if p2, err := ParamsByHash(ps.Hash()); err != nil || p2 != ps {
			t.Fatal("ParamsByHash", n, err)
		}
	}
}

func TestParamsPlaintextModulus(t *testing.T) {
	for _, ps := range []*ParamSet{Sums(), Squares()} {
		T := ps.T()
		if !new(big.Int).SetUint64(T).ProbablyPrime(40) {
			t.Fatalf("%s: T not prime", ps.Name())
		}
		twoN := uint64(2 * ps.params.N())
		if T%twoN != 1 {
			t.Fatalf("%s: T ≢ 1 mod 2N", ps.Name())
		}
		if ps.Slots() != ps.params.N() {
			t.Fatalf("%s: %d slots, want N", ps.Name(), ps.Slots())
		}
	}
	if b := new(big.Int).SetUint64(TSquares).BitLen(); b != 59 {
		t.Fatalf("TSquares has %d bits", b)
	}
}

// The parameter hashes are part of the wire protocol: pin them.
func TestParamsHashStable(t *testing.T) {
	want := map[string]string{
		NameSums:    "038052a124a8744d597a103e8882baa88916e8eb9be8943a785471fe828b329a",
		NameSquares: "89c5a1280b89befe2e63f7c5e82d9b8e9546571f7408617ea04a58adb703e0b9",
	}
	for n, w := range want {
		ps, _ := ParamsByName(n)
		h := ps.Hash()
		if got := hex.EncodeToString(h[:]); got != w {
			t.Errorf("%s: hash %s, pinned %s", n, got, w)
		}
		js := ps.CanonicalJSON()
		if h2 := sha256Sum(js); h2 != h {
			t.Errorf("%s: hash is not SHA-256 of the canonical JSON", n)
		}
	}
}

func TestRangeCheck(t *testing.T) {
	ps := Sums()
	lim, _ := ps.InputLimit(3)
	k := singleKey(insecure(t, NameInsecureTestParamsSums))
	enc, _ := NewEncryptor(k.pk)
	if err := ps.CheckRange([]int64{lim, -lim, 0}, 3); err != nil {
		t.Fatal(err)
	}
	var re *RangeError
	err := ps.CheckRange([]int64{0, 5, lim + 1}, 3)
	if !errors.As(err, &re) || re.Index != 2 || re.Value != lim+1 || re.Limit != lim {
		t.Fatalf("want RangeError at index 2, got %v", err)
	}
	if err := ps.CheckRange([]int64{math.MinInt64}, 1); !errors.As(err, &re) || re.Index != 0 {
		t.Fatalf("MinInt64 must be refused: %v", err)
	}
	if _, err := enc.Encrypt([]int64{1, -(1 << 42)}, 1); !errors.As(err, &re) || re.Index != 1 {
		t.Fatalf("Encrypt must range-check: %v", err)
	}
	if _, err := enc.Encrypt(make([]int64, enc.ps.Slots()+1), 1); err == nil {
		t.Fatal("too many values accepted")
	}
	if _, err := ps.InputLimit(0); err == nil {
		t.Fatal("maxTerms 0 accepted")
	}
	// The extreme accepted values survive the sum exactly.
	ips := enc.ps
	lim1, _ := ips.InputLimit(2)
	a, _ := enc.Encrypt([]int64{lim1, -lim1}, 2)
	b, _ := enc.Encrypt([]int64{lim1, -lim1}, 2)
	s, err := NewEvaluator(ips).Add(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := k.decrypt(t, s); got[0] != 2*lim1 || got[1] != -2*lim1 {
		t.Fatalf("extremes: got %d %d want ±%d", got[0], got[1], 2*lim1)
	}
}

func randVec(r *rand.Rand, n int, lim int64) []int64 {
	v := make([]int64, n)
	for i := range v {
		v[i] = r.Int64N(2*lim+1) - lim
	}
	return v
}

func TestAddAndMask(t *testing.T) {
	for _, name := range []string{NameInsecureTestParamsSums, NameInsecureTestParamsSquares} {
		ps := insecure(t, name)
		k := singleKey(ps)
		enc, _ := NewEncryptor(k.pk)
		ev := NewEvaluator(ps)
		r := rand.New(rand.NewPCG(1, 2))
		lim, _ := ps.InputLimit(3)
		x, y := randVec(r, ps.Slots(), lim), randVec(r, ps.Slots(), lim)
		cx, _ := enc.Encrypt(x, 3)
		cy, _ := enc.Encrypt(y, 3)
		s, err := ev.Add(cx, cy)
		if err != nil {
			t.Fatal(err)
		}
		if s.Noise() != (Noise{Terms: 2}) {
			t.Fatalf("noise %+v", s.Noise())
		}
		bitsv := make([]bool, ps.Slots())
		for i := range bitsv {
			bitsv[i] = r.IntN(2) == 1
		}
		m, err := ps.NewMask(bitsv, ps.MaxLevel())
		if err != nil {
			t.Fatal(err)
		}
		ms, err := ev.MulMask(s, m)
		if err != nil {
			t.Fatal(err)
		}
		if ms.Noise() != (Noise{Terms: 2, Masked: 2}) {
			t.Fatalf("noise %+v", ms.Noise())
		}
		got, gotM := k.decrypt(t, s), k.decrypt(t, ms)
		for i := range x {
			want := x[i] + y[i]
			if got[i] != want {
				t.Fatalf("%s slot %d: %d want %d", name, i, got[i], want)
			}
			if !bitsv[i] {
				want = 0
			}
			if gotM[i] != want {
				t.Fatalf("%s masked slot %d: %d want %d", name, i, gotM[i], want)
			}
		}
		if _, err := ev.MulMask(ms, m); err == nil {
			t.Fatal("double mask accepted")
		}
	}
}

func TestAddRefusesMismatch(t *testing.T) {
	ps := insecure(t, NameInsecureTestParamsSums)
	k := singleKey(ps)
	enc, _ := NewEncryptor(k.pk)
	ev := NewEvaluator(ps)
	a, _ := enc.Encrypt([]int64{1}, 1)
	b, _ := enc.Encrypt([]int64{2}, 1)

	scaled := &Ciphertext{ps: ps, ct: b.ct.CopyNew(), noise: b.noise}
	scaled.ct.Scale = ps.params.NewScale(2)
	if _, err := ev.Add(a, scaled); !errors.Is(err, ErrMismatch) {
		t.Fatalf("different scales: %v", err)
	}
	low := &Ciphertext{ps: ps, ct: b.ct.CopyNew(), noise: b.noise}
	low.ct.Resize(1, ps.MaxLevel()-1)
	if _, err := ev.Add(a, low); !errors.Is(err, ErrMismatch) {
		t.Fatalf("different levels: %v", err)
	}
	other := singleKey(insecure(t, NameInsecureTestParamsSquares))
	oenc, _ := NewEncryptor(other.pk)
	c, _ := oenc.Encrypt([]int64{1}, 1)
	if _, err := ev.Add(a, c); !errors.Is(err, ErrMismatch) {
		t.Fatalf("different params: %v", err)
	}
	if _, err := ps.WrapCiphertext(scaled.ct, FreshNoise); !errors.Is(err, ErrMeta) {
		t.Fatalf("WrapCiphertext accepted a non-canonical scale: %v", err)
	}
}

func TestZeroSumMask(t *testing.T) {
	ps := insecure(t, NameInsecureTestParamsSums)
	k := singleKey(ps)
	enc, _ := NewEncryptor(k.pk)
	ev := NewEvaluator(ps)
	r := rand.New(rand.NewPCG(3, 4))
	lim, _ := ps.InputLimit(ps.Slots())
	x := randVec(r, ps.Slots(), lim)
	var want int64
	for _, v := range x {
		want += v
	}
	cx, _ := enc.Encrypt(x, ps.Slots())
	masked := cx
	for i := 0; i < 3; i++ { // three nodes each add a mask
		m, err := enc.EncryptZeroSumMask(ps.Slots())
		if err != nil {
			t.Fatal(err)
		}
		if masked, err = ev.Add(masked, m); err != nil {
			t.Fatal(err)
		}
	}
	plain, mslots := k.slots(t, cx), k.slots(t, masked)
	same := 0
	for i := range plain {
		if plain[i] == mslots[i] {
			same++
		}
	}
	if same > 2 {
		t.Fatalf("%d masked slots equal the unmasked ones", same)
	}
	if got := ps.TotalModT(mslots); got != want {
		t.Fatalf("masked total %d, want %d", got, want)
	}
	if got := ps.TotalModT(plain); got != want {
		t.Fatalf("plain total %d, want %d", got, want)
	}
	// Block-wise masks keep every block's total.
	v, err := ps.ZeroSumVector(16)
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b < len(v); b += 16 {
		if ps.TotalModT(v[b:b+16]) != 0 {
			t.Fatal("block does not sum to zero")
		}
	}
	if _, err := ps.ZeroSumVector(3); err == nil {
		t.Fatal("block size not dividing the slots accepted")
	}
}

// Encryptors and evaluators are not goroutine-safe in lattigo v5: each
// goroutine uses its own ShallowCopy. Run with -race.
func TestConcurrentEncryptAndSum(t *testing.T) {
	ps := insecure(t, NameInsecureTestParamsSums)
	k := singleKey(ps)
	enc, _ := NewEncryptor(k.pk)
	const G, per = 4, 4
	lim, _ := ps.InputLimit(G * per)
	cts := make([]*Ciphertext, G*per)
	want := make([]int64, ps.Slots())
	vecs := make([][]int64, G*per)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range vecs {
		vecs[i] = randVec(r, ps.Slots(), lim)
		for j, v := range vecs[i] {
			want[j] += v
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, G)
	for g := 0; g < G; g++ {
		wg.Add(1)
		go func(g int, e *Encryptor) {
			defer wg.Done()
			for i := g * per; i < (g+1)*per; i++ {
				c, err := e.Encrypt(vecs[i], G*per)
				if err != nil {
					errs <- err
					return
				}
				cts[i] = c
			}
		}(g, enc.ShallowCopy())
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sum, err := Sum(NewEvaluator(ps), cts, 3)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Noise().Terms != G*per {
		t.Fatalf("terms %d", sum.Noise().Terms)
	}
	got := k.decrypt(t, sum)
	for j := range want {
		if got[j] != want[j] {
			t.Fatalf("slot %d: %d want %d", j, got[j], want[j])
		}
	}
}

func TestWireRoundTrip(t *testing.T) {
	for _, ps := range []*ParamSet{insecure(t, NameInsecureTestParamsSums), Sums()} {
		k := singleKey(ps)
		enc, _ := NewEncryptor(k.pk)
		ct, _ := enc.Encrypt([]int64{1, 2, 3}, 1)
		b, _ := ct.MarshalBinary()
		if n, _ := ps.WireSize(LabelCiphertext, ps.MaxLevel()); n != len(b) {
			t.Fatalf("ciphertext size %d, WireSize %d", len(b), n)
		}
		mac := bytes.Repeat([]byte{1}, 32)
		exp, err := ps.Expect("cer-1", LabelCiphertext, ps.MaxLevel())
		if err != nil {
			t.Fatal(err)
		}
		msg, err := envelope.Seal(mac, exp.Header, b)
		if err != nil {
			t.Fatal(err)
		}
		p, err := envelope.Open(mac, msg, exp)
		if err != nil {
			t.Fatal(err)
		}
		ct2, err := ps.UnmarshalCiphertext(p, ps.MaxLevel())
		if err != nil || !ct.Equal(ct2) {
			t.Fatalf("ciphertext round trip: %v", err)
		}
		pkb, _ := k.pk.MarshalBinary()
		pk2, err := ps.UnmarshalPublicKey(pkb)
		if err != nil || !pk2.Equal(k.pk) {
			t.Fatalf("public key round trip: %v", err)
		}
		skb, _ := k.sk.MarshalBinary()
		sk2, err := ps.UnmarshalSecretKey(skb)
		if err != nil || !sk2.Equal(k.sk) {
			t.Fatalf("secret key round trip: %v", err)
		}
		ckg := mhe.NewPublicKeyGenProtocol(ps.params)
		crp := ckg.SampleCRP(mustPRNG(t))
		sh := ckg.AllocateShare()
		ckg.GenShare(k.sk, crp, &sh)
		shb, _ := sh.MarshalBinary()
		sh2, err := ps.UnmarshalCKGShare(shb)
		if err != nil || !sh2.Value.Equal(&sh.Value) {
			t.Fatalf("ckg share round trip: %v", err)
		}
		thr := mhe.NewThresholdizer(ps.params)
		poly, _ := thr.GenShamirPolynomial(2, k.sk)
		ss := thr.AllocateThresholdSecretShare()
		thr.GenShamirSecretShare(7, poly, &ss)
		ssb, _ := ss.MarshalBinary()
		ss2, err := ps.UnmarshalShamirShare(ssb)
		if err != nil || !ss2.Poly.Equal(&ss.Poly) {
			t.Fatalf("shamir share round trip: %v", err)
		}
		for level := 0; level <= ps.MaxLevel(); level++ {
			pks, _ := mhe.NewPublicKeySwitchProtocol(ps.params, ps.params.Xe())
			c := ct.ct.CopyNew()
			c.Resize(1, level)
			out := pks.AllocateShare(level)
			pks.GenShare(k.sk, k.pk.pk, c, &out)
			ob, _ := out.MarshalBinary()
			if n, _ := ps.WireSize(LabelPKSShare, level); n != len(ob) {
				t.Fatalf("pks share size %d, WireSize %d", len(ob), n)
			}
			o2, err := ps.UnmarshalPKSShare(ob, level)
			if err != nil || !o2.Value[0].Equal(&out.Value[0]) || !o2.Value[1].Equal(&out.Value[1]) {
				t.Fatalf("pks share round trip at level %d: %v", level, err)
			}
		}
	}
}

func TestWireRejectsCorruption(t *testing.T) {
	ps := insecure(t, NameInsecureTestParamsSums)
	k := singleKey(ps)
	enc, _ := NewEncryptor(k.pk)
	ct, _ := enc.Encrypt([]int64{1, 2, 3}, 1)
	b, _ := ct.MarshalBinary()
	L := ps.MaxLevel()
	try := func(name string, p []byte, level int, want error) {
		t.Helper()
		if _, err := ps.UnmarshalCiphertext(p, level); !errors.Is(err, want) {
			t.Fatalf("%s: got %v, want %v", name, err, want)
		}
	}
	try("truncated", b[:len(b)-1], L, ErrLength)
	try("extended", append(bytes.Clone(b), 0), L, ErrLength)
	try("empty", nil, L, ErrLength)
	try("wrong level", b, L-1, ErrLength)
	try("bad level", b, L+1, ErrLevel)
	// Corrupt every structural byte in turn (length prefixes, metadata):
	// same length, so only the shape check stands between this and lattigo.
	s, _ := ps.shapeOf(LabelCiphertext, L)
	n := 0
	for _, r := range s.fixed {
		for i := r[0]; i < r[1]; i++ {
			p := bytes.Clone(b)
			p[i] ^= 0xff
			try("structural byte", p, L, ErrShape)
			n++
		}
	}
	if n < 10 {
		t.Fatalf("only %d structural bytes found", n)
	}
	// A coefficient ≥ q: find the last coefficient (all ones is ≥ q).
	p := bytes.Clone(b)
	for i := len(p) - 8; i < len(p); i++ {
		p[i] = 0xff
	}
	try("unreduced coefficient", p, L, ErrCoeff)
	// Noise descriptor must be sane.
	p = bytes.Clone(b)
	p[7] = 0 // Terms = 0
	try("zero terms", p, L, errNoise)
	// The same checks guard the other labels.
	pkb, _ := k.pk.MarshalBinary()
	if _, err := ps.UnmarshalPublicKey(pkb[:len(pkb)-3]); !errors.Is(err, ErrLength) {
		t.Fatalf("public key truncated: %v", err)
	}
	pk2 := bytes.Clone(pkb)
	pk2[0] ^= 1
	if _, err := ps.UnmarshalPublicKey(pk2); !errors.Is(err, ErrShape) {
		t.Fatalf("public key header flipped: %v", err)
	}
	if _, err := ps.WireSize("nope", L); !errors.Is(err, ErrLabel) {
		t.Fatal(err)
	}
}

func TestSmudgingGuard(t *testing.T) {
	ps := Sums()
	// Guard: the float path is exact only while 6σ < min(q_i, 2^53).
	for _, c := range []struct {
		log2 float64
		ok   bool
	}{{40, true}, {50, true}, {50.4, true}, {50.5, false}, {52, false}, {53.5, false}, {61.3, false}, {62, false}, {79.9, false}, {80, true}, {95, true}} {
		err := ps.CheckSmudging(math.Exp2(c.log2))
		if (err == nil) != c.ok {
			t.Errorf("σ = 2^%v: err = %v, want ok=%v", c.log2, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrSmudging) {
			t.Errorf("wrong error type %v", err)
		}
	}
	for _, bad := range []float64{0, -1, math.Inf(1), math.NaN()} {
		if ps.CheckSmudging(bad) == nil {
			t.Errorf("σ = %v accepted", bad)
		}
	}
	L := ps.MaxLevel()
	// Sum of 3 nodes' values plus 3 zero-sum masks: float path, σ = 2^40·B.
	s, err := ps.SmudgingFor(Noise{Terms: 6}, L, 3)
	if err != nil || s.BigPath || s.Sigma != math.Exp2(40)*s.NoiseBound {
		t.Fatalf("6 terms: %+v %v", s, err)
	}
	// 2^20 rows across 3 nodes (384 ciphertexts + 3 masks): 2^40·B falls in
	// the broken band and is raised to 2^80.
	s, err = ps.SmudgingFor(Noise{Terms: 387}, L, 3)
	if err != nil || !s.BigPath || s.Sigma != math.Exp2(80) {
		t.Fatalf("387 terms: %+v %v", s, err)
	}
	// Masked: σ far above 2^80, still decryptable at Sums.
	s, err = ps.SmudgingFor(Noise{Terms: 387, Masked: 384}, L, 3)
	if err != nil || !s.BigPath || s.Sigma < math.Exp2(90) || s.Log2Margin < 10 {
		t.Fatalf("masked: %+v %v", s, err)
	}
	t.Logf("masked 387 terms at Sums: B = 2^%.1f, σ = 2^%.1f, margin %.1f bits", math.Log2(s.NoiseBound), math.Log2(s.Sigma), s.Log2Margin)
	// Too much noise for the budget: refused.
	if _, err := ps.SmudgingFor(Noise{Terms: 1 << 40, Masked: 1 << 40}, L-1, 3); !errors.Is(err, ErrSmudging) {
		t.Fatalf("over budget accepted: %v", err)
	}
	if _, err := ps.SmudgingFor(Noise{Terms: 387, Masked: 384}, 0, 3); !errors.Is(err, ErrSmudging) {
		t.Fatalf("masked at level 0 accepted: %v", err)
	}
	if _, err := ps.SmudgingFor(Noise{}, L, 3); err == nil {
		t.Fatal("empty noise accepted")
	}
}

func TestMoments(t *testing.T) {
	xs := []int64{3, -1, 4, 1, -5, 9, 2, 6}
	m := Moments{Sum: new(big.Int), SumSq: new(big.Int)}
	for _, x := range xs {
		m.N++
		m.Sum.Add(m.Sum, big.NewInt(x))
		m.SumSq.Add(m.SumSq, big.NewInt(x*x))
	}
	mean, _ := m.Mean()
	v, _ := m.Variance()
	var mu float64
	for _, x := range xs {
		mu += float64(x)
	}
	mu /= float64(len(xs))
	var vv float64
	for _, x := range xs {
		vv += (float64(x) - mu) * (float64(x) - mu)
	}
	vv /= float64(len(xs))
	if math.Abs(mean-mu) > 1e-12 || math.Abs(v-vv) > 1e-9 {
		t.Fatalf("mean %v var %v, want %v %v", mean, v, mu, vv)
	}
	if _, err := (Moments{}).Mean(); !errors.Is(err, ErrEmpty) {
		t.Fatal(err)
	}
}

// The bounds a releasing node computes itself: an aggregate of n inputs is
// n fresh terms; an intersection_stats result is C masked chunks plus one
// zero-sum mask per department. Nonsense is refused, never defaulted.
func TestNodeNoiseBounds(t *testing.T) {
	n, err := SumNoise(3)
	if err != nil || n != (Noise{Terms: 3}) {
		t.Fatalf("SumNoise(3) = %+v, %v", n, err)
	}
	n, err = MaskedSumNoise(5, 3)
	if err != nil || n != (Noise{Terms: 8, Masked: 5}) {
		t.Fatalf("MaskedSumNoise(5, 3) = %+v, %v", n, err)
	}
	for _, c := range [][2]int{{0, 0}, {-1, 3}, {3, -1}, {1 << 41, 1}, {1 << 40, 1}} {
		if n, err := MaskedSumNoise(c[0], c[1]); err == nil {
			t.Errorf("MaskedSumNoise(%d, %d) = %+v accepted", c[0], c[1], n)
		}
	}
	if _, err := SumNoise(0); err == nil {
		t.Error("SumNoise(0) accepted")
	}
}
