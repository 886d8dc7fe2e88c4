// Package coordinator is the coordinator process put together: the job
// store (embedded in one bbolt file, or Redis), the department nodes' clients and catalog, the
// homomorphic side (package hefed) and the workers that drive jobs
// (package worker). The people-facing HTTP API is package api; the binary
// joins the two (api is the outermost layer, and nothing but the binary
// imports it).
//
// Who learns what: see the README's threat model. In short, the coordinator
// sees blinded points, list sizes, which positions match, ciphertexts, and
// the decrypted aggregate results it hands to review — never a record.
package coordinator

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/coordinator/hefed"
	"github.com/unseen-data/unseen/coordinator/worker"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/boltstore"
	"github.com/unseen-data/unseen/jobs/redisstore"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// Coordinator is the coordinator's parts, wired.
type Coordinator struct {
	cfg     *Config
	Store   jobs.Store
	Nodes   map[string]*nodeapi.Client // by department
	Catalog *nodeapi.Catalog
	HE      *hefed.Coordinator
	Worker  *worker.Runner
	log     *slog.Logger
	priv    ed25519.PrivateKey // signs the coordinator's audit head
	apiTLS  *tls.Config        // the people-facing API's HTTPS (nil: plain HTTP)
	// notifying counts outcome notifications to nodes still in flight;
	// Serve waits for them before returning.
	notifying sync.WaitGroup
}

// OpenStore opens the store the configuration names: Redis, or the
// embedded backend's file (cfg.Store; its folder is made if missing).
// A second coordinator on the same file gets boltstore.ErrLocked within a
// second instead of waiting for the first to stop.
func OpenStore(ctx context.Context, cfg *Config) (jobs.Store, error) {
	if cfg.Redis != "" {
		return redisstore.Open(ctx, cfg.Redis, redisstore.Options{Prefix: cfg.RedisPrefix})
	}
	path := cfg.Store
	if path == "" {
		path = filepath.Join(cfg.dir, "state", "coordinator", "unseen.db")
	}
	return boltstore.Open(path, boltstore.Options{})
}

// New wires a coordinator over store (which the caller closes).
func New(cfg *Config, store jobs.Store, log *slog.Logger) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	nodes := map[string]*nodeapi.Client{}
	for _, n := range cfg.Nodes {
		cl := nodeapi.NewClient(n.Department, n.URL, n.Token)
		if cfg.TLS != nil {
			if err := cl.UseTLS(*cfg.TLS); err != nil {
				return nil, err
			}
		} else if !isLoopbackURL(n.URL) {
			log.Warn("node reached over plain HTTP without mutual TLS; configure tls (unseen pki) for anything but a local trial", "node", n.Department, "url", n.URL)
		}
		nodes[n.Department] = cl
	}
	// The homomorphic state is in the shared store, its release keys sealed
	// under the state key; a legacy he.json is moved there.
	octx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A key is made only for a store without state (a legacy file alone
	// holds its release keys in the clear, so sealing them under a new key
	// loses nothing).
	exists, err := hefed.StateExists(octx, store, "")
	if err != nil {
		return nil, err
	}
	stateKey, err := LoadStateKey(cfg, !exists, log)
	if err != nil {
		return nil, err
	}
	hc, err := hefed.Open(octx, hefed.Options{Blobs: store, Key: stateKey, Legacy: cfg.HEState, Nodes: nodes, Log: log})
	if err != nil {
		return nil, err
	}
	hc.MaxRowsPerNode = cfg.HEMaxRowsPerNode // 0: each node's share of 2^30 rows
	keys := map[string][]byte{}
	for _, u := range cfg.Users {
		if u.PublicKey == "" {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(u.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("coordinator: user %s: public_key is not base64: %w", u.Name, err)
		}
		keys[u.Name] = k
	}
	priv := cfg.SigningKeyPriv
	if priv == nil {
		if priv, err = attest.LoadOrCreatePrivateKeyFile(cfg.SigningKeyPath()); err != nil {
			return nil, fmt.Errorf("coordinator: signing key: %w", err)
		}
	}
	apiTLS, err := cfg.APITLSConfig()
	if err != nil {
		return nil, err
	}
	cat := nodeapi.NewCatalog(nodes)
	c := &Coordinator{cfg: cfg, Store: store, Nodes: nodes, Catalog: cat, HE: hc, log: log, priv: priv, apiTLS: apiTLS}
	c.Worker = &worker.Runner{
		Store:   store,
		Nodes:   nodes,
		Catalog: cat,
		RecipientKey: func(user string) ([]byte, error) {
			k, ok := keys[user]
			if !ok {
				return nil, errors.New("no public key registered")
			}
			return k, nil
		},
		Logger:    log,
		LeaseIdle: cfg.LeaseIdle,
		Retry:     worker.Retry{Attempts: cfg.Retry.Attempts, MaxDelay: cfg.Retry.MaxDelay},
		HE:        hc,
		SignedHead: func(ctx context.Context) (*audit.SignedHead, error) {
			h, err := c.SignedHead(ctx)
			return &h, err
		},
	}
	return c, nil
}

// PublicKey is the coordinator's signing key's public half (the nodes'
// federation.coordinator).
func (c *Coordinator) PublicKey() ed25519.PublicKey { return c.priv.Public().(ed25519.PublicKey) }

// SignedHead is the coordinator's audit head, signed with its key: what it
// gives the nodes to keep as a witness.
func (c *Coordinator) SignedHead(ctx context.Context) (audit.SignedHead, error) {
	h, err := headOf(ctx, c.Store.Audit())
	if err != nil {
		return audit.SignedHead{}, err
	}
	return audit.SignHead(c.priv, audit.CoordinatorLog, h)
}

// headOf is a log's head: recorded apart if the log keeps it so, else its
// last entry.
func headOf(ctx context.Context, l audit.Log) (audit.Head, error) {
	if hr, ok := l.(audit.HeadReader); ok {
		return hr.Head(ctx)
	}
	es, err := l.Entries(ctx, audit.Filter{Limit: 1})
	if err != nil {
		return audit.Head{}, err
	}
	return audit.HeadOf(es), nil
}

// LoadSigningKey reads the coordinator's signing key from the
// configuration's file, creating it if there is none (`unseen coordinator
// identity`).
func LoadSigningKey(cfg *Config) (ed25519.PrivateKey, error) {
	if cfg.SigningKeyPriv != nil {
		return cfg.SigningKeyPriv, nil
	}
	return attest.LoadOrCreatePrivateKeyFile(cfg.SigningKeyPath())
}

// APITLSConfig is the people-facing API's server TLS (nil without
// api_tls): the configured certificate, TLS 1.2 at least.
func (c *Config) APITLSConfig() (*tls.Config, error) {
	if c.APITLS == nil {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.APITLS.Cert, c.APITLS.Key)
	if err != nil {
		return nil, fmt.Errorf("coordinator: api_tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// APIScheme is "https" when the API serves TLS, else "http".
func (c *Coordinator) APIScheme() string {
	if c.apiTLS != nil {
		return "https"
	}
	return "http"
}

// Users is the people directory from the configuration.
func (c *Coordinator) Users() []policy.User { return c.cfg.Users }

// Config is the configuration the coordinator runs with.
func (c *Coordinator) Config() *Config { return c.cfg }

// KeyAdmin adapts the key ceremony to the admin endpoints.
func (c *Coordinator) KeyAdmin() KeyAdmin { return KeyAdmin{c.HE} }

// KeyAdmin runs the federation's key ceremony for the admin endpoints.
type KeyAdmin struct{ he *hefed.Coordinator }

// Init runs a new key ceremony with threshold t.
func (k KeyAdmin) Init(ctx context.Context, threshold int) (any, error) {
	return k.he.Init(ctx, threshold)
}

// Status reports the current ceremony and every node's part in it.
func (k KeyAdmin) Status(ctx context.Context) (any, error) { return k.he.Status(ctx) }

// OnDecision tells every node whose data a job used how it ended at review
// (released or rejected), in the background, so the node's own log shows
// whether a result was released. Best effort: the coordinator's log already
// holds the decision.
func (c *Coordinator) OnDecision(j *jobs.Job) {
	c.notifying.Add(1)
	go func() {
		defer c.notifying.Done()
		c.notifyOutcome(j)
	}()
}

// notifyOutcome tells the nodes, sending the coordinator's signed head, and
// records the signed heads they answer with in one audit entry
// ("job.outcome.witnessed", detail "witness.<department>").
// WaitOutcomes waits for the outcome notifications in flight (the demo
// checks the witnessed heads once they are all recorded).
func (c *Coordinator) WaitOutcomes() { c.notifying.Wait() }

func (c *Coordinator) notifyOutcome(j *jobs.Job) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var own *audit.SignedHead
	if h, err := c.SignedHead(ctx); err != nil {
		c.log.Warn("the coordinator's audit head could not be signed; nodes get no witness", "err", err)
	} else {
		own = &h
	}
	seen := map[string]bool{}
	heads := map[string]string{}
	for _, ds := range j.Spec.Datasets() {
		dept := policy.Department(ds)
		cl, ok := c.Nodes[dept]
		if !ok || seen[dept] {
			continue
		}
		seen[dept] = true
		resp, err := cl.Outcome(ctx, &nodeapi.OutcomeRequest{Header: nodeapi.Header{Job: j.ID, SpecHash: j.Spec.Hash(), Attempt: max(j.Attempt, 1)}, Outcome: string(j.State),
			Purpose: j.Spec.Purpose, Datasets: j.Spec.Datasets(), Reviewer: j.Reviewer, Witness: own})
		if err != nil {
			c.log.Warn("telling a node how a job ended failed", "node", dept, "job", j.ID, "err", err)
			continue
		}
		if resp.Head != nil && resp.Head.Log == dept {
			heads[audit.WitnessPrefix+dept] = resp.Head.String()
		}
	}
	if len(heads) == 0 {
		return
	}
	heads["outcome"] = string(j.State)
	e := audit.Entry{Time: time.Now(), Actor: "coordinator", Role: "system", Action: "job.outcome.witnessed", Job: j.ID, Datasets: j.Spec.Datasets(), Detail: heads}
	if _, err := c.Store.Audit().Append(ctx, e); err != nil {
		c.log.Warn("recording the nodes' witnessed heads failed", "job", j.ID, "err", err)
	}
}

// Serve serves srv (the people-facing API) on ln and runs the workers until
// ctx ends, then shuts down gracefully: the HTTP server drains, running jobs
// are handed back and outcome notifications finish.
func (c *Coordinator) Serve(ctx context.Context, ln net.Listener, srv *http.Server) error {
	if err := c.Catalog.Refresh(ctx); err != nil {
		c.log.Warn("some nodes did not answer; their datasets appear once they do", "err", err)
	}
	errc := make(chan error, 1)
	if srv.ErrorLog == nil {
		// Handshake failures (plain HTTP to the TLS port, untrusted
		// clients) go to the coordinator's log, not stderr.
		srv.ErrorLog = slog.NewLogLogger(c.log.Handler(), slog.LevelWarn)
	}
	if c.apiTLS != nil {
		// HTTPS: bearer tokens never cross the network in the clear.
		srv.TLSConfig = c.apiTLS
		ln = tls.NewListener(ln, c.apiTLS)
	} else if !isLoopbackAddr(ln.Addr()) {
		c.log.Warn("the API serves plain HTTP on a non-loopback address: bearer tokens cross the network in the clear; configure api_tls", "addr", ln.Addr().String())
	}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	workers := c.cfg.Workers
	if workers <= 0 {
		workers = 2
	}
	wctx, stopWorkers := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { c.Worker.Run(wctx, workers); close(done) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	c.log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	stopWorkers()
	<-done
	c.notifying.Wait()
	return err
}
