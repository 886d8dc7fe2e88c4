package node_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/compute/source"
	"github.com/unseen-data/unseen/policy"
)

func listDirs(t *testing.T, cfg *node.Config) []string {
	t.Helper()
	d, err := filepath.Glob(filepath.Join(cfg.ListDir(), "*"))
	require.NoError(t, err)
	return d
}

// A prepared list lives on disk in the node's list folder, sorted in runs
// of the configured size: the same job prepared again (the same attempt,
// or a newer one) has the same length and digest, a newer attempt's list
// replaces the older one's files, job/finish removes them, and a restarted
// node removes what a dead one left.
func TestPrepareListOnDisk(t *testing.T) {
	rows := make([]int, 0, 300)
	for i := range 250 {
		rows = append(rows, i, i%7) // duplicates: 250 distinct
	}
	cfgs, _ := nodetest.Configs(t, map[string][]int{"hrss.benefits": rows}, nil)
	cfg := cfgs["hrss"]
	cfg.ListRunRecords = 16
	s, err := node.New(cfg, node.Options{Audit: &audit.MemLog{}})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	c, err := s.Authenticate(nodetest.Token, "test")
	require.NoError(t, err)
	ctx := context.Background()
	sp := policy.Spec{Type: policy.PSICardinality, Purpose: "p", Inputs: []policy.Input{{Dataset: "hrss.benefits", Key: "id_number"}, {Dataset: "housing.owners", Key: "id_number"}}}
	prep := func(job string, attempt int, spec policy.Spec) *nodeapi.PrepareResponse {
		t.Helper()
		r, err := s.Prepare(ctx, c, &nodeapi.PrepareRequest{Header: nodeapi.Header{Job: job, SpecHash: spec.Hash(), Step: nodeapi.StepPrepare, Attempt: attempt}, Spec: spec, Requester: alice, Parties: 2})
		require.NoError(t, err)
		return r
	}
	a := prep("j1", 1, sp)
	require.Equal(t, 250, a.Len)
	require.Len(t, a.ListDigest, 64)
	require.Len(t, listDirs(t, cfg), 1)
	again := prep("j1", 1, sp)
	require.Equal(t, a.ListDigest, again.ListDigest, "idempotent prepare")
	require.Len(t, listDirs(t, cfg), 1)
	first := listDirs(t, cfg)[0]
	b := prep("j1", 2, sp)
	require.Equal(t, a.ListDigest, b.ListDigest, "a newer attempt of the same job: the same list")
	require.Len(t, listDirs(t, cfg), 1)
	require.NotEqual(t, first, listDirs(t, cfg)[0], "the older attempt's files are gone")

	narrower := sp
	narrower.Inputs = []policy.Input{{Dataset: "hrss.benefits", Key: "id_number", Filter: "amount < 100"}, sp.Inputs[1]}
	n := prep("j2", 1, narrower)
	require.Equal(t, 100, n.Len)
	require.NotEqual(t, a.ListDigest, n.ListDigest)
	require.Len(t, listDirs(t, cfg), 2)

	// Positions are served from disk: chunks of the list, each position once.
	h := nodeapi.Header{Job: "j1", SpecHash: sp.Hash(), Step: nodeapi.StepOwn, Attempt: 2}
	own, err := s.Own(ctx, c, &nodeapi.OwnRequest{Header: h, Offset: 240, N: 10})
	require.NoError(t, err)
	require.NotEmpty(t, own.Elements)
	_, err = s.Own(ctx, c, &nodeapi.OwnRequest{Header: h, Offset: 245, N: 10})
	require.Error(t, err, "past the list's end")

	_, err = s.Finish(ctx, c, &nodeapi.FinishRequest{Header: nodeapi.Header{Job: "j1", SpecHash: sp.Hash(), Step: nodeapi.StepFinish, Attempt: 2}, Outcome: "released"})
	require.NoError(t, err)
	require.Len(t, listDirs(t, cfg), 1, "finish removes the job's list")

	require.NoError(t, s.Close())
	require.Empty(t, listDirs(t, cfg), "closing the node removes its lists")
	require.NoError(t, os.MkdirAll(filepath.Join(cfg.ListDir(), "list-stale"), 0o700))
	s2, err := node.New(cfg, node.Options{Audit: &audit.MemLog{}})
	require.NoError(t, err)
	defer s2.Close()
	require.Empty(t, listDirs(t, cfg), "a restarted node removes stale lists")
}

// `source: {kind: csv, file: …}` is what `file:` is shorthand for: the same
// rows, the path resolved against the config's folder alike.
func TestConfigSourceSection(t *testing.T) {
	csv := "id_number,district,amount\n"
	for i := range 12 {
		csv += nodetest.ID(i) + "," + nodetest.Districts[i%3] + ",1\n"
	}
	y := strings.Replace(configYAML("hrss", "hrss.benefits", ""), "    file: benefits.csv\n", "    source: {kind: csv, file: benefits.csv}\n", 1)
	p := writeNode(t, y, csv)
	cfg, err := node.LoadConfig(p)
	require.NoError(t, err)
	require.Equal(t, source.Spec{Kind: "csv", File: filepath.Join(filepath.Dir(p), "benefits.csv")}, cfg.ResolvedSource(&cfg.Datasets[0], false))
	s, err := node.New(cfg, node.Options{Audit: &audit.MemLog{}})
	require.NoError(t, err)
	defer s.Close()
	c, _ := s.Authenticate(nodetest.Token, "test")
	sp := policy.Spec{Type: policy.PSICardinality, Purpose: "p", Inputs: []policy.Input{{Dataset: "hrss.benefits", Key: "id_number", Filter: "district = '天河区'"}, {Dataset: "housing.owners", Key: "id_number"}}}
	r, err := s.Prepare(context.Background(), c, &nodeapi.PrepareRequest{Header: nodeapi.Header{Job: "j", SpecHash: sp.Hash(), Step: nodeapi.StepPrepare, Attempt: 1}, Spec: sp, Requester: alice, Parties: 2})
	require.NoError(t, err)
	require.Equal(t, 4, r.Len)

	// A database the node cannot reach fails its start, naming the dataset.
	y = strings.Replace(configYAML("hrss", "hrss.benefits", ""), "    file: benefits.csv\n", "    source: {kind: postgres, table: public.benefits, dsn_env: UNSEEN_TEST_NO_SUCH_DSN}\n", 1)
	cfg, err = node.LoadConfig(writeNode(t, y, csv))
	require.NoError(t, err)
	_, err = node.New(cfg, node.Options{Audit: &audit.MemLog{}})
	require.ErrorContains(t, err, "hrss.benefits")
	require.ErrorContains(t, err, "UNSEEN_TEST_NO_SUCH_DSN")
}
