// Command unseen is the one binary of Unseen: the coordinator, a
// department's node, the analyst/reviewer/auditor CLI, and the demo.
//
// Cobra is used for the command tree because it gives consistent help,
// flag parsing and usage errors for a dozen subcommands with no code of ours.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/unseen-data/unseen/api/client"
)

// exitError carries a specific exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func (e *exitError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "unseen:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		os.Exit(ee.code)
	}
	var ce *client.Error
	if errors.As(err, &ce) && len(ce.Violations) > 0 {
		for _, v := range ce.Violations {
			fmt.Fprintln(os.Stderr, "  -", v.String())
		}
	}
	os.Exit(1)
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "unseen",
		Short:         "Unseen: answers across departments' data, without handing records to anyone",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&caFile, "ca", "", "CA certificate (PEM) the coordinator's HTTPS API is checked against (default $UNSEEN_CA, else the system's roots)")
	root.AddCommand(
		demoCmd(),
		coordinatorCmd(),
		nodeCmd(),
		keygenCmd(),
		tokenCmd(),
		benchCmd(),
		pkiCmd(),
		keysCmd(),
	)
	root.AddCommand(clientCmds()...)
	root.AddCommand(auditCmd())
	return root
}
