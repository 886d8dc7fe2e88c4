package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/unseen-data/unseen/api"
	"github.com/unseen-data/unseen/coordinator"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy/attest"
)

func coordinatorCmd() *cobra.Command {
	var cfgPath, redisURL, listen string
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run the coordinator: the HTTP API and the workers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := coordinator.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			if redisURL != "" {
				cfg.Redis = redisURL
			}
			if listen != "" {
				cfg.Listen = listen
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			ctx := cmd.Context()
			store, err := coordinator.OpenStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer store.Close()
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return err
			}
			c, run, err := startCoordinator(cfg, store, log, ln)
			if err != nil {
				ln.Close()
				return err
			}
			log.Info("coordinator listening", "addr", ln.Addr().String(), "api", c.APIScheme(), "backend", cfg.Backend(),
				"signing_key", attest.FormatPublicKey(c.PublicKey()))
			return run(ctx)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "examples/coordinator.yaml", "coordinator configuration file")
	cmd.Flags().StringVar(&redisURL, "redis", "", "Redis URL (redis://host:port/db); empty: embedded backend")
	cmd.Flags().StringVar(&listen, "listen", "", "listen address (overrides the config)")
	var idCfg string
	identity := &cobra.Command{
		Use:   "identity --config FILE",
		Short: "Print the coordinator's public signing key (the nodes' federation.coordinator), making the key if there is none",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := coordinator.LoadConfig(idCfg)
			if err != nil {
				return err
			}
			priv, err := coordinator.LoadSigningKey(cfg)
			if err != nil {
				return err
			}
			pub := priv.Public().(ed25519.PublicKey)
			fmt.Fprintf(cmd.ErrOrStderr(), "coordinator signing key %s (fingerprint %s); put this in every node's federation.coordinator:\n", cfg.SigningKeyPath(), attest.Fingerprint(pub))
			fmt.Fprintln(cmd.OutOrStdout(), attest.FormatPublicKey(pub))
			return nil
		},
	}
	identity.Flags().StringVar(&idCfg, "config", "examples/coordinator.yaml", "coordinator configuration file")
	cmd.AddCommand(identity)
	return cmd
}

// startCoordinator wires the coordinator and its HTTP API on ln; run serves
// until ctx ends.
func startCoordinator(cfg *coordinator.Config, store jobs.Store, log *slog.Logger, ln net.Listener) (*coordinator.Coordinator, func(context.Context) error, error) {
	c, err := coordinator.New(cfg, store, log)
	if err != nil {
		return nil, nil, err
	}
	a, err := api.New(api.Config{Store: store, Users: c.Users(), Catalog: c.Catalog, Logger: log, Ready: c.Catalog.Ready, HEMaxRowsPerInput: c.Config().HEMaxRowsPerNode,
		Keys: c.KeyAdmin(), OnDecision: c.OnDecision, Deliverer: deliverer(c)})
	if err != nil {
		return nil, nil, err
	}
	srv := a.Server(ln.Addr().String())
	return c, func(ctx context.Context) error { return c.Serve(ctx, ln, srv) }, nil
}

// deliverer is the coordinator's side of psi_members delivery (fetching
// the sealed list from the requesting node against the reviewer's signed
// approval), wherever the coordinator provides it; nil if it does not yet.
func deliverer(c *coordinator.Coordinator) api.Deliverer {
	for _, v := range []any{c, c.Worker} {
		if d, ok := v.(api.Deliverer); ok {
			return d
		}
	}
	return nil
}
