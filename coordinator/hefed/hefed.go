// Package hefed is the coordinator's side of Unseen's homomorphic
// aggregation over HTTP (design 4.2): it runs the t-of-N key ceremony with
// the departments' nodes, keeps the federation's collective public keys and
// its own release keys, and computes `aggregate` and `intersection_stats`
// jobs by adding (and masking) the nodes' ciphertexts and having exactly t
// nodes switch each result to its release key.
//
// Who learns what (honest nodes; the coordinator colluding with no node):
//
//   - Key ceremony: the coordinator relays HPKE public keys, public-key
//     shares and Shamir shares sealed node-to-node, each signed by the node
//     that made it; it cannot open the sealed shares, and it cannot add a
//     party or substitute a key: every node takes the roster from its own
//     federation configuration and checks every signature (compute/node).
//     It learns the collective public keys and keeps, per parameter set,
//     its release key pair (in the shared store, sealed under its state
//     key: state.go; every coordinator on the store serves the same
//     federation). It never holds a
//     secret-key share: its state alone decrypts nothing.
//   - aggregate: the coordinator learns which group labels occur at each
//     node (he/groups) and the released per-group totals (count, Σx, Σx²,
//     as residues with the sum of the nodes' floor hints ⌊Σx_node/2^39⌋
//     and ⌊Σx²_node/2^55⌋: compute/he, "Exact Σx and Σx²").
//     Each node signs its contribution; the releasing nodes decrypt only the
//     sum they compute themselves of every input's signed contribution, so
//     no one — the coordinator included — sees a single department's
//     contribution, and the result is the job's sum or nothing.
//   - intersection_stats: the coordinator learns, from the value node's slot
//     map, which PSI position sits in which group (and so the matched keys'
//     group sizes, which it would release anyway) — never a value or a
//     count of rows. Every input's node adds an encrypted zero-sum mask to
//     each result, so a decrypted slot is uniform noise and only its total
//     (the statistic) means anything.
//     A malicious coordinator holds the match mask, so it chooses which of
//     the value node's slots each result sums (any linear combination of
//     ciphertexts it holds), within the job's he.ISLanes·G outputs (six per
//     group: the count and the residues and hint of Σx and Σx², compute/he
//     "Exact Σx and Σx²"), each decrypted once per node: the nodes cannot
//     check the mask without learning the intersection (README, threat
//     model).
//   - Release: each output of a job (aggregate: 0 sums, 1 squares;
//     intersection_stats: g·he.ISLanes+l) is decrypted once, ever, by an
//     active set of exactly t nodes fixed before any share is asked for; every node keeps
//     a ledger keyed by (job, output) and refuses a second decryption, and
//     sizes its smudging itself. A node that fails mid-release fails the
//     job: the output is never decrypted again, and computing it again takes
//     a new job.
//
// Every homomorphic object travels in a compute/he/envelope envelope MAC'd
// under nodeapi.EnvelopeKey of the coordinator–node pair and is checked
// (authenticity, parameters, ceremony, label, level, exact size) before
// lattigo parses it.
package hefed

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/he/ceremony"
	"github.com/unseen-data/unseen/compute/he/envelope"
	"github.com/unseen-data/unseen/compute/he/release"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/jobs"
)

// paramSets are the parameter sets the ceremony runs for, in order.
var paramSets = []string{he.NameSums, he.NameSquares}

// Errors.
var (
	// ErrNoKeys: no key ceremony has been run.
	ErrNoKeys = errors.New("hefed: no key ceremony has been run (run Init, `unseen keys init`)")
	// ErrRelease: a result could not be decrypted; the job must be re-run
	// from fresh encryptions (the same ciphertext is never offered twice).
	ErrRelease = errors.New("hefed: release failed")
	// ErrJob: the job cannot be computed as specified.
	ErrJob = errors.New("hefed: invalid job")
)

// Coordinator holds the federation's homomorphic state. It is safe for
// concurrent use; jobs run concurrently, a ceremony excludes nothing but
// another ceremony (jobs that straddle it fail on the ceremony check).
type Coordinator struct {
	blobs jobs.Blobs // the shared store holding the state (state.go)
	key   []byte     // seals the release keys in it (nil: none configured)
	nodes map[string]*nodeapi.Client
	log   *slog.Logger

	// MaxRowsPerNode, if positive, is an operator's limit on the rows each
	// node adds to one aggregate. Without it each node takes its equal
	// share of he.MaxJobRows (2^30 rows in all); values are |x| ≤ 2^40
	// whatever the row count (compute/he, "Exact Σx and Σx²").
	MaxRowsPerNode int64
	// Workers bounds the goroutines of homomorphic additions (default GOMAXPROCS).
	Workers int
	// ProbeTimeout bounds the health check that picks the active set (default 5 s).
	ProbeTimeout time.Duration

	pageChunks int // he/values chunks per request (0: nodeapi.MaxValuesChunks); tests page finer

	initMu sync.Mutex // one ceremony at a time (in this process; the store's versions across processes)
	mu     sync.RWMutex
	cur    *epoch // nil before the first ceremony
	ver    int64  // the store's version of cur (0: none)
}

// epoch is one ceremony's outcome.
type epoch struct {
	n         int
	ceremony  string
	threshold int
	nodes     []string // sorted roster
	created   time.Time
	sets      map[string]*keySet
}

type keySet struct {
	ps     *he.ParamSet
	setup  *ceremony.Setup
	pk     *he.PublicKey
	pkHash []byte
	rk     *release.ReleaseKey
}

func (c *Coordinator) workers() int {
	if c.Workers > 0 {
		return c.Workers
	}
	return runtime.GOMAXPROCS(0)
}

func (c *Coordinator) probeTimeout() time.Duration {
	if c.ProbeTimeout > 0 {
		return c.ProbeTimeout
	}
	return 5 * time.Second
}

func (c *Coordinator) epoch() (*epoch, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.cur == nil {
		return nil, ErrNoKeys
	}
	return c.cur, nil
}

func hashOf(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}

func nodeIDs(names []string) []ceremony.NodeID {
	out := make([]ceremony.NodeID, len(names))
	for i, n := range names {
		out[i] = ceremony.NodeID(n)
	}
	return out
}

// ---- envelopes ------------------------------------------------------------

func seal(cl *nodeapi.Client, ps *he.ParamSet, cer, label string, level int, payload []byte) ([]byte, error) {
	return envelope.Seal(cl.EnvelopeKey(), envelope.Header{ParamsHash: ps.Hash(), CeremonyID: cer, Label: label, Level: level}, payload)
}

// open checks an envelope from node cl before anything parses its payload.
func open(cl *nodeapi.Client, ps *he.ParamSet, cer, label string, level int, msg []byte) ([]byte, error) {
	want, err := release.Expect(ps, cer, label, level)
	if err != nil {
		return nil, err
	}
	p, err := envelope.Open(cl.EnvelopeKey(), msg, want)
	if errors.Is(err, envelope.ErrCeremony) {
		return nil, fmt.Errorf("node %s: %s made under another key ceremony than %s (does it hold the current keys? see Status)", cl.Department, label, cer)
	}
	if err != nil {
		return nil, fmt.Errorf("node %s: %s: %w", cl.Department, label, err)
	}
	return p, nil
}

func openCiphertext(cl *nodeapi.Client, ks *keySet, msg []byte) (*he.Ciphertext, error) {
	ct, _, err := openCiphertextRaw(cl, ks, msg)
	return ct, err
}

// openCiphertextRaw is openCiphertext that also returns the payload, as the
// node signed it.
func openCiphertextRaw(cl *nodeapi.Client, ks *keySet, msg []byte) (*he.Ciphertext, []byte, error) {
	level := ks.ps.MaxLevel()
	p, err := open(cl, ks.ps, ks.setup.CeremonyID(), he.LabelCiphertext, level, msg)
	if err != nil {
		return nil, nil, err
	}
	ct, err := ks.ps.UnmarshalCiphertext(p, level)
	if err != nil {
		return nil, nil, fmt.Errorf("node %s: ciphertext: %w", cl.Department, err)
	}
	return ct, p, nil
}

// ---- fan-out --------------------------------------------------------------

// each runs fn for every named node concurrently and returns the first
// error (one cause, once). The others run to their end rather than being
// cancelled: what a node did (a share burnt in its ledger) must not depend
// on how fast another node failed.
func (c *Coordinator) each(ctx context.Context, names []string, fn func(ctx context.Context, name string, cl *nodeapi.Client) error) error {
	for _, n := range names {
		if _, ok := c.nodes[n]; !ok {
			return fmt.Errorf("hefed: node %s is not configured", n)
		}
	}
	var g errgroup.Group
	for _, n := range names {
		cl := c.nodes[n]
		g.Go(func() error { return fn(ctx, n, cl) })
	}
	return g.Wait()
}

// ---- key ceremony ---------------------------------------------------------

// Status describes the current key ceremony and whether each node holds
// its shares.
type Status struct {
	Epoch     int          `json:"epoch"` // 0: no ceremony yet
	Ceremony  string       `json:"ceremony,omitempty"`
	Threshold int          `json:"threshold,omitempty"`
	Created   time.Time    `json:"created,omitzero"`
	Params    []string     `json:"params,omitempty"`
	Nodes     []NodeStatus `json:"nodes"`
}

// NodeStatus is one node's part in the ceremony.
type NodeStatus struct {
	Node        string `json:"node"`
	InRoster    bool   `json:"in_roster"`
	Reachable   bool   `json:"reachable"`
	HoldsShares bool   `json:"holds_shares"` // the current ceremony's shares, for every parameter set
	Error       string `json:"error,omitempty"`
}

// Init runs a new key ceremony (a new epoch) with every configured node,
// once per parameter set, and checks that every node derived the same
// collective public key as the coordinator. The previous epoch's keys stay
// in force until it succeeds.
func (c *Coordinator) Init(ctx context.Context, threshold int) (*Status, error) {
	c.initMu.Lock()
	defer c.initMu.Unlock()
	nodes := make([]string, 0, len(c.nodes))
	for n := range c.nodes {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	if len(nodes) == 0 {
		return nil, errors.New("hefed: no nodes are configured")
	}
	// The nodes refuse anything else: t = 1 would hand every node the
	// whole key.
	if len(nodes) < 2 {
		return nil, errors.New("hefed: a key ceremony needs at least two nodes")
	}
	if threshold < 2 || threshold > len(nodes) {
		return nil, fmt.Errorf("hefed: threshold %d not in [2, %d]", threshold, len(nodes))
	}
	if c.key == nil {
		return nil, ErrStateKey
	}
	// The epoch follows the shared state, whichever coordinator made it.
	if err := c.refresh(ctx); err != nil {
		return nil, err
	}
	n := 1
	c.mu.RLock()
	if c.cur != nil {
		n = c.cur.n + 1
	}
	c.mu.RUnlock()
	rnd := make([]byte, 6)
	if _, err := rand.Read(rnd); err != nil {
		return nil, err
	}
	ep := &epoch{n: n, ceremony: fmt.Sprintf("e%d-%s", n, hex.EncodeToString(rnd)), threshold: threshold, nodes: nodes, created: time.Now().UTC(), sets: map[string]*keySet{}}
	c.log.Info("key ceremony starting", "epoch", n, "ceremony", ep.ceremony, "threshold", threshold, "nodes", nodes)
	for _, name := range paramSets {
		ps, _ := he.ParamsByName(name)
		ks, err := c.runCeremony(ctx, ep.ceremony+"."+name, ps, nodes, threshold)
		if err != nil {
			c.log.Warn("key ceremony failed", "epoch", n, "params", name, "err", err)
			return nil, fmt.Errorf("hefed: key ceremony (%s): %w", name, err)
		}
		ep.sets[name] = ks
	}
	if err := c.save(ctx, ep); err != nil {
		return nil, err
	}
	c.log.Info("key ceremony finished", "epoch", n, "ceremony", ep.ceremony, "threshold", threshold)
	return c.Status(ctx)
}

func (c *Coordinator) runCeremony(ctx context.Context, cer string, ps *he.ParamSet, nodes []string, threshold int) (*keySet, error) {
	hdr := func() nodeapi.CeremonyHeader { return nodeapi.CeremonyHeader{Ceremony: cer, Params: ps.Name()} }
	var mu sync.Mutex
	// 1. Every node makes an HPKE key pair for this ceremony and signs it.
	// The coordinator relays keys, shares and every signature; each node
	// checks them against its own federation keys.
	hpke := map[ceremony.NodeID][]byte{}
	hpkeSigs := map[string][]byte{}
	err := c.each(ctx, nodes, func(ctx context.Context, n string, cl *nodeapi.Client) error {
		resp, err := cl.KeysBegin(ctx, &nodeapi.KeysBeginRequest{CeremonyHeader: hdr(), Nodes: nodes, Threshold: threshold})
		if err != nil {
			return err
		}
		mu.Lock()
		hpke[ceremony.NodeID(n)] = resp.HPKEPublicKey
		hpkeSigs[n] = resp.Signature
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	setup, err := ceremony.NewSetup(cer, ps, nodeIDs(nodes), threshold, hpke)
	if err != nil {
		return nil, err
	}
	// 2. Every node draws its secret share and returns its public-key share
	// and its Shamir shares, each sealed to its recipient.
	ckg := map[ceremony.NodeID][]byte{}
	ckgSigs := map[string][]byte{}
	sealed := map[string]map[string][]byte{}     // recipient → sender → sealed payload
	sealedSigs := map[string]map[string][]byte{} // recipient → sender → sender's signature
	for _, n := range nodes {
		sealed[n], sealedSigs[n] = map[string][]byte{}, map[string][]byte{}
	}
	hpkeByName := map[string][]byte{}
	for id, k := range hpke {
		hpkeByName[string(id)] = k
	}
	err = c.each(ctx, nodes, func(ctx context.Context, from string, cl *nodeapi.Client) error {
		resp, err := cl.KeysShares(ctx, &nodeapi.KeysSharesRequest{CeremonyHeader: hdr(), Nodes: nodes, Threshold: threshold, HPKEPublicKeys: hpkeByName, HPKESignatures: hpkeSigs})
		if err != nil {
			return err
		}
		p, err := open(cl, ps, cer, he.LabelCKGShare, ps.MaxLevel(), resp.PublicKeyShare)
		if err != nil {
			return err
		}
		want := 0
		if setup.Thresholdized() {
			want = len(nodes) - 1
		}
		if len(resp.SealedShares) != want {
			return fmt.Errorf("node %s sent %d sealed shares, want %d", from, len(resp.SealedShares), want)
		}
		got := map[string][]byte{}
		for to, msg := range resp.SealedShares {
			if to == from || !slices.Contains(nodes, to) {
				return fmt.Errorf("node %s sealed a share for %q", from, to)
			}
			if got[to], err = open(cl, ps, cer, ceremony.LabelSealedShamirShare, ps.MaxLevel(), msg); err != nil {
				return err
			}
		}
		mu.Lock()
		ckg[ceremony.NodeID(from)] = p
		ckgSigs[from] = resp.PublicKeyShareSignature
		for to, b := range got {
			sealed[to][from] = b
			sealedSigs[to][from] = resp.SealedShareSignatures[to]
		}
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	pk, err := ceremony.AggregatePublicKey(setup, ckg)
	if err != nil {
		return nil, err
	}
	pkb, err := pk.MarshalBinary()
	if err != nil {
		return nil, err
	}
	pkHash := hashOf(pkb)
	// 3. Every node receives all public-key shares and the Shamir shares
	// sealed to it, re-enveloped for it, finishes and persists its keys.
	err = c.each(ctx, nodes, func(ctx context.Context, to string, cl *nodeapi.Client) error {
		req := &nodeapi.KeysFinishRequest{CeremonyHeader: hdr(), PublicKeyShares: map[string][]byte{}, PublicKeyShareSignatures: ckgSigs,
			SealedShares: map[string][]byte{}, SealedShareSignatures: sealedSigs[to]}
		for from, p := range ckg {
			m, err := seal(cl, ps, cer, he.LabelCKGShare, ps.MaxLevel(), p)
			if err != nil {
				return err
			}
			req.PublicKeyShares[string(from)] = m
		}
		for from, p := range sealed[to] {
			m, err := seal(cl, ps, cer, ceremony.LabelSealedShamirShare, ps.MaxLevel(), p)
			if err != nil {
				return err
			}
			req.SealedShares[from] = m
		}
		resp, err := cl.KeysFinish(ctx, req)
		if err != nil {
			return err
		}
		if !slices.Equal(resp.PublicKeySHA256, pkHash) {
			return fmt.Errorf("node %s derived another collective public key than the coordinator", to)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &keySet{ps: ps, setup: setup, pk: pk, pkHash: pkHash, rk: release.NewReleaseKey(ps)}, nil
}

// Status reports the current ceremony and asks every node (configured or in
// the roster) which keys it holds.
func (c *Coordinator) Status(ctx context.Context) (*Status, error) {
	if err := c.refresh(ctx); err != nil {
		return nil, err
	}
	c.mu.RLock()
	ep := c.cur
	c.mu.RUnlock()
	st := &Status{}
	names := map[string]bool{}
	for n := range c.nodes {
		names[n] = true
	}
	if ep != nil {
		st.Epoch, st.Ceremony, st.Threshold, st.Created, st.Params = ep.n, ep.ceremony, ep.threshold, ep.created, slices.Clone(paramSets)
		for _, n := range ep.nodes {
			names[n] = true
		}
	}
	all := make([]string, 0, len(names))
	for n := range names {
		all = append(all, n)
	}
	sort.Strings(all)
	st.Nodes = make([]NodeStatus, len(all))
	var g errgroup.Group // probes report in st.Nodes, never fail the status
	for i, n := range all {
		st.Nodes[i] = NodeStatus{Node: n, InRoster: ep != nil && slices.Contains(ep.nodes, n)}
		cl, ok := c.nodes[n]
		if !ok {
			st.Nodes[i].Error = "not configured at the coordinator"
			continue
		}
		g.Go(func() error {
			pctx, cancel := context.WithTimeout(ctx, c.probeTimeout())
			defer cancel()
			holds, err := holdsKeys(pctx, cl, ep)
			ns := &st.Nodes[i]
			ns.Reachable = err == nil
			ns.HoldsShares = holds && ns.InRoster
			if err != nil {
				ns.Error = err.Error()
			}
			return nil
		})
	}
	_ = g.Wait()
	return st, nil
}

// holdsKeys asks a node whether it holds ep's keys for every parameter set.
func holdsKeys(ctx context.Context, cl *nodeapi.Client, ep *epoch) (bool, error) {
	resp, err := cl.KeysStatus(ctx)
	if err != nil {
		return false, err
	}
	if ep == nil {
		return false, nil
	}
	for _, name := range paramSets {
		ks := ep.sets[name]
		ok := false
		for _, s := range resp.Sets {
			if s.Params == name && s.Ceremony == ks.setup.CeremonyID() && slices.Equal(s.PublicKeySHA256, ks.pkHash) {
				ok = true
			}
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}
