package main

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodehttp"
)

func nodeCmd() *cobra.Command {
	var cfgPath, listen string
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Run a department's node: serve its datasets to the protocol, never its records",
		Args:  cobra.NoArgs,
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
			mode := "plain HTTP (no tls section: for a local trial only)"
			if tlsCfg != nil {
				ln = tls.NewListener(ln, tlsCfg)
				mode = "mutual TLS (only the coordinator's certificate is accepted)"
			}
			srv := nodehttp.New(s, nodehttp.Options{Logger: log}).Server(cfg.Listen)
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
	cmd.Flags().StringVar(&listen, "listen", "", "listen address (overrides the config)")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}
