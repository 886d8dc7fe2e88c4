// Package ceremony runs Unseen's t-of-N key ceremony for the homomorphic
// layer.
//
// Every node draws a secret-key share s_i that never leaves it. The nodes
// produce mhe.PublicKeyGenProtocol shares against a common reference
// polynomial sampled from the keyed PRNG
// SHA-256("unseen/crs/v1" ‖ 0x00 ‖ ceremony id ‖ 0x00 ‖ label); anyone (the
// coordinator, and each node for itself) aggregates the N shares into the
// collective public key. For t < N each node also Shamir-shares s_i
// (mhe.Thresholdizer): the share for node j is sealed with HPKE
// (X25519-HKDF-SHA256, HKDF-SHA256, ChaCha20-Poly1305) to j's HPKE public
// key, with AAD binding the ceremony id, the parameter set, the setup digest,
// the sender and the recipient, and travels through the coordinator, which
// cannot read it. Node j sums what it receives into its threshold share.
// With t = N there is no thresholdizing: all N nodes must take part in every
// decryption.
//
// Node identities are short strings; the Shamir point of a node is its index
// in the sorted roster plus one (never zero).
package ceremony

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/mhe"
	"github.com/tuneinsight/lattigo/v5/utils/sampling"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/internal/hpke"
)

// NodeID names a node (a department), e.g. "hrss".
type NodeID string

// MaxNodes bounds the roster.
const MaxNodes = 64

// Errors of the ceremony.
var (
	ErrSetup   = errors.New("he: invalid ceremony setup")
	ErrUnknown = errors.New("he: node not in the ceremony roster")
)

func validName(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// ValidCeremonyID reports whether id is usable: 1..64 of [A-Za-z0-9._-].
func ValidCeremonyID(id string) bool { return validName(id, 64) }

// Setup is the public description of one ceremony, identical at the
// coordinator and every node.
type Setup struct {
	ceremonyID string
	ps         *he.ParamSet
	nodes      []NodeID // sorted
	threshold  int
	hpke       map[NodeID][]byte
	digest     [32]byte
}

// NewSetup validates and fixes a ceremony: the roster (1..64 distinct ids of
// 1..32 chars [A-Za-z0-9._-]), the threshold 2 ≤ t ≤ N (t = 1 only when
// N = 1) and every node's 32-byte X25519 HPKE public key.
func NewSetup(ceremonyID string, ps *he.ParamSet, nodes []NodeID, threshold int, hpkeKeys map[NodeID][]byte) (*Setup, error) {
	if !ValidCeremonyID(ceremonyID) {
		return nil, fmt.Errorf("%w: ceremony id %q", ErrSetup, ceremonyID)
	}
	if ps == nil {
		return nil, fmt.Errorf("%w: no parameter set", ErrSetup)
	}
	if len(nodes) == 0 || len(nodes) > MaxNodes {
		return nil, fmt.Errorf("%w: %d nodes (1..%d)", ErrSetup, len(nodes), MaxNodes)
	}
	sorted := slices.Clone(nodes)
	slices.Sort(sorted)
	for i, id := range sorted {
		if !validName(string(id), 32) {
			return nil, fmt.Errorf("%w: node id %q", ErrSetup, id)
		}
		if i > 0 && sorted[i-1] == id {
			return nil, fmt.Errorf("%w: duplicate node id %q", ErrSetup, id)
		}
	}
	// t = 1 with N > 1 would hand every node the whole secret key.
	if minT := min(2, len(nodes)); threshold < minT || threshold > len(nodes) {
		return nil, fmt.Errorf("%w: threshold %d not in [%d, %d]", ErrSetup, threshold, minT, len(nodes))
	}
	if len(hpkeKeys) != len(nodes) {
		return nil, fmt.Errorf("%w: %d HPKE keys for %d nodes", ErrSetup, len(hpkeKeys), len(nodes))
	}
	keys := map[NodeID][]byte{}
	for _, id := range sorted {
		k, ok := hpkeKeys[id]
		if !ok {
			return nil, fmt.Errorf("%w: no HPKE key for %q", ErrSetup, id)
		}
		if err := hpke.CheckPublicKey(k); err != nil {
			return nil, fmt.Errorf("%w: HPKE key of %q: %v", ErrSetup, id, err)
		}
		keys[id] = slices.Clone(k)
	}
	s := &Setup{ceremonyID: ceremonyID, ps: ps, nodes: sorted, threshold: threshold, hpke: keys}
	s.digest = s.computeDigest()
	return s, nil
}

func appendLP(b []byte, s []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func (s *Setup) computeDigest() [32]byte {
	ph := s.ps.Hash()
	b := []byte("unseen/ceremony-setup/v1")
	b = appendLP(b, []byte(s.ceremonyID))
	b = appendLP(b, ph[:])
	b = binary.BigEndian.AppendUint16(b, uint16(s.threshold))
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.nodes)))
	for _, id := range s.nodes {
		b = appendLP(b, []byte(id))
		b = appendLP(b, s.hpke[id])
	}
	return sha256.Sum256(b)
}

// CeremonyID is the ceremony's id.
func (s *Setup) CeremonyID() string { return s.ceremonyID }

// ParamSet is the ceremony's parameter set.
func (s *Setup) ParamSet() *he.ParamSet { return s.ps }

// Nodes is the sorted roster (a copy).
func (s *Setup) Nodes() []NodeID { return slices.Clone(s.nodes) }

// N is the number of nodes.
func (s *Setup) N() int { return len(s.nodes) }

// Threshold is t: the number of nodes every decryption needs.
func (s *Setup) Threshold() int { return s.threshold }

// Thresholdized reports t < N (Shamir shares in use).
func (s *Setup) Thresholdized() bool { return s.threshold < len(s.nodes) }

// HPKEPublicKey is node id's HPKE public key.
func (s *Setup) HPKEPublicKey(id NodeID) ([]byte, error) {
	k, ok := s.hpke[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknown, id)
	}
	return slices.Clone(k), nil
}

// Digest binds the whole setup (id, parameters, threshold, roster, HPKE keys).
func (s *Setup) Digest() [32]byte { return s.digest }

// Point is id's Shamir point: its index in the sorted roster plus one.
func (s *Setup) Point(id NodeID) (mhe.ShamirPublicPoint, error) {
	i, ok := slices.BinarySearch(s.nodes, id)
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrUnknown, id)
	}
	return mhe.ShamirPublicPoint(i + 1), nil
}

// NodeAt is the node whose Shamir point is p.
func (s *Setup) NodeAt(p mhe.ShamirPublicPoint) (NodeID, error) {
	if p < 1 || int(p) > len(s.nodes) {
		return "", fmt.Errorf("%w: point %d", ErrUnknown, p)
	}
	return s.nodes[p-1], nil
}

// Points lists all N Shamir points in roster order.
func (s *Setup) Points() []mhe.ShamirPublicPoint {
	p := make([]mhe.ShamirPublicPoint, len(s.nodes))
	for i := range p {
		p[i] = mhe.ShamirPublicPoint(i + 1)
	}
	return p
}

// CRSLabelPublicKey is the CRS label of the collective public-key protocol.
const CRSLabelPublicKey = "ckg"

// CRS returns the keyed PRNG of one protocol instance:
// key = SHA-256("unseen/crs/v1" ‖ 0x00 ‖ ceremony id ‖ 0x00 ‖ label).
// Every party derives the same stream; it is public, not secret.
func CRS(ceremonyID, label string) (*sampling.KeyedPRNG, error) {
	if !ValidCeremonyID(ceremonyID) || !validName(label, 64) {
		return nil, fmt.Errorf("%w: CRS id or label", ErrSetup)
	}
	h := sha256.New()
	h.Write([]byte("unseen/crs/v1"))
	h.Write([]byte{0})
	h.Write([]byte(ceremonyID))
	h.Write([]byte{0})
	h.Write([]byte(label))
	return sampling.NewKeyedPRNG(h.Sum(nil))
}

func (s *Setup) crp() (mhe.PublicKeyGenCRP, error) {
	prng, err := CRS(s.ceremonyID, CRSLabelPublicKey)
	if err != nil {
		return mhe.PublicKeyGenCRP{}, err
	}
	return mhe.NewPublicKeyGenProtocol(s.ps.Params()).SampleCRP(prng), nil
}

// AggregatePublicKey combines exactly one public-key share per roster node
// (each the bytes of a he.LabelCKGShare payload) into the collective
// public key. The coordinator runs it, and so can every node for itself.
func AggregatePublicKey(s *Setup, shares map[NodeID][]byte) (*he.PublicKey, error) {
	if len(shares) != len(s.nodes) {
		return nil, fmt.Errorf("%w: %d public-key shares for %d nodes", ErrSetup, len(shares), len(s.nodes))
	}
	params := s.ps.Params()
	ckg := mhe.NewPublicKeyGenProtocol(params)
	agg := ckg.AllocateShare()
	for i, id := range s.nodes {
		b, ok := shares[id]
		if !ok {
			return nil, fmt.Errorf("%w: no public-key share from %q", ErrSetup, id)
		}
		sh, err := s.ps.UnmarshalCKGShare(b)
		if err != nil {
			return nil, fmt.Errorf("he: public-key share of %q: %w", id, err)
		}
		if i == 0 {
			agg.Value.Copy(sh.Value)
		} else {
			ckg.AggregateShares(agg, *sh, &agg)
		}
	}
	crp, err := s.crp()
	if err != nil {
		return nil, err
	}
	pk := rlwe.NewPublicKey(params)
	ckg.GenPublicKey(agg, crp, pk)
	return s.ps.WrapPublicKey(pk), nil
}
