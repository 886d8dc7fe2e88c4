package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/unseen-data/unseen/api"
	"github.com/unseen-data/unseen/compute/hefed"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/compute/pki"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/memstore"
	"github.com/unseen-data/unseen/jobs/redisstore"
	"github.com/unseen-data/unseen/jobs/runner"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/audit"
)

// CoordinatorConfig is the coordinator's configuration file.
type CoordinatorConfig struct {
	Listen string `yaml:"listen"`
	// Redis, if set, is the queue and store (redis://…); otherwise the
	// embedded backend keeps jobs in memory and the audit chain in AuditLog.
	Redis string `yaml:"redis"`
	// RedisPrefix namespaces every key (several federations, or tests, on
	// one Redis); default "unseen".
	RedisPrefix string `yaml:"redis_prefix"`
	AuditLog    string `yaml:"audit_log"`
	// HEState holds the key ceremony's public state and the coordinator's
	// release key (mode 0600); default state/coordinator/he.json beside the
	// config.
	HEState string `yaml:"he_state"`
	// HEMaxRowsPerNode bounds the rows a node may add to one aggregate
	// (default 65536). Values are range-checked against it so no sum —
	// of squares, for variances — can wrap: |x| ≤ 2^20 fen at the default.
	HEMaxRowsPerNode int64 `yaml:"he_max_rows_per_node"`
	Workers          int   `yaml:"workers"`
	// LeaseIdle is how long a worker's lease may go without a heartbeat
	// before another worker reclaims its job (default 30s).
	LeaseIdle time.Duration `yaml:"lease_idle"`
	Users     []api.User    `yaml:"users"`
	Nodes     []NodeRef     `yaml:"nodes"`
	// TLS is the coordinator's certificate for mutual TLS with the nodes
	// (`unseen pki issue coordinator`); every node URL must then be https.
	TLS *pki.Files `yaml:"tls"`

	dir string
}

// NodeRef is how the coordinator reaches a department's node.
type NodeRef struct {
	Department string `yaml:"department"`
	URL        string `yaml:"url"`
	// Token is the bearer token the coordinator presents to the node (the
	// node keeps only its hash).
	Token string `yaml:"token"`
}

func loadCoordinatorConfig(path string) (*CoordinatorConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c CoordinatorConfig
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c.dir = filepath.Dir(path)
	if c.Listen == "" {
		return nil, fmt.Errorf("config %s: listen is required", path)
	}
	if len(c.Nodes) == 0 {
		return nil, fmt.Errorf("config %s: no nodes", path)
	}
	if c.AuditLog != "" && !filepath.IsAbs(c.AuditLog) {
		c.AuditLog = filepath.Join(c.dir, c.AuditLog)
	}
	if c.HEState == "" {
		c.HEState = "state/coordinator/he.json"
	}
	if !filepath.IsAbs(c.HEState) {
		c.HEState = filepath.Join(c.dir, c.HEState)
	}
	if c.TLS != nil {
		for _, p := range []*string{&c.TLS.CA, &c.TLS.Cert, &c.TLS.Key} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(c.dir, *p)
			}
		}
	}
	return &c, nil
}

func coordinatorCmd() *cobra.Command {
	var cfgPath, redisURL, listen string
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run the coordinator: the HTTP API and the workers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadCoordinatorConfig(cfgPath)
			if err != nil {
				return err
			}
			if redisURL != "" {
				cfg.Redis = redisURL
			}
			if listen != "" {
				cfg.Listen = listen
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			ctx := cmd.Context()
			store, err := openStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer store.Close()
			c, err := newCoordinator(cfg, store, log)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return err
			}
			log.Info("coordinator listening", "addr", ln.Addr().String(), "backend", backendName(cfg))
			return c.serve(ctx, ln)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "examples/coordinator.yaml", "coordinator configuration file")
	cmd.Flags().StringVar(&redisURL, "redis", "", "Redis URL (redis://host:port/db); empty: embedded backend")
	cmd.Flags().StringVar(&listen, "listen", "", "listen address (overrides the config)")
	return cmd
}

func backendName(cfg *CoordinatorConfig) string {
	if cfg.Redis != "" {
		return "redis"
	}
	return "embedded"
}

func openStore(ctx context.Context, cfg *CoordinatorConfig) (jobs.Store, error) {
	if cfg.Redis != "" {
		opt, err := redis.ParseURL(cfg.Redis)
		if err != nil {
			return nil, fmt.Errorf("--redis: %w", err)
		}
		rc := redis.NewClient(opt)
		if err := redisstore.CheckServer(ctx, rc); err != nil {
			rc.Close()
			return nil, err
		}
		s, err := redisstore.New(ctx, rc, redisstore.Options{Prefix: cfg.RedisPrefix})
		if err != nil {
			rc.Close()
			return nil, err
		}
		return s, nil
	}
	var log audit.Log = &audit.MemLog{}
	if cfg.AuditLog != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.AuditLog), 0o700); err != nil {
			return nil, err
		}
		fl, err := audit.OpenFile(cfg.AuditLog)
		if err != nil {
			return nil, err
		}
		log = fl
	}
	return memstore.New(log, jobs.SystemClock{}), nil
}

// coordinator is the API, the workers and the catalog, wired together.
type coordinator struct {
	cfg     *CoordinatorConfig
	store   jobs.Store
	api     *api.API
	runner  *runner.Runner
	catalog *nodeapi.Catalog
	he      *hefed.Coordinator
	log     *slog.Logger
	// notifying counts outcome notifications to nodes still in flight;
	// shutdown waits for them.
	notifying *sync.WaitGroup
}

// notifyOutcome tells every node whose data a job used how it ended at
// review, so the node's own log shows whether a result was released. Best
// effort: the coordinator's log already holds the decision.
func notifyOutcome(nodes map[string]*nodeapi.Client, j *jobs.Job, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seen := map[string]bool{}
	for _, ds := range j.Spec.Datasets() {
		dept := policy.Department(ds)
		cl, ok := nodes[dept]
		if !ok || seen[dept] {
			continue
		}
		seen[dept] = true
		err := cl.Outcome(ctx, &nodeapi.OutcomeRequest{Header: nodeapi.Header{Job: j.ID, Attempt: max(j.Attempt, 1)}, Outcome: string(j.State),
			Purpose: j.Spec.Purpose, Datasets: j.Spec.Datasets(), Reviewer: j.Reviewer})
		if err != nil {
			log.Warn("telling a node how a job ended failed", "node", dept, "job", j.ID, "err", err)
		}
	}
}

// heKeys adapts the key ceremony to the API's admin endpoints.
type heKeys struct{ c *hefed.Coordinator }

func (k heKeys) Init(ctx context.Context, threshold int) (any, error) {
	return k.c.Init(ctx, threshold)
}
func (k heKeys) Status(ctx context.Context) (any, error) { return k.c.Status(ctx) }

func newCoordinator(cfg *CoordinatorConfig, store jobs.Store, log *slog.Logger) (*coordinator, error) {
	nodes := map[string]*nodeapi.Client{}
	for _, n := range cfg.Nodes {
		if _, dup := nodes[n.Department]; dup {
			return nil, fmt.Errorf("node %s configured twice", n.Department)
		}
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
	cat := nodeapi.NewCatalog(nodes)
	notifying := &sync.WaitGroup{}
	if cfg.HEState != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.HEState), 0o700); err != nil {
			return nil, err
		}
	}
	hc, err := hefed.Open(cfg.HEState, nodes, log)
	if err != nil {
		return nil, err
	}
	hc.MaxRowsPerNode = cfg.HEMaxRowsPerNode
	if hc.MaxRowsPerNode == 0 {
		hc.MaxRowsPerNode = 1 << 16
	}
	a, err := api.New(api.Config{Store: store, Users: cfg.Users, Catalog: cat, Logger: log, Ready: cat.Ready, Keys: heKeys{hc},
		OnDecision: func(j *jobs.Job) {
			notifying.Add(1)
			go func() { defer notifying.Done(); notifyOutcome(nodes, j, log) }()
		}})
	if err != nil {
		return nil, err
	}
	keys := map[string][]byte{}
	for _, u := range cfg.Users {
		if u.PublicKey == "" {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(u.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("user %s: public_key is not base64: %w", u.Name, err)
		}
		keys[u.Name] = k
	}
	r := &runner.Runner{
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
		HE:        hc,
	}
	return &coordinator{cfg: cfg, store: store, api: a, runner: r, catalog: cat, he: hc, log: log, notifying: notifying}, nil
}

func isLoopbackURL(u string) bool {
	pu, err := url.Parse(u)
	if err != nil {
		return false
	}
	h := pu.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// serve runs the API on ln and the workers until ctx ends, then shuts down
// gracefully: the HTTP server drains and running jobs are handed back.
func (c *coordinator) serve(ctx context.Context, ln net.Listener) error {
	if err := c.catalog.Refresh(ctx); err != nil {
		c.log.Warn("some nodes did not answer; their datasets appear once they do", "err", err)
	}
	srv := c.api.Server(ln.Addr().String())
	errc := make(chan error, 2)
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
	go func() { c.runner.Run(wctx, workers); close(done) }()
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
