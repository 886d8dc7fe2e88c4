package he

import (
	"errors"
	"math/big"
	"math/rand/v2"
	"testing"
)

func pow2(n uint) *big.Int { return new(big.Int).Lsh(big.NewInt(1), n) }

// The arithmetic's bounds, checked exactly: every slot that must not wrap
// stays within (T−1)/2, and every lift window fits its modulus.
func TestExactBounds(t *testing.T) {
	ts, tq := new(big.Int).SetUint64(TSums), new(big.Int).SetUint64(TSquares)
	maxS, maxQ := big.NewInt(Sums().MaxAbs()), big.NewInt(Squares().MaxAbs())
	rows := big.NewInt(MaxJobRows)
	le := func(what string, a, b *big.Int) {
		t.Helper()
		if a.Cmp(b) > 0 {
			t.Fatalf("%s: %v > %v", what, a, b)
		}
		t.Logf("%s: 2^%.2f ≤ 2^%.2f", what, log2(a), log2(b))
	}
	// Counts and histogram buckets (Sums).
	le("count ≤ MaxAbs_s", rows, maxS)
	// Aggregate Σx: window 8·2^39 ≤ T_s; hint |Σx|/2^39 + 8 ≤ MaxAbs_s.
	le("aggregate Σx window", new(big.Int).Lsh(big.NewInt(MaxContributors), AggregateSumShift), ts)
	le("aggregate Σx hint", new(big.Int).Add(new(big.Int).Rsh(maxSum, AggregateSumShift), big.NewInt(MaxContributors)), maxS)
	// Aggregate Σx²: window 8·2^55 ≤ T_q; hint ≤ 2^110/2^55.
	le("aggregate Σx² window", new(big.Int).Lsh(big.NewInt(MaxContributors), AggregateSquareShift), tq)
	le("aggregate Σx² hint", new(big.Int).Rsh(maxSumSq, AggregateSquareShift), maxQ)
	// intersection_stats Σx: |Σx| ≤ 2^70 < T_s·T_q / 2.
	le("intersection Σx", maxSum, new(big.Int).Rsh(CRTModulus(), 1))
	// intersection_stats Σx²: window 2^30·2^70 ≤ T_s·T_q; hint ≤ 2^110/2^70.
	le("intersection Σx² window", new(big.Int).Lsh(rows, IntersectionSquareShift), CRTModulus())
	le("intersection Σx² hint", new(big.Int).Rsh(maxSumSq, IntersectionSquareShift), maxS)
	// The extremes themselves.
	if maxSum.Cmp(new(big.Int).Mul(rows, big.NewInt(MaxValue))) != 0 || maxSumSq.Cmp(new(big.Int).Mul(rows, new(big.Int).Mul(big.NewInt(MaxValue), big.NewInt(MaxValue)))) != 0 {
		t.Fatal("maxSum / maxSumSq do not match MaxJobRows and MaxValue")
	}
	// 8 nodes × 10^8 rows fit.
	if 8*100_000_000 > MaxJobRows {
		t.Fatal("8 × 10^8 rows exceed MaxJobRows")
	}
}

func log2(x *big.Int) float64 {
	f, _ := new(big.Float).SetInt(x).Float64()
	if f <= 0 {
		return 0
	}
	e := 0.0
	for f >= 2 {
		f /= 2
		e++
	}
	for f < 1 {
		f *= 2
		e--
	}
	return e + (f - 1) // good enough for a log line
}

func bigFloor(x *big.Int, s uint) int64 {
	// Floor division by 2^s (Rsh on a negative big.Int rounds toward −∞).
	return new(big.Int).Rsh(x, s).Int64()
}

func bigMod(x *big.Int, t uint64) int64 {
	m := new(big.Int).Mod(x, new(big.Int).SetUint64(t))
	u := m.Uint64()
	if u > (t-1)/2 {
		return -int64(t - u)
	}
	return int64(u)
}

// Acc's 128-bit arithmetic against big integers, extremes included.
func TestAccMatchesBigInt(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	extremes := []int64{0, 1, -1, MaxValue, -MaxValue, MaxValue - 1, -MaxValue + 1, 1 << 35, -(1 << 35)}
	for trial := range 200 {
		var a Acc
		sum, sq := new(big.Int), new(big.Int)
		n := 1 + r.IntN(50)
		for i := range n {
			var x int64
			switch {
			case trial%3 == 0:
				x = extremes[r.IntN(len(extremes))]
			case trial%3 == 1 && i%2 == 0:
				x = -MaxValue
			default:
				x = r.Int64N(2*MaxValue+1) - MaxValue
			}
			if err := a.Add(x); err != nil {
				t.Fatal(err)
			}
			sum.Add(sum, big.NewInt(x))
			sq.Add(sq, new(big.Int).Mul(big.NewInt(x), big.NewInt(x)))
		}
		if a.N() != int64(n) || a.Sum().Cmp(sum) != 0 || a.SumSq().Cmp(sq) != 0 {
			t.Fatalf("acc %d %v %v, want %d %v %v", a.N(), a.Sum(), a.SumSq(), n, sum, sq)
		}
		for _, ps := range []*ParamSet{Sums(), Squares()} {
			if a.SumMod(ps) != bigMod(sum, ps.T()) || a.SumSqMod(ps) != bigMod(sq, ps.T()) {
				t.Fatalf("residues mod %d differ", ps.T())
			}
		}
		for _, s := range []uint{AggregateSumShift, 7, 64, 70} {
			if a.SumFloor(s) != bigFloor(sum, s) {
				t.Fatalf("⌊Σx/2^%d⌋ = %d, want %d (Σx = %v)", s, a.SumFloor(s), bigFloor(sum, s), sum)
			}
		}
		for _, s := range []uint{AggregateSquareShift, IntersectionSquareShift, 64} {
			if a.SumSqFloor(s) != bigFloor(sq, s) {
				t.Fatalf("⌊Σx²/2^%d⌋ differs", s)
			}
		}
	}
	var a Acc
	if err := a.Add(MaxValue + 1); !errors.Is(err, ErrValueRange) || a.N() != 0 {
		t.Fatalf("2^40+1 accepted: %v", err)
	}
	if err := a.Add(-MaxValue - 1); !errors.Is(err, ErrValueRange) {
		t.Fatalf("−2^40−1 accepted: %v", err)
	}
	full := Acc{n: MaxJobRows}
	if err := full.Add(1); !errors.Is(err, ErrRowRange) || full.N() != MaxJobRows {
		t.Fatalf("row 2^30+1 accepted: %v", err)
	}
	one := Acc{n: 1}
	if err := full.Merge(&one); !errors.Is(err, ErrRowRange) {
		t.Fatalf("merge past 2^30 rows accepted: %v", err)
	}
}

// extreme builds the Acc of n rows all equal to x without adding them one
// by one (2^27 rows per node at the bound).
func extreme(n int64, x int64) Acc {
	var a Acc
	sum := new(big.Int).Mul(big.NewInt(n), big.NewInt(x))
	sq := new(big.Int).Mul(big.NewInt(n), new(big.Int).Mul(big.NewInt(x), big.NewInt(x)))
	a.n = n
	a.sum = fromBig(sum)
	a.sq = fromBig(sq)
	return a
}

func fromBig(x *big.Int) u128 {
	m := new(big.Int).Abs(x)
	lo := new(big.Int).And(m, new(big.Int).SetUint64(^uint64(0))).Uint64()
	hi := new(big.Int).Rsh(m, 64).Uint64()
	v := u128{hi, lo}
	if x.Sign() < 0 {
		v = v.negate()
	}
	return v
}

// An aggregate's nodes each encode their totals as a residue and a floor
// hint; the coordinator's decoding of the summed slots is exact — at the
// extremes (8 nodes × 2^27 rows of ±2^40) and at random.
func TestAggregateDecodeExact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	per := MaxJobRows / MaxContributors
	cases := [][]Acc{}
	for _, x := range []int64{MaxValue, -MaxValue, 1, 0} {
		var c []Acc
		for range MaxContributors {
			c = append(c, extreme(per, x))
		}
		cases = append(cases, c)
	}
	// Mixed signs and sizes, fewer nodes.
	for range 50 {
		k := 1 + r.IntN(MaxContributors)
		var c []Acc
		for range k {
			c = append(c, extreme(1+r.Int64N(per), r.Int64N(2*MaxValue+1)-MaxValue))
		}
		cases = append(cases, c)
	}
	ps, pq := Sums(), Squares()
	for _, nodes := range cases {
		var rs, hs, rq, hq uint64 // slot totals mod T, as decrypted
		want := Acc{}
		for i := range nodes {
			a := &nodes[i]
			rs = addMod(rs, uint64(a.SumMod(ps)+int64(ps.T()))%ps.T(), ps.T())
			hs = addMod(hs, uint64(a.SumFloor(AggregateSumShift)+int64(ps.T()))%ps.T(), ps.T())
			rq = addMod(rq, uint64(a.SumSqMod(pq)+int64(pq.T()))%pq.T(), pq.T())
			hq = addMod(hq, uint64(a.SumSqFloor(AggregateSquareShift))%pq.T(), pq.T())
			if err := want.Merge(a); err != nil {
				t.Fatal(err)
			}
		}
		s, err := AggregateSum(ps.CenterModT(rs), ps.CenterModT(hs), len(nodes))
		if err != nil || s.Cmp(want.Sum()) != 0 {
			t.Fatalf("Σx = %v (%v), want %v", s, err, want.Sum())
		}
		q, err := AggregateSumSq(pq.CenterModT(rq), pq.CenterModT(hq), len(nodes))
		if err != nil || q.Cmp(want.SumSq()) != 0 {
			t.Fatalf("Σx² = %v (%v), want %v", q, err, want.SumSq())
		}
	}
	// A hint that does not belong to the residue is caught, not decoded.
	if _, err := AggregateSumSq(5, 1<<40, 2); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("inconsistent lanes decoded: %v", err)
	}
}

// intersection_stats: one term per key; Σx from the CRT pair alone, Σx²
// from the pair and the per-key floor hint.
func TestIntersectionDecodeExact(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	ps, pq := Sums(), Squares()
	check := func(keys []Acc) {
		t.Helper()
		var rs, rq, qs, qq, h uint64
		var want Acc
		for i := range keys {
			k := &keys[i]
			rs = addMod(rs, uint64(ISSumS.Slot(k)+int64(ps.T()))%ps.T(), ps.T())
			rq = addMod(rq, uint64(ISSumQ.Slot(k)+int64(pq.T()))%pq.T(), pq.T())
			qs = addMod(qs, uint64(ISSqS.Slot(k)+int64(ps.T()))%ps.T(), ps.T())
			qq = addMod(qq, uint64(ISSqQ.Slot(k)+int64(pq.T()))%pq.T(), pq.T())
			h = addMod(h, uint64(ISSqHint.Slot(k))%ps.T(), ps.T())
			if err := want.Merge(k); err != nil {
				t.Fatal(err)
			}
		}
		s, err := IntersectionSum(ps.CenterModT(rs), pq.CenterModT(rq))
		if err != nil || s.Cmp(want.Sum()) != 0 {
			t.Fatalf("Σx = %v (%v), want %v", s, err, want.Sum())
		}
		q, err := IntersectionSumSq(ps.CenterModT(qs), pq.CenterModT(qq), ps.CenterModT(h))
		if err != nil || q.Cmp(want.SumSq()) != 0 {
			t.Fatalf("Σx² = %v (%v), want %v", q, err, want.SumSq())
		}
	}
	// Extremes: 2^30 rows of ±2^40 as a few big keys, and many small ones.
	for _, x := range []int64{MaxValue, -MaxValue} {
		check([]Acc{extreme(MaxJobRows/2, x), extreme(MaxJobRows/2, x)})
		var ks []Acc
		for range 1000 {
			ks = append(ks, extreme(MaxJobRows/1000, x))
		}
		check(ks)
	}
	for range 50 {
		var ks []Acc
		for range 1 + r.IntN(200) {
			ks = append(ks, extreme(1+r.Int64N(1<<20), r.Int64N(2*MaxValue+1)-MaxValue))
		}
		check(ks)
	}
}

// The lanes, end to end through encryption: several nodes encrypt their
// slot vectors at the extremes, the ciphertexts are added, and the decoded
// totals equal the big-integer ones (insecure test parameters: same T).
func TestExactEncryptedAggregate(t *testing.T) {
	ps := insecure(t, NameInsecureTestParamsSums)
	pq := insecure(t, NameInsecureTestParamsSquares)
	ks, kq := singleKey(ps), singleKey(pq)
	es, err := NewEncryptor(ks.pk)
	if err != nil {
		t.Fatal(err)
	}
	eq, err := NewEncryptor(kq.pk)
	if err != nil {
		t.Fatal(err)
	}
	per := MaxJobRows / MaxContributors
	nodes := []Acc{extreme(per, MaxValue), extreme(per, MaxValue), extreme(per, -MaxValue+12345), extreme(per, MaxValue-7),
		extreme(per, MaxValue), extreme(per, MaxValue), extreme(per, MaxValue), extreme(per, 3)}
	var cs, cq []*Ciphertext
	var want Acc
	for i := range nodes {
		a := &nodes[i]
		// Sums: [count, Σx mod T_s, ⌊Σx/2^39⌋]; Squares: [Σx² mod T_q, ⌊Σx²/2^55⌋].
		c, err := es.Encrypt([]int64{a.N(), a.SumMod(Sums()), a.SumFloor(AggregateSumShift)}, 1)
		if err != nil {
			t.Fatal(err)
		}
		q, err := eq.Encrypt([]int64{a.SumSqMod(Squares()), a.SumSqFloor(AggregateSquareShift)}, 1)
		if err != nil {
			t.Fatal(err)
		}
		cs, cq = append(cs, c), append(cq, q)
		if err := want.Merge(a); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Sum(NewEvaluator(ps), cs, 2)
	if err != nil {
		t.Fatal(err)
	}
	q, err := Sum(NewEvaluator(pq), cq, 2)
	if err != nil {
		t.Fatal(err)
	}
	vs, vq := ks.decrypt(t, s), kq.decrypt(t, q)
	if vs[0] != want.N() {
		t.Fatalf("count %d, want %d", vs[0], want.N())
	}
	sum, err := AggregateSum(vs[1], vs[2], len(nodes))
	if err != nil || sum.Cmp(want.Sum()) != 0 {
		t.Fatalf("Σx %v (%v), want %v", sum, err, want.Sum())
	}
	sq, err := AggregateSumSq(vq[0], vq[1], len(nodes))
	if err != nil || sq.Cmp(want.SumSq()) != 0 {
		t.Fatalf("Σx² %v (%v), want %v", sq, err, want.SumSq())
	}
	if sq.Cmp(pow2(100)) < 0 {
		t.Fatalf("the extreme case should pass 2^100, got 2^%.1f", log2(sq))
	}
	t.Logf("2^30 rows: Σx = %v, Σx² = %v (2^%.2f)", sum, sq, log2(sq))
}

func TestISLanes(t *testing.T) {
	for l := range ISLanes {
		if l.Params() != NameSums && l.Params() != NameSquares {
			t.Fatal(l)
		}
	}
	if ISSumQ.Params() != NameSquares || ISSqQ.Params() != NameSquares || ISSqHint.Params() != NameSums {
		t.Fatal("lane parameter sets")
	}
	n := 0
	for l := range ISLanes {
		if l.Wanted(false, false) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("a count-only job has %d lanes, want 1", n)
	}
}
