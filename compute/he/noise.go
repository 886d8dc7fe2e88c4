package he

import (
	"errors"
	"fmt"
	"math"
)

// Noise describes how a ciphertext was computed, which is all that is
// needed to bound its noise: it is the sum of Terms fresh public-key
// encryptions, Masked of which went through exactly one MulMask before
// being summed. Every Ciphertext carries one (it travels on the wire, and
// the coordinator's evaluator keeps it up to date), but a releasing node
// never sizes its smudging from a descriptor someone sent it: it computes
// the Noise of the result itself from what it knows of the job (SumNoise,
// MaskedSumNoise) and passes that to the release.
//
// Noise model (variance of each coefficient of the error e in
// c0 + c1·s = Δ·m + e, lattigo's BGV convention, CLT heuristic as in
// lattigo's own NoiseFreshPK):
//
//	fresh encryption (with the special modulus P): σ_f² = (h+1)/12, h = 2N/3
//	sum of ciphertexts:                            variances add
//	MulMask by a plaintext p (coefficients in [-T/2, T/2]):
//	                                               σ² · ‖p‖₂² ≤ σ² · N·T²/4
//
// so Var = σ_f² · ((Terms−Masked) + Masked·N·T²/4), and the bound used for
// smudging is B = 6·√Var (lattigo's 6σ convention, DefaultNoiseBound).
type Noise struct {
	Terms  uint64
	Masked uint64
}

// FreshNoise is the descriptor of one fresh encryption.
var FreshNoise = Noise{Terms: 1}

const maxTerms = 1 << 40

var errNoise = errors.New("he: invalid noise descriptor")

// SumNoise bounds a sum of `fresh` fresh encryptions: an aggregate's
// result, one encryption per input.
func SumNoise(fresh int) (Noise, error) { return MaskedSumNoise(0, fresh) }

// MaskedSumNoise bounds a sum of `masked` fresh encryptions that were each
// masked once (MulMask) and `fresh` unmasked fresh encryptions: an
// intersection_stats result is at most every chunk of the value node's
// layout, masked, plus one zero-sum mask per department.
func MaskedSumNoise(masked, fresh int) (Noise, error) {
	if masked < 0 || fresh < 0 || masked > maxTerms || fresh > maxTerms {
		return Noise{}, fmt.Errorf("%w: %d masked and %d fresh terms", errNoise, masked, fresh)
	}
	n := Noise{Terms: uint64(masked) + uint64(fresh), Masked: uint64(masked)}
	return n, n.validate()
}

func (n Noise) validate() error {
	if n.Terms == 0 || n.Terms > maxTerms || n.Masked > n.Terms {
		return fmt.Errorf("%w: %d terms, %d masked", errNoise, n.Terms, n.Masked)
	}
	return nil
}

func (n Noise) add(o Noise) (Noise, error) {
	r := Noise{Terms: n.Terms + o.Terms, Masked: n.Masked + o.Masked}
	if r.Terms < n.Terms || r.Masked < n.Masked {
		return Noise{}, errNoise
	}
	return r, r.validate()
}

// freshStd is σ_f, lattigo's estimate for a public-key encryption.
func (ps *ParamSet) freshStd() float64 { return ps.params.NoiseFreshPK() }

// NoiseStd is √Var of the model above.
func (ps *ParamSet) NoiseStd(n Noise) (float64, error) {
	if err := n.validate(); err != nil {
		return 0, err
	}
	f := ps.freshStd()
	N := float64(ps.params.N())
	t := float64(ps.T())
	v := f * f * (float64(n.Terms-n.Masked) + float64(n.Masked)*N*t*t/4)
	return math.Sqrt(v), nil
}

// NoiseBound is B = 6·NoiseStd.
func (ps *ParamSet) NoiseBound(n Noise) (float64, error) {
	s, err := ps.NoiseStd(n)
	return 6 * s, err
}

// SmudgingStatBits is the statistical security of noise flooding: the
// smudging standard deviation is 2^40 times the ciphertext's noise bound.
const SmudgingStatBits = 40

// Lattigo v5.0.7's Gaussian sampler (ring/sampler_gaussian.go) has two paths:
//
//   - float path (σ ≤ 2^53 or bound ≤ 2^64): samples v = |N(0,1)|·σ ≤ bound
//     as a float64 and writes (q_i − v) for negatives. If v ≥ q_i the
//     coefficient is not reduced and decryption is silently wrong; above 2^53
//     the float64 loses integer precision. Safe iff 6σ < min(q_i, 2^53).
//   - big-integer path (σ > 2^53 and bound > 2^64): correct, but it calls
//     crypto/rand.Int(⌊v⌋>>53) which panics when v < 2^53, i.e. with
//     probability ≈ 0.8·N·2^53/σ per share. At σ ≥ 2^80 that is ≤ N·2^-27
//     (recovered and retried by the caller).
//
// Measured on v5.0.7 at Sums parameters (one party, release-key switch of a
// fresh ciphertext): σ = 2^52 correct, 2^53.5 and 2^60 wrong in every slot,
// 2^61.3 wrong, 2^61.5–2^62 panic, 2^70–2^100 correct.
const (
	floatPathMaxBound = 1 << 53
	// BigSmudgingMinLog2Sigma is the smallest σ (log2) accepted on the
	// big-integer path.
	BigSmudgingMinLog2Sigma = 80
)

// ErrSmudging is returned when the smudging distribution is one that
// lattigo v5.0.7 samples wrongly, or when it would overflow the decryption
// budget.
var ErrSmudging = errors.New("he: smudging noise refused")

// CheckSmudging is the guard for the sampler pitfall: it refuses σ unless
// 6σ < min(q_i, 2^53) (exact float path) or σ ≥ 2^80 (big-integer path).
func (ps *ParamSet) CheckSmudging(sigma float64) error {
	if !(sigma > 0) || math.IsInf(sigma, 0) {
		return fmt.Errorf("%w: σ = %v", ErrSmudging, sigma)
	}
	if 6*sigma < ps.minFloatBound() {
		return nil
	}
	if sigma >= math.Exp2(BigSmudgingMinLog2Sigma) {
		return nil
	}
	return fmt.Errorf("%w: σ = 2^%.2f: 6σ ≥ min(q_i, 2^53) = 2^%.2f and σ < 2^%d; lattigo v5.0.7 would sample it wrongly (silently wrong decryption) or panic",
		ErrSmudging, math.Log2(sigma), math.Log2(ps.minFloatBound()), BigSmudgingMinLog2Sigma)
}

func (ps *ParamSet) minFloatBound() float64 {
	m := float64(floatPathMaxBound)
	for _, q := range ps.params.Q() {
		if float64(q) < m {
			m = float64(q)
		}
	}
	return m
}

// Smudging is the noise-flooding distribution each releasing node uses.
type Smudging struct {
	// Sigma is the standard deviation; the distribution is truncated at 6σ.
	Sigma float64
	// NoiseBound is the ciphertext's bound B; Sigma ≥ 2^40·B.
	NoiseBound float64
	// BigPath reports whether lattigo samples it on its big-integer path.
	BigPath bool
	// Log2Margin is log2(Q_level/2) − log2(worst-case decryption error·T);
	// positive means decryption is correct.
	Log2Margin float64
}

// SmudgingFor returns the smudging for releasing a ciphertext with noise n at
// level with `parties` releasing nodes. σ = 2^40·B; when that falls where
// lattigo samples wrongly it is raised to 2^80 (more smudging, never less).
// It refuses (ErrSmudging) when the result would not decrypt correctly.
func (ps *ParamSet) SmudgingFor(n Noise, level, parties int) (Smudging, error) {
	if level < 0 || level > ps.MaxLevel() {
		return Smudging{}, ErrLevel
	}
	if parties < 1 {
		return Smudging{}, fmt.Errorf("%w: %d parties", ErrSmudging, parties)
	}
	b, err := ps.NoiseBound(n)
	if err != nil {
		return Smudging{}, err
	}
	s := Smudging{NoiseBound: b, Sigma: math.Exp2(SmudgingStatBits) * b}
	if 6*s.Sigma >= ps.minFloatBound() && s.Sigma < math.Exp2(BigSmudgingMinLog2Sigma) {
		s.Sigma = math.Exp2(BigSmudgingMinLog2Sigma)
	}
	s.BigPath = 6*s.Sigma >= ps.minFloatBound()
	if err := ps.CheckSmudging(s.Sigma); err != nil {
		return Smudging{}, err
	}
	s.Log2Margin = ps.budgetMargin(b, s.Sigma, level, parties)
	if !(s.Log2Margin > 1) {
		return Smudging{}, fmt.Errorf("%w: decryption would be wrong: noise 2^%.1f (×T) exceeds Q_%d/2 (margin %.2f bits)",
			ErrSmudging, math.Log2(b+6*s.Sigma*math.Sqrt(float64(parties))), level, s.Log2Margin)
	}
	return s, nil
}

// budgetMargin is log2(Q_level/2) − log2(T·E + T/2), with E the worst-case
// error after the key switch: B + 6·√(parties·(σ_s² + σ_f²)) (the smudging
// and each node's fresh encryption of zero under the release key).
func (ps *ParamSet) budgetMargin(b, sigma float64, level, parties int) float64 {
	f := ps.freshStd()
	e := b + 6*math.Sqrt(float64(parties)*(sigma*sigma+f*f))
	logQ := 0.0
	for _, q := range ps.params.Q()[:level+1] {
		logQ += math.Log2(float64(q))
	}
	t := float64(ps.T())
	return (logQ - 1) - math.Log2(t*e+t/2)
}
