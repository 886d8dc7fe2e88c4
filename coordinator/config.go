package coordinator

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/pki"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// Config is the coordinator's configuration file.
type Config struct {
	Listen string `yaml:"listen"`
	// Redis, if set, is the job store, queue and audit chain (redis://…);
	// otherwise the embedded backend keeps them in one local file, Store.
	Redis string `yaml:"redis"`
	// RedisPrefix namespaces every key (several federations, or tests, on
	// one Redis); default "unseen".
	RedisPrefix string `yaml:"redis_prefix"`
	// Store is the embedded backend's file (bbolt): jobs, queue, retry
	// schedule, counters and the audit chain; default
	// state/coordinator/unseen.db beside the config. One coordinator at a
	// time can have it open.
	Store string `yaml:"store"`
	// AuditLog is no longer used: the embedded audit chain lives in Store.
	// It is kept only to say so clearly to a config that still sets it.
	AuditLog string `yaml:"audit_log"`
	// Retry is how jobs that fail transiently (a node down) are retried.
	Retry RetryConfig `yaml:"retry"`
	// HEState is where an earlier version kept the key ceremony's state
	// and the release keys (in the clear); default state/coordinator/he.json
	// beside the config. The state now lives in the store (Redis or Store),
	// shared by every coordinator on it; a file found here is moved into
	// the store, sealed, and removed.
	HEState string `yaml:"he_state"`
	// HEStateKey is the file holding the key (base64 of 32 bytes) that
	// seals the release keys in the store; default he-state.key beside
	// HEState, made on first start when no state exists. The environment
	// variable UNSEEN_HE_STATE_KEY takes precedence. Coordinators sharing a
	// store share the key; a coordinator without it does not start once the
	// state exists.
	HEStateKey string `yaml:"he_state_key"`
	// HEMaxRowsPerNode, if set, limits the rows each node adds to one
	// homomorphic result (an operator's choice; jobs over datasets that
	// declare more rows are refused at submission). Without it a job sums
	// up to 2^30 rows in all (each of an aggregate's n inputs 2^30/n), of
	// values |x| ≤ 2^40, exactly: the limit is no longer needed to keep
	// Σx² from wrapping (compute/he, "Exact Σx and Σx²").
	HEMaxRowsPerNode int64 `yaml:"he_max_rows_per_node"`
	Workers          int   `yaml:"workers"`
	// LeaseIdle is how long a worker's lease may go without a heartbeat
	// before another worker reclaims its job (default 30s).
	LeaseIdle time.Duration `yaml:"lease_idle"`
	Users     []policy.User `yaml:"users"`
	Nodes     []NodeRef     `yaml:"nodes"`
	// TLS is the coordinator's certificate for mutual TLS with the nodes
	// (`unseen pki issue coordinator`); every node URL must then be https.
	TLS *pki.Files `yaml:"tls"`
	// APITLS, if set, makes the people-facing API serve HTTPS (TLS 1.2 or
	// later) with this certificate and key (PEM; e.g. from `unseen pki
	// issue coordinator --host api.example`, or any CA's): bearer tokens
	// then never cross the network in the clear. Without it the API is
	// plain HTTP, for loopback only.
	APITLS *APITLS `yaml:"api_tls"`
	// SigningKey is the coordinator's Ed25519 key (PEM): it signs the
	// coordinator's audit head, which nodes keep as a witness; default
	// state/coordinator/signing.ed25519 beside the config, created (0600)
	// on first start. `unseen coordinator identity` prints its public half
	// for the nodes' federation.coordinator.
	SigningKey string `yaml:"signing_key"`
	// SigningKeyPriv, if set, is used instead of the SigningKey file (the
	// demo's example key).
	SigningKeyPriv ed25519.PrivateKey `yaml:"-"`

	dir string
}

// APITLS is the people-facing API's certificate and key (PEM files).
type APITLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// RetryConfig is the retry schedule: exponential backoff from 2 s,
// doubling, capped at MaxDelay, for at most Attempts runs that fail
// transiently, then the job is dead-lettered. The defaults (12 attempts,
// 1 min) wait at least 5 minutes in all: a node restart is ridden out.
type RetryConfig struct {
	Attempts int           `yaml:"attempts"`
	MaxDelay time.Duration `yaml:"max_delay"`
}

// NodeRef is how the coordinator reaches a department's node.
type NodeRef struct {
	Department string `yaml:"department"`
	URL        string `yaml:"url"`
	// Token is the bearer token the coordinator presents to the node (the
	// node keeps only its hash).
	Token string `yaml:"token"`
}

// LoadConfig reads a configuration file strictly (unknown keys are errors)
// and resolves relative paths against the file's folder. It does not
// validate: callers apply flag overrides first, then Validate.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c.SetDir(filepath.Dir(path))
	return &c, nil
}

// SetDir resolves the config's relative paths against dir (the folder of
// the file it came from).
func (c *Config) SetDir(dir string) {
	c.dir = dir
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.AuditLog)
	if c.Store == "" {
		c.Store = "state/coordinator/unseen.db"
	}
	abs(&c.Store)
	if c.HEState == "" {
		c.HEState = "state/coordinator/he.json"
	}
	abs(&c.HEState)
	abs(&c.HEStateKey)
	if c.TLS != nil {
		abs(&c.TLS.CA)
		abs(&c.TLS.Cert)
		abs(&c.TLS.Key)
	}
	if c.APITLS != nil {
		abs(&c.APITLS.Cert)
		abs(&c.APITLS.Key)
	}
	if c.SigningKey == "" {
		c.SigningKey = "state/coordinator/signing.ed25519"
	}
	abs(&c.SigningKey)
}

// SigningKeyPath is the resolved signing key file (for a config not read
// from a file: state/coordinator/signing.ed25519 under the working folder).
func (c *Config) SigningKeyPath() string {
	if c.SigningKey != "" {
		return c.SigningKey
	}
	return filepath.Join(c.dir, "state", "coordinator", "signing.ed25519")
}

// Validate checks the configuration for consistency.
func (c *Config) Validate() error {
	if c.Listen == "" {
		return errors.New("coordinator: listen is required")
	}
	if len(c.Nodes) == 0 {
		return errors.New("coordinator: no nodes are configured")
	}
	seen := map[string]bool{}
	for _, n := range c.Nodes {
		if !policy.ValidColumnName(n.Department) {
			return fmt.Errorf("coordinator: node department %q is not a simple name", n.Department)
		}
		if seen[n.Department] {
			return fmt.Errorf("coordinator: node %s configured twice", n.Department)
		}
		if n.Department == audit.CoordinatorLog {
			return fmt.Errorf("coordinator: a department may not be called %q (the coordinator's own log goes by that name)", n.Department)
		}
		seen[n.Department] = true
		u, err := url.Parse(n.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("coordinator: node %s: url %q is not an http(s) URL", n.Department, n.URL)
		}
		if c.TLS != nil && u.Scheme != "https" {
			return fmt.Errorf("coordinator: node %s: with tls configured every node URL must be https", n.Department)
		}
		if n.Token == "" {
			return fmt.Errorf("coordinator: node %s: token is required", n.Department)
		}
	}
	if c.Workers < 0 || c.LeaseIdle < 0 || c.HEMaxRowsPerNode < 0 || c.Retry.Attempts < 0 || c.Retry.MaxDelay < 0 {
		return errors.New("coordinator: workers, lease_idle, he_max_rows_per_node and retry must not be negative")
	}
	if c.AuditLog != "" {
		return fmt.Errorf("coordinator: audit_log is no longer used: the embedded backend keeps the audit chain in its store file (store: %s); remove audit_log", c.Store)
	}
	names := map[string]bool{}
	for _, u := range c.Users {
		if u.Name == "" || !u.Role.Valid() {
			return fmt.Errorf("coordinator: user %q has an unknown role %q", u.Name, u.Role)
		}
		if names[u.Name] {
			return fmt.Errorf("coordinator: user %q declared twice", u.Name)
		}
		names[u.Name] = true
		if u.SigningKey != "" {
			if !u.Role.Signs() {
				return fmt.Errorf("coordinator: user %q: signing_key is for reviewers and data owners, not role %s", u.Name, u.Role)
			}
			if _, err := attest.ParsePublicKey(u.SigningKey); err != nil {
				return fmt.Errorf("coordinator: user %q: signing_key: %w", u.Name, err)
			}
		}
	}
	if c.APITLS != nil && (c.APITLS.Cert == "" || c.APITLS.Key == "") {
		return errors.New("coordinator: api_tls needs both cert and key")
	}
	return nil
}

// Backend names the store the configuration selects.
func (c *Config) Backend() string {
	if c.Redis != "" {
		return "redis"
	}
	return "embedded"
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

func isLoopbackAddr(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
