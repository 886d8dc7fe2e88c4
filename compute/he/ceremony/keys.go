package ceremony

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"

	"github.com/unseen-data/unseen/compute/he"
)

// NodeKeys is a node's key material after the ceremony. Persist it with
// MarshalBinary to a file of mode 0600; it contains secrets.
type NodeKeys struct {
	setup *Setup
	self  NodeID
	sk    *rlwe.SecretKey        // additive share s_i
	tsk   *mhe.ShamirSecretShare // threshold share (t < N only)
	cpk   *he.PublicKey          // collective public key
	hpke  *HPKEKeyPair
}

// Setup is the ceremony's setup.
func (k *NodeKeys) Setup() *Setup { return k.setup }

// Self is this node's id.
func (k *NodeKeys) Self() NodeID { return k.self }

// PublicKey is the collective public key.
func (k *NodeKeys) PublicKey() *he.PublicKey { return k.cpk }

// HPKE is the node's HPKE key pair.
func (k *NodeKeys) HPKE() *HPKEKeyPair { return k.hpke }

// ErrActive is returned for an unusable list of active Shamir points.
var ErrActive = errors.New("he: invalid active set")

// AdditiveShare returns this node's additive share of the collective secret
// for a decryption by exactly the given active nodes (their Shamir points):
// for t = N it is s_i (and active must be all N points); for t < N it is
// the Lagrange-weighted threshold share (mhe.Combiner). The points are
// checked first (exactly t, distinct, in the roster, including this node),
// because lattigo's Combiner silently uses the first t points of a longer
// list, computes garbage for duplicates and panics on unknown points.
func (k *NodeKeys) AdditiveShare(active []mhe.ShamirPublicPoint) (*rlwe.SecretKey, error) {
	s := k.setup
	if len(active) != s.threshold {
		return nil, fmt.Errorf("%w: %d nodes, the ceremony needs exactly %d", ErrActive, len(active), s.threshold)
	}
	own, _ := s.Point(k.self)
	seen := map[mhe.ShamirPublicPoint]bool{}
	for _, p := range active {
		if _, err := s.NodeAt(p); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrActive, err)
		}
		if seen[p] {
			return nil, fmt.Errorf("%w: duplicate point %d", ErrActive, p)
		}
		seen[p] = true
	}
	if !seen[own] {
		return nil, fmt.Errorf("%w: %q is not in it", ErrActive, k.self)
	}
	if !s.Thresholdized() {
		return k.sk.CopyNew(), nil
	}
	params := s.ps.Params()
	cmb := mhe.NewCombiner(*params.GetRLWEParameters(), own, s.Points(), s.threshold)
	out := rlwe.NewSecretKey(params)
	if err := cmb.GenAdditiveShare(slices.Clone(active), own, *k.tsk, out); err != nil {
		return nil, fmt.Errorf("he: combine: %w", err)
	}
	return out, nil
}

const keysMagic = "UNSKEY1\n"

type keysHeader struct {
	CeremonyID string            `json:"ceremony_id"`
	ParamsName string            `json:"params_name"`
	ParamsHash string            `json:"params_hash"`
	Threshold  int               `json:"threshold"`
	Nodes      []NodeID          `json:"nodes"`
	HPKEPublic map[NodeID]string `json:"hpke_public"`
	Self       NodeID            `json:"self"`
}

// MarshalBinary serialises the key material:
// "UNSKEY1\n" ‖ (u32 length ‖ JSON header) ‖ (u32 ‖ HPKE private key) ‖
// (u32 ‖ secret key) ‖ (u32 ‖ threshold share, or empty) ‖ (u32 ‖ public key).
func (k *NodeKeys) MarshalBinary() ([]byte, error) {
	s := k.setup
	ph := s.ps.Hash()
	h := keysHeader{CeremonyID: s.ceremonyID, ParamsName: s.ps.Name(), ParamsHash: hex.EncodeToString(ph[:]),
		Threshold: s.threshold, Nodes: s.Nodes(), HPKEPublic: map[NodeID]string{}, Self: k.self}
	for id, pk := range s.hpke {
		h.HPKEPublic[id] = hex.EncodeToString(pk)
	}
	hj, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	hp, err := k.hpke.MarshalBinary()
	if err != nil {
		return nil, err
	}
	skb, err := k.sk.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var tskb []byte
	if k.tsk != nil {
		if tskb, err = k.tsk.MarshalBinary(); err != nil {
			return nil, err
		}
	}
	pkb, err := k.cpk.MarshalBinary()
	if err != nil {
		return nil, err
	}
	out := []byte(keysMagic)
	for _, sec := range [][]byte{hj, hp, skb, tskb, pkb} {
		out = binary.BigEndian.AppendUint32(out, uint32(len(sec)))
		out = append(out, sec...)
	}
	return out, nil
}

// ErrKeysFile is returned for unreadable key material.
var ErrKeysFile = errors.New("he: node key material malformed")

// UnmarshalNodeKeys restores key material saved by MarshalBinary; ps must be
// the parameter set it was made with (checked by hash). Every section's
// length is checked against the exact expected size before parsing.
func UnmarshalNodeKeys(b []byte, ps *he.ParamSet) (*NodeKeys, error) {
	if !bytes.HasPrefix(b, []byte(keysMagic)) {
		return nil, ErrKeysFile
	}
	r := b[len(keysMagic):]
	next := func(max int) ([]byte, error) {
		if len(r) < 4 {
			return nil, ErrKeysFile
		}
		n := binary.BigEndian.Uint32(r)
		if uint64(n) > uint64(max) || uint64(n) > uint64(len(r)-4) {
			return nil, ErrKeysFile
		}
		v := r[4 : 4+n]
		r = r[4+n:]
		return v, nil
	}
	hj, err := next(1 << 20)
	if err != nil {
		return nil, err
	}
	var h keysHeader
	dec := json.NewDecoder(bytes.NewReader(hj))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrKeysFile, err)
	}
	ph := ps.Hash()
	if h.ParamsHash != hex.EncodeToString(ph[:]) {
		return nil, fmt.Errorf("%w: made with another parameter set (%s)", ErrKeysFile, h.ParamsName)
	}
	hpkeKeys := map[NodeID][]byte{}
	for id, v := range h.HPKEPublic {
		if hpkeKeys[id], err = hex.DecodeString(v); err != nil {
			return nil, fmt.Errorf("%w: HPKE key of %q", ErrKeysFile, id)
		}
	}
	s, err := NewSetup(h.CeremonyID, ps, h.Nodes, h.Threshold, hpkeKeys)
	if err != nil {
		return nil, err
	}
	if _, err := s.Point(h.Self); err != nil {
		return nil, err
	}
	hp, err := next(64)
	if err != nil {
		return nil, err
	}
	kp, err := UnmarshalHPKEKeyPair(hp)
	if err != nil {
		return nil, err
	}
	if want, _ := s.HPKEPublicKey(h.Self); !bytes.Equal(want, kp.pub) {
		return nil, fmt.Errorf("%w: HPKE key does not match the setup", ErrKeysFile)
	}
	skb, err := next(64 << 20)
	if err != nil {
		return nil, err
	}
	sk, err := ps.UnmarshalSecretKey(skb)
	if err != nil {
		return nil, err
	}
	tskb, err := next(64 << 20)
	if err != nil {
		return nil, err
	}
	k := &NodeKeys{setup: s, self: h.Self, sk: sk, hpke: kp}
	if s.Thresholdized() {
		if k.tsk, err = ps.UnmarshalShamirShare(tskb); err != nil {
			return nil, err
		}
	} else if len(tskb) != 0 {
		return nil, fmt.Errorf("%w: threshold share in a t = N ceremony", ErrKeysFile)
	}
	pkb, err := next(64 << 20)
	if err != nil {
		return nil, err
	}
	if k.cpk, err = ps.UnmarshalPublicKey(pkb); err != nil {
		return nil, err
	}
	if len(r) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes", ErrKeysFile)
	}
	return k, nil
}

// Equal reports whether two NodeKeys hold the same material.
func (k *NodeKeys) Equal(o *NodeKeys) bool {
	if k == nil || o == nil || k.setup.Digest() != o.setup.Digest() || k.self != o.self || !k.sk.Equal(o.sk) || !k.cpk.Equal(o.cpk) || !bytes.Equal(k.hpke.pub, o.hpke.pub) {
		return false
	}
	if (k.tsk == nil) != (o.tsk == nil) {
		return false
	}
	return k.tsk == nil || k.tsk.Poly.Equal(&o.tsk.Poly)
}

// RunInProcess runs a whole ceremony in one process, passing every message
// as bytes exactly as a coordinator would route them (for `unseen demo` and
// tests). It returns the setup, each node's keys and the collective key.
func RunInProcess(ceremonyID string, ps *he.ParamSet, nodes []NodeID, threshold int) (*Setup, map[NodeID]*NodeKeys, *he.PublicKey, error) {
	kps := map[NodeID]*HPKEKeyPair{}
	pubs := map[NodeID][]byte{}
	for _, id := range nodes {
		kp, err := NewHPKEKeyPair()
		if err != nil {
			return nil, nil, nil, err
		}
		kps[id], pubs[id] = kp, kp.Public()
	}
	s, err := NewSetup(ceremonyID, ps, nodes, threshold, pubs)
	if err != nil {
		return nil, nil, nil, err
	}
	parties := map[NodeID]*Party{}
	ckg := map[NodeID][]byte{}
	for _, id := range s.nodes {
		if parties[id], err = NewParty(s, id, kps[id]); err != nil {
			return nil, nil, nil, err
		}
		if ckg[id], err = parties[id].PublicKeyShare(); err != nil {
			return nil, nil, nil, err
		}
	}
	for _, from := range s.nodes {
		sealed, err := parties[from].SealedShares()
		if err != nil {
			return nil, nil, nil, err
		}
		for to, b := range sealed {
			if err := parties[to].ReceiveSealedShare(from, b); err != nil {
				return nil, nil, nil, err
			}
		}
	}
	cpk, err := AggregatePublicKey(s, ckg)
	if err != nil {
		return nil, nil, nil, err
	}
	keys := map[NodeID]*NodeKeys{}
	for _, id := range s.nodes {
		if keys[id], err = parties[id].Finish(ckg); err != nil {
			return nil, nil, nil, err
		}
		if !keys[id].cpk.Equal(cpk) {
			return nil, nil, nil, errors.New("he: nodes disagree on the collective public key")
		}
	}
	return s, keys, cpk, nil
}
