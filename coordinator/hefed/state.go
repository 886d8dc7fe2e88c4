package hefed

// The federation's homomorphic state — the key ceremony's public part and
// the coordinator's release keys — lives in the shared store (jobs.Blobs),
// so that every coordinator on one Redis serves the same federation. The
// release keys are sealed there (AES-256-GCM under the coordinator's state
// key, from its configuration): whoever reads the store without the key
// learns only public keys.

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/he/ceremony"
	"github.com/unseen-data/unseen/compute/he/release"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/jobs"
)

// StateBlob is the key of the state in the shared store.
const StateBlob = "hefed/state"

// StateKeySize is the size of the key that seals the release keys.
const StateKeySize = 32

// Errors of the state.
var (
	// ErrStateKey: the state exists (or a ceremony is asked for) and no
	// state key is configured.
	ErrStateKey = errors.New("hefed: no state key is configured: the release keys are sealed in the shared store under the coordinator's state key (he_state_key, or UNSEEN_HE_STATE_KEY)")
	// ErrWrongStateKey: the configured key does not open the release keys.
	ErrWrongStateKey = errors.New("hefed: the state key does not open the release keys in the shared store (is it the key the other coordinators use?)")
	// ErrConcurrentCeremony: another coordinator saved a ceremony first.
	ErrConcurrentCeremony = errors.New("hefed: another coordinator saved a key ceremony meanwhile; its keys stand — run `unseen keys status`, and run a ceremony from one coordinator at a time")
)

// Options open a Coordinator.
type Options struct {
	// Blobs is the shared store the state lives in (required).
	Blobs jobs.Blobs
	// Key seals the release keys (StateKeySize bytes). Required if the
	// state exists, or to run a ceremony.
	Key []byte
	// Legacy is a state file of an earlier version (he.json, release keys
	// in the clear): if the store holds no state, Open moves it there,
	// sealed, and removes the file.
	Legacy string
	// Nodes are the node clients, by department.
	Nodes map[string]*nodeapi.Client
	Log   *slog.Logger
}

// StateExists reports whether the shared store (or a legacy file) holds a
// ceremony's state: a coordinator must then have the state key to start.
func StateExists(ctx context.Context, blobs jobs.Blobs, legacy string) (bool, error) {
	_, _, err := blobs.Blob(ctx, StateBlob, 0)
	switch {
	case err == nil:
		return true, nil
	case !errors.Is(err, jobs.ErrNoBlob):
		return false, fmt.Errorf("hefed: reading the state: %w", err)
	}
	if legacy != "" {
		if _, err := os.Stat(legacy); err == nil {
			return true, nil
		}
	}
	return false, nil
}

// Open loads the coordinator's homomorphic state from the shared store,
// first migrating a legacy state file into it if the store holds none. It
// refuses to start when state exists and no (or the wrong) key is given.
func Open(ctx context.Context, o Options) (*Coordinator, error) {
	if o.Blobs == nil {
		return nil, errors.New("hefed: a store for the state is required")
	}
	if o.Key != nil && len(o.Key) != StateKeySize {
		return nil, fmt.Errorf("hefed: the state key must be %d bytes, not %d", StateKeySize, len(o.Key))
	}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	c := &Coordinator{blobs: o.Blobs, key: o.Key, nodes: o.Nodes, log: log.With("component", "hefed")}
	if err := c.migrate(ctx, o.Legacy); err != nil {
		return nil, err
	}
	if err := c.refresh(ctx); err != nil {
		return nil, err
	}
	if ep, _ := c.epoch(); ep != nil {
		for _, n := range ep.nodes {
			if _, ok := o.Nodes[n]; !ok {
				c.log.Warn("a node of the key ceremony is not configured; it cannot take part in releases", "node", n)
			}
		}
	}
	return c, nil
}

// current is the state as the shared store has it now.
func (c *Coordinator) current(ctx context.Context) (*epoch, error) {
	if err := c.refresh(ctx); err != nil {
		return nil, err
	}
	return c.epoch()
}

// refresh reloads the state if another coordinator changed it (one cheap
// version read when it has not).
func (c *Coordinator) refresh(ctx context.Context) error {
	c.mu.RLock()
	known := c.ver
	c.mu.RUnlock()
	b, ver, err := c.blobs.Blob(ctx, StateBlob, known)
	switch {
	case errors.Is(err, jobs.ErrNoBlob):
		return nil
	case err != nil:
		return fmt.Errorf("hefed: reading the state from the store: %w", err)
	case b == nil && ver == known:
		return nil
	}
	if c.key == nil {
		return ErrStateKey
	}
	ep, err := decodeState(b, c.key)
	if err != nil {
		return fmt.Errorf("hefed: the state in the store: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ver > c.ver {
		if c.cur != nil && c.cur.ceremony != ep.ceremony {
			c.log.Info("key ceremony changed by another coordinator", "epoch", ep.n, "ceremony", ep.ceremony)
		}
		c.cur, c.ver = ep, ver
	}
	return nil
}

// save stores a new ceremony's state over the version this coordinator
// last saw: if another coordinator saved one meanwhile, its state stands.
func (c *Coordinator) save(ctx context.Context, ep *epoch) error {
	b, err := encodeState(ep, c.key)
	if err != nil {
		return err
	}
	c.mu.RLock()
	known := c.ver
	c.mu.RUnlock()
	ver, err := c.blobs.PutBlob(ctx, StateBlob, b, known)
	if errors.Is(err, jobs.ErrBlobVersion) {
		_ = c.refresh(ctx)
		return ErrConcurrentCeremony
	}
	if err != nil {
		return fmt.Errorf("hefed: saving the state: %w", err)
	}
	c.mu.Lock()
	c.cur, c.ver = ep, ver
	c.mu.Unlock()
	return nil
}

// migrate moves a legacy state file (version 1, release keys in the
// clear) into the store, sealed, if the store holds no state yet, and then
// removes the file. With state in the store already, the file is left
// alone (and said so).
func (c *Coordinator) migrate(ctx context.Context, legacy string) error {
	if legacy == "" {
		return nil
	}
	b, err := os.ReadFile(legacy)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("hefed: legacy state %s: %w", legacy, err)
	}
	if _, _, err := c.blobs.Blob(ctx, StateBlob, 0); err == nil {
		c.log.Warn("a legacy state file exists but the shared store already holds the state; the file is ignored (it holds release keys in the clear: delete it)", "file", legacy)
		return nil
	} else if !errors.Is(err, jobs.ErrNoBlob) {
		return fmt.Errorf("hefed: reading the state: %w", err)
	}
	if c.key == nil {
		return ErrStateKey
	}
	ep, err := decodeState(b, nil)
	if err != nil {
		return fmt.Errorf("hefed: legacy state %s: %w", legacy, err)
	}
	if err := c.save(ctx, ep); err != nil {
		return err
	}
	// Only what was saved counts: read it back and open it.
	if err := c.refresh(ctx); err != nil {
		return err
	}
	if err := os.Remove(legacy); err != nil {
		c.log.Warn("migrated the legacy state into the store, but could not remove the file (it holds release keys in the clear: delete it)", "file", legacy, "err", err)
		return nil
	}
	c.log.Info("migrated the legacy state file into the shared store (release keys sealed) and removed it", "file", legacy, "epoch", ep.n, "ceremony", ep.ceremony)
	return nil
}

// ---- encoding ---------------------------------------------------------------

// stateFile is the state's JSON: version 1 is the legacy file (release
// keys in the clear), version 2 the store's (release keys sealed).
type stateFile struct {
	Version   int                `json:"version"`
	Epoch     int                `json:"epoch"`
	Ceremony  string             `json:"ceremony"`
	Threshold int                `json:"threshold"`
	Nodes     []string           `json:"nodes"`
	Created   time.Time          `json:"created"`
	Sets      map[string]setFile `json:"sets"`
}

type setFile struct {
	CeremonyID string            `json:"ceremony_id"`
	HPKE       map[string][]byte `json:"hpke_public_keys"`
	PublicKey  []byte            `json:"public_key"`
	ReleaseKey []byte            `json:"release_key,omitempty"`        // v1: secret key ‖ public key
	Sealed     []byte            `json:"sealed_release_key,omitempty"` // v2: nonce ‖ AES-256-GCM(secret key ‖ public key)
}

// sealAAD binds a sealed release key to its ceremony and parameter set,
// so one cannot be swapped for another's.
func sealAAD(ceremonyID, params string) []byte {
	return []byte("unseen/hefed/release-key/v1\x00" + ceremonyID + "\x00" + params)
}

func aead(key []byte) (cipher.AEAD, error) {
	if len(key) != StateKeySize {
		return nil, fmt.Errorf("hefed: the state key must be %d bytes", StateKeySize)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func sealKey(key, plain, aad []byte) ([]byte, error) {
	a, err := aead(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, a.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return a.Seal(nonce, nonce, plain, aad), nil
}

func openKey(key, sealed, aad []byte) ([]byte, error) {
	a, err := aead(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < a.NonceSize()+a.Overhead() {
		return nil, ErrWrongStateKey
	}
	p, err := a.Open(nil, sealed[:a.NonceSize()], sealed[a.NonceSize():], aad)
	if err != nil {
		return nil, ErrWrongStateKey
	}
	return p, nil
}

// encodeState is the store's form (version 2): release keys sealed under key.
func encodeState(ep *epoch, key []byte) ([]byte, error) {
	sf := stateFile{Version: 2, Epoch: ep.n, Ceremony: ep.ceremony, Threshold: ep.threshold, Nodes: ep.nodes, Created: ep.created, Sets: map[string]setFile{}}
	for name, ks := range ep.sets {
		f := setFile{CeremonyID: ks.setup.CeremonyID(), HPKE: map[string][]byte{}}
		for _, id := range ks.setup.Nodes() {
			f.HPKE[string(id)], _ = ks.setup.HPKEPublicKey(id)
		}
		var err error
		if f.PublicKey, err = ks.pk.MarshalBinary(); err != nil {
			return nil, err
		}
		rk, err := ks.rk.MarshalBinary()
		if err != nil {
			return nil, err
		}
		if f.Sealed, err = sealKey(key, rk, sealAAD(f.CeremonyID, name)); err != nil {
			return nil, err
		}
		sf.Sets[name] = f
	}
	return json.Marshal(sf)
}

// decodeState reads either version: 1 (legacy, key unused) or 2 (sealed
// under key).
func decodeState(b, key []byte) (*epoch, error) {
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return nil, err
	}
	if sf.Version != 1 && sf.Version != 2 {
		return nil, fmt.Errorf("unknown state version %d", sf.Version)
	}
	ep := &epoch{n: sf.Epoch, ceremony: sf.Ceremony, threshold: sf.Threshold, nodes: sf.Nodes, created: sf.Created, sets: map[string]*keySet{}}
	for _, name := range paramSets {
		f, ok := sf.Sets[name]
		if !ok {
			return nil, fmt.Errorf("no keys for parameter set %s", name)
		}
		ps, _ := he.ParamsByName(name)
		hp := map[ceremony.NodeID][]byte{}
		for id, k := range f.HPKE {
			hp[ceremony.NodeID(id)] = k
		}
		setup, err := ceremony.NewSetup(f.CeremonyID, ps, nodeIDs(sf.Nodes), sf.Threshold, hp)
		if err != nil {
			return nil, err
		}
		pk, err := ps.UnmarshalPublicKey(f.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("%s public key: %w", name, err)
		}
		rkb := f.ReleaseKey
		if sf.Version == 2 {
			if len(f.ReleaseKey) != 0 {
				return nil, fmt.Errorf("%s: a release key in the clear in a sealed state", name)
			}
			if rkb, err = openKey(key, f.Sealed, sealAAD(f.CeremonyID, name)); err != nil {
				return nil, err
			}
		}
		rk, err := release.UnmarshalReleaseKey(ps, rkb)
		if err != nil {
			return nil, fmt.Errorf("%s release key: %w", name, err)
		}
		ep.sets[name] = &keySet{ps: ps, setup: setup, pk: pk, pkHash: hashOf(f.PublicKey), rk: rk}
	}
	return ep, nil
}
