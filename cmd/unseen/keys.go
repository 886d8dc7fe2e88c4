package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/unseen-data/unseen/coordinator/hefed"
)

func keysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "The federation's homomorphic keys: ceremony and status (admins)",
		Example: "  UNSEEN_TOKEN=example-admin-token unseen keys init --threshold 2\n  UNSEEN_TOKEN=example-admin-token unseen keys status"}
	var threshold int
	var initOut, statusOut *string
	initCmd := &cobra.Command{
		Use:     "init --threshold T",
		Short:   "Run a key ceremony with every node: a collective public key, decryption needing T of the N nodes",
		Example: "  unseen keys init --threshold 2",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			c.HTTP.Timeout = 10 * time.Minute
			raw, err := c.KeysInit(cmd.Context(), threshold)
			if err != nil {
				return err
			}
			if *initOut == outJSON {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			return printStatus(cmd.OutOrStdout(), raw)
		},
	}
	initCmd.Flags().IntVar(&threshold, "threshold", 0, "how many nodes must cooperate to decrypt a result (2 ≤ t ≤ N)")
	_ = initCmd.MarkFlagRequired("threshold")
	initOut = addOutput(initCmd)
	status := &cobra.Command{
		Use:     "status",
		Short:   "Show the key epoch, threshold and which nodes hold their shares",
		Example: "  unseen keys status\n  unseen keys status -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			raw, err := c.KeysStatus(cmd.Context())
			if err != nil {
				return err
			}
			if *statusOut == outJSON {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			return printStatus(cmd.OutOrStdout(), raw)
		},
	}
	statusOut = addOutput(status)
	cmd.AddCommand(initCmd, status)
	return cmd
}

func printStatus(w io.Writer, raw json.RawMessage) error {
	var st hefed.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		return err
	}
	describeKeys(w, &st)
	return nil
}

func describeKeys(w io.Writer, st *hefed.Status) {
	if st.Epoch == 0 {
		fmt.Fprintln(w, "no key ceremony has run yet (unseen keys init --threshold T)")
		return
	}
	fmt.Fprintf(w, "epoch %d (ceremony %s, %s): decryption needs %d of %d nodes; parameter sets %v\n",
		st.Epoch, st.Ceremony, st.Created.Format(time.RFC3339), st.Threshold, len(st.Nodes), st.Params)
	for _, n := range st.Nodes {
		state := "holds its shares"
		switch {
		case !n.Reachable:
			state = "unreachable"
		case !n.HoldsShares:
			state = "does NOT hold the current shares"
		}
		if n.Error != "" {
			state += " (" + n.Error + ")"
		}
		fmt.Fprintf(w, "  %-10s %s\n", n.Node, state)
	}
}
