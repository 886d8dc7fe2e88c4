package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/unseen-data/unseen/compute/pki"
)

func pkiCmd() *cobra.Command {
	var dir string
	var validity time.Duration
	cmd := &cobra.Command{Use: "pki", Short: "The federation CA: certificates for mutual TLS between coordinator and nodes (admins)",
		Example: "  unseen pki init --dir pki\n  unseen pki issue node hrss --dir pki --host node-hrss.example.gov.cn\n  unseen pki issue coordinator --dir pki"}
	cmd.PersistentFlags().StringVar(&dir, "dir", "pki", "the CA's directory")
	cmd.PersistentFlags().DurationVar(&validity, "validity", 365*24*time.Hour, "how long certificates are valid")
	var name string
	initCmd := &cobra.Command{
		Use:     "init",
		Short:   "Create the federation CA (ca.crt, ca.key with mode 0600); refuses to overwrite one",
		Example: "  unseen pki init --dir pki",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := pki.Init(dir, name, 10*validity); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "CA created in %s (keep ca.key offline once certificates are issued)\n", dir)
			return nil
		},
	}
	initCmd.Flags().StringVar(&name, "name", "Unseen federation CA", "the CA's name")
	var hosts, out string
	issue := &cobra.Command{
		Use:     "issue node DEPARTMENT | issue coordinator",
		Short:   "Issue a node's or the coordinator's certificate",
		Example: "  unseen pki issue node hrss --dir pki --host node-hrss.example.gov.cn\n  unseen pki issue coordinator --dir pki --host api.example.gov.cn",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var identity, base string
			switch {
			case args[0] == "node" && len(args) == 2:
				identity, base = pki.NodeURI(args[1]), "node-"+args[1]
			case args[0] == "coordinator" && len(args) == 1:
				identity, base = pki.CoordinatorURI, "coordinator"
			default:
				return fmt.Errorf("say `issue node DEPARTMENT` or `issue coordinator`")
			}
			if out == "" {
				out = filepath.Join(dir, base)
			}
			if err := pki.Issue(dir, identity, strings.Split(hosts, ","), validity, out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "issued %s: %s.crt, %s.key\n", identity, out, out)
			return nil
		},
	}
	issue.Flags().StringVar(&hosts, "host", "127.0.0.1,localhost", "comma-separated host names and IPs the holder serves on")
	issue.Flags().StringVar(&out, "out", "", "output path without extension (default DIR/node-DEPT or DIR/coordinator)")
	cmd.AddCommand(initCmd, issue)
	return cmd
}
