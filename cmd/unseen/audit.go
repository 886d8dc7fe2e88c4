package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs/boltstore"
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
				if boltstore.IsStoreFile(file) { // the embedded coordinator's store
					n, err := boltstore.VerifyFile(file)
					if err != nil {
						return &exitError{2, err}
					}
					fmt.Fprintf(cmd.OutOrStdout(), "ok: %s: %d entries, chain and head intact\n", file, n)
					return nil
				}
				c, err := audit.ScanFile(file, nil)
				if err != nil {
					return &exitError{2, err}
				}
				if c.PastHead == 0 && c.Torn == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "ok: %s: %d entries, chain and head intact\n", file, c.Entries)
					return nil
				}
				// What a crash (or a write in progress) leaves: the log's
				// owner repairs it when it next opens the log.
				fmt.Fprintf(cmd.OutOrStdout(), "ok: %s: %d entries, chain intact, head at seq %d", file, c.Entries, c.Head.Seq)
				if c.PastHead > 0 {
					fmt.Fprintf(cmd.OutOrStdout(), "; %d entry past the head (written just before a crash, or being written): adopted at the next open", c.PastHead)
				}
				if c.Torn != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "; a final line of %d bytes at offset %d written in part: cut at the next open", c.Torn.Bytes, c.Torn.Offset)
				}
				fmt.Fprintln(cmd.OutOrStdout())
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
	verify.Flags().StringVar(&file, "file", "", "a node's audit log file, or the embedded coordinator's store file (state/coordinator/unseen.db, while the coordinator is stopped)")

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
	var lfile string
	var asJSON bool
	lineage := &cobra.Command{
		Use:   "lineage DATASET --file NODE-AUDIT-LOG",
		Short: "Every job that touched a dataset, from its node's own log: requester, purpose, type, columns, outcome",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := audit.VerifyFile(lfile)
			if err != nil {
				return &exitError{2, fmt.Errorf("refusing to report from a log that does not verify: %w", err)}
			}
			es, err := audit.ReadFile(lfile)
			if err != nil {
				return err
			}
			rows := audit.Lineage(es, args[0])
			if asJSON {
				return printJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "# %s: %d jobs, from %s (%d entries, chain intact)\n", args[0], len(rows), lfile, n)
			fmt.Fprintln(tw, "FIRST SEEN\tJOB\tREQUESTER\tTYPE\tCOLUMNS\tOUTCOME\tPURPOSE")
			for _, r := range rows {
				outcome := r.Outcome
				if r.Refused != "" {
					outcome += " (" + r.Refused + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.First, r.Job, r.Requester, r.Type, r.Columns, outcome, r.Purpose)
			}
			return tw.Flush()
		},
	}
	lineage.Flags().StringVar(&lfile, "file", "", "the node's audit log file")
	lineage.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	_ = lineage.MarkFlagRequired("file")
	cmd.AddCommand(verify, list, lineage)
	return cmd
}
