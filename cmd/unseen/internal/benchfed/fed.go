package benchfed

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/source"
	"github.com/unseen-data/unseen/coordinator"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// Options say what federation to lay out.
type Options struct {
	Dir     string // everything goes here
	Parties int
	N       int    // list length per party
	Source  string // csv or postgres
	// PostgresDSN is where the postgres source's tables go (one per party,
	// schema unseen_bench); the nodes read it from DSNEnv.
	PostgresDSN string
	Redis       string // the coordinator's store, if set
	Pprof       bool   // serve pprof on a loopback port at every child
}

// DSNEnv is the environment variable the nodes read their DSN from.
const DSNEnv = "UNSEEN_BENCH_DSN"

// Node is one department's node as laid out.
type Node struct {
	Department string
	Config     string // file
	Listen     string // host:port
	Pprof      string // host:port, if any
	Dataset    string
}

// Federation is what Layout wrote.
type Federation struct {
	Nodes       []Node
	Coordinator string // config file
	API         string // host:port
	Pprof       string // the coordinator's pprof host:port, if any
	Analyst     string // token (department d0)
	Reviewer    string // token
	Spec        policy.Spec
}

func token() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func hashToken(t string) string { s := sha256.Sum256([]byte(t)); return hex.EncodeToString(s[:]) }

// freePort returns a loopback address no one listens on now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Layout writes the departments' data (streamed), keys and the node and
// coordinator configurations, and returns the federation and the
// psi_cardinality spec over every party's dataset.
func Layout(ctx context.Context, o Options) (*Federation, error) {
	f := &Federation{Analyst: token(), Reviewer: token(), Spec: policy.Spec{Type: policy.PSICardinality, Purpose: "benchmark"}}
	coordKey := filepath.Join(o.Dir, "coordinator", "signing.ed25519")
	if err := os.MkdirAll(filepath.Dir(coordKey), 0o700); err != nil {
		return nil, err
	}
	cpriv, err := attest.LoadOrCreatePrivateKeyFile(coordKey)
	if err != nil {
		return nil, err
	}
	fed := node.Federation{Coordinator: attest.FormatPublicKey(cpriv.Public().(ed25519.PublicKey)), Nodes: map[string]string{}}
	coordToken := token()
	cc := coordinator.Config{Store: filepath.Join(o.Dir, "coordinator", "unseen.db"), HEState: filepath.Join(o.Dir, "coordinator", "he.json"),
		SigningKey: coordKey, Workers: 1, Redis: o.Redis,
		Users: []policy.User{{Name: "analyst", Role: policy.RoleAnalyst, Department: "d0", TokenSHA256: hashToken(f.Analyst)},
			{Name: "reviewer", Role: policy.RoleReviewer, Department: "d0", TokenSHA256: hashToken(f.Reviewer)}}}
	if o.Redis != "" {
		cc.RedisPrefix = "unseenbench" + token()[:8] // a fresh namespace per run
	}
	for p := range o.Parties {
		dept := fmt.Sprintf("d%d", p)
		dir := filepath.Join(o.Dir, dept)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		key := filepath.Join(dir, "signing.ed25519")
		priv, err := attest.LoadOrCreatePrivateKeyFile(key)
		if err != nil {
			return nil, err
		}
		fed.Nodes[dept] = attest.FormatPublicKey(priv.Public().(ed25519.PublicKey))
		listen, err := freePort()
		if err != nil {
			return nil, err
		}
		n := Node{Department: dept, Config: filepath.Join(dir, "node.yaml"), Listen: listen, Dataset: dept + ".ids"}
		if o.Pprof {
			if n.Pprof, err = freePort(); err != nil {
				return nil, err
			}
		}
		f.Nodes = append(f.Nodes, n)
		cc.Nodes = append(cc.Nodes, coordinator.NodeRef{Department: dept, URL: "http://" + listen, Token: coordToken})
		f.Spec.Inputs = append(f.Spec.Inputs, policy.Input{Dataset: n.Dataset, Key: "id_number"})
	}
	for p, n := range f.Nodes {
		dir := filepath.Dir(n.Config)
		nc := node.Config{Department: n.Department, Listen: n.Listen, SecretFile: filepath.Join(dir, "secret"), AuditLog: filepath.Join(dir, "audit.log"),
			StateDB: filepath.Join(dir, "node.db"), KeysDir: filepath.Join(dir, "keys"), SigningKey: filepath.Join(dir, "signing.ed25519"),
			CoordinatorTokenSHA256: hashToken(coordToken), Federation: fed}
		ds := policy.Dataset{Name: n.Dataset, Classification: "general", Sharing: "open", JobTypes: []policy.JobType{policy.PSICardinality},
			Columns: []policy.Column{{Name: "id_number", Kind: policy.KindID, Uses: []policy.Use{policy.UseKey}}}}
		entry, err := asMap(ds)
		if err != nil {
			return nil, err
		}
		switch o.Source {
		case "csv":
			file := filepath.Join(dir, "ids.csv")
			if err := WriteCSV(file, p, o.N); err != nil {
				return nil, err
			}
			entry["file"] = file
		case "postgres":
			table := fmt.Sprintf("unseen_bench.%s_ids", n.Department)
			if err := source.LoadPostgresIDs(ctx, o.PostgresDSN, table, "id_number", o.N, func(i int) string { return ID(Index(p, o.N, i)) }); err != nil {
				return nil, err
			}
			// The node's dataset source (source.Spec), read from dsn_env.
			entry["source"] = source.Spec{Kind: source.SpecPostgres, Table: table, DSNEnv: DSNEnv}
		default:
			return nil, fmt.Errorf("benchfed: source %q is not csv or postgres", o.Source)
		}
		doc, err := asMap(nc)
		if err != nil {
			return nil, err
		}
		doc["datasets"] = []map[string]any{entry}
		if err := writeYAML(n.Config, doc); err != nil {
			return nil, err
		}
	}
	api, err := freePort()
	if err != nil {
		return nil, err
	}
	f.API, cc.Listen = api, api
	if o.Pprof {
		if f.Pprof, err = freePort(); err != nil {
			return nil, err
		}
	}
	f.Coordinator = filepath.Join(o.Dir, "coordinator", "coordinator.yaml")
	return f, writeYAML(f.Coordinator, cc)
}

func asMap(v any) (map[string]any, error) {
	b, err := yaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	return m, yaml.Unmarshal(b, &m)
}

func writeYAML(path string, v any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
