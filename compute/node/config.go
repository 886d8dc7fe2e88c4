package node

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/unseen-data/unseen/compute/pki"
	"github.com/unseen-data/unseen/compute/source"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// Config is a node's configuration file, written by its department.
type Config struct {
	Department string `yaml:"department"`
	Title      string `yaml:"title"`
	Listen     string `yaml:"listen"`
	// SecretFile holds the node's long-term secret (≥ 32 bytes, hex). Per-job
	// PSI keys and the audit HMAC key derive from it. Created (0600) if missing.
	SecretFile string `yaml:"secret_file"`
	AuditLog   string `yaml:"audit_log"`
	// CoordinatorTokenSHA256 is the hex SHA-256 of the bearer token the
	// coordinator presents; the token itself is kept only by the coordinator.
	CoordinatorTokenSHA256 string `yaml:"coordinator_token_sha256"`
	// TLS, if set, makes the node serve mutual TLS and accept only the
	// coordinator's certificate from the federation CA (`unseen pki`).
	TLS *pki.Files `yaml:"tls"`
	// KeysDir holds the node's homomorphic key shares and decryption ledger
	// (files 0600). Default: a "keys" folder beside the secret file.
	KeysDir string `yaml:"keys_dir"`
	// SigningKey is the node's Ed25519 key (PEM): it signs the PSI chunks,
	// homomorphic contributions and ceremony messages the node produces, and
	// its audit head. Default: signing.ed25519 beside the secret file,
	// created (0600) on first start; `unseen node identity` prints its
	// public half for the other departments' federation sections.
	SigningKey string `yaml:"signing_key"`
	// StateDB is the node's own ledger of jobs (each job id bound to one
	// spec), privacy budgets and rate limits, kept whatever the coordinator
	// says. Default: node.db beside the secret file.
	StateDB string `yaml:"state_db"`
	// Federation names, from this department's own configuration, whom the
	// node believes: the other nodes, the reviewers and the coordinator.
	Federation Federation `yaml:"federation"`
	// Owners are this department's data owners (数源单位) and their
	// public keys: a job on a conditional dataset needs one's signed consent.
	Owners   map[string]string `yaml:"owners"`
	Datasets []DatasetConfig   `yaml:"datasets"`
	// ListRunRecords is how many IDs the node sorts in memory at once while
	// it prepares a PSI list on disk (default psi.DefaultRunSize, about
	// 60 MiB): the node's memory for PSI is O(this), not O(dataset).
	ListRunRecords int `yaml:"list_run_records"`

	dir string // the config file's folder: relative paths resolve against it
}

// Federation is the node's own list of the parties of its federation and
// their public keys ("ed25519:…"). The node never takes these from the
// coordinator: a key ceremony's roster, a PSI chunk's producer and a
// release's reviewer are checked against them.
type Federation struct {
	// Coordinator is the coordinator's key: its signed audit heads, which
	// the node keeps as a witness.
	Coordinator string `yaml:"coordinator"`
	// Nodes are every department's node, this one included.
	Nodes map[string]string `yaml:"nodes"`
	// Reviewers (安全管理方) may approve the release of a result.
	Reviewers map[string]string `yaml:"reviewers"`
}

// DatasetConfig declares one dataset: its policy (metadata) and where its
// rows are.
type DatasetConfig struct {
	policy.Dataset `yaml:",inline"`
	// File is shorthand for Source {kind: csv, file: …}: exactly one of the
	// two is given.
	File string `yaml:"file"`
	// Source is where the rows live: a CSV file, a PostgreSQL or a MySQL
	// table or view (compute/source.Spec), e.g.
	// {kind: postgres, table: public.property_owners, dsn_env: UNSEEN_HOUSING_DSN}.
	// The DSN is read from dsn_env or dsn_file, never written here.
	Source *source.Spec `yaml:"source"`
	// max_rows (policy.Dataset.MaxRows) is also the most rows a scan reads.
}

// SourceSpec is where the dataset's rows are, with its paths (file,
// dsn_file) as written: resolve them with Config.Path or FSPath.
func (d *DatasetConfig) SourceSpec() source.Spec {
	if d.Source != nil {
		return *d.Source
	}
	return source.Spec{Kind: source.SpecCSV, File: d.File}
}

// ResolvedSource is d's source with its paths resolved against the
// config's folder (inside fsys's tree when the config came from an fs.FS).
func (c *Config) ResolvedSource(d *DatasetConfig, inFS bool) source.Spec {
	sp := d.SourceSpec()
	res := c.Path
	if inFS {
		res = c.FSPath
	}
	if sp.File != "" {
		sp.File = res(sp.File)
	}
	if sp.DSNFile != "" {
		sp.DSNFile = c.Path(sp.DSNFile) // a secret: always from the OS
	}
	return sp
}

// ListDir is the folder the node's prepared PSI lists are kept in while
// their jobs run (beside its ledger; emptied at start).
func (c *Config) ListDir() string {
	return filepath.Join(filepath.Dir(c.StateDBPath()), "psi-lists-"+c.Department)
}

// LoadConfig reads and validates a node configuration file. Unknown keys are
// errors: a misspelt policy field must not silently mean "no rule".
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	return parseConfig(b, path, filepath.Dir(path))
}

// LoadConfigFS reads a configuration from fsys (the demo's embedded
// examples); dataset files are then read from fsys too (Options.FS).
func LoadConfigFS(fsys fs.FS, name string) (*Config, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	return parseConfig(b, name, path.Dir(name))
}

func parseConfig(b []byte, name, dir string) (*Config, error) {
	path := name
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("node: config %s: %w", path, err)
	}
	c.dir = dir
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("node: config %s: %w", path, err)
	}
	return &c, nil
}

// Keys are the public keys a node believes, parsed from its configuration.
type Keys struct {
	Coordinator ed25519.PublicKey // nil if not configured
	Nodes       attest.Keyring    // by department
	Reviewers   attest.Keyring    // by name
	Owners      attest.Keyring    // by name
}

// Trust parses the federation and owners sections.
func (c *Config) Trust() (*Keys, error) {
	k := &Keys{Nodes: attest.Keyring{}, Reviewers: attest.Keyring{}, Owners: attest.Keyring{}}
	parse := func(section string, in map[string]string, out attest.Keyring) error {
		for name, txt := range in {
			if !policy.ValidColumnName(name) {
				return fmt.Errorf("%s: %q is not a simple name", section, name)
			}
			pub, err := attest.ParsePublicKey(txt)
			if err != nil {
				return fmt.Errorf("%s.%s: %w", section, name, err)
			}
			out[name] = pub
		}
		return nil
	}
	if err := parse("federation.nodes", c.Federation.Nodes, k.Nodes); err != nil {
		return nil, err
	}
	if err := parse("federation.reviewers", c.Federation.Reviewers, k.Reviewers); err != nil {
		return nil, err
	}
	if err := parse("owners", c.Owners, k.Owners); err != nil {
		return nil, err
	}
	if c.Federation.Coordinator != "" {
		pub, err := attest.ParsePublicKey(c.Federation.Coordinator)
		if err != nil {
			return nil, fmt.Errorf("federation.coordinator: %w", err)
		}
		k.Coordinator = pub
	}
	if _, ok := k.Nodes[c.Department]; !ok {
		return nil, fmt.Errorf("federation.nodes must list this node (%s) with its public key (unseen node identity prints it)", c.Department)
	}
	return k, nil
}

// SigningKeyPath is the resolved SigningKey.
func (c *Config) SigningKeyPath() string {
	if c.SigningKey != "" {
		return c.Path(c.SigningKey)
	}
	return filepath.Join(filepath.Dir(c.Path(c.SecretFile)), "signing.ed25519")
}

// StateDBPath is the resolved StateDB.
func (c *Config) StateDBPath() string {
	if c.StateDB != "" {
		return c.Path(c.StateDB)
	}
	return filepath.Join(filepath.Dir(c.Path(c.SecretFile)), "node.db")
}

// KeysPath is the resolved KeysDir.
func (c *Config) KeysPath() string {
	if c.KeysDir != "" {
		return c.Path(c.KeysDir)
	}
	return filepath.Join(filepath.Dir(c.Path(c.SecretFile)), "keys")
}

// TLSConfig is the node's server TLS (nil without a tls section).
func (c *Config) TLSConfig() (*tls.Config, error) {
	if c.TLS == nil {
		return nil, nil
	}
	return pki.NodeServerConfig(pki.Files{CA: c.Path(c.TLS.CA), Cert: c.Path(c.TLS.Cert), Key: c.Path(c.TLS.Key)})
}

// FSPath resolves p against the config's folder inside an fs.FS.
func (c *Config) FSPath(p string) string { return path.Clean(path.Join(c.dir, p)) }

// Path resolves p against the config file's folder.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

// Validate checks the configuration for consistency.
func (c *Config) Validate() error {
	if !policy.ValidColumnName(c.Department) {
		return fmt.Errorf("department %q is not a simple name", c.Department)
	}
	if c.Listen == "" {
		return errors.New("listen address is required")
	}
	if c.SecretFile == "" || c.AuditLog == "" {
		return errors.New("secret_file and audit_log are required")
	}
	if h, err := hex.DecodeString(c.CoordinatorTokenSHA256); err != nil || len(h) != 32 {
		return errors.New("coordinator_token_sha256 must be 64 hex characters")
	}
	if _, err := c.Trust(); err != nil {
		return err
	}
	if c.ListRunRecords < 0 {
		return errors.New("list_run_records must not be negative")
	}
	seen := map[string]bool{}
	for i := range c.Datasets {
		d := &c.Datasets[i]
		if err := d.Dataset.Validate(); err != nil {
			return err
		}
		if d.Department() != c.Department {
			return fmt.Errorf("dataset %s does not belong to department %s", d.Name, c.Department)
		}
		if seen[d.Name] {
			return fmt.Errorf("dataset %s declared twice", d.Name)
		}
		seen[d.Name] = true
		switch {
		case d.File == "" && d.Source == nil:
			return fmt.Errorf("dataset %s: file is required (or a source: section)", d.Name)
		case d.File != "" && d.Source != nil:
			return fmt.Errorf("dataset %s: give file or source, not both", d.Name)
		}
		if err := d.SourceSpec().Validate(); err != nil {
			return fmt.Errorf("dataset %s: %w", d.Name, err)
		}
	}
	return nil
}

// LoadOrCreateSecret reads the node secret, creating a random one (mode
// 0600) if the file does not exist.
func LoadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		s := make([]byte, 32)
		if _, err := rand.Read(s); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("node: creating secret: %w", err)
		}
		defer f.Close()
		if _, err := f.WriteString(hex.EncodeToString(s) + "\n"); err != nil {
			return nil, fmt.Errorf("node: writing secret: %w", err)
		}
		return s, f.Sync()
	}
	if err != nil {
		return nil, fmt.Errorf("node: reading secret: %w", err)
	}
	s, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(s) < 32 {
		return nil, fmt.Errorf("node: secret file %s must hold at least 32 bytes in hex", path)
	}
	return s, nil
}
