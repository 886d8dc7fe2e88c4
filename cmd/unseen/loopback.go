package main

import (
	"context"
	"log/slog"
	"net"

	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodehttp"
	"github.com/unseen-data/unseen/coordinator"
	"github.com/unseen-data/unseen/jobs"
)

// The demo and the bench run a whole federation in one process, each
// server on its own loopback port.

// serveNode serves a node on a fresh loopback port; stop closes it.
func serveNode(s *node.Service, log *slog.Logger) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := nodehttp.New(s, nodehttp.Options{Logger: log}).Server("")
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

// serveCoordinator runs a coordinator (API and workers) on a fresh loopback
// port until ctx ends; wait returns once it has shut down.
func serveCoordinator(ctx context.Context, cfg *coordinator.Config, store jobs.Store, log *slog.Logger, chunk int) (base string, c *coordinator.Coordinator, wait func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	if cfg.Listen == "" {
		cfg.Listen = ln.Addr().String()
	}
	c, run, err := startCoordinator(cfg, store, log, ln)
	if err != nil {
		ln.Close()
		return "", nil, nil, err
	}
	c.Worker.ChunkSize = chunk
	served := make(chan error, 1)
	go func() { served <- run(ctx) }()
	return c.APIScheme() + "://" + ln.Addr().String(), c, func() { <-served }, nil
}
