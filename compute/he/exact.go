package he

import (
	"errors"
	"fmt"
	"math/big"
	"math/bits"
	"sync"
)

// Exact statistics at any row count (see the package doc, "Exact Σx and
// Σx²"). A statistic S (Σx or Σx² of some rows) is encrypted as its
// residue modulo one or both plaintext moduli, plus, where the residue
// alone does not determine S, a coarse "floor hint" Σ_terms ⌊S_term/2^h⌋
// over the terms the result adds (the contributing nodes of an aggregate,
// the keys of an intersection_stats job): S then lies in
// [2^h·hint, 2^h·(hint+terms)), a window no wider than the modulus, and
// Lift recovers it exactly in big integers.

// Bounds of the exact statistics. policy.MaxHERows mirrors MaxJobRows (the
// API refuses a job whose declared sizes exceed it before it is queued);
// a test in compute/node keeps the two equal.
const (
	// MaxValueBits: every value has |x| ≤ 2^MaxValueBits.
	MaxValueBits = 40
	// MaxValue is the largest |x| accepted.
	MaxValue int64 = 1 << MaxValueBits
	// MaxJobRowsBits: one result adds at most 2^MaxJobRowsBits rows, over
	// all the job's inputs (8 nodes × 10^8 rows = 8·10^8 < 2^30).
	MaxJobRowsBits = 30
	// MaxJobRows is the most rows one result adds.
	MaxJobRows int64 = 1 << MaxJobRowsBits
	// MaxContributors is the most terms (contributing nodes) an aggregate's
	// floor hints are sized for (policy.MaxInputs).
	MaxContributors = 8

	// AggregateSumShift is h of an aggregate's Σx hint (Sums): the window
	// 8·2^39 = 2^42 fits T_s, the hint (|Σx| ≤ 2^70) is ≤ 2^31 + 8.
	AggregateSumShift = 39
	// AggregateSquareShift is h of an aggregate's Σx² hint (Squares):
	// 8·2^55 = 2^58 fits T_q, the hint (Σx² ≤ 2^110) is ≤ 2^55.
	AggregateSquareShift = 55
	// IntersectionSquareShift is h of an intersection_stats Σx² hint
	// (Sums; one term per key, up to 2^30 of them): the window 2^100 fits
	// T_s·T_q ≈ 2^101, the hint is ≤ 2^40.
	IntersectionSquareShift = 70
)

// Errors of the exact statistics.
var (
	// ErrValueRange: a value is larger than MaxValue in magnitude.
	ErrValueRange = errors.New("he: value out of range")
	// ErrRowRange: more rows than MaxJobRows.
	ErrRowRange = errors.New("he: too many rows")
	// ErrInconsistent: decrypted lanes do not describe one integer in range
	// (a total wrapped, or the lanes are not of one job).
	ErrInconsistent = errors.New("he: decrypted totals are inconsistent")
)

// u128 is a 128-bit two's-complement integer (Σx is signed, Σx² not).
type u128 struct{ hi, lo uint64 }

func (a u128) add(b u128) u128 {
	lo, c := bits.Add64(a.lo, b.lo, 0)
	hi, _ := bits.Add64(a.hi, b.hi, c)
	return u128{hi, lo}
}

func (a u128) neg() bool { return a.hi>>63 == 1 }

func (a u128) negate() u128 {
	lo, b := bits.Sub64(0, a.lo, 0)
	hi, _ := bits.Sub64(0, a.hi, b)
	return u128{hi, lo}
}

func s128(x int64) u128 { return u128{uint64(x >> 63), uint64(x)} }

// mod is a mod t in [0, t), a read as signed.
func (a u128) mod(t uint64) uint64 {
	if !a.neg() {
		return bits.Rem64(a.hi, a.lo, t)
	}
	m := a.negate()
	r := bits.Rem64(m.hi, m.lo, t)
	return (t - r) % t
}

// floor is ⌊a / 2^s⌋ (a signed, arithmetic shift), which must fit an int64.
func (a u128) floor(s uint) (int64, bool) {
	var hi int64
	var lo uint64
	switch {
	case s >= 128:
		hi, lo = int64(a.hi)>>63, uint64(int64(a.hi)>>63)
	case s >= 64:
		hi, lo = int64(a.hi)>>63, uint64(int64(a.hi)>>(s-64))
	case s == 0:
		hi, lo = int64(a.hi), a.lo
	default:
		hi, lo = int64(a.hi)>>s, a.lo>>s|a.hi<<(64-s)
	}
	if hi != int64(lo)>>63 {
		return 0, false
	}
	return int64(lo), true
}

func (a u128) big() *big.Int {
	m := a
	if a.neg() {
		m = a.negate()
	}
	b := new(big.Int).SetUint64(m.hi)
	b.Lsh(b, 64).Or(b, new(big.Int).SetUint64(m.lo))
	if a.neg() {
		b.Neg(b)
	}
	return b
}

// Acc accumulates the exact count, Σx and Σx² of rows (128-bit, so no
// bound on its own beyond MaxJobRows rows of |x| ≤ MaxValue). The zero
// value is empty.
type Acc struct {
	n   int64
	sum u128
	sq  u128
}

// Add adds one row's value. It refuses |x| > MaxValue (ErrValueRange) and
// a row past MaxJobRows (ErrRowRange) and then changes nothing.
func (a *Acc) Add(x int64) error {
	if x > MaxValue || x < -MaxValue {
		return ErrValueRange
	}
	if a.n >= MaxJobRows {
		return ErrRowRange
	}
	ax := uint64(x)
	if x < 0 {
		ax = uint64(-x)
	}
	hi, lo := bits.Mul64(ax, ax)
	a.n++
	a.sum = a.sum.add(s128(x))
	a.sq = a.sq.add(u128{hi, lo})
	return nil
}

// AddCount counts a row without a value (count-only jobs).
func (a *Acc) AddCount() error {
	if a.n >= MaxJobRows {
		return ErrRowRange
	}
	a.n++
	return nil
}

// Merge adds b's rows to a (ErrRowRange past MaxJobRows rows).
func (a *Acc) Merge(b *Acc) error {
	if a.n+b.n > MaxJobRows {
		return ErrRowRange
	}
	a.n += b.n
	a.sum = a.sum.add(b.sum)
	a.sq = a.sq.add(b.sq)
	return nil
}

// N is the number of rows.
func (a *Acc) N() int64 { return a.n }

// Sum is Σx, exactly.
func (a *Acc) Sum() *big.Int { return a.sum.big() }

// SumSq is Σx², exactly.
func (a *Acc) SumSq() *big.Int { return a.sq.big() }

// SumMod is Σx mod ps.T(), centred (an Encrypt-ready slot value).
func (a *Acc) SumMod(ps *ParamSet) int64 { return ps.CenterModT(a.sum.mod(ps.T())) }

// SumSqMod is Σx² mod ps.T(), centred.
func (a *Acc) SumSqMod(ps *ParamSet) int64 { return ps.CenterModT(a.sq.mod(ps.T())) }

// SumFloor is ⌊Σx / 2^shift⌋ (the floor hint).
func (a *Acc) SumFloor(shift uint) int64 {
	v, _ := a.sum.floor(shift) // |Σx| ≤ 2^70: fits for every shift ≥ 7
	return v
}

// SumSqFloor is ⌊Σx² / 2^shift⌋.
func (a *Acc) SumSqFloor(shift uint) int64 {
	v, _ := a.sq.floor(shift) // Σx² ≤ 2^110: fits for every shift ≥ 47
	return v
}

// ---- decoding (coordinator) ---------------------------------------------

// Lift returns the integer S with S ≡ r (mod m) and
// 2^shift·hint ≤ S < 2^shift·(hint+terms), which is unique when
// terms·2^shift ≤ m. r may be any representative. It returns
// ErrInconsistent when no such S exists (a total wrapped, or the residue
// and the hint do not belong together).
func Lift(r, m *big.Int, hint int64, shift uint, terms int64) (*big.Int, error) {
	if m.Sign() <= 0 || terms < 1 {
		return nil, fmt.Errorf("he: lift: modulus %v, %d terms", m, terms)
	}
	width := new(big.Int).Lsh(big.NewInt(terms), shift)
	if width.Cmp(m) > 0 {
		return nil, fmt.Errorf("he: lift: a window of %d·2^%d does not fit the modulus", terms, shift)
	}
	base := new(big.Int).Lsh(big.NewInt(hint), shift)
	off := new(big.Int).Sub(r, base)
	off.Mod(off, m)
	if off.Cmp(width) >= 0 {
		return nil, fmt.Errorf("%w: the residue lies outside the hint's window", ErrInconsistent)
	}
	return base.Add(base, off), nil
}

var (
	crtOnce sync.Once
	crtM    *big.Int // T_s·T_q
	crtInv  *big.Int // T_s^-1 mod T_q
)

func crtInit() {
	crtOnce.Do(func() {
		ts, tq := new(big.Int).SetUint64(TSums), new(big.Int).SetUint64(TSquares)
		crtM = new(big.Int).Mul(ts, tq)
		crtInv = new(big.Int).ModInverse(ts, tq)
	})
}

// CRTModulus is T_s·T_q, the modulus of a residue pair (≈ 2^101).
func CRTModulus() *big.Int {
	crtInit()
	return new(big.Int).Set(crtM)
}

// CRT combines S mod T_s and S mod T_q (any representatives) into
// S mod T_s·T_q, in [0, T_s·T_q).
func CRT(rs, rq int64) *big.Int {
	crtInit()
	ts, tq := new(big.Int).SetUint64(TSums), new(big.Int).SetUint64(TSquares)
	a := new(big.Int).Mod(big.NewInt(rs), ts)
	d := new(big.Int).Sub(big.NewInt(rq), a)
	d.Mul(d, crtInv).Mod(d, tq)
	return d.Mul(d, ts).Add(d, a)
}

// maxSum is the largest |Σx| of a result: MaxJobRows·MaxValue = 2^70.
var maxSum = new(big.Int).Lsh(big.NewInt(1), MaxJobRowsBits+MaxValueBits)

// maxSumSq is the largest Σx²: 2^110.
var maxSumSq = new(big.Int).Lsh(big.NewInt(1), MaxJobRowsBits+2*MaxValueBits)

func inRange(s, lim *big.Int, signed bool) error {
	if s.CmpAbs(lim) > 0 || !signed && s.Sign() < 0 {
		return fmt.Errorf("%w: a total is out of range (it wrapped)", ErrInconsistent)
	}
	return nil
}

// AggregateSum decodes an aggregate's Σx from its Sums slots: the residue
// mod T_s and the hint Σ_nodes ⌊Σx_node/2^AggregateSumShift⌋ of `inputs`
// contributing nodes.
func AggregateSum(residue, hint int64, inputs int) (*big.Int, error) {
	if inputs < 1 || inputs > MaxContributors {
		return nil, fmt.Errorf("he: %d contributors (at most %d)", inputs, MaxContributors)
	}
	s, err := Lift(big.NewInt(residue), new(big.Int).SetUint64(TSums), hint, AggregateSumShift, int64(inputs))
	if err != nil {
		return nil, err
	}
	return s, inRange(s, maxSum, true)
}

// AggregateSumSq decodes an aggregate's Σx² from its Squares slots: the
// residue mod T_q and the hint Σ_nodes ⌊Σx²_node/2^AggregateSquareShift⌋.
func AggregateSumSq(residue, hint int64, inputs int) (*big.Int, error) {
	if inputs < 1 || inputs > MaxContributors {
		return nil, fmt.Errorf("he: %d contributors (at most %d)", inputs, MaxContributors)
	}
	s, err := Lift(big.NewInt(residue), new(big.Int).SetUint64(TSquares), hint, AggregateSquareShift, int64(inputs))
	if err != nil {
		return nil, err
	}
	return s, inRange(s, maxSumSq, false)
}

// IntersectionSum decodes an intersection_stats Σx from its totals mod
// T_s and mod T_q: the CRT residue mod T_s·T_q ≈ 2^101, centred, is Σx
// itself (|Σx| ≤ 2^70).
func IntersectionSum(rs, rq int64) (*big.Int, error) {
	r := CRT(rs, rq)
	m := CRTModulus()
	if r.Cmp(new(big.Int).Rsh(m, 1)) > 0 {
		r.Sub(r, m)
	}
	return r, inRange(r, maxSum, true)
}

// IntersectionSumSq decodes an intersection_stats Σx² from its totals mod
// T_s and mod T_q and the hint Σ_keys ⌊Σx²_key/2^IntersectionSquareShift⌋
// (at most MaxJobRows keys).
func IntersectionSumSq(rs, rq, hint int64) (*big.Int, error) {
	s, err := Lift(CRT(rs, rq), CRTModulus(), hint, IntersectionSquareShift, MaxJobRows)
	if err != nil {
		return nil, err
	}
	return s, inRange(s, maxSumSq, false)
}

// ---- intersection_stats outputs -------------------------------------------

// ISLane is one of the per-group results of an intersection_stats job:
// output g·ISLanes + lane of the job (the releasing nodes count them from
// the spec and the value node's signed layout).
type ISLane int

// The lanes, each one ciphertext per chunk of the value node's layout.
const (
	ISCount  ISLane = iota // rows (Sums)
	ISSumS                 // Σx mod T_s (Sums)
	ISSqQ                  // Σx² mod T_q (Squares)
	ISSumQ                 // Σx mod T_q (Squares)
	ISSqS                  // Σx² mod T_s (Sums)
	ISSqHint               // Σ_keys ⌊Σx²_key / 2^70⌋ (Sums)
	ISLanes                // lanes per group
)

// Params is the name of the parameter set the lane is encrypted under.
func (l ISLane) Params() string {
	if l == ISSqQ || l == ISSumQ {
		return NameSquares
	}
	return NameSums
}

// Value reports whether the lane carries Σx (needs a value column).
func (l ISLane) Value() bool { return l == ISSumS || l == ISSumQ }

// Squares reports whether the lane carries Σx² (needs the variance).
func (l ISLane) Squares() bool { return l == ISSqQ || l == ISSqS || l == ISSqHint }

// Wanted reports whether a job that needs the value (Σx) and/or the
// squares (Σx²) has this lane.
func (l ISLane) Wanted(value, squares bool) bool {
	switch {
	case l == ISCount:
		return true
	case l.Value():
		return value
	case l.Squares():
		return squares
	}
	return false
}

// Slot is the lane's slot value for one key's rows (Encrypt-ready).
func (l ISLane) Slot(a *Acc) int64 {
	switch l {
	case ISCount:
		return a.N()
	case ISSumS:
		return a.SumMod(Sums())
	case ISSumQ:
		return a.SumMod(Squares())
	case ISSqS:
		return a.SumSqMod(Sums())
	case ISSqQ:
		return a.SumSqMod(Squares())
	case ISSqHint:
		return a.SumSqFloor(IntersectionSquareShift)
	}
	return 0
}
