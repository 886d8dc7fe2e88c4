package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/api"
	"github.com/unseen-data/unseen/api/client"
	"github.com/unseen-data/unseen/compute/pki"
	"github.com/unseen-data/unseen/coordinator"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/boltstore"
	"github.com/unseen-data/unseen/policy/attest"
)

// The people-facing API over HTTPS with api_tls (a certificate from the
// federation CA, as `unseen pki issue coordinator` makes): a client that
// trusts the CA gets through; one that does not, or one speaking plain
// HTTP, or TLS 1.1, gets nothing — and changes nothing.
func TestAPIServesTLS(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "pki")
	require.NoError(t, pki.Init(caDir, "test CA", time.Hour))
	require.NoError(t, pki.Issue(caDir, pki.CoordinatorURI, []string{"127.0.0.1"}, time.Hour, filepath.Join(caDir, "coordinator")))
	caFile := filepath.Join(caDir, pki.CACertFile)

	_, key, err := attest.GenerateKey()
	require.NoError(t, err)
	const token = "tls-analyst-token"
	cfg := &coordinator.Config{
		Workers: 1, HEState: filepath.Join(dir, "he.json"), SigningKeyPriv: key,
		APITLS: &coordinator.APITLS{Cert: filepath.Join(caDir, "coordinator.crt"), Key: filepath.Join(caDir, "coordinator.key")},
		Nodes:  []coordinator.NodeRef{{Department: "a", URL: "http://127.0.0.1:1", Token: "t"}},
		Users:  []api.User{{Name: "alice", Role: api.RoleAnalyst, Department: "a", TokenSHA256: api.HashToken(token)}},
	}
	store, err := boltstore.Open(filepath.Join(dir, "unseen.db"), boltstore.Options{})
	require.NoError(t, err)
	defer store.Close()
	ctx, cancel := context.WithCancel(t.Context())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	base, _, wait, err := serveCoordinator(ctx, cfg, store, log, 64)
	require.NoError(t, err)
	defer func() { cancel(); wait() }()
	require.True(t, strings.HasPrefix(base, "https://"), base)

	// Trusting the CA: through.
	c := client.New(base, token)
	require.NoError(t, c.TrustCAFile(caFile))
	js, err := c.Jobs(ctx, "")
	require.NoError(t, err)
	require.Empty(t, js)

	// The system roots do not know the federation CA.
	_, err = client.New(base, token).Jobs(ctx, "")
	require.Error(t, err)
	require.Contains(t, err.Error(), "certificate")

	// Plain HTTP to the TLS port: refused before any handler runs, so the
	// token never reaches the API and nothing is submitted.
	plain := client.New(strings.Replace(base, "https://", "http://", 1), token)
	_, err = plain.Submit(ctx, []byte(`{"type":"psi_cardinality","purpose":"p","inputs":[]}`), "")
	require.Error(t, err)
	var ce *client.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, http.StatusBadRequest, ce.Status)
	require.Contains(t, ce.Message, "HTTPS")
	all, err := store.List(ctx, jobs.ListFilter{})
	require.NoError(t, err)
	require.Empty(t, all)
	es, err := store.Audit().All(ctx)
	require.NoError(t, err)
	require.Empty(t, es, "a plain-HTTP request left a trace in the audit log")

	// TLS 1.1 is refused.
	old := client.New(base, token)
	require.NoError(t, old.TrustCAFile(caFile))
	tr := old.HTTP.Transport.(*http.Transport)
	tr.TLSClientConfig.MinVersion, tr.TLSClientConfig.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	_, err = old.Jobs(ctx, "")
	require.Error(t, err)

	// The CLI trusts the CA given with --ca (or UNSEEN_CA).
	t.Setenv("UNSEEN_URL", base)
	t.Setenv("UNSEEN_TOKEN", token)
	t.Setenv("UNSEEN_CA", "")
	out, _, err := runCLI(t, "--ca", caFile, "list")
	require.NoError(t, err, out)
	require.Contains(t, out, "PURPOSE")
	_, _, err = runCLI(t, "list")
	require.Error(t, err)
	t.Setenv("UNSEEN_CA", caFile)
	_, _, err = runCLI(t, "list")
	require.NoError(t, err)
}
