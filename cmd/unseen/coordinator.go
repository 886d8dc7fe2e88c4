package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/unseen-data/unseen/api"
	"github.com/unseen-data/unseen/coordinator"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy/attest"
)

func coordinatorCmd() *cobra.Command {
	var cfgPath, redisURL, listen, pprofAddr string
	var nodeURLs []string
	var psiChunk int
	cmd := &cobra.Command{
		Use:   "coordinator --config FILE [--listen ADDR] [--node DEPT=URL …] [--redis URL]",
		Short: "Run the coordinator: the HTTP API, the web console (/console/) and the workers",
		Long: `Runs the coordinator: the people's HTTP API and web console on --listen (or
the config's listen), the workers that run jobs with the nodes, and the
retry scheduler. --node moves a configured node to another URL without
editing the config (repeat it for each node that moved).`,
		Example: `  unseen coordinator --config examples/coordinator.yaml
  unseen coordinator --config examples/coordinator.yaml --listen 127.0.0.1:18080 \
      --node hrss=http://127.0.0.1:17101 --node housing=http://127.0.0.1:17102
  unseen coordinator --config examples/coordinator.yaml --redis redis://127.0.0.1:6379/0`,
		Args: cobra.NoArgs,
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
			if err := overrideNodes(cfg, nodeURLs); err != nil {
				return err
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
			if psiChunk > 0 {
				c.Worker.ChunkSize = psiChunk
			}
			if pprofAddr != "" {
				stop, err := servePprof(pprofAddr, log)
				if err != nil {
					ln.Close()
					return err
				}
				defer stop()
			}
			log.Info("coordinator listening", "addr", ln.Addr().String(), "api", c.APIScheme(), "backend", cfg.Backend(),
				"signing_key", attest.FormatPublicKey(c.PublicKey()))
			return run(ctx)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "examples/coordinator.yaml", "coordinator configuration file")
	cmd.Flags().StringVar(&redisURL, "redis", "", "Redis URL (redis://host:port/db); empty: embedded backend")
	cmd.Flags().StringVar(&listen, "listen", "", "the API's listen address, host:port (overrides the config's listen)")
	cmd.Flags().StringVar(&pprofAddr, "pprof", "", "serve Go's profiler (/debug/pprof/) on this address, loopback unless a host is given (off by default)")
	cmd.Flags().IntVar(&psiChunk, "psi-chunk", 0, "elements per PSI request (default 4096, at most 16384)")
	cmd.Flags().StringArrayVar(&nodeURLs, "node", nil, "DEPT=URL: reach department DEPT's node at URL instead of the config's (repeatable)")
	var idCfg string
	identity := &cobra.Command{
		Use:     "identity --config FILE",
		Short:   "Print the coordinator's public signing key (the nodes' federation.coordinator), making the key if there is none",
		Example: "  unseen coordinator identity --config examples/coordinator.yaml",
		Args:    cobra.NoArgs,
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

// overrideNodes applies --node DEPT=URL to the configured nodes.
func overrideNodes(cfg *coordinator.Config, flags []string) error {
	for _, f := range flags {
		dept, u, ok := strings.Cut(f, "=")
		if !ok || dept == "" || u == "" {
			return fmt.Errorf("--node %q: say DEPARTMENT=URL", f)
		}
		found := false
		for i := range cfg.Nodes {
			if cfg.Nodes[i].Department == dept {
				cfg.Nodes[i].URL, found = u, true
			}
		}
		if !found {
			return fmt.Errorf("--node %s: the configuration has no node for department %q", f, dept)
		}
	}
	return nil
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
