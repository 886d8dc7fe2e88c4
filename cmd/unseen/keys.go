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
	cmd := &cobra.Command{Use: "keys", Short: "The federation's homomorphic keys: ceremony and status (admins)"}
	var threshold int
	initCmd := &cobra.Command{
		Use:   "init --threshold T",
		Short: "Run a key ceremony with every node: a collective public key, decryption needing T of the N nodes",
		Args:  cobra.NoArgs,
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
			return printStatus(cmd.OutOrStdout(), raw)
		},
	}
	initCmd.Flags().IntVar(&threshold, "threshold", 0, "how many nodes must cooperate to decrypt a result (2 ≤ t ≤ N)")
	_ = initCmd.MarkFlagRequired("threshold")
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the key epoch, threshold and which nodes hold their shares",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			raw, err := c.KeysStatus(cmd.Context())
			if err != nil {
				return err
			}
			return printStatus(cmd.OutOrStdout(), raw)
		},
	}
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
