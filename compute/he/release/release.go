// Package release decrypts a result ciphertext towards the coordinator's
// release key with the cooperation of exactly t nodes.
//
// The active set (the t node ids) is fixed before any share is produced;
// every node checks it against the ceremony's roster and refuses a wrong
// size, duplicates or outsiders before it computes anything. Each active
// node records what it decrypts in its ledger (durably: the job's output
// and the ciphertext's hash) and only then produces a
// mhe.PublicKeySwitchProtocol share towards the release key, flooded with
// Gaussian noise of σ = 2^40 × a noise bound the node computed itself
// (he.ParamSet.SmudgingFor, which also guards lattigo v5.0.7's sampler
// pitfall) — never the descriptor that travelled with the ciphertext,
// which whoever sent it could have lowered. The coordinator accepts exactly one share from each active node,
// all bound to the same active set and ciphertext, combines them, key-switches
// the ciphertext to its release key, decrypts and decodes.
package release

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/heint"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/he/ceremony"
	"github.com/unseen-data/unseen/compute/he/envelope"
	"github.com/unseen-data/unseen/compute/he/ledger"
)

// LabelShare is the envelope label of a decryption share (payload: Share.MarshalBinary).
const LabelShare = "release/share/v1"

// Errors of the release protocol.
var (
	ErrActiveSet = errors.New("he: invalid active set")
	ErrShare     = errors.New("he: decryption share refused")
)

// ActiveSet is the fixed list of the t nodes that take part in one
// decryption.
type ActiveSet struct {
	setup  *ceremony.Setup
	ids    []ceremony.NodeID // sorted
	points []mhe.ShamirPublicPoint
	digest [32]byte
}

// NewActiveSet checks ids against the ceremony: exactly t of them, distinct,
// all in the roster (with t = N: all nodes).
func NewActiveSet(s *ceremony.Setup, ids []ceremony.NodeID) (*ActiveSet, error) {
	if len(ids) != s.Threshold() {
		return nil, fmt.Errorf("%w: %d nodes, the ceremony needs exactly %d", ErrActiveSet, len(ids), s.Threshold())
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	a := &ActiveSet{setup: s, ids: sorted}
	for i, id := range sorted {
		if i > 0 && sorted[i-1] == id {
			return nil, fmt.Errorf("%w: %q listed twice", ErrActiveSet, id)
		}
		p, err := s.Point(id)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrActiveSet, err)
		}
		a.points = append(a.points, p)
	}
	sd := s.Digest()
	b := append([]byte("unseen/active-set/v1"), sd[:]...)
	for _, id := range sorted {
		b = binary.BigEndian.AppendUint16(b, uint16(len(id)))
		b = append(b, id...)
	}
	a.digest = sha256.Sum256(b)
	return a, nil
}

// IDs lists the active nodes, sorted.
func (a *ActiveSet) IDs() []ceremony.NodeID { return slices.Clone(a.ids) }

// Digest binds the active set to its ceremony.
func (a *ActiveSet) Digest() [32]byte { return a.digest }

// Contains reports whether id is active.
func (a *ActiveSet) Contains(id ceremony.NodeID) bool {
	_, ok := slices.BinarySearch(a.ids, id)
	return ok
}

// ---- release key (coordinator) -------------------------------------------

// ReleaseKey is the coordinator's RLWE key pair that results are switched to.
type ReleaseKey struct {
	ps *he.ParamSet
	sk *rlwe.SecretKey
	pk *he.PublicKey
}

// NewReleaseKey generates a release key pair.
func NewReleaseKey(ps *he.ParamSet) *ReleaseKey {
	sk, pk := heint.NewKeyGenerator(ps.Params()).GenKeyPairNew()
	return &ReleaseKey{ps: ps, sk: sk, pk: ps.WrapPublicKey(pk)}
}

// PublicKey is sent to the nodes (label he.LabelPublicKey).
func (k *ReleaseKey) PublicKey() *he.PublicKey { return k.pk }

// MarshalBinary is secret key ‖ public key (persist 0600).
func (k *ReleaseKey) MarshalBinary() ([]byte, error) {
	a, err := k.sk.MarshalBinary()
	if err != nil {
		return nil, err
	}
	b, err := k.pk.MarshalBinary()
	return append(a, b...), err
}

// UnmarshalReleaseKey restores a release key (sizes checked exactly).
func UnmarshalReleaseKey(ps *he.ParamSet, b []byte) (*ReleaseKey, error) {
	n, err := ps.WireSize(he.LabelSecretKey, ps.MaxLevel())
	if err != nil {
		return nil, err
	}
	if len(b) < n {
		return nil, he.ErrLength
	}
	sk, err := ps.UnmarshalSecretKey(b[:n])
	if err != nil {
		return nil, err
	}
	pk, err := ps.UnmarshalPublicKey(b[n:])
	if err != nil {
		return nil, err
	}
	return &ReleaseKey{ps: ps, sk: sk, pk: pk}, nil
}

// ---- shares --------------------------------------------------------------

// Share is one node's decryption share, bound to the active set and the
// ciphertext.
type Share struct {
	ActiveDigest [32]byte
	CiphertextID [32]byte
	From         mhe.ShamirPublicPoint
	Level        int
	share        *mhe.PublicKeySwitchShare
}

const shareHeader = 32 + 32 + 2

// ShareSize is the exact payload size of LabelShare at level.
func ShareSize(ps *he.ParamSet, level int) (int, error) {
	n, err := ps.WireSize(he.LabelPKSShare, level)
	return shareHeader + n, err
}

// MarshalBinary is active digest ‖ ciphertext hash ‖ sender's point (2 bytes) ‖ share.
func (s *Share) MarshalBinary() ([]byte, error) {
	b, err := s.share.MarshalBinary()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, shareHeader+len(b))
	out = append(out, s.ActiveDigest[:]...)
	out = append(out, s.CiphertextID[:]...)
	out = binary.BigEndian.AppendUint16(out, uint16(s.From))
	return append(out, b...), nil
}

// UnmarshalShare decodes a share at level (exact size and shape checked
// before lattigo parses anything).
func UnmarshalShare(ps *he.ParamSet, b []byte, level int) (*Share, error) {
	n, err := ShareSize(ps, level)
	if err != nil {
		return nil, err
	}
	if len(b) != n {
		return nil, fmt.Errorf("%w: got %d bytes, want exactly %d", he.ErrLength, len(b), n)
	}
	s := &Share{Level: level}
	copy(s.ActiveDigest[:], b[:32])
	copy(s.CiphertextID[:], b[32:64])
	s.From = mhe.ShamirPublicPoint(binary.BigEndian.Uint16(b[64:66]))
	if s.share, err = ps.UnmarshalPKSShare(b[shareHeader:], level); err != nil {
		return nil, err
	}
	return s, nil
}

// Equal compares two shares.
func (s *Share) Equal(o *Share) bool {
	return s.ActiveDigest == o.ActiveDigest && s.CiphertextID == o.CiphertextID && s.From == o.From && s.Level == o.Level &&
		s.share.Value[0].Equal(&o.share.Value[0]) && s.share.Value[1].Equal(&o.share.Value[1])
}

// ---- node side -----------------------------------------------------------

// Node produces decryption shares for one node. Safe for concurrent use.
type Node struct {
	keys   *ceremony.NodeKeys
	ledger ledger.Ledger
	ecd    *heint.Encoder // read-only tables; each share uses a ShallowCopy
}

// NewNode binds a node's keys to its ledger.
func NewNode(keys *ceremony.NodeKeys, l ledger.Ledger) (*Node, error) {
	if keys == nil || l == nil {
		return nil, errors.New("he: release node needs keys and a ledger")
	}
	return &Node{keys: keys, ledger: l, ecd: heint.NewEncoder(keys.Setup().ParamSet().Params())}, nil
}

// Decryption is what the releasing node itself vouches for about one
// decryption, whatever came with the ciphertext.
type Decryption struct {
	// Noise bounds ct's noise: computed by the node from what it knows
	// (the job's spec, signed statements, its own parameters), never read
	// from ct's descriptor. The smudging is sized from it.
	Noise he.Noise
	// Output is the ledger key of the result decrypted
	// (ledger.OutputKey(job, index)).
	Output [32]byte
	// ZeroSum, if positive, is a block size: the node adds to its share
	// the encoding of a fresh random vector each of whose blocks of ZeroSum
	// slots sums to 0 mod T (he.ParamSet.ZeroSumVector). The decrypted slots
	// are then uniform and only each block's total survives, whatever the
	// sender of the ciphertext added to it or left out (the coordinator's
	// own zero-sum masks, for instance).
	ZeroSum int
}

// Share produces this node's share for decrypting ct towards target (the
// coordinator's release public key) by exactly the nodes in active. In order:
// the active set is validated (size t, distinct, in the roster, including
// this node); parameters and level are checked; the smudging is computed
// from d.Noise and refused if lattigo would sample it wrongly or decryption
// would fail; d.Output and ct's hash are recorded in the ledger (refused if
// either was decrypted before); only then is the share computed.
func (n *Node) Share(active []ceremony.NodeID, ct *he.Ciphertext, target *he.PublicKey, d Decryption) (*Share, error) {
	s := n.keys.Setup()
	as, err := NewActiveSet(s, active)
	if err != nil {
		return nil, err
	}
	self := n.keys.Self()
	if !as.Contains(self) {
		return nil, fmt.Errorf("%w: %q is not in it", ErrActiveSet, self)
	}
	ps := s.ParamSet()
	if ct == nil || target == nil || ct.ParamSet() != ps || target.ParamSet() != ps {
		return nil, fmt.Errorf("%w: parameter set mismatch", ErrShare)
	}
	level := ct.Level()
	sm, err := ps.SmudgingFor(d.Noise, level, s.Threshold())
	if err != nil {
		return nil, err
	}
	id, err := ct.Hash()
	if err != nil {
		return nil, err
	}
	sk, err := n.keys.AdditiveShare(as.points)
	if err != nil {
		return nil, err
	}
	if err := n.ledger.Record(d.Output, id); err != nil {
		return nil, err
	}
	sh, err := genShare(ps, sm, sk, target, ct)
	if err != nil {
		return nil, err
	}
	if d.ZeroSum > 0 {
		if err := addZeroSum(ps, n.ecd.ShallowCopy(), sh, ct, d.ZeroSum); err != nil {
			return nil, err
		}
	}
	own, _ := s.Point(self)
	return &Share{ActiveDigest: as.digest, CiphertextID: id, From: own, Level: level, share: sh}, nil
}

// addZeroSum adds the encoding of a fresh zero-sum vector (blocks of
// `block` slots) to the c0 part of a share. The key switch adds the shares'
// c0 parts to ct's (mhe.PublicKeySwitchProtocol.KeySwitch), so this is
// exactly encrypting the vector into the result, as he.Encryptor would.
func addZeroSum(ps *he.ParamSet, ecd *heint.Encoder, sh *mhe.PublicKeySwitchShare, ct *he.Ciphertext, block int) error {
	v, err := ps.ZeroSumVector(block)
	if err != nil {
		return err
	}
	level := ct.Level()
	pt := heint.NewPlaintext(ps.Params(), level)
	if err := ecd.Encode(v, pt); err != nil {
		return fmt.Errorf("he: encode: %w", err)
	}
	if pt.IsNTT != ct.RLWE().IsNTT || pt.Scale.Cmp(ct.RLWE().Scale) != 0 {
		return fmt.Errorf("%w: a zero-sum vector cannot be added in this ciphertext's domain", ErrShare)
	}
	ps.Params().RingQ().AtLevel(level).Add(sh.Value[0], pt.Value, sh.Value[0])
	return nil
}

// genShare runs GenShare under recover: on lattigo's big-integer sampling
// path (σ ≥ 2^80) crypto/rand.Int(0) can panic with probability ≈ N·2^-27;
// that is retried. Any other panic is reported as an error.
func genShare(ps *he.ParamSet, sm he.Smudging, sk *rlwe.SecretKey, target *he.PublicKey, ct *he.Ciphertext) (*mhe.PublicKeySwitchShare, error) {
	if err := ps.CheckSmudging(sm.Sigma); err != nil { // the guard, again, at the point of use
		return nil, err
	}
	var last any
	for attempt := 0; attempt < 3; attempt++ {
		sh, p := func() (sh *mhe.PublicKeySwitchShare, p any) {
			defer func() { p = recover() }()
			pcks, err := mhe.NewPublicKeySwitchProtocol(ps.Params(), ring.DiscreteGaussian{Sigma: sm.Sigma, Bound: 6 * sm.Sigma})
			if err != nil {
				return nil, err
			}
			out := pcks.AllocateShare(ct.Level())
			pcks.GenShare(sk, target.RLWE(), ct.RLWE(), &out)
			return &out, nil
		}()
		if p == nil && sh != nil {
			return sh, nil
		}
		last = p
	}
	return nil, fmt.Errorf("%w: share generation failed: %v", ErrShare, last)
}

// ---- coordinator side ----------------------------------------------------

// Combiner collects the shares of one decryption at the coordinator.
// Not safe for concurrent use.
type Combiner struct {
	setup  *ceremony.Setup
	active *ActiveSet
	ct     *he.Ciphertext
	ctID   [32]byte
	key    *ReleaseKey
	shares map[ceremony.NodeID]*Share
}

// NewCombiner prepares to combine shares for ct from exactly the nodes of active.
func NewCombiner(s *ceremony.Setup, active *ActiveSet, ct *he.Ciphertext, key *ReleaseKey) (*Combiner, error) {
	if active == nil || active.setup.Digest() != s.Digest() {
		return nil, fmt.Errorf("%w: belongs to another ceremony", ErrActiveSet)
	}
	if ct == nil || key == nil || ct.ParamSet() != s.ParamSet() || key.ps != s.ParamSet() {
		return nil, fmt.Errorf("%w: parameter set mismatch", ErrShare)
	}
	id, err := ct.Hash()
	if err != nil {
		return nil, err
	}
	return &Combiner{setup: s, active: active, ct: ct, ctID: id, key: key, shares: map[ceremony.NodeID]*Share{}}, nil
}

// Add accepts the share that node `from` sent: from must be active and not
// have contributed yet, and the share must carry from's point, this active
// set and this ciphertext.
func (c *Combiner) Add(from ceremony.NodeID, sh *Share) error {
	if !c.active.Contains(from) {
		return fmt.Errorf("%w: %q is not in the active set", ErrShare, from)
	}
	if _, dup := c.shares[from]; dup {
		return fmt.Errorf("%w: second share from %q", ErrShare, from)
	}
	if p, _ := c.setup.Point(from); sh == nil || sh.From != p {
		return fmt.Errorf("%w: share is not %q's", ErrShare, from)
	}
	if sh.ActiveDigest != c.active.digest {
		return fmt.Errorf("%w: share from %q was made for another active set", ErrShare, from)
	}
	if sh.CiphertextID != c.ctID || sh.Level != c.ct.Level() {
		return fmt.Errorf("%w: share from %q is for another ciphertext", ErrShare, from)
	}
	c.shares[from] = sh
	return nil
}

// Result is a decrypted result: slot values mod T.
type Result struct {
	ps    *he.ParamSet
	slots []uint64
}

// Slots are the raw slot values in [0, T).
func (r *Result) Slots() []uint64 { return slices.Clone(r.slots) }

// Values are the slots centred mod T (meaningful only without zero-sum masking).
func (r *Result) Values() []int64 {
	out := make([]int64, len(r.slots))
	for i, v := range r.slots {
		out[i] = r.ps.CenterModT(v)
	}
	return out
}

// Total is Σ slots mod T, centred: the answer under whole-ciphertext zero-sum masking.
func (r *Result) Total() int64 { return r.ps.TotalModT(r.slots) }

// BlockTotals are the centred totals of consecutive blocks of blockSize slots.
func (r *Result) BlockTotals(blockSize int) ([]int64, error) {
	if blockSize < 1 || len(r.slots)%blockSize != 0 {
		return nil, fmt.Errorf("he: block size %d does not divide %d", blockSize, len(r.slots))
	}
	out := make([]int64, 0, len(r.slots)/blockSize)
	for b := 0; b < len(r.slots); b += blockSize {
		out = append(out, r.ps.TotalModT(r.slots[b:b+blockSize]))
	}
	return out, nil
}

// Decrypt combines exactly t shares (one per active node), key-switches the
// ciphertext to the release key and decrypts it.
func (c *Combiner) Decrypt() (*Result, error) {
	if len(c.shares) != c.setup.Threshold() {
		return nil, fmt.Errorf("%w: %d of %d shares", ErrShare, len(c.shares), c.setup.Threshold())
	}
	ps := c.setup.ParamSet()
	pcks, err := mhe.NewPublicKeySwitchProtocol(ps.Params(), ps.Params().Xe())
	if err != nil {
		return nil, err
	}
	level := c.ct.Level()
	agg := pcks.AllocateShare(level)
	for i, id := range c.active.ids {
		sh := c.shares[id]
		if i == 0 {
			agg.Value[0].CopyLvl(level, sh.share.Value[0])
			agg.Value[1].CopyLvl(level, sh.share.Value[1])
			continue
		}
		if err := pcks.AggregateShares(agg, *sh.share, &agg); err != nil {
			return nil, err
		}
	}
	out := heint.NewCiphertext(ps.Params(), 1, level)
	pcks.KeySwitch(c.ct.RLWE(), agg, out)
	pt := heint.NewDecryptor(ps.Params(), c.key.sk).DecryptNew(out)
	slots, err := he.NewDecoder(ps).Slots(pt)
	if err != nil {
		return nil, err
	}
	return &Result{ps: ps, slots: slots}, nil
}

// Expect is the envelope expectation (header and exact payload size) of
// any HE message of a ceremony, including the sealed Shamir shares and
// decryption shares whose sizes only this layer and ceremony know. Both
// ends of the wire check messages against it before parsing them.
func Expect(ps *he.ParamSet, cer, label string, level int) (envelope.Expect, error) {
	var size int
	var err error
	switch label {
	case ceremony.LabelSealedShamirShare:
		size, err = ceremony.SealedShareSize(ps)
	case LabelShare:
		size, err = ShareSize(ps, level)
	default:
		return ps.Expect(cer, label, level)
	}
	if err != nil {
		return envelope.Expect{}, err
	}
	return envelope.Expect{Header: envelope.Header{ParamsHash: ps.Hash(), CeremonyID: cer, Label: label, Level: level}, Size: size}, nil
}
