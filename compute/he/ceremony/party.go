package ceremony

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
)

// Party is one node's state during the ceremony. Not safe for concurrent use.
type Party struct {
	setup    *Setup
	self     NodeID
	point    mhe.ShamirPublicPoint
	hpke     *HPKEKeyPair
	sk       *rlwe.SecretKey
	ckgShare []byte
	thr      mhe.Thresholdizer
	poly     mhe.ShamirPolynomial
	received map[NodeID]*mhe.ShamirSecretShare
	done     bool
}

// NewParty starts node self's part: it draws the secret-key share s_i.
// hpke must be the key pair whose public half the Setup lists for self.
func NewParty(s *Setup, self NodeID, hpke *HPKEKeyPair) (*Party, error) {
	pt, err := s.Point(self)
	if err != nil {
		return nil, err
	}
	want, _ := s.HPKEPublicKey(self)
	if hpke == nil || !bytes.Equal(want, hpke.pub) {
		return nil, fmt.Errorf("%w: HPKE key of %q does not match the setup", ErrSetup, self)
	}
	params := s.ps.Params()
	p := &Party{
		setup:    s,
		self:     self,
		point:    pt,
		hpke:     hpke,
		sk:       rlwe.NewKeyGenerator(params).GenSecretKeyNew(),
		received: map[NodeID]*mhe.ShamirSecretShare{},
	}
	if s.Thresholdized() {
		p.thr = mhe.NewThresholdizer(params)
		if p.poly, err = p.thr.GenShamirPolynomial(s.threshold, p.sk); err != nil {
			return nil, fmt.Errorf("he: shamir polynomial: %w", err)
		}
		own := p.thr.AllocateThresholdSecretShare()
		p.thr.GenShamirSecretShare(p.point, p.poly, &own)
		p.received[self] = &own
	}
	return p, nil
}

// PublicKeyShare is this node's mhe.PublicKeyGenProtocol share (payload of
// label he.LabelCKGShare, level MaxLevel).
func (p *Party) PublicKeyShare() ([]byte, error) {
	if p.ckgShare != nil {
		return bytes.Clone(p.ckgShare), nil
	}
	crp, err := p.setup.crp()
	if err != nil {
		return nil, err
	}
	ckg := mhe.NewPublicKeyGenProtocol(p.setup.ps.Params())
	sh := ckg.AllocateShare()
	ckg.GenShare(p.sk, crp, &sh)
	b, err := sh.MarshalBinary()
	if err != nil {
		return nil, err
	}
	p.ckgShare = b
	return bytes.Clone(b), nil
}

// SealedShares returns, for t < N, one HPKE-sealed Shamir share per other
// node (payloads of LabelSealedShamirShare). For t = N it returns none.
func (p *Party) SealedShares() (map[NodeID][]byte, error) {
	out := map[NodeID][]byte{}
	if !p.setup.Thresholdized() {
		return out, nil
	}
	share := p.thr.AllocateThresholdSecretShare()
	for _, id := range p.setup.nodes {
		if id == p.self {
			continue
		}
		pt, _ := p.setup.Point(id)
		p.thr.GenShamirSecretShare(pt, p.poly, &share)
		b, err := share.MarshalBinary()
		if err != nil {
			return nil, err
		}
		if out[id], err = seal(p.setup, p.self, id, b); err != nil {
			return nil, fmt.Errorf("he: seal share for %q: %w", id, err)
		}
	}
	return out, nil
}

// ReceiveSealedShare opens the Shamir share that node `from` sealed for
// this node. Each sender is accepted once.
func (p *Party) ReceiveSealedShare(from NodeID, sealed []byte) error {
	if !p.setup.Thresholdized() {
		return errors.New("he: no Shamir shares in a t = N ceremony")
	}
	if _, err := p.setup.Point(from); err != nil {
		return err
	}
	if from == p.self {
		return errors.New("he: a node does not receive its own sealed share")
	}
	if _, dup := p.received[from]; dup {
		return fmt.Errorf("he: duplicate Shamir share from %q", from)
	}
	pt, err := open(p.setup, p.hpke, from, p.self, sealed)
	if err != nil {
		return err
	}
	sh, err := p.setup.ps.UnmarshalShamirShare(pt)
	if err != nil {
		return fmt.Errorf("he: Shamir share from %q: %w", from, err)
	}
	p.received[from] = sh
	return nil
}

// Finish aggregates the collective public key from all N public-key shares
// (the node checks its own is among them unmodified) and, for t < N, sums
// the N Shamir shares into this node's threshold share. It returns the key
// material the node must persist (NodeKeys.MarshalBinary, file mode 0600).
func (p *Party) Finish(ckgShares map[NodeID][]byte) (*NodeKeys, error) {
	if p.done {
		return nil, errors.New("he: ceremony already finished")
	}
	own, err := p.PublicKeyShare()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(ckgShares[p.self], own) {
		return nil, errors.New("he: own public-key share missing or altered")
	}
	cpk, err := AggregatePublicKey(p.setup, ckgShares)
	if err != nil {
		return nil, err
	}
	k := &NodeKeys{setup: p.setup, self: p.self, sk: p.sk, cpk: cpk, hpke: p.hpke}
	if p.setup.Thresholdized() {
		if len(p.received) != p.setup.N() {
			return nil, fmt.Errorf("he: %d of %d Shamir shares received", len(p.received), p.setup.N())
		}
		agg := p.thr.AllocateThresholdSecretShare()
		for i, id := range p.setup.nodes {
			if i == 0 {
				agg.Poly.Copy(p.received[id].Poly)
				continue
			}
			if err := p.thr.AggregateShares(agg, *p.received[id], &agg); err != nil {
				return nil, err
			}
		}
		k.tsk = &agg
	}
	p.done = true
	return k, nil
}
