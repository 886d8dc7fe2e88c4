package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/coordinator"
)

// The example coordinator's people and its own signing key are the example
// key files' public halves (what the demo signs with, and what the example
// nodes believe).
func TestExampleCoordinatorKeys(t *testing.T) {
	cfg, err := coordinator.LoadConfig(filepath.Join("..", "..", "examples", "coordinator.yaml"))
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	signers := 0
	for _, u := range cfg.Users {
		if !u.Role.Signs() {
			require.Empty(t, u.SigningKey, u.Name)
			continue
		}
		k, err := exampleKey(u.Name)
		require.NoError(t, err, "no example key for %s", u.Name)
		require.Equal(t, publicOf(k), u.SigningKey, "%s's signing_key is not the public half of examples/keys/%s.ed25519", u.Name, u.Name)
		signers++
	}
	require.Equal(t, 3, signers, "rita, cora and hou sign")
	require.Equal(t, filepath.Join(filepath.Dir(cfg.Store), "..", "..", "keys", "coordinator.ed25519"), cfg.SigningKeyPath())
	priv, err := coordinator.LoadSigningKey(cfg)
	require.NoError(t, err)
	want, err := exampleKey("coordinator")
	require.NoError(t, err)
	require.True(t, want.Equal(priv))
}
