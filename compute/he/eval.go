package he

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/heint"
	"golang.org/x/sync/errgroup"
)

// Ciphertext is a BGV ciphertext of this package: degree 1, scale 1, NTT,
// batched, plus its Noise descriptor. Values are immutable once built;
// operations return new ciphertexts.
type Ciphertext struct {
	ps    *ParamSet
	ct    *rlwe.Ciphertext
	noise Noise
}

// WrapCiphertext wraps a lattigo ciphertext that this package's canonical
// checks accept (for the compute/he subpackages).
func (ps *ParamSet) WrapCiphertext(ct *rlwe.Ciphertext, n Noise) (*Ciphertext, error) {
	if err := n.validate(); err != nil {
		return nil, err
	}
	if ct == nil || ct.Degree() != 1 || ct.Level() > ps.MaxLevel() || ct.MetaData == nil || !ct.MetaData.Equal(ps.canonicalMeta(ct.Level())) {
		return nil, ErrMeta
	}
	return &Ciphertext{ps: ps, ct: ct, noise: n}, nil
}

// ParamSet is the ciphertext's parameter set.
func (c *Ciphertext) ParamSet() *ParamSet { return c.ps }

// Level of the ciphertext.
func (c *Ciphertext) Level() int { return c.ct.Level() }

// Noise is the ciphertext's noise descriptor.
func (c *Ciphertext) Noise() Noise { return c.noise }

// RLWE exposes the lattigo ciphertext to the compute/he subpackages. Do not modify it.
func (c *Ciphertext) RLWE() *rlwe.Ciphertext { return c.ct }

// MarshalBinary encodes the ciphertext (label LabelCiphertext at Level()):
// Terms (8 bytes) ‖ Masked (8 bytes) ‖ lattigo ciphertext.
func (c *Ciphertext) MarshalBinary() ([]byte, error) {
	b, err := c.ct.MarshalBinary()
	if err != nil {
		return nil, err
	}
	out := make([]byte, noiseHeaderLen, noiseHeaderLen+len(b))
	binary.BigEndian.PutUint64(out[:8], c.noise.Terms)
	binary.BigEndian.PutUint64(out[8:], c.noise.Masked)
	return append(out, b...), nil
}

// Hash identifies the ciphertext's content (not its noise descriptor):
// SHA-256("unseen/ciphertext/v1" ‖ params hash ‖ lattigo bytes). Decryption
// ledgers are keyed by it.
func (c *Ciphertext) Hash() ([32]byte, error) {
	b, err := c.ct.MarshalBinary()
	if err != nil {
		return [32]byte{}, err
	}
	h := sha256.New()
	h.Write([]byte("unseen/ciphertext/v1"))
	h.Write(c.ps.hash[:])
	h.Write(b)
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out, nil
}

// Equal reports whether two ciphertexts are identical, noise descriptor included.
func (c *Ciphertext) Equal(o *Ciphertext) bool {
	return c != nil && o != nil && c.ps == o.ps && c.noise == o.noise && c.ct.Equal(o.ct)
}

// ---- encoding and range checks -------------------------------------------

// RangeError reports an input value that could wrap modulo T.
type RangeError struct {
	Index    int   // position in the input vector (callers map it to row/column)
	Value    int64 // the offending value
	Limit    int64 // largest |value| accepted
	MaxTerms int   // declared number of values summed into any one result
}

func (e *RangeError) Error() string {
	return fmt.Sprintf("he: value %d at index %d is out of range: |x| must be ≤ %d so that a sum of %d such values cannot wrap modulo T",
		e.Value, e.Index, e.Limit, e.MaxTerms)
}

// InputLimit is the largest |x| accepted when at most maxTerms values are
// summed into any one decoded result: ⌊((T−1)/2) / maxTerms⌋.
func (ps *ParamSet) InputLimit(maxTerms int) (int64, error) {
	if maxTerms < 1 {
		return 0, fmt.Errorf("he: maxTerms must be ≥ 1, got %d", maxTerms)
	}
	return ps.MaxAbs() / int64(maxTerms), nil
}

// CheckRange refuses any value whose magnitude could wrap modulo T once up
// to maxTerms such values are summed. The error is a *RangeError naming the
// first offending index.
func (ps *ParamSet) CheckRange(values []int64, maxTerms int) error {
	if len(values) > ps.Slots() {
		return fmt.Errorf("he: %d values exceed the %d slots of a ciphertext", len(values), ps.Slots())
	}
	lim, err := ps.InputLimit(maxTerms)
	if err != nil {
		return err
	}
	for i, v := range values {
		if v > lim || v < -lim {
			return &RangeError{Index: i, Value: v, Limit: lim, MaxTerms: maxTerms}
		}
	}
	return nil
}

// CenterModT maps v ∈ [0, T) to the centred representative in [−(T−1)/2, (T−1)/2].
func (ps *ParamSet) CenterModT(v uint64) int64 {
	t := ps.T()
	v %= t
	if v > (t-1)/2 {
		return -int64(t - v)
	}
	return int64(v)
}

// TotalModT is Σ slots mod T, centred. After zero-sum masking only totals
// are meaningful.
func (ps *ParamSet) TotalModT(slots []uint64) int64 {
	t := ps.T()
	var acc uint64
	for _, v := range slots {
		acc = addMod(acc, v%t, t)
	}
	return ps.CenterModT(acc)
}

func addMod(a, b, t uint64) uint64 {
	s, c := bits.Add64(a, b, 0)
	if c != 0 || s >= t {
		s -= t
	}
	return s
}

// randModT returns a uniform value in [0, T) from crypto/rand.
func (ps *ParamSet) randModT(buf []byte) (uint64, error) {
	t := ps.T()
	mask := uint64(1)<<bits.Len64(t) - 1
	for {
		if _, err := rand.Read(buf[:8]); err != nil {
			return 0, err
		}
		if v := binary.LittleEndian.Uint64(buf[:8]) & mask; v < t {
			return v, nil
		}
	}
}

// ZeroSumVector returns slots uniform mod T, conditioned on every block of
// blockSize consecutive slots summing to 0 mod T. blockSize must divide the
// slot count (blockSize = Slots(): one total per ciphertext).
func (ps *ParamSet) ZeroSumVector(blockSize int) ([]uint64, error) {
	n := ps.Slots()
	if blockSize < 2 || n%blockSize != 0 {
		return nil, fmt.Errorf("he: zero-sum block size %d must be ≥ 2 and divide %d", blockSize, n)
	}
	t := ps.T()
	out := make([]uint64, n)
	buf := make([]byte, 8)
	for b := 0; b < n; b += blockSize {
		var acc uint64
		for i := b; i < b+blockSize-1; i++ {
			v, err := ps.randModT(buf)
			if err != nil {
				return nil, err
			}
			out[i] = v
			acc = addMod(acc, v, t)
		}
		out[b+blockSize-1] = (t - acc) % t
	}
	return out, nil
}

// ---- encryption ----------------------------------------------------------

// Encryptor encrypts under a public key (the collective key). It is NOT
// safe for concurrent use: give each goroutine its own ShallowCopy.
type Encryptor struct {
	ps  *ParamSet
	pk  *PublicKey
	enc *rlwe.Encryptor
	ecd *heint.Encoder
	pt  *rlwe.Plaintext
}

// NewEncryptor returns an encryptor under pk.
func NewEncryptor(pk *PublicKey) (*Encryptor, error) {
	if pk == nil || pk.pk == nil {
		return nil, errors.New("he: nil public key")
	}
	ps := pk.ps
	return &Encryptor{
		ps:  ps,
		pk:  pk,
		enc: heint.NewEncryptor(ps.params, pk.pk),
		ecd: heint.NewEncoder(ps.params),
		pt:  heint.NewPlaintext(ps.params, ps.MaxLevel()),
	}, nil
}

// ShallowCopy returns an encryptor sharing read-only state, usable
// concurrently with the receiver.
func (e *Encryptor) ShallowCopy() *Encryptor {
	return &Encryptor{
		ps:  e.ps,
		pk:  e.pk,
		enc: e.enc.ShallowCopy(),
		ecd: e.ecd.ShallowCopy(),
		pt:  heint.NewPlaintext(e.ps.params, e.ps.MaxLevel()),
	}
}

// Encrypt range-checks values (see CheckRange; maxTerms is the declared
// maximum number of values, over all contributors, summed into any one
// result) and encrypts them, one value per slot, zero-padded.
func (e *Encryptor) Encrypt(values []int64, maxTerms int) (*Ciphertext, error) {
	if err := e.ps.CheckRange(values, maxTerms); err != nil {
		return nil, err
	}
	buf := make([]int64, e.ps.Slots())
	copy(buf, values)
	if err := e.ecd.Encode(buf, e.pt); err != nil {
		return nil, fmt.Errorf("he: encode: %w", err)
	}
	return e.encryptPt()
}

// EncryptZeroSumMask encrypts ZeroSumVector(blockSize). Added to a result
// before release, it makes every decrypted slot uniform while leaving each
// block's total unchanged mod T.
func (e *Encryptor) EncryptZeroSumMask(blockSize int) (*Ciphertext, error) {
	v, err := e.ps.ZeroSumVector(blockSize)
	if err != nil {
		return nil, err
	}
	if err := e.ecd.Encode(v, e.pt); err != nil {
		return nil, fmt.Errorf("he: encode: %w", err)
	}
	return e.encryptPt()
}

func (e *Encryptor) encryptPt() (*Ciphertext, error) {
	ct := canonicalCiphertext(e.ps, e.ps.MaxLevel())
	if err := e.enc.Encrypt(e.pt, ct); err != nil {
		return nil, fmt.Errorf("he: encrypt: %w", err)
	}
	return &Ciphertext{ps: e.ps, ct: ct, noise: FreshNoise}, nil
}

// ---- evaluation ----------------------------------------------------------

// Mask is an encoded 0/1 plaintext for MulMask. It is read-only and may be
// shared between goroutines.
type Mask struct {
	ps    *ParamSet
	pt    *rlwe.Plaintext
	level int
}

// NewMask encodes a 0/1 vector (missing slots are 0) at level.
func (ps *ParamSet) NewMask(bitsIn []bool, level int) (*Mask, error) {
	if len(bitsIn) > ps.Slots() {
		return nil, fmt.Errorf("he: mask of %d slots exceeds %d", len(bitsIn), ps.Slots())
	}
	if level < 0 || level > ps.MaxLevel() {
		return nil, ErrLevel
	}
	v := make([]uint64, ps.Slots())
	for i, b := range bitsIn {
		if b {
			v[i] = 1
		}
	}
	pt := heint.NewPlaintext(ps.params, level)
	if err := heint.NewEncoder(ps.params).Encode(v, pt); err != nil {
		return nil, fmt.Errorf("he: encode mask: %w", err)
	}
	return &Mask{ps: ps, pt: pt, level: level}, nil
}

// Evaluator adds and masks ciphertexts. It is NOT safe for concurrent use
// (lattigo v5 evaluators keep scratch buffers): one ShallowCopy per goroutine.
type Evaluator struct {
	ps *ParamSet
	ev *heint.Evaluator
}

// NewEvaluator returns an evaluator (no evaluation keys: none are needed).
func NewEvaluator(ps *ParamSet) *Evaluator {
	return &Evaluator{ps: ps, ev: heint.NewEvaluator(ps.params, nil)}
}

// ShallowCopy returns an evaluator usable concurrently with the receiver.
func (ev *Evaluator) ShallowCopy() *Evaluator {
	return &Evaluator{ps: ev.ps, ev: ev.ev.ShallowCopy()}
}

// ErrMismatch is returned when two ciphertexts cannot be combined safely.
var ErrMismatch = errors.New("he: ciphertexts do not match")

func (ev *Evaluator) compatible(a, b *Ciphertext) error {
	if a == nil || b == nil {
		return fmt.Errorf("%w: nil ciphertext", ErrMismatch)
	}
	if a.ps != ev.ps || b.ps != ev.ps {
		return fmt.Errorf("%w: parameter sets differ", ErrMismatch)
	}
	if a.ct.Level() != b.ct.Level() {
		return fmt.Errorf("%w: levels %d and %d", ErrMismatch, a.ct.Level(), b.ct.Level())
	}
	// Lattigo would silently "match" different scales by multiplying by
	// constants up to ~√T, which destroys the noise budget: refuse.
	if a.ct.Scale.Cmp(b.ct.Scale) != 0 {
		return fmt.Errorf("%w: scales differ", ErrMismatch)
	}
	if a.ct.Degree() != 1 || b.ct.Degree() != 1 || !a.ct.IsNTT || !b.ct.IsNTT {
		return fmt.Errorf("%w: not canonical ciphertexts", ErrMismatch)
	}
	return nil
}

// Add returns a + b. Levels and scales must be identical.
func (ev *Evaluator) Add(a, b *Ciphertext) (*Ciphertext, error) {
	if err := ev.compatible(a, b); err != nil {
		return nil, err
	}
	n, err := a.noise.add(b.noise)
	if err != nil {
		return nil, err
	}
	out := canonicalCiphertext(ev.ps, a.Level())
	if err := ev.ev.Add(a.ct, b.ct, out); err != nil {
		return nil, fmt.Errorf("he: add: %w", err)
	}
	out.MetaData = a.ct.MetaData.CopyNew()
	return &Ciphertext{ps: ev.ps, ct: out, noise: n}, nil
}

// MulMask multiplies ct slot-wise by a 0/1 plaintext mask. The noise grows
// by up to √N·T/2, so a ciphertext can be masked only once.
func (ev *Evaluator) MulMask(ct *Ciphertext, m *Mask) (*Ciphertext, error) {
	if ct == nil || m == nil || ct.ps != ev.ps || m.ps != ev.ps {
		return nil, fmt.Errorf("%w: parameter sets differ", ErrMismatch)
	}
	if ct.Level() != m.level {
		return nil, fmt.Errorf("%w: ciphertext level %d, mask level %d", ErrMismatch, ct.Level(), m.level)
	}
	if ct.noise.Masked != 0 {
		return nil, errors.New("he: ciphertext is already masked; masking twice is not supported by the noise model")
	}
	out := canonicalCiphertext(ev.ps, ct.Level())
	if err := ev.ev.Mul(ct.ct, m.pt, out); err != nil {
		return nil, fmt.Errorf("he: mask: %w", err)
	}
	if out.Scale.Cmp(ct.ct.Scale) != 0 {
		return nil, errors.New("he: internal error: mask changed the scale")
	}
	return &Ciphertext{ps: ev.ps, ct: out, noise: Noise{Terms: ct.noise.Terms, Masked: ct.noise.Terms}}, nil
}

// Sum adds all cts, spreading the work over `workers` goroutines, each with
// its own ShallowCopy of ev.
func Sum(ev *Evaluator, cts []*Ciphertext, workers int) (*Ciphertext, error) {
	if len(cts) == 0 {
		return nil, errors.New("he: nothing to sum")
	}
	if workers < 1 {
		workers = 1
	}
	if workers > len(cts) {
		workers = len(cts)
	}
	partial := make([]*Ciphertext, workers)
	var g errgroup.Group
	chunk := (len(cts) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(cts))
		if lo >= hi {
			continue
		}
		part, e := cts[lo:hi], ev.ShallowCopy()
		g.Go(func() error {
			acc := part[0]
			if err := e.compatible(acc, acc); err != nil {
				return err
			}
			for _, c := range part[1:] {
				var err error
				if acc, err = e.Add(acc, c); err != nil {
					return err
				}
			}
			partial[w] = acc
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var acc *Ciphertext
	for w := range partial {
		if partial[w] == nil {
			continue
		}
		if acc == nil {
			acc = partial[w]
			continue
		}
		var err error
		if acc, err = ev.Add(acc, partial[w]); err != nil {
			return nil, err
		}
	}
	return acc, nil
}

// Decoder decodes decrypted plaintexts to slot values. Not safe for
// concurrent use: one per goroutine.
type Decoder struct {
	ps  *ParamSet
	ecd *heint.Encoder
}

// NewDecoder returns a decoder (one per goroutine).
func NewDecoder(ps *ParamSet) *Decoder { return &Decoder{ps: ps, ecd: heint.NewEncoder(ps.params)} }

// Slots returns the slot values in [0, T).
func (d *Decoder) Slots(pt *rlwe.Plaintext) ([]uint64, error) {
	out := make([]uint64, d.ps.Slots())
	if err := d.ecd.Decode(pt, out); err != nil {
		return nil, fmt.Errorf("he: decode: %w", err)
	}
	return out, nil
}

// Int64s returns the slot values centred mod T.
func (d *Decoder) Int64s(pt *rlwe.Plaintext) ([]int64, error) {
	u, err := d.Slots(pt)
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(u))
	for i, v := range u {
		out[i] = d.ps.CenterModT(v)
	}
	return out, nil
}
