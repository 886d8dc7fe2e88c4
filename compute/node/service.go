package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/hkdf"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/psi"
)

// Service is a running node's logic: its datasets, secret, audit log,
// PSI sessions and homomorphic keys. Its methods are safe for concurrent use.
type Service struct {
	cfg      *Config
	catalog  policy.Catalog
	tables   map[string]*Table
	secret   []byte
	audit    audit.Log
	sealer   *audit.Sealer
	tokenSum []byte
	clock    func() time.Time
	log      *slog.Logger

	he *heState // homomorphic keys and ledger (he_keys.go)

	priv  ed25519.PrivateKey // the node's signing key (trust.go)
	keys  *Keys              // whom it believes: federation and owners
	state *stateDB           // its own ledger of jobs, budgets, rates (state.go)

	// unsignedChunks turns off the PSI chunks' signatures and their checks:
	// only for the benchmark that measures what they cost (export_test.go).
	unsignedChunks atomic.Bool

	mu       sync.Mutex
	sessions map[string]*session // by sessionKey (session.go)
}

// Options are a node's dependencies; zero values get defaults.
type Options struct {
	Audit  audit.Log        // default: the file in the config
	Clock  func() time.Time // default: time.Now
	Logger *slog.Logger
	// FS, if set, is where dataset files are read from (the demo's embedded
	// examples); otherwise the operating system's files.
	FS fs.FS
	// SigningKey, if set, is the node's signing key (the demo's example
	// keys); otherwise the config's signing_key file, created if missing.
	SigningKey ed25519.PrivateKey
}

// Caller is who a request comes from, as the transport authenticated it
// (Authenticate). Both are written to the audit log.
type Caller struct {
	Actor  string // the authenticated party: "coordinator"
	Remote string // the transport's address of the peer, e.g. "10.0.0.7:51234"
}

// ActorCoordinator is the actor of every request the coordinator's token
// authenticates (the only caller a node serves).
const ActorCoordinator = "coordinator"

// New loads the node's datasets, secret and key shares and returns its
// service.
func New(cfg *Config, opts Options) (*Service, error) {
	s := &Service{cfg: cfg, catalog: policy.Catalog{}, tables: map[string]*Table{}, sessions: map[string]*session{}, clock: opts.Clock, log: opts.Logger, audit: opts.Audit}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("node", cfg.Department)
	var err error
	if s.secret, err = LoadOrCreateSecret(cfg.Path(cfg.SecretFile)); err != nil {
		return nil, err
	}
	if s.tokenSum, err = hex.DecodeString(cfg.CoordinatorTokenSHA256); err != nil || len(s.tokenSum) != sha256.Size {
		return nil, fmt.Errorf("node: coordinator_token_sha256 must be 64 hex characters")
	}
	if s.keys, err = cfg.Trust(); err != nil {
		return nil, fmt.Errorf("node: config: %w", err)
	}
	s.priv = opts.SigningKey
	if s.priv == nil {
		if s.priv, err = attest.LoadOrCreatePrivateKeyFile(cfg.SigningKeyPath()); err != nil {
			return nil, fmt.Errorf("node: signing key: %w", err)
		}
	}
	if want := s.keys.Nodes[cfg.Department]; !bytes.Equal(want, s.PublicKey()) {
		return nil, fmt.Errorf("node: federation.nodes.%s is %s, but this node's signing key (%s) is %s: put the node's own public key there (unseen node identity prints it)",
			cfg.Department, attest.FormatPublicKey(want), cfg.SigningKeyPath(), attest.FormatPublicKey(s.PublicKey()))
	}
	if s.state, err = openState(cfg.StateDBPath()); err != nil {
		return nil, err
	}
	if s.he, err = newHEState(cfg, s.tokenSum, s.log); err != nil {
		s.state.Close()
		return nil, err
	}
	sealKey := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, s.secret, nil, []byte("unseen/node/audit-hmac/v1")), sealKey); err != nil {
		return nil, err
	}
	if s.sealer, err = audit.NewSealer(sealKey); err != nil {
		return nil, err
	}
	if s.audit == nil {
		// Like the secret's folder (and the coordinator's audit folder), the
		// log's folder is created if missing.
		if err := os.MkdirAll(filepath.Dir(cfg.Path(cfg.AuditLog)), 0o700); err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
		// The node signs every head it writes (FileOptions.Signer): a head
		// rewritten without its key shows at `unseen audit verify --key`.
		fl, err := audit.Open(cfg.Path(cfg.AuditLog), audit.FileOptions{Logger: s.log, Signer: s.priv, Name: cfg.Department})
		if err != nil {
			return nil, err
		}
		s.audit = fl
	}
	// Lists a previous process prepared died with its sessions.
	if err := psi.RemoveStaleLists(cfg.ListDir()); err != nil {
		s.log.Warn("stale PSI lists not removed", "dir", cfg.ListDir(), "err", err)
	}
	for i := range cfg.Datasets {
		dc := &cfg.Datasets[i]
		spec := cfg.ResolvedSource(dc, opts.FS != nil)
		t, err := OpenTable(context.Background(), dc, spec, opts.FS)
		if err != nil {
			s.closeTables()
			s.state.Close()
			return nil, err
		}
		s.tables[dc.Name] = t
		d := dc.Dataset
		s.catalog[d.Name] = &d
		if t.Len() >= 0 {
			s.log.Info("dataset loaded", "dataset", d.Name, "source", spec.Kind, "rows", t.Len(), "invalid_ids", t.InvalidIDs())
		} else {
			s.log.Info("dataset opened", "dataset", d.Name, "source", spec.Kind, "table", spec.Table)
		}
	}
	return s, nil
}

// Close releases the node's files (its state ledger, its prepared lists)
// and its datasets' connections.
func (s *Service) Close() error {
	s.mu.Lock()
	for id, ss := range s.sessions {
		ss.close()
		delete(s.sessions, id)
	}
	s.mu.Unlock()
	s.closeTables()
	return s.state.Close()
}

func (s *Service) closeTables() {
	for _, t := range s.tables {
		t.Close()
	}
}

// Department is the node's department.
func (s *Service) Department() string { return s.cfg.Department }

// Audit is the node's audit log.
func (s *Service) Audit() audit.Log { return s.audit }

// Authenticate checks the coordinator's bearer token (in constant time,
// against its configured SHA-256; an empty token never passes) and names
// the caller. A refusal is not
// audited: anyone can send one, and a flood must not fill the disk with
// fsynced entries; the transport counts and samples them instead.
func (s *Service) Authenticate(token, remote string) (Caller, error) {
	sum := sha256.Sum256([]byte(token))
	if token == "" || subtle.ConstantTimeCompare(sum[:], s.tokenSum) != 1 {
		return Caller{}, refuse(KindUnauthenticated, "unauthenticated", "a valid coordinator token is required")
	}
	return Caller{Actor: ActorCoordinator, Remote: remote}, nil
}

// Datasets lists the node's declared datasets (metadata only; not audited).
func (s *Service) Datasets(ctx context.Context, c Caller) (*nodeapi.DatasetsResponse, error) {
	out := &nodeapi.DatasetsResponse{Department: s.cfg.Department}
	for _, n := range s.catalog.Names() {
		out.Datasets = append(out.Datasets, *s.catalog[n])
	}
	return out, nil
}
