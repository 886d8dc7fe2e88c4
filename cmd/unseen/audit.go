package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/unseen-data/unseen/policy/audit"
)

func auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read and verify audit logs (auditors)"}
	var file string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Verify a hash chain: a node's log file (--file) or the coordinator's (over the API)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file != "" {
				n, err := audit.VerifyFile(file)
				if err != nil {
					return &exitError{2, err}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "ok: %s: %d entries, chain and head intact\n", file, n)
				return nil
			}
			c, err := apiClient()
			if err != nil {
				return err
			}
			v, err := c.AuditVerify(cmd.Context())
			if err != nil {
				return err
			}
			if !v.OK {
				return &exitError{2, fmt.Errorf("coordinator audit chain: %s", v.Error)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: coordinator: %d entries, chain and head intact\n", v.Entries)
			return nil
		},
	}
	verify.Flags().StringVar(&file, "file", "", "an audit log file (a node's, or the embedded coordinator's)")

	var f audit.Filter
	list := &cobra.Command{
		Use:   "list",
		Short: "List coordinator audit entries (filter by job, dataset, actor)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			es, err := c.Audit(cmd.Context(), f)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), es)
		},
	}
	list.Flags().StringVar(&f.Job, "job", "", "job id")
	list.Flags().StringVar(&f.Dataset, "dataset", "", "dataset name")
	list.Flags().StringVar(&f.Actor, "actor", "", "user")
	list.Flags().IntVar(&f.Limit, "limit", 200, "newest N entries")
	cmd.AddCommand(verify, list)
	return cmd
}
