package he

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"math/big"
	"sync"
	"testing"

	"github.com/tuneinsight/lattigo/v5/he/heint"
)

// Names of the parameter sets.
const (
	NameSums    = "sums"
	NameSquares = "squares"
	// The two sets below exist for fast tests only: their ring degree is far
	// too small for their modulus and they give no security at all.
	NameInsecureTestParamsSums    = "insecureTestParamsSums"
	NameInsecureTestParamsSquares = "insecureTestParamsSquares"
)

// TSums is the plaintext modulus of Sums: a 43-bit prime ≡ 1 mod 2^17, so
// centred sums up to ±2^41 decode exactly.
const TSums uint64 = 0x400000b0001

// TSquares is the plaintext modulus of Squares: the largest 59-bit prime
// ≡ 1 mod 2^15 (2N for LogN 14), found with lattigo's NTT-friendly prime
// generator and checked by TestParamsPlaintextModulus.
const TSquares uint64 = 0x7fffffffff18001

// The moduli are pinned (not generated from LogQ/LogP) so that the parameter
// hash cannot drift, and every prime is below 2^bits so that logQP stays
// strictly under the HE-standard bound (lattigo's generator alternates
// around 2^bits and overshoots 2^218 by 1e-10 bits at LogN 13).
var (
	// Sums: LogN 13, LogQ [54 54 54], LogP [56]; primes ≡ 1 mod 2^14.
	qSums = []uint64{0x3fffffffef8001, 0x3fffffffeb8001, 0x3fffffffe7c001}
	pSums = []uint64{0xfffffffffb4001}
	// Squares: LogN 14, LogQ [60 60 60 60], LogP [61]; primes ≡ 1 mod 2^15.
	qSquares = []uint64{0xffffffffffe8001, 0xffffffffffd8001, 0xffffffffffc0001, 0xffffffffff28001}
	pSquares = []uint64{0x1fffffffffe10001}
)

// securityMaxLogQP is Table 1 of the HomomorphicEncryption.org security
// standard (Albrecht et al., "Homomorphic Encryption Standard", 2018; also
// ePrint 2019/939): maximum log2(QP) for 128-bit classical security with a
// uniform ternary secret and error σ ≈ 3.2. See PARAMS.md.
var securityMaxLogQP = map[int]int{10: 27, 11: 54, 12: 109, 13: 218, 14: 438, 15: 881}

// ParamSet is one named, immutable HE parameter set. It is safe for
// concurrent use.
type ParamSet struct {
	name   string
	params heint.Parameters
	json   []byte
	hash   [32]byte
	secure bool

	shapesMu sync.Mutex
	shapes   map[shapeKey]*shape
}

var (
	registryOnce sync.Once
	registry     map[string]*ParamSet
	registryErr  error
)

func literal(name string) heint.ParametersLiteral {
	switch name {
	case NameSums:
		return heint.ParametersLiteral{LogN: 13, Q: qSums, P: pSums, PlaintextModulus: TSums}
	case NameSquares:
		return heint.ParametersLiteral{LogN: 14, Q: qSquares, P: pSquares, PlaintextModulus: TSquares}
	case NameInsecureTestParamsSums:
		return heint.ParametersLiteral{LogN: 10, Q: qSums, P: pSums, PlaintextModulus: TSums}
	case NameInsecureTestParamsSquares:
		return heint.ParametersLiteral{LogN: 10, Q: qSquares, P: pSquares, PlaintextModulus: TSquares}
	}
	return heint.ParametersLiteral{}
}

func build(name string) (*ParamSet, error) {
	p, err := heint.NewParametersFromLiteral(literal(name))
	if err != nil {
		return nil, fmt.Errorf("he: parameter set %s: %w", name, err)
	}
	js, err := p.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("he: parameter set %s: %w", name, err)
	}
	ps := &ParamSet{name: name, params: p, json: js, hash: sha256.Sum256(js), shapes: map[shapeKey]*shape{}}
	ps.secure = ps.CheckSecurity() == nil
	return ps, nil
}

func load() {
	registry = map[string]*ParamSet{}
	for _, n := range []string{NameSums, NameSquares, NameInsecureTestParamsSums, NameInsecureTestParamsSquares} {
		ps, err := build(n)
		if err != nil {
			registryErr = err
			return
		}
		registry[n] = ps
	}
	if !registry[NameSums].secure || !registry[NameSquares].secure {
		registryErr = errors.New("he: a production parameter set fails the security check")
	}
}

func mustGet(name string) *ParamSet {
	registryOnce.Do(load)
	if registryErr != nil {
		// Only reachable if the constant parameter literals above are broken.
		panic(registryErr)
	}
	return registry[name]
}

// Sums is the parameter set for counts and Σx: LogN 13, LogQ [54 54 54],
// LogP [56], T = 0x400000b0001 (sums up to ±2^41), 8192 slots.
func Sums() *ParamSet { return mustGet(NameSums) }

// Squares is the parameter set for Σx²: LogN 14, LogQ [60 60 60 60],
// LogP [61], T = TSquares (59-bit; sums up to ±2^58), 16384 slots.
func Squares() *ParamSet { return mustGet(NameSquares) }

// ParamsByName returns a production parameter set ("sums" or "squares").
// The insecure test sets are not reachable through it.
func ParamsByName(name string) (*ParamSet, error) {
	switch name {
	case NameSums, NameSquares:
		return mustGet(name), nil
	}
	return nil, fmt.Errorf("he: unknown parameter set %q", name)
}

// ParamsByHash returns the production parameter set with the given hash.
func ParamsByHash(h [32]byte) (*ParamSet, error) {
	for _, n := range []string{NameSums, NameSquares} {
		if ps := mustGet(n); ps.hash == h {
			return ps, nil
		}
	}
	return nil, errors.New("he: unknown parameter-set hash")
}

// InsecureTestParams returns one of the insecureTestParams… sets (LogN 10:
// NO SECURITY) for fast tests. It refuses outside a test binary.
func InsecureTestParams(name string) (*ParamSet, error) {
	if !testing.Testing() {
		return nil, errors.New("he: insecure test parameters are only available in tests")
	}
	switch name {
	case NameInsecureTestParamsSums, NameInsecureTestParamsSquares:
		return mustGet(name), nil
	}
	return nil, fmt.Errorf("he: unknown insecure test parameter set %q", name)
}

// Name is the set's name.
func (ps *ParamSet) Name() string { return ps.name }

// Hash is SHA-256 of the canonical JSON of the lattigo parameters
// (CanonicalJSON); it identifies the set in every envelope.
func (ps *ParamSet) Hash() [32]byte { return ps.hash }

// CanonicalJSON is lattigo's JSON encoding of the parameters (LogN, Q, P,
// error and secret distributions, T). A copy is returned.
func (ps *ParamSet) CanonicalJSON() []byte { return append([]byte(nil), ps.json...) }

// Params exposes the lattigo parameters to the compute/he subpackages.
func (ps *ParamSet) Params() heint.Parameters { return ps.params }

// Slots is the number of int64 slots per ciphertext.
func (ps *ParamSet) Slots() int { return ps.params.MaxSlots() }

// MaxLevel is the level of fresh ciphertexts.
func (ps *ParamSet) MaxLevel() int { return ps.params.MaxLevel() }

// LogN is log2 of the ring degree.
func (ps *ParamSet) LogN() int { return ps.params.LogN() }

// T is the plaintext modulus.
func (ps *ParamSet) T() uint64 { return ps.params.PlaintextModulus() }

// MaxAbs is the largest |value| a decoded slot or total can hold: (T-1)/2.
func (ps *ParamSet) MaxAbs() int64 { return int64((ps.T() - 1) / 2) }

// LogQP is log2(Q·P), computed exactly with big integers.
func (ps *ParamSet) LogQP() float64 {
	qp := ps.params.QPBigInt()
	f, _ := new(big.Float).SetInt(qp).Float64()
	return math.Log2(f)
}

// SecurityBound returns the HE-standard maximum logQP for this LogN
// (128-bit, ternary secret, σ = 3.2).
func (ps *ParamSet) SecurityBound() (int, bool) {
	b, ok := securityMaxLogQP[ps.LogN()]
	return b, ok
}

// Secure reports whether the set passes CheckSecurity.
func (ps *ParamSet) Secure() bool { return ps.secure }

// CheckSecurity verifies the 128-bit condition: Q·P < 2^bound (strictly,
// using exact integers), a ternary secret and σ = 3.2.
func (ps *ParamSet) CheckSecurity() error {
	bound, ok := ps.SecurityBound()
	if !ok {
		return fmt.Errorf("he: %s: no security bound known for LogN %d", ps.name, ps.LogN())
	}
	if ps.params.QPBigInt().BitLen() > bound {
		return fmt.Errorf("he: %s: log2(QP) = %.4f exceeds %d (128-bit bound for LogN %d)", ps.name, ps.LogQP(), bound, ps.LogN())
	}
	if ps.params.NoiseFreshSK() != 3.2 {
		return fmt.Errorf("he: %s: error σ = %v, the bound assumes 3.2", ps.name, ps.params.NoiseFreshSK())
	}
	if ps.params.Xs().Type() != "Ternary" {
		return fmt.Errorf("he: %s: secret distribution %s, the bound assumes ternary", ps.name, ps.params.Xs().Type())
	}
	return nil
}
