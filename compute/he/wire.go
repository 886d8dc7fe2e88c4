package he

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/heint"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/ring/ringqp"
	"github.com/unseen-data/unseen/compute/he/envelope"
)

// Labels of the lattigo objects that cross a process boundary. Each names
// exactly one shape; with the level it determines the exact byte size.
const (
	LabelCiphertext  = "he/ciphertext/v1"   // Ciphertext (noise header ‖ rlwe.Ciphertext), at a level
	LabelPublicKey   = "he/public-key/v1"   // rlwe.PublicKey (collective or release key)
	LabelCKGShare    = "he/ckg-share/v1"    // mhe.PublicKeyGenShare
	LabelPKSShare    = "he/pks-share/v1"    // mhe.PublicKeySwitchShare, at a level
	LabelShamirShare = "he/shamir-share/v1" // mhe.ShamirSecretShare (travels HPKE-sealed)
	LabelSecretKey   = "he/secret-key/v1"   // rlwe.SecretKey (persistence only, never sent)
	noiseHeaderLen   = 16
)

// errRecovered reports a lattigo panic caught while parsing a payload that
// had already passed the shape check (a last resort; not expected).
var errRecovered = errors.New("he: lattigo rejected a payload that passed the shape check")

// Errors of the wire layer.
var (
	ErrLength = errors.New("he: payload length mismatch")
	ErrShape  = errors.New("he: payload structure does not match the expected shape")
	ErrCoeff  = errors.New("he: payload coefficient out of range")
	ErrLevel  = errors.New("he: level out of range")
	ErrLabel  = errors.New("he: unknown label")
	ErrMeta   = errors.New("he: ciphertext metadata is not canonical")
)

type shapeKey struct {
	label string
	level int
}

// shape is the byte layout of one (label, level): its exact size and the
// byte ranges that are structure (length prefixes, metadata) rather than
// coefficients. It is derived by marshalling the same object twice, once
// with every coefficient 0 and once with every coefficient 2^64-1: bytes that
// agree are structure and must be identical in any valid payload. Checking
// them before UnmarshalBinary means lattigo only ever parses length prefixes
// and metadata that we produced ourselves.
type shape struct {
	size  int
	tmpl  []byte
	fixed [][2]int // [start, end) ranges of structural bytes
}

func newShape(zero, ones []byte) (*shape, error) {
	if len(zero) != len(ones) {
		return nil, errors.New("he: internal error: shape templates differ in length")
	}
	s := &shape{size: len(zero), tmpl: zero}
	start := -1
	for i := range zero {
		same := zero[i] == ones[i]
		if same && start < 0 {
			start = i
		}
		if !same && start >= 0 {
			s.fixed = append(s.fixed, [2]int{start, i})
			start = -1
		}
	}
	if start >= 0 {
		s.fixed = append(s.fixed, [2]int{start, len(zero)})
	}
	return s, nil
}

func (s *shape) check(p []byte) error {
	if len(p) != s.size {
		return fmt.Errorf("%w: got %d bytes, want exactly %d", ErrLength, len(p), s.size)
	}
	for _, r := range s.fixed {
		for i := r[0]; i < r[1]; i++ {
			if p[i] != s.tmpl[i] {
				return fmt.Errorf("%w (byte %d)", ErrShape, i)
			}
		}
	}
	return nil
}

func fillPoly(p ring.Poly, v uint64) {
	for i := range p.Coeffs {
		for j := range p.Coeffs[i] {
			p.Coeffs[i][j] = v
		}
	}
}

func fillQP(p ringqp.Poly, v uint64) {
	fillPoly(p.Q, v)
	if p.P.Coeffs != nil {
		fillPoly(p.P, v)
	}
}

// sample builds the canonical object for (label, level) with every
// coefficient set to v and marshals it.
func (ps *ParamSet) sample(label string, level int, v uint64) ([]byte, error) {
	params := ps.params
	switch label {
	case LabelCiphertext:
		ct := canonicalCiphertext(ps, level)
		for _, p := range ct.Value {
			fillPoly(p, v)
		}
		b, err := ct.MarshalBinary()
		hdr := make([]byte, noiseHeaderLen) // the noise descriptor is data, not structure
		for i := range hdr {
			hdr[i] = byte(v)
		}
		return append(hdr, b...), err
	case LabelPublicKey:
		pk := rlwe.NewPublicKey(params)
		for _, p := range pk.Value {
			fillQP(p, v)
		}
		return pk.MarshalBinary()
	case LabelCKGShare:
		sh := mhe.NewPublicKeyGenProtocol(params).AllocateShare()
		fillQP(sh.Value, v)
		return sh.MarshalBinary()
	case LabelPKSShare:
		sh := mhe.PublicKeySwitchShare{Element: *rlwe.NewElement(params, 1, level)}
		for _, p := range sh.Value {
			fillPoly(p, v)
		}
		return sh.MarshalBinary()
	case LabelShamirShare:
		sh := mhe.ShamirSecretShare{Poly: params.RingQP().NewPoly()}
		fillQP(sh.Poly, v)
		return sh.MarshalBinary()
	case LabelSecretKey:
		sk := rlwe.NewSecretKey(params)
		fillQP(sk.Value, v)
		return sk.MarshalBinary()
	}
	return nil, fmt.Errorf("%w %q", ErrLabel, label)
}

func levelled(label string) bool { return label == LabelCiphertext || label == LabelPKSShare }

func (ps *ParamSet) shapeOf(label string, level int) (*shape, error) {
	if levelled(label) {
		if level < 0 || level > ps.MaxLevel() {
			return nil, fmt.Errorf("%w: %d not in [0, %d]", ErrLevel, level, ps.MaxLevel())
		}
	} else if level != ps.MaxLevel() {
		return nil, fmt.Errorf("%w: %s is always at level %d", ErrLevel, label, ps.MaxLevel())
	}
	k := shapeKey{label, level}
	ps.shapesMu.Lock()
	defer ps.shapesMu.Unlock()
	if s, ok := ps.shapes[k]; ok {
		return s, nil
	}
	zero, err := ps.sample(label, level, 0)
	if err != nil {
		return nil, err
	}
	ones, err := ps.sample(label, level, ^uint64(0))
	if err != nil {
		return nil, err
	}
	s, err := newShape(zero, ones)
	if err != nil {
		return nil, err
	}
	ps.shapes[k] = s
	return s, nil
}

// WireSize is the exact payload size of label at level (keys and key shares
// are always at MaxLevel).
func (ps *ParamSet) WireSize(label string, level int) (int, error) {
	s, err := ps.shapeOf(label, level)
	if err != nil {
		return 0, err
	}
	return s.size, nil
}

// CheckShape verifies that p has the exact size and structure of label at
// level. It never calls into lattigo's parser.
func (ps *ParamSet) CheckShape(label string, level int, p []byte) error {
	s, err := ps.shapeOf(label, level)
	if err != nil {
		return err
	}
	return s.check(p)
}

// guardedUnmarshal runs CheckShape, then UnmarshalBinary under recover: the
// recover is a last resort only, since lattigo sees nothing but our own
// structure at this point.
func (ps *ParamSet) guardedUnmarshal(label string, level int, p []byte, u interface{ UnmarshalBinary([]byte) error }) (err error) {
	if err = ps.CheckShape(label, level, p); err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = errRecovered
		}
	}()
	if err = u.UnmarshalBinary(p); err != nil {
		return fmt.Errorf("he: %s: %w", label, err)
	}
	return nil
}

func checkPoly(p ring.Poly, moduli []uint64, n int) error {
	if len(p.Coeffs) != len(moduli) {
		return ErrShape
	}
	for i, q := range moduli {
		if len(p.Coeffs[i]) != n {
			return ErrShape
		}
		for _, c := range p.Coeffs[i] {
			if c >= q {
				return ErrCoeff
			}
		}
	}
	return nil
}

func (ps *ParamSet) checkQ(p ring.Poly, level int) error {
	return checkPoly(p, ps.params.Q()[:level+1], ps.params.N())
}

func (ps *ParamSet) checkQP(p ringqp.Poly) error {
	if err := checkPoly(p.Q, ps.params.Q(), ps.params.N()); err != nil {
		return err
	}
	return checkPoly(p.P, ps.params.P(), ps.params.N())
}

func canonicalCiphertext(ps *ParamSet, level int) *rlwe.Ciphertext {
	return heint.NewCiphertext(ps.params, 1, level)
}

// canonicalMeta is the metadata every ciphertext of this package carries:
// scale 1, batched, NTT, not Montgomery, full slots.
func (ps *ParamSet) canonicalMeta(level int) *rlwe.MetaData {
	return canonicalCiphertext(ps, level).MetaData
}

// ---- typed decoders -------------------------------------------------------

// UnmarshalPublicKey decodes and validates a public key.
func (ps *ParamSet) UnmarshalPublicKey(p []byte) (*PublicKey, error) {
	pk := rlwe.NewPublicKey(ps.params)
	if err := ps.guardedUnmarshal(LabelPublicKey, ps.MaxLevel(), p, pk); err != nil {
		return nil, err
	}
	if len(pk.Value) != 2 {
		return nil, ErrShape
	}
	for _, v := range pk.Value {
		if err := ps.checkQP(v); err != nil {
			return nil, err
		}
	}
	return &PublicKey{ps: ps, pk: pk}, nil
}

// UnmarshalCKGShare decodes and validates a public-key-generation share.
func (ps *ParamSet) UnmarshalCKGShare(p []byte) (*mhe.PublicKeyGenShare, error) {
	sh := mhe.NewPublicKeyGenProtocol(ps.params).AllocateShare()
	if err := ps.guardedUnmarshal(LabelCKGShare, ps.MaxLevel(), p, &sh); err != nil {
		return nil, err
	}
	if err := ps.checkQP(sh.Value); err != nil {
		return nil, err
	}
	return &sh, nil
}

// UnmarshalPKSShare decodes and validates a public-key-switch share at level.
func (ps *ParamSet) UnmarshalPKSShare(p []byte, level int) (*mhe.PublicKeySwitchShare, error) {
	if level < 0 || level > ps.MaxLevel() {
		return nil, ErrLevel
	}
	sh := mhe.PublicKeySwitchShare{Element: *rlwe.NewElement(ps.params, 1, level)}
	if err := ps.guardedUnmarshal(LabelPKSShare, level, p, &sh); err != nil {
		return nil, err
	}
	if len(sh.Value) != 2 {
		return nil, ErrShape
	}
	for _, v := range sh.Value {
		if err := ps.checkQ(v, level); err != nil {
			return nil, err
		}
	}
	return &sh, nil
}

// UnmarshalShamirShare decodes and validates a threshold secret share.
func (ps *ParamSet) UnmarshalShamirShare(p []byte) (*mhe.ShamirSecretShare, error) {
	sh := mhe.ShamirSecretShare{Poly: ps.params.RingQP().NewPoly()}
	if err := ps.guardedUnmarshal(LabelShamirShare, ps.MaxLevel(), p, &sh); err != nil {
		return nil, err
	}
	if err := ps.checkQP(sh.Poly); err != nil {
		return nil, err
	}
	return &sh, nil
}

// UnmarshalSecretKey decodes and validates a secret key (local persistence).
func (ps *ParamSet) UnmarshalSecretKey(p []byte) (*rlwe.SecretKey, error) {
	sk := rlwe.NewSecretKey(ps.params)
	if err := ps.guardedUnmarshal(LabelSecretKey, ps.MaxLevel(), p, sk); err != nil {
		return nil, err
	}
	if err := ps.checkQP(sk.Value); err != nil {
		return nil, err
	}
	return sk, nil
}

// UnmarshalCiphertext decodes and validates a Ciphertext at level: exact
// size and structure, canonical metadata (scale 1, NTT, batched), reduced
// coefficients and a sane noise descriptor.
func (ps *ParamSet) UnmarshalCiphertext(p []byte, level int) (*Ciphertext, error) {
	if level < 0 || level > ps.MaxLevel() {
		return nil, ErrLevel
	}
	if err := ps.CheckShape(LabelCiphertext, level, p); err != nil {
		return nil, err
	}
	noise := Noise{Terms: binary.BigEndian.Uint64(p[:8]), Masked: binary.BigEndian.Uint64(p[8:16])}
	if err := noise.validate(); err != nil {
		return nil, err
	}
	ct := canonicalCiphertext(ps, level)
	body := p[noiseHeaderLen:]
	if err := ps.guardedUnmarshalRaw(body, ct); err != nil {
		return nil, err
	}
	if ct.Degree() != 1 || ct.Level() != level || ct.MetaData == nil || !ct.MetaData.Equal(ps.canonicalMeta(level)) {
		return nil, ErrMeta
	}
	for _, v := range ct.Value {
		if err := ps.checkQ(v, level); err != nil {
			return nil, err
		}
	}
	return &Ciphertext{ps: ps, ct: ct, noise: noise}, nil
}

func (ps *ParamSet) guardedUnmarshalRaw(p []byte, u interface{ UnmarshalBinary([]byte) error }) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errRecovered
		}
	}()
	if err = u.UnmarshalBinary(p); err != nil {
		return fmt.Errorf("he: ciphertext: %w", err)
	}
	return nil
}

// PublicKey is an RLWE public key (the collective key, or the coordinator's
// release key) under one parameter set.
type PublicKey struct {
	ps *ParamSet
	pk *rlwe.PublicKey
}

// WrapPublicKey wraps a lattigo public key (for the compute/he subpackages).
func (ps *ParamSet) WrapPublicKey(pk *rlwe.PublicKey) *PublicKey { return &PublicKey{ps: ps, pk: pk} }

// ParamSet is the key's parameter set.
func (k *PublicKey) ParamSet() *ParamSet { return k.ps }

// RLWE exposes the lattigo key to the compute/he subpackages. Do not modify it.
func (k *PublicKey) RLWE() *rlwe.PublicKey { return k.pk }

// MarshalBinary encodes the key (label LabelPublicKey, level MaxLevel).
func (k *PublicKey) MarshalBinary() ([]byte, error) { return k.pk.MarshalBinary() }

// Equal reports whether two keys are identical.
func (k *PublicKey) Equal(o *PublicKey) bool {
	return k != nil && o != nil && k.ps == o.ps && k.pk.Equal(o.pk)
}

// Expect is the envelope expectation for one of this package's labels:
// this parameter set's hash, the ceremony, the label, the level and the
// exact payload size. (compute/he/ceremony.SealedShareSize and
// compute/he/release.ShareSize give the sizes of those packages' labels.)
func (ps *ParamSet) Expect(ceremonyID, label string, level int) (envelope.Expect, error) {
	n, err := ps.WireSize(label, level)
	if err != nil {
		return envelope.Expect{}, err
	}
	return envelope.Expect{Header: envelope.Header{ParamsHash: ps.hash, CeremonyID: ceremonyID, Label: label, Level: level}, Size: n}, nil
}
