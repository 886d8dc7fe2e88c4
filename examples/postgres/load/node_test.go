package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodehttp"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/compute/source/sourcetest"
	"github.com/unseen-data/unseen/policy"
)

const token = "examples-postgres-test-token"

// startNode runs the node of a configuration file over real HTTP, with its
// state (secret, ledger, audit log) in state, and returns its client.
func startNode(t *testing.T, config, state string) *nodeapi.Client {
	t.Helper()
	cfg, err := node.LoadConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(token))
	cfg.CoordinatorTokenSHA256 = hex.EncodeToString(sum[:])
	cfg.SecretFile = filepath.Join(state, "node.secret") // the same secret for both housing nodes
	cfg.AuditLog = filepath.Join(t.TempDir(), "audit.jsonl")
	cfg.StateDB = filepath.Join(t.TempDir(), "node.db")
	cfg.KeysDir = filepath.Join(t.TempDir(), "keys")
	cfg.ListRunRecords = 100 // several runs to merge, even for the example's rows
	s, err := node.New(cfg, node.Options{Audit: &audit.MemLog{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ts := httptest.NewServer(nodehttp.New(s, nodehttp.Options{}))
	t.Cleanup(ts.Close)
	return nodeapi.NewClient(cfg.Department, ts.URL, token)
}

// The housing node of examples/postgres/housing.yaml, reading the table
// the loader filled (in a schema of the test's own), answers a PSI job with
// hrss exactly as the CSV-backed housing node does: the same list (length
// and keyed digest, under the same secret), the same blinded chunks, the
// same matches.
func TestNodeOnPostgresAnswersAsCSV(t *testing.T) {
	db := sourcetest.Postgres(t)
	ctx := context.Background()
	if _, err := Load(ctx, db.DSN, db.Schema, exampleCSV); err != nil {
		t.Fatal(err)
	}
	// The example configuration names public.property_owners; the test's
	// copy of it names the test's schema, and nothing else changes.
	b, err := os.ReadFile("../housing.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b = []byte(replaceOnce(t, string(b), "table: public.property_owners", "table: "+db.Schema+".property_owners"))
	for _, rel := range []string{"../keys", "../state"} { // paths as seen from examples/postgres
		abs, err := filepath.Abs(filepath.Join("..", rel))
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.ReplaceAll(string(b), rel+"/", abs+"/"))
	}
	pgConfig := filepath.Join(dir, "housing.yaml")
	if err := os.WriteFile(pgConfig, b, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("UNSEEN_HOUSING_DSN", db.DSN)

	hrss := startNode(t, "../../nodes/hrss.yaml", t.TempDir())
	state := t.TempDir()
	housing := map[string]*nodeapi.Client{
		"csv":      startNode(t, "../../nodes/housing.yaml", state),
		"postgres": startNode(t, pgConfig, state),
	}
	type answer struct {
		lens    [2]int
		digest  string
		matches []int // positions of hrss's list found in housing's
	}
	got := map[string]answer{}
	for fi, f := range []string{"", "district = '天河区' OR property_count >= 2"} {
		// One job, prepared at hrss twice (attempts 1 and 2: the same list
		// and positions) and once at each housing node: their lists are
		// keyed by the same secret, job and spec, so equal lists have
		// equal digests.
		job := fmt.Sprintf("pg-example-%d", fi)
		for attempt, kind := range []string{"csv", "postgres"} {
			h := housing[kind]
			spec := policy.Spec{Type: policy.PSICardinality, Purpose: "example on PostgreSQL",
				Inputs: []policy.Input{{Dataset: "hrss.unemployment_benefits", Key: "id_number"}, {Dataset: "housing.property_owners", Key: "id_number", Filter: f}}}
			req := policy.Requester{User: "alice", Department: "hrss"}
			clients := []*nodeapi.Client{hrss, h}
			parties := make([]*nodeapi.Party, 2)
			lengths := make([]nodeapi.SignedLength, 2)
			var a answer
			for i, cl := range clients {
				hd := nodeapi.Header{Job: job, SpecHash: spec.Hash(), Attempt: attempt + 1, Party: i}
				resp, err := cl.Prepare(ctx, &nodeapi.PrepareRequest{Header: hd, Spec: spec, Requester: req, Input: i, Parties: 2})
				if err != nil {
					t.Fatalf("%s node, filter %q: %v", kind, f, err)
				}
				lengths[i] = resp.Length
				parties[i] = &nodeapi.Party{Client: cl, Header: hd, N: resp.Len, Lengths: lengths}
				a.lens[i] = resp.Len
				if i == 1 {
					a.digest = resp.ListDigest
				}
			}
			// Two parties: each list is blinded by its owner, then by the
			// other (psi.Run's route), and the fully blinded lists joined.
			full := make([]map[[32]byte]int, 2)
			for i := range 2 {
				full[i] = map[[32]byte]int{}
				for off := 0; off < parties[i].N; off += nodeapi.MaxChunk {
					n := min(nodeapi.MaxChunk, parties[i].N-off)
					own, err := parties[i].Own(ctx, off, n)
					if err != nil {
						t.Fatal(err)
					}
					out, err := parties[1-i].Reblind(ctx, i, off, own)
					if err != nil {
						t.Fatal(err)
					}
					for p, e := range out.Elements {
						full[i][e] = off + p
					}
				}
			}
			for e, p := range full[0] {
				if _, ok := full[1][e]; ok {
					a.matches = append(a.matches, p)
				}
			}
			slices.Sort(a.matches)
			got[kind] = a
		}
		c, p := got["csv"], got["postgres"]
		if c.lens != p.lens || c.digest == "" || c.digest != p.digest || !slices.Equal(c.matches, p.matches) || len(c.matches) == 0 {
			t.Errorf("filter %q: CSV node: lengths %v, digest %.12s, %d matches; PostgreSQL node: lengths %v, digest %.12s, %d matches",
				f, c.lens, c.digest, len(c.matches), p.lens, p.digest, len(p.matches))
		}
	}
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("%q is not in the example configuration", old)
	}
	return strings.ReplaceAll(s, old, new)
}
