package pki

import (
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func issueAll(t *testing.T) (dir string) {
	dir = t.TempDir()
	require.NoError(t, Init(dir, "test CA", time.Hour))
	require.Error(t, Init(dir, "again", time.Hour), "never overwrite a CA")
	require.NoError(t, Issue(dir, CoordinatorURI, []string{"127.0.0.1"}, time.Hour, filepath.Join(dir, "coordinator")))
	for _, d := range []string{"hrss", "housing"} {
		require.NoError(t, Issue(dir, NodeURI(d), []string{"127.0.0.1"}, time.Hour, filepath.Join(dir, "node-"+d)))
	}
	for _, k := range []string{CAKeyFile, "coordinator.key", "node-hrss.key"} {
		info, err := os.Stat(filepath.Join(dir, k))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), k)
	}
	return dir
}

func files(dir, name string) Files {
	return Files{CA: filepath.Join(dir, CACertFile), Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")}
}

// node starts a TLS server as department dept's node.
func node(t *testing.T, dir, name string) *httptest.Server {
	cfg, err := NodeServerConfig(files(dir, name))
	require.NoError(t, err)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	s.TLS = cfg
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func client(t *testing.T, f Files, dept string) *http.Client {
	cfg, err := CoordinatorClientConfig(f, dept)
	require.NoError(t, err)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func TestMutualTLS(t *testing.T) {
	dir := issueAll(t)
	hrss := node(t, dir, "node-hrss")

	// The coordinator reaches the node it expects.
	resp, err := client(t, files(dir, "coordinator"), "hrss").Get(hrss.URL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)

	// A node whose certificate names another department is refused by the
	// coordinator (a housing node answering at hrss's address).
	housing := node(t, dir, "node-housing")
	_, err = client(t, files(dir, "coordinator"), "hrss").Get(housing.URL)
	require.ErrorIs(t, err, ErrIdentity)

	// A node accepts nobody but the coordinator: another node's certificate
	// is refused, and so is no certificate at all.
	_, err = client(t, files(dir, "node-housing"), "hrss").Get(hrss.URL)
	require.Error(t, err)
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	_, err = plain.Get(hrss.URL)
	require.Error(t, err)

	// A certificate from another CA is refused.
	other := issueAll(t)
	_, err = client(t, files(other, "coordinator"), "hrss").Get(hrss.URL)
	require.Error(t, err)
	require.False(t, errors.Is(err, ErrIdentity))
}

func TestIssueRefusesBadIdentity(t *testing.T) {
	dir := issueAll(t)
	require.Error(t, Issue(dir, "https://example", nil, time.Hour, filepath.Join(dir, "x")))
	require.Error(t, Issue(t.TempDir(), CoordinatorURI, nil, time.Hour, filepath.Join(dir, "y")), "no CA there")
}
