package node

// The t-of-N key ceremony, one per parameter set: begin (a fresh HPKE key
// for this ceremony), shares (the node's public-key-generation share and its
// Shamir shares, each sealed to its recipient), finish (the node derives and
// persists its keys). Each step is idempotent: a retried step gets the same
// answer, never fresh shares.
//
// The coordinator only relays. A node takes the roster from its own
// configuration, not the coordinator's word: every department of the roster
// must be in its federation.nodes (itself included), with 2 ≤ t ≤ N. Every
// message a party makes is signed with its federation key — its HPKE key
// (CeremonyKeyStatement), its public-key-generation share and each sealed
// Shamir share (CeremonyShareStatement) — and a node verifies each one
// before it seals a share to anyone or uses anything. So a coordinator can
// neither add a phantom party nor substitute a party's HPKE key to collect
// t Shamir shares (the whole key): a share is sealed only to a key its
// recipient signed, and only shares their senders signed are summed.
//
// A finished ceremony replaces the node's keys for its parameter set (jobs
// in flight under the old keys then fail on the ceremony check, loudly).
// The old key file is kept, renamed after its ceremony, never deleted by
// the node, and the replacement is audited (replaces_ceremony,
// replaces_public_key_sha256) and logged as a warning.

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/he/ceremony"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/internal/securefile"
)

const (
	// maxPendingCeremonies bounds the ceremonies in progress at a node.
	maxPendingCeremonies = 4
	// pendingCeremonyTTL is how long an unfinished ceremony is kept.
	pendingCeremonyTTL = time.Hour
)

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

func (h *heState) expireLocked(now time.Time) {
	for id, p := range h.pending {
		if now.Sub(p.created) > pendingCeremonyTTL {
			delete(h.pending, id)
		}
	}
}

// checkCeremony checks a key-ceremony request's header and returns its
// parameter set.
func checkCeremony(h nodeapi.CeremonyHeader, step nodeapi.Step) (*he.ParamSet, error) {
	if h.Step != step {
		return nil, refuse(KindBadRequest, "wrong_step", "message for step %q sent to %q", h.Step, step)
	}
	if !ceremony.ValidCeremonyID(h.Ceremony) {
		return nil, refuse(KindBadRequest, "bad_request", "ceremony id must be 1..64 of [A-Za-z0-9._-]")
	}
	ps, err := he.ParamsByName(h.Params)
	if err != nil {
		return nil, refuse(KindBadRequest, "bad_request", "%v", err)
	}
	return ps, nil
}

// sortedRoster is the roster in the order the setup uses.
func sortedRoster(nodes []string) []string {
	out := slices.Clone(nodes)
	slices.Sort(out)
	return out
}

// KeysBegin opens a ceremony at this node and answers with a fresh HPKE
// public key for it.
func (s *Service) KeysBegin(ctx context.Context, c Caller, req *nodeapi.KeysBeginRequest) (*nodeapi.KeysBeginResponse, error) {
	out, err := s.keysBegin(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathKeysBegin, err)
}

func (s *Service) keysBegin(ctx context.Context, c Caller, req *nodeapi.KeysBeginRequest) (*nodeapi.KeysBeginResponse, error) {
	ps, err := checkCeremony(req.CeremonyHeader, nodeapi.StepKeysBegin)
	if err != nil {
		return nil, err
	}
	detail := ceremonyDetail(req.CeremonyHeader, req.Nodes, req.Threshold)
	fail := func(err error) (*nodeapi.KeysBeginResponse, error) {
		return nil, s.refusedStep(ctx, c, nodeapi.StepKeysBegin, "", nil, detail, err)
	}
	if err := s.checkRoster(req.Nodes, req.Threshold); err != nil {
		return fail(err)
	}
	nodes := sortedRoster(req.Nodes)
	hs := s.he
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.expireLocked(s.clock())
	if p, ok := hs.pending[req.Ceremony]; ok {
		if p.ps != ps || p.threshold != req.Threshold || !slices.Equal(p.nodes, nodes) {
			return fail(refuse(KindConflict, "ceremony_conflict", "ceremony %s was begun with another setup", req.Ceremony))
		}
		// A retried begin gets the same key.
		return s.signedHPKE(req.CeremonyHeader, p.hpke.Public()), nil
	}
	if len(hs.pending) >= maxPendingCeremonies {
		return fail(refuse(KindBusy, "busy", "%d key ceremonies are already in progress", len(hs.pending)))
	}
	kp, err := ceremony.NewHPKEKeyPair()
	if err != nil {
		return nil, err
	}
	if err := s.record(ctx, c, string(nodeapi.StepKeysBegin), "", nil, detail); err != nil {
		return nil, err
	}
	hs.pending[req.Ceremony] = &pendingCeremony{ps: ps, nodes: nodes, threshold: req.Threshold, hpke: kp, created: s.clock()}
	return s.signedHPKE(req.CeremonyHeader, kp.Public()), nil
}

// checkRoster checks a ceremony's roster against the node's own
// federation: every department in federation.nodes, this node among them,
// no one twice, and 2 ≤ t ≤ N (t = 1 would hand every node the whole key).
func (s *Service) checkRoster(nodes []string, threshold int) error {
	if len(nodes) < 2 || len(nodes) > ceremony.MaxNodes {
		return refuse(KindBadRequest, "bad_request", "a roster of %d nodes is not allowed (2..%d)", len(nodes), ceremony.MaxNodes)
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		if seen[n] {
			return refuse(KindBadRequest, "bad_request", "%q is in the roster twice", n)
		}
		seen[n] = true
		if _, ok := s.keys.Nodes[n]; !ok {
			return refuse(KindForbidden, "unknown_party", "%q is not a node of this node's federation (its federation.nodes): a ceremony takes part only with the departments this node's own configuration names", n)
		}
	}
	if !seen[s.cfg.Department] {
		return refuse(KindBadRequest, "not_in_roster", "node %s is not in the ceremony's roster", s.cfg.Department)
	}
	if threshold < 2 || threshold > len(nodes) {
		return refuse(KindBadRequest, "bad_request", "threshold %d of %d nodes is not allowed (2 ≤ t ≤ N)", threshold, len(nodes))
	}
	return nil
}

// signedHPKE is the node's HPKE key for a ceremony, signed.
func (s *Service) signedHPKE(h nodeapi.CeremonyHeader, pub []byte) *nodeapi.KeysBeginResponse {
	st := nodeapi.CeremonyKeyStatement{Ceremony: h.Ceremony, Params: h.Params, Node: s.cfg.Department, Key: pub}
	return &nodeapi.KeysBeginResponse{HPKEPublicKey: pub, Signature: s.sign(st.Message())}
}

// verifyShare checks that node `from` made payload for `to` (empty: its
// public-key-generation share) in this ceremony.
func (s *Service) verifyShare(h nodeapi.CeremonyHeader, from, to string, payload, sig []byte) error {
	st := nodeapi.CeremonyShareStatement{Ceremony: h.Ceremony, Params: h.Params, From: from, To: to, Payload: nodeapi.DigestOf(payload)}
	return s.verifyNode(from, st.Message(), sig)
}

// signShare signs a payload the node made for `to` (empty: everyone).
func (s *Service) signShare(h nodeapi.CeremonyHeader, to string, payload []byte) []byte {
	st := nodeapi.CeremonyShareStatement{Ceremony: h.Ceremony, Params: h.Params, From: s.cfg.Department, To: to, Payload: nodeapi.DigestOf(payload)}
	return s.sign(st.Message())
}

// KeysShares fixes the ceremony's setup (roster, threshold, every node's
// HPKE key), draws the node's secret-key share and answers with its
// public-key-generation share and its sealed Shamir shares.
func (s *Service) KeysShares(ctx context.Context, c Caller, req *nodeapi.KeysSharesRequest) (*nodeapi.KeysSharesResponse, error) {
	out, err := s.keysShares(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathKeysShares, err)
}

func (s *Service) keysShares(ctx context.Context, c Caller, req *nodeapi.KeysSharesRequest) (*nodeapi.KeysSharesResponse, error) {
	ps, err := checkCeremony(req.CeremonyHeader, nodeapi.StepKeysShares)
	if err != nil {
		return nil, err
	}
	detail := ceremonyDetail(req.CeremonyHeader, req.Nodes, req.Threshold)
	fail := func(err error) (*nodeapi.KeysSharesResponse, error) {
		return nil, s.refusedStep(ctx, c, nodeapi.StepKeysShares, "", nil, detail, err)
	}
	hs := s.he
	hs.mu.Lock()
	defer hs.mu.Unlock()
	p, ok := hs.pending[req.Ceremony]
	if !ok {
		return fail(refuse(KindNotFound, "unknown_ceremony", "ceremony %s was not begun at this node (or expired)", req.Ceremony))
	}
	nodes := sortedRoster(req.Nodes)
	if p.ps != ps || p.threshold != req.Threshold || !slices.Equal(p.nodes, nodes) {
		return fail(refuse(KindConflict, "ceremony_conflict", "ceremony %s was begun with another setup", req.Ceremony))
	}
	// Every party's HPKE key, signed by that party: a share is sealed only
	// to a key its recipient made for this ceremony.
	if len(req.HPKEPublicKeys) != len(nodes) {
		return fail(refuse(KindBadRequest, "bad_setup", "%d HPKE keys for a roster of %d", len(req.HPKEPublicKeys), len(nodes)))
	}
	keys := make(map[ceremony.NodeID][]byte, len(req.HPKEPublicKeys))
	for _, n := range nodes {
		k, ok := req.HPKEPublicKeys[n]
		if !ok {
			return fail(refuse(KindBadRequest, "bad_setup", "no HPKE key for %s", n))
		}
		st := nodeapi.CeremonyKeyStatement{Ceremony: req.Ceremony, Params: req.Params, Node: n, Key: k}
		if err := s.verifyNode(n, st.Message(), req.HPKESignatures[n]); err != nil {
			return fail(err)
		}
		keys[ceremony.NodeID(n)] = k
	}
	ids := make([]ceremony.NodeID, len(nodes))
	for i, n := range nodes {
		ids[i] = ceremony.NodeID(n)
	}
	setup, err := ceremony.NewSetup(req.Ceremony, ps, ids, req.Threshold, keys)
	if err != nil {
		return fail(refuse(KindBadRequest, "bad_setup", "%v", err))
	}
	if p.party != nil {
		if p.digest != setup.Digest() {
			return fail(refuse(KindConflict, "ceremony_conflict", "ceremony %s already has another setup at this node", req.Ceremony))
		}
		// A retried step gets the same shares (never fresh ones).
		if err := s.record(ctx, c, string(nodeapi.StepKeysShares), "", nil, withReason(detail, "retry")); err != nil {
			return nil, err
		}
		return p.shares, nil
	}
	party, err := ceremony.NewParty(setup, ceremony.NodeID(s.cfg.Department), p.hpke)
	if err != nil { // e.g. the roster lists another HPKE key for this node
		return fail(refuse(KindBadRequest, "bad_setup", "%v", err))
	}
	ckg, err := party.PublicKeyShare()
	if err != nil {
		return nil, err
	}
	sealed, err := party.SealedShares()
	if err != nil {
		return nil, err
	}
	out := &nodeapi.KeysSharesResponse{SealedShares: map[string][]byte{}, SealedShareSignatures: map[string][]byte{}}
	if out.PublicKeyShare, err = hs.seal(ps, req.Ceremony, he.LabelCKGShare, ps.MaxLevel(), ckg); err != nil {
		return nil, err
	}
	out.PublicKeyShareSignature = s.signShare(req.CeremonyHeader, "", ckg)
	for to, b := range sealed {
		if out.SealedShares[string(to)], err = hs.seal(ps, req.Ceremony, ceremony.LabelSealedShamirShare, ps.MaxLevel(), b); err != nil {
			return nil, err
		}
		out.SealedShareSignatures[string(to)] = s.signShare(req.CeremonyHeader, string(to), b)
	}
	d := setup.Digest()
	detail["setup_digest"] = hex.EncodeToString(d[:])
	if err := s.record(ctx, c, string(nodeapi.StepKeysShares), "", nil, detail); err != nil {
		return nil, err
	}
	p.party, p.digest, p.shares = party, d, out
	return out, nil
}

// KeysFinish receives every node's public-key share and the Shamir shares
// sealed to this node, derives the node's keys, and persists them; it
// answers with the SHA-256 of the collective public key.
func (s *Service) KeysFinish(ctx context.Context, c Caller, req *nodeapi.KeysFinishRequest) (*nodeapi.KeysFinishResponse, error) {
	out, err := s.keysFinish(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathKeysFinish, err)
}

func (s *Service) keysFinish(ctx context.Context, c Caller, req *nodeapi.KeysFinishRequest) (*nodeapi.KeysFinishResponse, error) {
	ps, err := checkCeremony(req.CeremonyHeader, nodeapi.StepKeysFinish)
	if err != nil {
		return nil, err
	}
	detail := ceremonyDetail(req.CeremonyHeader, nil, 0)
	fail := func(err error) (*nodeapi.KeysFinishResponse, error) {
		return nil, s.refusedStep(ctx, c, nodeapi.StepKeysFinish, "", nil, detail, err)
	}
	hs := s.he
	hs.mu.Lock()
	defer hs.mu.Unlock()
	p, ok := hs.pending[req.Ceremony]
	if !ok {
		// A retried finish after success: the same answer.
		if k, ok := hs.keys[ps.Name()]; ok && k.Setup().CeremonyID() == req.Ceremony {
			if err := s.record(ctx, c, string(nodeapi.StepKeysFinish), "", nil, withReason(detail, "retry")); err != nil {
				return nil, err
			}
			h, err := publicKeyHash(k.PublicKey())
			if err != nil {
				return nil, err
			}
			return &nodeapi.KeysFinishResponse{PublicKeySHA256: h}, nil
		}
		return fail(refuse(KindNotFound, "unknown_ceremony", "ceremony %s is not in progress at this node", req.Ceremony))
	}
	if p.ps != ps || p.party == nil {
		return fail(refuse(KindConflict, "ceremony_conflict", "ceremony %s has not reached this step for parameter set %s", req.Ceremony, req.Params))
	}
	// From here any failure abandons the ceremony: the party has consumed
	// shares, and a half-received set must never be finished.
	abandon := func(err error) (*nodeapi.KeysFinishResponse, error) {
		delete(hs.pending, req.Ceremony)
		return fail(err)
	}
	ckg := make(map[ceremony.NodeID][]byte, len(req.PublicKeyShares))
	for from, msg := range req.PublicKeyShares {
		if !slices.Contains(p.nodes, from) {
			return abandon(refuse(KindBadRequest, "bad_request", "public-key share from %q, who is not in the roster", from))
		}
		b, err := hs.open(ps, req.Ceremony, he.LabelCKGShare, ps.MaxLevel(), msg, "public-key share of "+from)
		if err != nil {
			return abandon(err)
		}
		if err := s.verifyShare(req.CeremonyHeader, from, "", b, req.PublicKeyShareSignatures[from]); err != nil {
			return abandon(err)
		}
		ckg[ceremony.NodeID(from)] = b
	}
	for from, msg := range req.SealedShares {
		if !slices.Contains(p.nodes, from) {
			return abandon(refuse(KindBadRequest, "bad_request", "sealed share from %q, who is not in the roster", from))
		}
		b, err := hs.open(ps, req.Ceremony, ceremony.LabelSealedShamirShare, ps.MaxLevel(), msg, "sealed share of "+from)
		if err != nil {
			return abandon(err)
		}
		if err := s.verifyShare(req.CeremonyHeader, from, s.cfg.Department, b, req.SealedShareSignatures[from]); err != nil {
			return abandon(err)
		}
		if err := p.party.ReceiveSealedShare(ceremony.NodeID(from), b); err != nil {
			return abandon(refuse(KindBadRequest, "bad_share", "sealed share from %s: %v", from, err))
		}
	}
	keys, err := p.party.Finish(ckg)
	if err != nil {
		return abandon(refuse(KindBadRequest, "bad_share", "%v", err))
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
	old := hs.keys[ps.Name()]
	var oldHash []byte
	if old != nil {
		oh, err := publicKeyHash(old.PublicKey())
		if err != nil {
			return abandon(err)
		}
		detail["replaces_ceremony"] = old.Setup().CeremonyID()
		detail["replaces_public_key_sha256"] = hex.EncodeToString(oh)
		oldHash = oh
	}
	// Audited before the keys take effect (fail closed).
	if err := s.record(ctx, c, string(nodeapi.StepKeysFinish), "", nil, detail); err != nil {
		delete(hs.pending, req.Ceremony)
		return nil, err
	}
	delete(hs.pending, req.Ceremony)
	if old != nil {
		// Keep the replaced keys (never deleted by the node): an operator
		// can still restore the old epoch if jobs needed it.
		archive := hs.archiveFile(ps.Name(), old.Setup().CeremonyID(), oldHash)
		if err := archiveKeys(hs.keyFile(ps.Name()), archive); err != nil {
			s.log.Error("archiving replaced key shares failed; keeping them", "params", ps.Name(), "ceremony", req.Ceremony, "err", err)
			return fail(fmt.Errorf("archiving the replaced key shares: %w", err))
		}
		s.log.Warn("key ceremony replaces this node's keys: jobs still using the old keys will fail; the old key shares are kept",
			"params", ps.Name(), "old_ceremony", old.Setup().CeremonyID(), "new_ceremony", req.Ceremony, "archive", archive)
	}
	if err := securefile.Write(hs.keyFile(ps.Name()), b); err != nil {
		s.log.Error("persisting key shares failed", "params", ps.Name(), "ceremony", req.Ceremony, "err", err)
		return fail(fmt.Errorf("persisting key shares: %w", err))
	}
	hs.keys[ps.Name()] = keys
	s.log.Info("key ceremony finished", "params", ps.Name(), "ceremony", req.Ceremony, "threshold", keys.Setup().Threshold())
	return &nodeapi.KeysFinishResponse{PublicKeySHA256: pkHash}, nil
}

// KeysStatus lists the key sets the node holds. It is audited like every
// request: the coordinator probes it to pick the active set of each
// release, so a node that cannot audit is not picked.
func (s *Service) KeysStatus(ctx context.Context, c Caller) (*nodeapi.KeysStatusResponse, error) {
	out, err := s.keysStatus(ctx, c)
	return out, s.settle(ctx, c, nodeapi.PathKeysStatus, err)
}

func (s *Service) keysStatus(ctx context.Context, c Caller) (*nodeapi.KeysStatusResponse, error) {
	if err := s.record(ctx, c, "keys.status", "", nil, nil); err != nil {
		return nil, err
	}
	out := &nodeapi.KeysStatusResponse{Department: s.cfg.Department, Sets: []nodeapi.KeySetStatus{}}
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
