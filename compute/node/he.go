package node

// The node's homomorphic endpoints: the t-of-N key ceremony, key status, and
// (he_aggregate.go) the aggregation and release steps.
//
// Who learns what at these endpoints:
//   - The coordinator relays the ceremony's messages: the nodes' HPKE public
//     keys, their public-key-generation shares (public), and Shamir shares
//     HPKE-sealed node-to-node, which it cannot open. A node's secret-key
//     share and threshold share never leave it; they are kept in the keys
//     directory (files 0600) and reloaded at start.
//   - he/groups tells the coordinator which labels of the group-by column
//     occur in this node's filtered rows (not how often): the price of a
//     common slot layout for aggregate.
//   - he/aggregate and he/zeromask return ciphertexts under the collective
//     key only; he/values additionally returns, per slot, the position in
//     this node's PSI list whose rows the slot holds, so the coordinator
//     learns each PSI position's group (and how many groups a key has rows
//     in), but no value or count.
//   - he/release returns a decryption share flooded with noise; the node
//     records the ciphertext in its ledger first and never helps decrypt the
//     same ciphertext twice.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

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

const (
	// maxPendingCeremonies bounds the ceremonies in progress at a node.
	maxPendingCeremonies = 4
	// pendingCeremonyTTL is how long an unfinished ceremony is kept.
	pendingCeremonyTTL = time.Hour
)

// heState is the node's homomorphic state.
type heState struct {
	dir    string
	dept   string
	envKey []byte
	log    *slog.Logger

	mu      sync.Mutex
	keys    map[string]*ceremony.NodeKeys // by parameter-set name
	pending map[string]*pendingCeremony   // by ceremony id
	ledger  *ledger.File                  // opened at the first release
	layouts map[*session]*heLayout        // he/values layouts, so pages cost O(page)
}

// maxLayouts bounds the cached he/values layouts (a new PSI session, e.g. a
// new attempt, gets its own entry; old ones are evicted).
const maxLayouts = 8

type pendingCeremony struct {
	ps        *he.ParamSet
	nodes     []string
	threshold int
	hpke      *ceremony.HPKEKeyPair
	party     *ceremony.Party
	digest    [32]byte
	shares    *nodeapi.KeysSharesResponse // kept so a retried step gets the same answer
	created   time.Time
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

// keysFor returns the node's keys for a parameter set.
func (h *heState) keysFor(params string) (*ceremony.NodeKeys, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k, ok := h.keys[params]
	if !ok {
		return nil, refuse(http.StatusConflict, "no_keys", "node %s holds no key shares for parameter set %q: run the key ceremony", h.dept, params)
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

// ---- envelopes -----------------------------------------------------------

func (h *heState) seal(ps *he.ParamSet, cer, label string, level int, payload []byte) ([]byte, error) {
	return envelope.Seal(h.envKey, envelope.Header{ParamsHash: ps.Hash(), CeremonyID: cer, Label: label, Level: level}, payload)
}

// open authenticates and size-checks an envelope from the coordinator; only
// its payload, of exactly the expected size, is ever handed to lattigo.
func (h *heState) open(ps *he.ParamSet, cer, label string, level int, msg []byte, what string) ([]byte, error) {
	want, err := release.Expect(ps, cer, label, level)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "bad_envelope", "%s: %v", what, err)
	}
	p, err := envelope.Open(h.envKey, msg, want)
	if errors.Is(err, envelope.ErrCeremony) {
		return nil, refuse(http.StatusConflict, "wrong_ceremony", "%s: made for another key ceremony than this node's %s", what, cer)
	}
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "bad_envelope", "%s: %v", what, err)
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

// ---- HTTP plumbing -------------------------------------------------------

// heAuth guards the HE routes: as auth, with room for their larger bodies
// (a Squares public key is over a megabyte).
func (s *Server) heAuth(h func(r *http.Request) (any, error)) http.HandlerFunc {
	return s.guard(nodeapi.MaxHEBodyBytes, h)
}

// heNoted marks an error whose refusal the handler has already audited.
type heNoted struct{ error }

func (e heNoted) Unwrap() error { return e.error }

// decodeStrict reads one JSON object: unknown fields, trailing data and
// oversized bodies are refused.
func decodeStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = terr
			if err == nil {
				return refuse(http.StatusBadRequest, "bad_request", "trailing data after the request")
			}
		}
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return refuse(http.StatusRequestEntityTooLarge, "too_large", "request body larger than %d bytes", mbe.Limit)
		}
		return refuse(http.StatusBadRequest, "bad_request", "malformed request: %v", err)
	}
	return nil
}

// decodeCeremony decodes a key-ceremony request and checks its header.
func decodeCeremony(r *http.Request, v any, step nodeapi.Step, h *nodeapi.CeremonyHeader) (*he.ParamSet, error) {
	if err := decodeStrict(r, v); err != nil {
		return nil, err
	}
	if h.Step != step {
		return nil, refuse(http.StatusBadRequest, "wrong_step", "message for step %q sent to %q", h.Step, step)
	}
	if !ceremony.ValidCeremonyID(h.Ceremony) {
		return nil, refuse(http.StatusBadRequest, "bad_request", "ceremony id must be 1..64 of [A-Za-z0-9._-]")
	}
	ps, err := he.ParamsByName(h.Params)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "bad_request", "%v", err)
	}
	return ps, nil
}

// refused records a refusal of step (fail closed: if the refusal cannot be
// audited, the audit error is returned instead) and returns err.
func (s *Server) refused(ctx context.Context, step nodeapi.Step, job string, ds []string, detail map[string]string, err error) error {
	if _, aerr := s.record(ctx, string(step)+".refused", job, ds, withReason(detail, err.Error())); aerr != nil {
		return aerr
	}
	return heNoted{err}
}

// ---- key ceremony --------------------------------------------------------

func ceremonyDetail(h nodeapi.CeremonyHeader, nodes []string, threshold int) map[string]string {
	d := map[string]string{"ceremony": h.Ceremony, "params": h.Params}
	if nodes != nil {
		d["nodes"] = strings.Join(nodes, ",")
		d["threshold"] = fmt.Sprint(threshold)
	}
	return d
}

func (h *heState) expireLocked(now time.Time) {
	for id, p := range h.pending {
		if now.Sub(p.created) > pendingCeremonyTTL {
			delete(h.pending, id)
		}
	}
}

func (s *Server) keysBegin(r *http.Request) (any, error) {
	var req nodeapi.KeysBeginRequest
	ps, err := decodeCeremony(r, &req, nodeapi.StepKeysBegin, &req.CeremonyHeader)
	if err != nil {
		return nil, err
	}
	detail := ceremonyDetail(req.CeremonyHeader, req.Nodes, req.Threshold)
	fail := func(err error) (any, error) {
		return nil, s.refused(r.Context(), nodeapi.StepKeysBegin, "", nil, detail, err)
	}
	if !slices.Contains(req.Nodes, s.cfg.Department) {
		return fail(refuse(http.StatusBadRequest, "not_in_roster", "node %s is not in the ceremony's roster", s.cfg.Department))
	}
	if len(req.Nodes) > ceremony.MaxNodes || req.Threshold < min(2, len(req.Nodes)) || req.Threshold > len(req.Nodes) {
		return fail(refuse(http.StatusBadRequest, "bad_request", "threshold %d of %d nodes is not allowed", req.Threshold, len(req.Nodes)))
	}
	nodes := slices.Clone(req.Nodes)
	slices.Sort(nodes)
	hs := s.he
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.expireLocked(s.clock())
	if p, ok := hs.pending[req.Ceremony]; ok {
		if p.ps != ps || p.threshold != req.Threshold || !slices.Equal(p.nodes, nodes) {
			return fail(refuse(http.StatusConflict, "ceremony_conflict", "ceremony %s was begun with another setup", req.Ceremony))
		}
		// A retried begin gets the same key.
		return nodeapi.KeysBeginResponse{HPKEPublicKey: p.hpke.Public()}, nil
	}
	if len(hs.pending) >= maxPendingCeremonies {
		return fail(refuse(http.StatusTooManyRequests, "busy", "%d key ceremonies are already in progress", len(hs.pending)))
	}
	kp, err := ceremony.NewHPKEKeyPair()
	if err != nil {
		return nil, err
	}
	if _, err := s.record(r.Context(), string(nodeapi.StepKeysBegin), "", nil, detail); err != nil {
		return nil, err
	}
	hs.pending[req.Ceremony] = &pendingCeremony{ps: ps, nodes: nodes, threshold: req.Threshold, hpke: kp, created: s.clock()}
	return nodeapi.KeysBeginResponse{HPKEPublicKey: kp.Public()}, nil
}

func (s *Server) keysShares(r *http.Request) (any, error) {
	var req nodeapi.KeysSharesRequest
	ps, err := decodeCeremony(r, &req, nodeapi.StepKeysShares, &req.CeremonyHeader)
	if err != nil {
		return nil, err
	}
	detail := ceremonyDetail(req.CeremonyHeader, req.Nodes, req.Threshold)
	fail := func(err error) (any, error) {
		return nil, s.refused(r.Context(), nodeapi.StepKeysShares, "", nil, detail, err)
	}
	hs := s.he
	hs.mu.Lock()
	defer hs.mu.Unlock()
	p, ok := hs.pending[req.Ceremony]
	if !ok {
		return fail(refuse(http.StatusNotFound, "unknown_ceremony", "ceremony %s was not begun at this node (or expired)", req.Ceremony))
	}
	nodes := slices.Clone(req.Nodes)
	slices.Sort(nodes)
	if p.ps != ps || p.threshold != req.Threshold || !slices.Equal(p.nodes, nodes) {
		return fail(refuse(http.StatusConflict, "ceremony_conflict", "ceremony %s was begun with another setup", req.Ceremony))
	}
	keys := make(map[ceremony.NodeID][]byte, len(req.HPKEPublicKeys))
	for id, k := range req.HPKEPublicKeys {
		keys[ceremony.NodeID(id)] = k
	}
	ids := make([]ceremony.NodeID, len(nodes))
	for i, n := range nodes {
		ids[i] = ceremony.NodeID(n)
	}
	setup, err := ceremony.NewSetup(req.Ceremony, ps, ids, req.Threshold, keys)
	if err != nil {
		return fail(refuse(http.StatusBadRequest, "bad_setup", "%v", err))
	}
	if p.party != nil {
		if p.digest != setup.Digest() {
			return fail(refuse(http.StatusConflict, "ceremony_conflict", "ceremony %s already has another setup at this node", req.Ceremony))
		}
		// A retried step gets the same shares (never fresh ones).
		if _, err := s.record(r.Context(), string(nodeapi.StepKeysShares), "", nil, withReason(detail, "retry")); err != nil {
			return nil, err
		}
		return p.shares, nil
	}
	party, err := ceremony.NewParty(setup, ceremony.NodeID(s.cfg.Department), p.hpke)
	if err != nil { // e.g. the roster lists another HPKE key for this node
		return fail(refuse(http.StatusBadRequest, "bad_setup", "%v", err))
	}
	ckg, err := party.PublicKeyShare()
	if err != nil {
		return nil, err
	}
	sealed, err := party.SealedShares()
	if err != nil {
		return nil, err
	}
	out := &nodeapi.KeysSharesResponse{SealedShares: map[string][]byte{}}
	if out.PublicKeyShare, err = hs.seal(ps, req.Ceremony, he.LabelCKGShare, ps.MaxLevel(), ckg); err != nil {
		return nil, err
	}
	for to, b := range sealed {
		if out.SealedShares[string(to)], err = hs.seal(ps, req.Ceremony, ceremony.LabelSealedShamirShare, ps.MaxLevel(), b); err != nil {
			return nil, err
		}
	}
	d := setup.Digest()
	detail["setup_digest"] = hex.EncodeToString(d[:])
	if _, err := s.record(r.Context(), string(nodeapi.StepKeysShares), "", nil, detail); err != nil {
		return nil, err
	}
	p.party, p.digest, p.shares = party, d, out
	return out, nil
}

func publicKeyHash(pk *he.PublicKey) ([]byte, error) {
	b, err := pk.MarshalBinary()
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(b)
	return h[:], nil
}

func (s *Server) keysFinish(r *http.Request) (any, error) {
	var req nodeapi.KeysFinishRequest
	ps, err := decodeCeremony(r, &req, nodeapi.StepKeysFinish, &req.CeremonyHeader)
	if err != nil {
		return nil, err
	}
	detail := ceremonyDetail(req.CeremonyHeader, nil, 0)
	fail := func(err error) (any, error) {
		return nil, s.refused(r.Context(), nodeapi.StepKeysFinish, "", nil, detail, err)
	}
	hs := s.he
	hs.mu.Lock()
	defer hs.mu.Unlock()
	p, ok := hs.pending[req.Ceremony]
	if !ok {
		// A retried finish after success: the same answer.
		if k, ok := hs.keys[ps.Name()]; ok && k.Setup().CeremonyID() == req.Ceremony {
			if _, err := s.record(r.Context(), string(nodeapi.StepKeysFinish), "", nil, withReason(detail, "retry")); err != nil {
				return nil, err
			}
			h, err := publicKeyHash(k.PublicKey())
			if err != nil {
				return nil, err
			}
			return nodeapi.KeysFinishResponse{PublicKeySHA256: h}, nil
		}
		return fail(refuse(http.StatusNotFound, "unknown_ceremony", "ceremony %s is not in progress at this node", req.Ceremony))
	}
	if p.ps != ps || p.party == nil {
		return fail(refuse(http.StatusConflict, "ceremony_conflict", "ceremony %s has not reached this step for parameter set %s", req.Ceremony, req.Params))
	}
	// From here any failure abandons the ceremony: the party has consumed
	// shares, and a half-received set must never be finished.
	abandon := func(err error) (any, error) {
		delete(hs.pending, req.Ceremony)
		return fail(err)
	}
	ckg := make(map[ceremony.NodeID][]byte, len(req.PublicKeyShares))
	for from, msg := range req.PublicKeyShares {
		if !slices.Contains(p.nodes, from) {
			return abandon(refuse(http.StatusBadRequest, "bad_request", "public-key share from %q, who is not in the roster", from))
		}
		b, err := hs.open(ps, req.Ceremony, he.LabelCKGShare, ps.MaxLevel(), msg, "public-key share of "+from)
		if err != nil {
			return abandon(err)
		}
		ckg[ceremony.NodeID(from)] = b
	}
	for from, msg := range req.SealedShares {
		if !slices.Contains(p.nodes, from) {
			return abandon(refuse(http.StatusBadRequest, "bad_request", "sealed share from %q, who is not in the roster", from))
		}
		b, err := hs.open(ps, req.Ceremony, ceremony.LabelSealedShamirShare, ps.MaxLevel(), msg, "sealed share of "+from)
		if err != nil {
			return abandon(err)
		}
		if err := p.party.ReceiveSealedShare(ceremony.NodeID(from), b); err != nil {
			return abandon(refuse(http.StatusBadRequest, "bad_share", "sealed share from %s: %v", from, err))
		}
	}
	keys, err := p.party.Finish(ckg)
	if err != nil {
		return abandon(refuse(http.StatusBadRequest, "bad_share", "%v", err))
	}
	pkHash, err := publicKeyHash(keys.PublicKey())
	if err != nil {
		return abandon(err)
	}
	b, err := keys.MarshalBinary()
	if err != nil {
		return abandon(err)
	}
	detail["public_key_sha256"] = hex.EncodeToString(pkHash)
	detail["threshold"] = fmt.Sprint(keys.Setup().Threshold())
	detail["nodes"] = strings.Join(p.nodes, ",")
	// Audited before the keys take effect (fail closed).
	if _, err := s.record(r.Context(), string(nodeapi.StepKeysFinish), "", nil, detail); err != nil {
		delete(hs.pending, req.Ceremony)
		return nil, err
	}
	delete(hs.pending, req.Ceremony)
	if err := securefile.Write(hs.keyFile(ps.Name()), b); err != nil {
		s.log.Error("persisting key shares failed", "params", ps.Name(), "ceremony", req.Ceremony, "err", err)
		return fail(fmt.Errorf("persisting key shares: %w", err))
	}
	hs.keys[ps.Name()] = keys
	s.log.Info("key ceremony finished", "params", ps.Name(), "ceremony", req.Ceremony, "threshold", keys.Setup().Threshold())
	return nodeapi.KeysFinishResponse{PublicKeySHA256: pkHash}, nil
}

func (s *Server) keysStatus(r *http.Request) (any, error) {
	// Audited like every request; the coordinator probes it to pick the
	// active set of each release, so a node that cannot audit is not picked.
	if _, err := s.record(r.Context(), "keys.status", "", nil, nil); err != nil {
		return nil, err
	}
	out := nodeapi.KeysStatusResponse{Department: s.cfg.Department, Sets: []nodeapi.KeySetStatus{}}
	hs := s.he
	hs.mu.Lock()
	defer hs.mu.Unlock()
	for _, name := range heParamSets {
		k, ok := hs.keys[name]
		if !ok {
			continue
		}
		h, err := publicKeyHash(k.PublicKey())
		if err != nil {
			return nil, err
		}
		st := nodeapi.KeySetStatus{Params: name, Ceremony: k.Setup().CeremonyID(), Threshold: k.Setup().Threshold(), PublicKeySHA256: h}
		for _, id := range k.Setup().Nodes() {
			st.Nodes = append(st.Nodes, string(id))
		}
		out.Sets = append(out.Sets, st)
	}
	return out, nil
}
