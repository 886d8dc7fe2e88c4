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
		Use:   "unseen",
		Short: "Unseen: answers across departments' data, without handing records to anyone",
		Long: `Unseen: answers across departments' data, without handing records to anyone
(数据可用不可见). One binary: the coordinator, a department's node, the demo,
and the command line of analysts, data owners, reviewers, auditors and
admins. The same coordinator serves a web console at /console/.

` + connectionHelp,
		Example: `  go run ./cmd/unseen demo                 # a whole federation on this machine
  unseen --server http://127.0.0.1:8080 --token-file alice.token list`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&serverURL, "server", "", "the coordinator's API URL (default $UNSEEN_URL, else "+defaultServer+")")
	pf.StringVar(&tokenFile, "token-file", "", "a file holding your bearer token (default: the token in $UNSEEN_TOKEN)")
	pf.StringVar(&caFile, "ca", "", "CA certificate (PEM) the coordinator's HTTPS API is checked against (default $UNSEEN_CA, else the system's roots)")
	root.AddGroup(groups...)
	root.SetHelpCommandGroupID("server")
	root.SetCompletionCommandGroupID("server")
	root.AddCommand(clientCmds()...)
	root.AddCommand(inGroup("auditor", auditCmd())...)
	root.AddCommand(inGroup("admin", keysCmd(), tokenCmd(), keygenCmd(), pkiCmd())...)
	root.AddCommand(inGroup("server", coordinatorCmd(), nodeCmd(), withExample(demoCmd(),
		"  go run ./cmd/unseen demo\n  unseen demo --json | jq .ok"), withExample(benchCmd(),
		"  unseen bench --sizes 65536,262144"))...)
	return root
}

// withExample gives a command an example if it has none (the demo and the
// bench are built elsewhere).
func withExample(c *cobra.Command, ex string) *cobra.Command {
	if c.Example == "" {
		c.Example = ex
	}
	return c
}
