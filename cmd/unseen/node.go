package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodehttp"
	"github.com/unseen-data/unseen/policy/attest"
)

func nodeCmd() *cobra.Command {
	var cfgPath, listen, pprofAddr string
	cmd := &cobra.Command{
		Use:   "node --config FILE [--listen ADDR] [--pprof ADDR]",
		Short: "Run a department's node: serve its datasets to the protocol, never its records",
		Long: `Runs a department's node on --listen (or the config's listen). The
coordinator must know where: its config's nodes, or its --node DEPT=URL.`,
		Example: `  unseen node --config examples/nodes/hrss.yaml
  unseen node --config examples/nodes/hrss.yaml --listen 127.0.0.1:17101`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := node.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			if listen != "" {
				cfg.Listen = listen
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			s, err := node.New(cfg, node.Options{Logger: log})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return err
			}
			tlsCfg, err := cfg.TLSConfig()
			if err != nil {
				return err
			}
			if pprofAddr != "" {
				stop, err := servePprof(pprofAddr, log)
				if err != nil {
					return err
				}
				defer stop()
			}
			h := nodehttp.New(s, nodehttp.Options{Logger: log})
			ln = h.Listener(ln) // counts the bytes on the wire, under TLS
			mode := "plain HTTP (no tls section: for a local trial only)"
			if tlsCfg != nil {
				ln = tls.NewListener(ln, tlsCfg)
				mode = "mutual TLS (only the coordinator's certificate is accepted)"
			}
			srv := h.Server(cfg.Listen)
			log.Info("node listening", "department", cfg.Department, "addr", ln.Addr().String(), "transport", mode)
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			select {
			case <-cmd.Context().Done():
			case err := <-errc:
				if !errors.Is(err, http.ErrServerClosed) {
					return err
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return srv.Shutdown(ctx)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "node configuration file (e.g. examples/nodes/hrss.yaml)")
	cmd.Flags().StringVar(&listen, "listen", "", "listen address, host:port (overrides the config's listen)")
	cmd.Flags().StringVar(&pprofAddr, "pprof", "", "serve Go's profiler (/debug/pprof/) on this address, loopback unless a host is given (off by default)")
	var idCfg string
	identity := &cobra.Command{
		Use:   "identity --config FILE",
		Short: "Print a node's public signing key (for every node's federation.nodes), making the key if there is none",
		Long: `Reads only the configuration's signing_key and secret_file (so it works on
a configuration whose federation section does not list this node yet), and
prints the public half of the node's signing key, making the key (0600) where
the node would on first start if there is none.`,
		Example: "  unseen node identity --config examples/nodes/hrss.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := nodeSigningKeyPath(idCfg)
			if err != nil {
				return err
			}
			priv, err := attest.LoadOrCreatePrivateKeyFile(path)
			if err != nil {
				return err
			}
			pub := priv.Public().(ed25519.PublicKey)
			fmt.Fprintf(cmd.ErrOrStderr(), "node signing key %s (fingerprint %s); list it under federation.nodes in every node's configuration:\n", path, attest.Fingerprint(pub))
			fmt.Fprintln(cmd.OutOrStdout(), attest.FormatPublicKey(pub))
			return nil
		},
	}
	identity.Flags().StringVar(&idCfg, "config", "", "node configuration file")
	_ = identity.MarkFlagRequired("config")
	cmd.AddCommand(identity)
	return cmd
}

// nodeSigningKeyPath is where a node's configuration puts its signing key
// (node.Config.SigningKeyPath), read without validating the rest.
func nodeSigningKeyPath(cfgPath string) (string, error) {
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		return "", err
	}
	var c struct {
		Department string `yaml:"department"`
		SecretFile string `yaml:"secret_file"`
		SigningKey string `yaml:"signing_key"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return "", fmt.Errorf("%s: %w", cfgPath, err)
	}
	resolve := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(filepath.Dir(cfgPath), p)
	}
	switch {
	case c.SigningKey != "":
		return resolve(c.SigningKey), nil
	case c.SecretFile != "":
		// As node.Config.SigningKeyPath: beside the secret file.
		return filepath.Join(filepath.Dir(resolve(c.SecretFile)), "signing.ed25519"), nil
	}
	return "", fmt.Errorf("%s: neither signing_key nor secret_file is set", cfgPath)
}
