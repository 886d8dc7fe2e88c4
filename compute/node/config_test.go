package node_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// configYAML is a valid node config with one dataset read from
// benefits.csv (a path relative to the config file). extra is appended to
// the dataset's declaration.
func configYAML(dept, dataset, extra string) string {
	sum := sha256.Sum256([]byte(nodetest.Token))
	return fmt.Sprintf(`department: %s
title: Human resources and social security
listen: 127.0.0.1:0
secret_file: node.secret
audit_log: audit/node.log
coordinator_token_sha256: %s
signing_key: node.ed25519
federation:
  coordinator: %s
  nodes:
    %s: %s
  reviewers:
    rita: %s
datasets:
  - name: %s
    classification: important
    sharing: open
    min_count: 1
    job_types: [psi_cardinality, psi_members]
    columns:
      - {name: id_number, kind: id, pii: true, uses: [key]}
      - {name: district, kind: string, uses: [filter, group_by]}
      - {name: amount, kind: int, uses: [value, filter]}
    file: benefits.csv
%s`, dept, hex.EncodeToString(sum[:]), nodetest.PublicKey("coordinator"), dept, nodetest.PublicKey("node-"+dept), nodetest.PublicKey(nodetest.Reviewer), dataset, extra)
}

// writeNode writes a config, its CSV and hrss's test signing key into a
// fresh folder and returns the config's path.
func writeNode(t *testing.T, yaml, csv string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "benefits.csv"), []byte(csv), 0o600))
	require.NoError(t, attest.WritePrivateKeyFile(filepath.Join(dir, "node.ed25519"), nodetest.PrivateKey("node-hrss")))
	p := filepath.Join(dir, "node.yaml")
	require.NoError(t, os.WriteFile(p, []byte(yaml), 0o600))
	return p
}

// badCheckDigit returns id with a wrong last character.
func badCheckDigit(id string) string {
	const digits = "0123456789X"
	i := strings.IndexByte(digits, id[17])
	return id[:17] + string(digits[(i+1)%len(digits)])
}

func TestConfigMalformedCSVRow(t *testing.T) {
	csv := "id_number,district,amount\n" + // line 1
		nodetest.ID(1) + ",天河区,100\n" + // line 2
		nodetest.ID(2) + ",天河区,lots\n" + // line 3: amount is not an integer
		nodetest.ID(3) + ",越秀区,300\n" + // line 4
		nodetest.ID(4) + ",越秀区\n" // line 5: a field short
	p := writeNode(t, configYAML("hrss", "hrss.benefits", ""), csv)
	cfg, err := node.LoadConfig(p)
	require.NoError(t, err, "the config itself is fine")
	_, err = node.New(cfg, node.Options{Audit: &audit.MemLog{}})
	require.Error(t, err)
	msg := err.Error()
	require.Contains(t, msg, "hrss.benefits")
	require.Contains(t, msg, "line 3")
	require.Contains(t, msg, "amount")
	require.Contains(t, msg, "line 5")
	require.NotContains(t, msg, "line 2")
	require.NotContains(t, msg, "line 4")
	for i := 1; i <= 4; i++ {
		require.NotContains(t, msg, nodetest.ID(i), "an ID number appeared in an error")
	}
}

func TestConfigInvalidIDsCounted(t *testing.T) {
	var b strings.Builder
	b.WriteString("id_number,district,amount\n")
	for i := range 10 {
		id := nodetest.ID(i)
		switch i {
		case 2, 5:
			id = badCheckDigit(id)
		case 7:
			id = ""
		}
		fmt.Fprintf(&b, "%s,%s,%d\n", id, nodetest.Districts[i%3], i)
	}
	p := writeNode(t, configYAML("hrss", "hrss.benefits", ""), b.String())
	cfg, err := node.LoadConfig(p)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(filepath.Dir(p), "benefits.csv"), cfg.Path(cfg.Datasets[0].File), "relative paths resolve against the config's folder")

	tbl, err := node.LoadTable(&cfg.Datasets[0], cfg.Path(cfg.Datasets[0].File), nil)
	require.NoError(t, err)
	require.Equal(t, 3, tbl.InvalidIDs())
	require.Equal(t, 7, tbl.Len())
	var lines []int64
	for _, e := range tbl.Report().InvalidIDExamples {
		lines = append(lines, e.Pos.Line)
	}
	require.Equal(t, []int64{4, 7, 9}, lines)

	// Through a running node with its own file audit log.
	s, err := node.New(cfg, node.Options{})
	require.NoError(t, err)
	c, err := s.Authenticate(nodetest.Token, "test")
	require.NoError(t, err)
	sp := policy.Spec{Type: policy.PSICardinality, Purpose: "p", Inputs: []policy.Input{{Dataset: "hrss.benefits", Key: "id_number"}, {Dataset: "housing.owners", Key: "id_number"}}}
	resp, err := s.Prepare(context.Background(), c, &nodeapi.PrepareRequest{Header: nodeapi.Header{Job: "j1", SpecHash: sp.Hash(), Step: nodeapi.StepPrepare, Attempt: 1}, Spec: sp, Requester: alice, Parties: 2})
	require.NoError(t, err)
	require.Equal(t, 7, resp.Len)
	require.Equal(t, 3, resp.InvalidIDs)
	require.Equal(t, nodeapi.SignedLength{List: 0, Len: 7, Signature: resp.Length.Signature}, resp.Length)

	n, err := audit.VerifyFile(cfg.Path(cfg.AuditLog))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = os.Stat(cfg.Path(cfg.SecretFile))
	require.NoError(t, err, "the node secret was created next to the config")
}

func TestConfigRejected(t *testing.T) {
	valid := configYAML("hrss", "hrss.benefits", "")
	for _, c := range []struct {
		name string
		yaml string
		want string
	}{
		{"unknown top-level key", strings.Replace(valid, "listen:", "listen_addr: x\nlisten:", 1), "listen_addr"},
		{"misspelt policy field", strings.Replace(valid, "    sharing: open", "    sharing: open\n    departmets: [tax]", 1), "departmets"},
		{"misspelt column field", strings.Replace(valid, "{name: amount, kind: int,", "{name: amount, knd: int,", 1), "knd"},
		{"dataset of another department", configYAML("hrss", "housing.owners", ""), "does not belong"},
		{"invalid policy", strings.Replace(valid, "sharing: open", "sharing: sometimes", 1), "sharing"},
		{"no file", strings.Replace(valid, "    file: benefits.csv\n", "", 1), "file is required"},
		{"file and source", strings.Replace(valid, "    file: benefits.csv\n", "    file: benefits.csv\n    source: {kind: csv, file: benefits.csv}\n", 1), "not both"},
		{"source of an unknown kind", strings.Replace(valid, "    file: benefits.csv\n", "    source: {kind: oracle, table: x}\n", 1), "oracle"},
		{"database source with its DSN inline", strings.Replace(valid, "    file: benefits.csv\n", "    source: {kind: postgres, table: public.x, dsn: postgres://u:p@h/db}\n", 1), "dsn"},
		{"database source without a DSN", strings.Replace(valid, "    file: benefits.csv\n", "    source: {kind: postgres, table: public.x}\n", 1), "dsn_env"},
		{"bad token hash", strings.Replace(valid, "coordinator_token_sha256: ", "coordinator_token_sha256: 00", 1), "coordinator_token_sha256"},
		{"dataset twice", valid + strings.SplitN(valid, "datasets:\n", 2)[1], "declared twice"},
		{"federation without this node", strings.Replace(valid, "    hrss: ed25519:", "    tax: ed25519:", 1), "federation.nodes must list this node"},
		{"reviewer key not a key", strings.Replace(valid, "    rita: ed25519:", "    rita: ed25519:AAAA", 1), "federation.reviewers.rita"},
		{"owner key not a key", strings.Replace(valid, "datasets:\n", "owners:\n  cora: not-a-key\ndatasets:\n", 1), "owners.cora"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := writeNode(t, c.yaml, "id_number,district,amount\n")
			_, err := node.LoadConfig(p)
			require.Error(t, err)
			require.Contains(t, err.Error(), c.want)
		})
	}
	// The base config is valid, so each failure above is its own change's.
	_, err := node.LoadConfig(writeNode(t, valid, "id_number,district,amount\n"))
	require.NoError(t, err)
}

// A node whose signing key is not the one its own federation section names
// for it does not start: its peers would refuse everything it signs.
func TestConfigSigningKeyMismatch(t *testing.T) {
	p := writeNode(t, configYAML("hrss", "hrss.benefits", ""), "id_number,district,amount\n")
	require.NoError(t, os.Remove(filepath.Join(filepath.Dir(p), "node.ed25519")))
	require.NoError(t, attest.WritePrivateKeyFile(filepath.Join(filepath.Dir(p), "node.ed25519"), nodetest.PrivateKey("node-housing")))
	cfg, err := node.LoadConfig(p)
	require.NoError(t, err)
	_, err = node.New(cfg, node.Options{Audit: &audit.MemLog{}})
	require.ErrorContains(t, err, "federation.nodes.hrss")
}

// The example deployment's node configs load, each names its own signing
// key file's public half for itself, all four believe the same federation,
// and the owners' keys are the example owners' key files.
func TestExampleConfigs(t *testing.T) {
	depts := []string{"hrss", "housing", "civil", "market"}
	keyDir := filepath.Join("..", "..", "examples", "keys")
	pub := func(name string) string {
		t.Helper()
		priv, err := attest.ReadPrivateKeyFile(filepath.Join(keyDir, name+".ed25519"))
		require.NoError(t, err)
		return attest.FormatPublicKey(priv.Public().(ed25519.PublicKey))
	}
	var first *node.Config
	for _, dept := range depts {
		cfg, err := node.LoadConfig(filepath.Join("..", "..", "examples", "nodes", dept+".yaml"))
		require.NoError(t, err, dept)
		priv, err := attest.ReadPrivateKeyFile(cfg.SigningKeyPath())
		require.NoError(t, err, dept)
		require.Equal(t, attest.FormatPublicKey(priv.Public().(ed25519.PublicKey)), cfg.Federation.Nodes[dept], "%s's own key", dept)
		require.Len(t, cfg.Federation.Nodes, len(depts))
		for _, d := range depts {
			require.Equal(t, pub("node-"+d), cfg.Federation.Nodes[d], "%s's key for %s", dept, d)
		}
		require.Equal(t, pub("coordinator"), cfg.Federation.Coordinator)
		require.Equal(t, map[string]string{"rita": pub("rita")}, cfg.Federation.Reviewers)
		if first != nil {
			require.Equal(t, first.Federation, cfg.Federation, "%s believes another federation", dept)
		}
		first = cfg
		want := map[string]string{"civil": "cora", "housing": "hou"}[dept]
		if want == "" {
			require.Empty(t, cfg.Owners, dept)
			continue
		}
		require.Equal(t, map[string]string{want: pub(want)}, cfg.Owners, dept)
	}
}
