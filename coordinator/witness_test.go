package coordinator

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/boltstore"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// The coordinator makes its signing key on first start where the config
// says (default beside it), keeps it after, and signs its log's head.
func TestSigningKeyAndSignedHead(t *testing.T) {
	c := writeConfig(t, "")
	require.NoError(t, c.Validate())
	want := filepath.Join(c.dir, "state", "coordinator", "signing.ed25519")
	require.Equal(t, want, c.SigningKeyPath())
	c.HEState = filepath.Join(t.TempDir(), "he.json")
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "unseen.db"), boltstore.Options{})
	require.NoError(t, err)
	defer st.Close()
	co, err := New(c, st, nil)
	require.NoError(t, err)
	info, err := os.Stat(want)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	again, err := LoadSigningKey(c)
	require.NoError(t, err)
	require.True(t, co.PublicKey().Equal(again.Public()))

	_, err = st.Audit().Append(t.Context(), audit.Entry{Time: time.Now(), Actor: "x", Action: "test"})
	require.NoError(t, err)
	h, err := co.SignedHead(t.Context())
	require.NoError(t, err)
	require.Equal(t, audit.CoordinatorLog, h.Log)
	require.Equal(t, uint64(1), h.Seq)
	require.NoError(t, h.Verify(co.PublicKey()))

	c2 := writeConfig(t, "signing_key: keys/mine.ed25519\n")
	require.Equal(t, filepath.Join(c2.dir, "keys", "mine.ed25519"), c2.SigningKeyPath())
}

func TestConfigRefusesBadTrustSettings(t *testing.T) {
	for name, body := range map[string]string{
		"bad reviewer key":     "users: [{name: r, role: reviewer, token_sha256: " + strings.Repeat("0", 64) + ", signing_key: \"ed25519:AAAA\"}]\n",
		"analyst signing key":  "users: [{name: a, role: analyst, token_sha256: " + strings.Repeat("0", 64) + ", signing_key: \"" + nodetest.PublicKey("a") + "\"}]\n",
		"api_tls without key":  "api_tls: {cert: c.pem}\n",
		"api_tls without cert": "api_tls: {key: k.pem}\n",
	} {
		t.Run(name, func(t *testing.T) {
			require.Error(t, writeConfig(t, body).Validate())
		})
	}
	c := writeConfig(t, "api_tls: {cert: missing.pem, key: missing.key}\n")
	require.NoError(t, c.Validate())
	_, err := c.APITLSConfig()
	require.Error(t, err, "a missing certificate is an error at start, not at the first request")
}

// Telling the nodes how a job ended exchanges signed heads: each node keeps
// the coordinator's, and the coordinator records each node's in one entry.
func TestOutcomeWitnessed(t *testing.T) {
	fed := nodetest.Start(t, map[string][]int{"hrss.benefits": rng(0, 30), "housing.owners": rng(10, 40)}, nil)
	cfg := &Config{Listen: "127.0.0.1:0", HEState: filepath.Join(t.TempDir(), "he.json"), SigningKeyPriv: nodetest.PrivateKey("coordinator")}
	for dept, cl := range fed.Clients {
		cfg.Nodes = append(cfg.Nodes, NodeRef{Department: dept, URL: cl.BaseURL, Token: nodetest.Token})
	}
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "unseen.db"), boltstore.Options{})
	require.NoError(t, err)
	defer st.Close()
	co, err := New(cfg, st, nil)
	require.NoError(t, err)
	spec := policy.Spec{Type: policy.PSICardinality, Purpose: "eligibility check", Inputs: []policy.Input{{Dataset: "hrss.benefits", Key: "id_number"}, {Dataset: "housing.owners", Key: "id_number"}}}
	j, _, err := st.Create(t.Context(), &jobs.Job{Spec: spec, Owner: "alice", Department: "hrss", State: jobs.Queued}, "")
	require.NoError(t, err)
	j.State, j.Attempt, j.Reviewer = jobs.Released, 1, "rita"
	co.OnDecision(j)
	co.WaitOutcomes()

	coordLog, err := st.Audit().All(t.Context())
	require.NoError(t, err)
	last := coordLog[len(coordLog)-1]
	require.Equal(t, "job.outcome.witnessed", last.Action)
	require.Equal(t, j.ID, last.Job)
	for dept, a := range fed.Audits {
		nodeLog, err := a.All(context.Background())
		require.NoError(t, err)
		heads, err := audit.WitnessedHeads(coordLog, dept)
		require.NoError(t, err)
		require.Len(t, heads, 1, dept)
		k, _ := attest.ParsePublicKey(nodetest.PublicKey("node-" + dept))
		_, err = audit.CheckWitnessed(nodeLog, heads, k)
		require.NoError(t, err)
		require.Equal(t, "job.released", nodeLog[heads[0].Head.Seq-1].Action)
		back, err := audit.WitnessedHeads(nodeLog, audit.CoordinatorLog)
		require.NoError(t, err)
		require.Len(t, back, 1)
		_, err = audit.CheckWitnessed(coordLog, back, cfg.SigningKeyPriv.Public().(ed25519.PublicKey))
		require.NoError(t, err)
	}
}

func rng(lo, hi int) []int {
	out := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}
