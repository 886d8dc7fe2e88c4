package node

// The node's homomorphic state: its key shares (one set per parameter set,
// from the key ceremony), the envelopes every homomorphic object travels
// in, and the decryption ledger.

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/he/ceremony"
	"github.com/unseen-data/unseen/compute/he/envelope"
	"github.com/unseen-data/unseen/compute/he/ledger"
	"github.com/unseen-data/unseen/compute/he/release"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/internal/securefile"
)

// heParamSets are the parameter sets a node holds keys for (one ceremony each).
var heParamSets = []string{he.NameSums, he.NameSquares}

// heState is the node's homomorphic state.
type heState struct {
	dir    string
	dept   string
	envKey []byte
	log    *slog.Logger

	mu      sync.Mutex
	keys    map[string]*ceremony.NodeKeys // by parameter-set name
	pending map[string]*pendingCeremony   // by ceremony id (ceremony.go)
	ledger  *ledger.File                  // opened at the first release
	layouts map[*session]*heLayout        // he/values layouts, so pages cost O(page) (he_layout.go)
}

// newHEState loads the key shares persisted in the keys directory. Key
// material that exists but cannot be read stops the node: it must not run
// on keys it cannot trust, nor silently without them.
func newHEState(cfg *Config, tokenSum []byte, log *slog.Logger) (*heState, error) {
	h := &heState{
		dir:     cfg.KeysPath(),
		dept:    cfg.Department,
		envKey:  nodeapi.EnvelopeKey(tokenSum),
		log:     log,
		keys:    map[string]*ceremony.NodeKeys{},
		pending: map[string]*pendingCeremony{},
		layouts: map[*session]*heLayout{},
	}
	for _, name := range heParamSets {
		path := h.keyFile(name)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("node: reading key shares: %w", err)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("key share file is readable by others; it should be mode 0600", "file", path, "mode", fi.Mode().Perm().String())
		}
		ps, _ := he.ParamsByName(name)
		k, err := ceremony.UnmarshalNodeKeys(b, ps)
		if err != nil {
			return nil, fmt.Errorf("node: key shares in %s: %w", path, err)
		}
		if string(k.Self()) != cfg.Department {
			return nil, fmt.Errorf("node: key shares in %s belong to %q, not %q", path, k.Self(), cfg.Department)
		}
		h.keys[name] = k
		log.Info("homomorphic key shares loaded", "params", name, "ceremony", k.Setup().CeremonyID(), "threshold", k.Setup().Threshold(), "nodes", k.Setup().N())
	}
	return h, nil
}

// Files are named after the department so that nodes sharing a folder (tests,
// a single-host demo) cannot overwrite each other's keys.
func (h *heState) keyFile(params string) string {
	return filepath.Join(h.dir, h.dept+"."+params+".keys")
}

func (h *heState) ledgerFile() string { return filepath.Join(h.dir, h.dept+".ledger") }

// archiveFile is where keys replaced by a later ceremony are kept:
// <dept>.<params>.<ceremony>.<first bytes of the public key's hash>.keys.old
// (ceremony ids are [A-Za-z0-9._-]; the hash keeps two key sets of one
// reused ceremony id apart). The node never loads or deletes them.
func (h *heState) archiveFile(params, ceremonyID string, pkHash []byte) string {
	return filepath.Join(h.dir, fmt.Sprintf("%s.%s.%s.%x.keys.old", h.dept, params, ceremonyID, pkHash[:6]))
}

// archiveKeys copies the key file at path to archive (0600, fsynced). A
// missing key file has nothing to archive.
func archiveKeys(path, archive string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return securefile.Write(archive, b)
}

// keysFor returns the node's keys for a parameter set.
func (h *heState) keysFor(params string) (*ceremony.NodeKeys, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k, ok := h.keys[params]
	if !ok {
		return nil, refuse(KindConflict, "no_keys", "node %s holds no key shares for parameter set %q: run the key ceremony", h.dept, params)
	}
	return k, nil
}

// openLedger opens the decryption ledger once and keeps it.
func (h *heState) openLedger() (*ledger.File, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ledger != nil {
		return h.ledger, nil
	}
	if err := os.MkdirAll(h.dir, 0o700); err != nil {
		return nil, err
	}
	l, err := ledger.OpenFile(h.ledgerFile())
	if err != nil {
		return nil, err
	}
	h.ledger = l
	return l, nil
}

// seal envelopes a homomorphic object for the coordinator.
func (h *heState) seal(ps *he.ParamSet, cer, label string, level int, payload []byte) ([]byte, error) {
	return envelope.Seal(h.envKey, envelope.Header{ParamsHash: ps.Hash(), CeremonyID: cer, Label: label, Level: level}, payload)
}

// open authenticates and size-checks an envelope from the coordinator; only
// its payload, of exactly the expected size, is ever handed to lattigo.
func (h *heState) open(ps *he.ParamSet, cer, label string, level int, msg []byte, what string) ([]byte, error) {
	want, err := release.Expect(ps, cer, label, level)
	if err != nil {
		return nil, refuse(KindBadRequest, "bad_envelope", "%s: %v", what, err)
	}
	p, err := envelope.Open(h.envKey, msg, want)
	if errors.Is(err, envelope.ErrCeremony) {
		return nil, refuse(KindConflict, "wrong_ceremony", "%s: made for another key ceremony than this node's %s", what, cer)
	}
	if err != nil {
		return nil, refuse(KindBadRequest, "bad_envelope", "%s: %v", what, err)
	}
	return p, nil
}

func (h *heState) sealCiphertext(ct *he.Ciphertext, cer string) ([]byte, error) {
	b, err := ct.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return h.seal(ct.ParamSet(), cer, he.LabelCiphertext, ct.Level(), b)
}

func publicKeyHash(pk *he.PublicKey) ([]byte, error) {
	b, err := pk.MarshalBinary()
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(b)
	return h[:], nil
}
