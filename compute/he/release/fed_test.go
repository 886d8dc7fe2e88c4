package release

import (
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/he/ceremony"
	"github.com/unseen-data/unseen/compute/he/envelope"
	"github.com/unseen-data/unseen/compute/he/ledger"
)

// fed is an in-process federation: a ceremony, one release.Node per node
// (each with its own ledger), the coordinator's release key, and one MAC key
// per coordinator↔node pair. Every message goes through an envelope.
type fed struct {
	ps      *he.ParamSet
	setup   *ceremony.Setup
	keys    map[ceremony.NodeID]*ceremony.NodeKeys
	cpk     *he.PublicKey
	nodes   map[ceremony.NodeID]*Node
	ledgers map[ceremony.NodeID]*ledger.Memory
	rk      *ReleaseKey
	mac     map[ceremony.NodeID][]byte
	ids     []ceremony.NodeID
}

func newFed(t testing.TB, ps *he.ParamSet, n, thr int) *fed {
	t.Helper()
	ids := make([]ceremony.NodeID, n)
	for i := range ids {
		ids[i] = ceremony.NodeID(fmt.Sprintf("dept%d", i+1))
	}
	s, keys, cpk, err := ceremony.RunInProcess(fmt.Sprintf("cer-%d-of-%d", thr, n), ps, ids, thr)
	if err != nil {
		t.Fatal(err)
	}
	f := &fed{ps: ps, setup: s, keys: keys, cpk: cpk, nodes: map[ceremony.NodeID]*Node{},
		ledgers: map[ceremony.NodeID]*ledger.Memory{}, rk: NewReleaseKey(ps), mac: map[ceremony.NodeID][]byte{}, ids: s.Nodes()}
	for _, id := range ids {
		f.ledgers[id] = ledger.NewMemory()
		if f.nodes[id], err = NewNode(keys[id], f.ledgers[id]); err != nil {
			t.Fatal(err)
		}
		f.mac[id] = make([]byte, 32)
		rand.Read(f.mac[id])
	}
	return f
}

func (f *fed) hdr(label string, level int) envelope.Header {
	return envelope.Header{ParamsHash: f.ps.Hash(), CeremonyID: f.setup.CeremonyID(), Label: label, Level: level}
}

func (f *fed) seal(t testing.TB, peer ceremony.NodeID, label string, level int, payload []byte) []byte {
	t.Helper()
	m, err := envelope.Seal(f.mac[peer], f.hdr(label, level), payload)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (f *fed) open(peer ceremony.NodeID, label string, level, size int, msg []byte) ([]byte, error) {
	return envelope.Open(f.mac[peer], msg, envelope.Expect{Header: f.hdr(label, level), Size: size})
}

// nodeShare is what a node does on a release request: open the ciphertext
// and release-key envelopes, make the share, seal it.
func (f *fed) nodeShare(t testing.TB, id ceremony.NodeID, active []ceremony.NodeID, ctMsg, pkMsg []byte, level int) ([]byte, error) {
	t.Helper()
	ctSize, _ := f.ps.WireSize(he.LabelCiphertext, level)
	p, err := f.open(id, he.LabelCiphertext, level, ctSize, ctMsg)
	if err != nil {
		return nil, err
	}
	ct, err := f.ps.UnmarshalCiphertext(p, level)
	if err != nil {
		return nil, err
	}
	pkSize, _ := f.ps.WireSize(he.LabelPublicKey, f.ps.MaxLevel())
	p, err = f.open(id, he.LabelPublicKey, f.ps.MaxLevel(), pkSize, pkMsg)
	if err != nil {
		return nil, err
	}
	target, err := f.ps.UnmarshalPublicKey(p)
	if err != nil {
		return nil, err
	}
	sh, err := f.nodes[id].Share(active, ct, target, dec(ct))
	if err != nil {
		return nil, err
	}
	b, err := sh.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return f.seal(t, id, LabelShare, level, b), nil
}

// release runs the whole release of ct by `active` (nil: the first t nodes).
func (f *fed) release(t testing.TB, ct *he.Ciphertext, active []ceremony.NodeID) (*Result, error) {
	t.Helper()
	if active == nil {
		active = f.ids[:f.setup.Threshold()]
	}
	as, err := NewActiveSet(f.setup, active)
	if err != nil {
		return nil, err
	}
	cmb, err := NewCombiner(f.setup, as, ct, f.rk)
	if err != nil {
		return nil, err
	}
	ctb, _ := ct.MarshalBinary()
	pkb, _ := f.rk.PublicKey().MarshalBinary()
	level := ct.Level()
	for _, id := range as.IDs() {
		msg, err := f.nodeShare(t, id, active, f.seal(t, id, he.LabelCiphertext, level, ctb), f.seal(t, id, he.LabelPublicKey, f.ps.MaxLevel(), pkb), level)
		if err != nil {
			return nil, err
		}
		size, _ := ShareSize(f.ps, level)
		p, err := f.open(id, LabelShare, level, size, msg)
		if err != nil {
			return nil, err
		}
		sh, err := UnmarshalShare(f.ps, p, level)
		if err != nil {
			return nil, err
		}
		if err := cmb.Add(id, sh); err != nil {
			return nil, err
		}
	}
	return cmb.Decrypt()
}

// encryptAt encrypts at node id under the collective key and ships the
// ciphertext to the coordinator in an envelope.
func (f *fed) encryptAt(t testing.TB, id ceremony.NodeID, values []int64, maxTerms int) *he.Ciphertext {
	t.Helper()
	enc, err := he.NewEncryptor(f.keys[id].PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	ct, err := enc.Encrypt(values, maxTerms)
	if err != nil {
		t.Fatal(err)
	}
	return f.ship(t, id, ct)
}

func (f *fed) ship(t testing.TB, id ceremony.NodeID, ct *he.Ciphertext) *he.Ciphertext {
	t.Helper()
	b, _ := ct.MarshalBinary()
	size, _ := f.ps.WireSize(he.LabelCiphertext, ct.Level())
	p, err := f.open(id, he.LabelCiphertext, ct.Level(), size, f.seal(t, id, he.LabelCiphertext, ct.Level(), b))
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.ps.UnmarshalCiphertext(p, ct.Level())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// zeroSumMasks has every node encrypt a zero-sum mask and ship it.
func (f *fed) zeroSumMasks(t testing.TB) []*he.Ciphertext {
	var out []*he.Ciphertext
	for _, id := range f.ids {
		enc, _ := he.NewEncryptor(f.keys[id].PublicKey())
		m, err := enc.EncryptZeroSumMask(f.ps.Slots())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f.ship(t, id, m))
	}
	return out
}

// dec is an honest node's Decryption of ct in these tests: the bound of
// ct's own descriptor (the tests build it honestly) and an output named
// after the ciphertext, so that one ciphertext is one output.
func dec(ct *he.Ciphertext) Decryption {
	h, err := ct.Hash()
	if err != nil {
		panic(err)
	}
	return Decryption{Noise: ct.Noise(), Output: ledger.OutputKey(fmt.Sprintf("test-%x", h[:8]), 0)}
}
