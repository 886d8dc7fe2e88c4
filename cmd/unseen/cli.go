package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/unseen-data/unseen/api"
	"github.com/unseen-data/unseen/api/client"
	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/psi/delivery"
)

// The client commands' connection: the root command's --server,
// --token-file and --ca, each beside an environment variable.
var (
	// caFile: the CA certificate(s) (PEM) the coordinator's HTTPS API is
	// checked against; empty: UNSEEN_CA, else the system's roots.
	caFile string
	// serverURL: the coordinator's API; empty: UNSEEN_URL, else
	// defaultServer.
	serverURL string
	// tokenFile: a file holding the bearer token; empty: UNSEEN_TOKEN.
	tokenFile string
)

const defaultServer = "http://127.0.0.1:8080"

// connectionHelp is the root command's word on how client commands find
// the coordinator and who they are.
const connectionHelp = `Client commands talk to a coordinator's API as one user:
  --server URL        or UNSEEN_URL   (default ` + defaultServer + `)
  --token-file FILE   or UNSEEN_TOKEN (the token itself); a file keeps it out of
                      shell history and the process list
  --ca FILE           or UNSEEN_CA    (a CA to check an https:// server against)
Read commands print tables; -o json prints the API's JSON for scripts.`

// apiClient builds a client from --server/UNSEEN_URL, --token-file/
// UNSEEN_TOKEN and --ca/UNSEEN_CA.
func apiClient() (*client.Client, error) {
	u := serverURL
	if u == "" {
		u = os.Getenv("UNSEEN_URL")
	}
	if u == "" {
		u = defaultServer
	}
	tok := os.Getenv("UNSEEN_TOKEN")
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		if tok = strings.TrimSpace(string(b)); tok == "" {
			return nil, fmt.Errorf("--token-file %s is empty", tokenFile)
		}
	}
	if tok == "" {
		return nil, fmt.Errorf("give your bearer token with --token-file FILE or set UNSEEN_TOKEN (and --server or UNSEEN_URL if the coordinator is not at %s)", defaultServer)
	}
	c := client.New(u, tok)
	ca := caFile
	if ca == "" {
		ca = os.Getenv("UNSEEN_CA")
	}
	if ca != "" {
		if err := c.TrustCAFile(ca); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// readSigningKey reads a signing key file (from `unseen keygen --sign`).
func readSigningKey(path string) (ed25519.PrivateKey, error) {
	if path == "" {
		return nil, errors.New("give your signing key with --key FILE (make one with `unseen keygen --sign`)")
	}
	return attest.ReadPrivateKeyFile(path)
}

// Command groups, as `unseen --help` lists them.
var groups = []*cobra.Group{
	{ID: "analyst", Title: "Analysts (分析人员): ask questions, read released results"},
	{ID: "owner", Title: "Data owners (数源单位): consent to jobs on conditional data"},
	{ID: "reviewer", Title: "Reviewers (安全管理方): release or reject results"},
	{ID: "auditor", Title: "Auditors: read and verify audit chains"},
	{ID: "admin", Title: "Admins: keys, tokens, certificates, retries"},
	{ID: "server", Title: "Running Unseen: coordinator, nodes, demo, benchmark"},
}

func inGroup(id string, cmds ...*cobra.Command) []*cobra.Command {
	for _, c := range cmds {
		c.GroupID = id
	}
	return cmds
}

// settledOrConsent: a state in which nothing more happens without a person
// (or ever): what --wait stops at, short of release.
func finished(s jobs.State) bool { return s.Final() || s == jobs.DeadLetter }

// waitJob polls job id until done, showing progress on w: a live bar on a
// terminal, one line per change of state otherwise (logs, scripts).
func waitJob(ctx context.Context, c *client.Client, w io.Writer, id string, done func(jobs.State) bool, timeout time.Duration) (*wire.Job, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	var bar *progressbar.ProgressBar
	last := jobs.State("")
	j, err := c.Wait(ctx, id, 500*time.Millisecond, func(j *wire.Job) bool { return done(j.State) }, func(j *wire.Job) {
		if tty {
			if bar == nil {
				bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(w), progressbar.OptionSetWidth(30),
					progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(false), progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionSpinnerType(14), progressbar.OptionFullWidth())
			}
			if j.Progress.Total > 0 {
				bar.ChangeMax64(j.Progress.Total)
				_ = bar.Set64(j.Progress.Done)
			}
			desc := string(j.State)
			if j.Progress.Step != "" && j.State == jobs.Running {
				desc += " (" + j.Progress.Step + ")"
			}
			bar.Describe(desc)
			return
		}
		if j.State != last {
			last = j.State
			fmt.Fprintf(w, "%s  %s: %s\n", time.Now().Format("15:04:05"), j.State, nextStep(j))
		}
	})
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(w)
	}
	if err != nil && j != nil && errors.Is(err, context.DeadlineExceeded) {
		return j, &exitError{3, fmt.Errorf("gave up waiting after %s: job %s is %s", timeout, j.ID, j.State)}
	}
	return j, err
}

// showResult prints a released job's result (psi_members: decrypted with
// keyFile), or says what state the job is in and why.
func showResult(ctx context.Context, c *client.Client, w io.Writer, j *wire.Job, keyFile, output string) error {
	if j.State != jobs.Released {
		msg := fmt.Sprintf("job %s is %s", j.ID, j.State)
		if j.Error != "" {
			msg += ": " + j.Error
		}
		if j.Comment != "" {
			msg += ": " + j.Comment
		}
		return &exitError{4, errors.New(msg)}
	}
	r, err := c.Result(ctx, j.ID)
	if err != nil {
		return err
	}
	return printReleased(w, r, keyFile, output)
}

func printReleased(w io.Writer, r *wire.Result, keyFile, output string) error {
	if r.Type == "psi_members" {
		members, err := openMembers(r, keyFile)
		if err != nil {
			return err
		}
		if output == outJSON {
			return printJSON(w, map[string]any{"id": r.ID, "type": r.Type, "count": len(members), "members": members, "reviewer": r.Reviewer})
		}
		fmt.Fprintf(w, "# job %s: %d members, released by %s\n", r.ID, len(members), r.Reviewer)
		for _, m := range members {
			fmt.Fprintln(w, m)
		}
		return nil
	}
	if output == outJSON {
		return printJSON(w, r)
	}
	fmt.Fprintf(w, "# job %s (%s), released by %s", r.ID, r.Type, r.Reviewer)
	if r.Comment != "" {
		fmt.Fprintf(w, ": %s", r.Comment)
	}
	fmt.Fprintln(w)
	return printResult(w, r.Type, r.Result)
}

func clientCmds() []*cobra.Command {
	var idem string
	var quiet, wait bool
	var waitTimeout time.Duration
	var submitKey string
	submit := &cobra.Command{
		Use:   "submit JOB.json",
		Short: "Submit a job spec: prints the new job's id (analysts)",
		Long: `Submits a job spec (JSON; see examples/jobs). The new job's id goes to
standard output, alone on its line, so ID=$(unseen submit JOB.json) works;
what happens next goes to standard error (-q: nothing).

With --wait, follows the job — a live progress bar on a terminal, a line per
change of state otherwise — until it is released (then prints the result),
or rejected, failed, cancelled or expired (then says so and exits 4). It waits
through the owners' consent and the review, as the analyst would.`,
		Example: `  unseen submit examples/jobs/benefits_property_cardinality.json
  ID=$(unseen submit -q examples/jobs/allowance_by_district.json)
  unseen submit --wait --timeout 10m examples/jobs/tianhe_benefits_property.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			s, err := c.Submit(cmd.Context(), b, idem)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), s.ID)
			if !quiet && !wait {
				j, err := c.Job(cmd.Context(), s.ID)
				if err == nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "job %s is %s: %s\n", s.ID, s.State, nextStep(j))
				}
			}
			if !wait {
				return nil
			}
			ew := cmd.ErrOrStderr()
			if quiet {
				ew = io.Discard
			}
			j, err := waitJob(cmd.Context(), c, ew, s.ID, finished, waitTimeout)
			if err != nil {
				return err
			}
			return showResult(cmd.Context(), c, cmd.OutOrStdout(), j, submitKey, outTable)
		},
	}
	submit.Flags().StringVar(&idem, "idempotency-key", "", "make retries of this submission create one job")
	submit.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the job id")
	submit.Flags().BoolVar(&wait, "wait", false, "follow the job until it is released (print the result) or ends otherwise")
	submit.Flags().DurationVar(&waitTimeout, "timeout", 0, "with --wait: give up after this long (exit 3); 0: no limit")
	submit.Flags().StringVar(&submitKey, "key", defaultKeyFile(), "with --wait, psi_members: your private key FILE (from unseen keygen)")

	var statusOut *string
	status := &cobra.Command{
		Use:     "status ID",
		Short:   "Show a job's state, what it waits for, its progress and history",
		Example: "  unseen status j_6q2xpcqt4xpsmpkhon3lqmhqha\n  unseen status $ID -o json | jq .state",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			j, err := c.Job(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if *statusOut == outJSON {
				return printJSON(cmd.OutOrStdout(), j)
			}
			return printJob(cmd.OutOrStdout(), j)
		},
	}
	statusOut = addOutput(status)

	var waitFor string
	var waitFor2 time.Duration
	waitCmd := &cobra.Command{
		Use:   "wait ID [--for STATE]",
		Short: "Wait until a job reaches a state (default: released), showing its progress",
		Long: `Waits until the job is in --for (awaiting_review, released, …) and prints
its state; exits 4 if the job ends in another state first (rejected, failed,
cancelled, expired, dead_letter), 3 on --timeout.`,
		Example: "  unseen wait $ID --for awaiting_review --timeout 5m\n  unseen wait $ID && unseen result $ID",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := jobs.State(waitFor)
			if !target.Valid() {
				return fmt.Errorf("--for: unknown state %q", waitFor)
			}
			c, err := apiClient()
			if err != nil {
				return err
			}
			j, err := waitJob(cmd.Context(), c, cmd.ErrOrStderr(), args[0], func(s jobs.State) bool { return s == target || finished(s) }, waitFor2)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", j.ID, j.State)
			if j.State != target {
				return &exitError{4, fmt.Errorf("job %s ended %s, not %s: %s", j.ID, j.State, target, nextStep(j))}
			}
			return nil
		},
	}
	waitCmd.Flags().StringVar(&waitFor, "for", string(jobs.Released), "the state to wait for")
	waitCmd.Flags().DurationVar(&waitFor2, "timeout", 0, "give up after this long (exit 3); 0: no limit")

	var listState string
	var listOut *string
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the jobs you may see (analysts: yours; reviewers: awaiting review; auditors, admins: all)",
		Example: "  unseen list\n  unseen list --state awaiting_review -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			js, err := c.Jobs(cmd.Context(), jobs.State(listState))
			if err != nil {
				return err
			}
			if *listOut == outJSON {
				return printJSON(cmd.OutOrStdout(), wire.Jobs{Jobs: js})
			}
			return printJobs(cmd.OutOrStdout(), js)
		},
	}
	list.Flags().StringVar(&listState, "state", "", "only jobs in this state")
	listOut = addOutput(list)

	var reviewOut *string
	review := &cobra.Command{
		Use:     "review ID",
		Short:   "Show a finished job's result, its disclosure checks and what an approval signs (reviewers)",
		Example: "  UNSEEN_TOKEN=example-reviewer-token unseen review $ID",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			raw, err := c.ReviewRaw(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if *reviewOut == outJSON {
				_, err := cmd.OutOrStdout().Write(append(raw, '\n'))
				return err
			}
			var rv wire.Review
			if err := json.Unmarshal(raw, &rv); err != nil {
				return err
			}
			return printReview(cmd.OutOrStdout(), &rv, raw)
		},
	}
	reviewOut = addOutput(review)

	var comment, approveKey, expectRecipient string
	approve := &cobra.Command{
		Use:   "approve ID --key FILE [--comment TEXT]",
		Short: "Release a reviewed result to its analyst, signed with your key (reviewers)",
		Long: `Fetches the job's review, computes the statement to sign itself (the job's
id, the hash of its spec, its requester, the SHA-256 of the result exactly as
shown, and for psi_members the analyst's key the list is sealed to), signs it
with your key and sends it. The nodes release a member list only against it.
Check the recipient fingerprint it prints against the analyst's, or give
--expect-recipient.`,
		Example: `  UNSEEN_TOKEN=example-reviewer-token unseen approve $ID --key examples/keys/rita.ed25519 --comment "checks fine"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			priv, err := readSigningKey(approveKey)
			if err != nil {
				return err
			}
			c, err := apiClient()
			if err != nil {
				return err
			}
			me, err := c.Me(cmd.Context())
			if err != nil {
				return err
			}
			if err := checkSigningKey(me.SigningKey, me.Name, priv); err != nil {
				return err
			}
			a, rv, err := c.PrepareApproval(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := cmd.ErrOrStderr()
			fmt.Fprintf(w, "signing the release of job %s (%s, requested by %s/%s)\n  spec sha256    %s\n  result sha256  %s\n", a.Job, rv.Job.Type, a.Requester.User, a.Requester.Department, a.SpecHash, a.Result)
			if !a.Recipient.IsZero() {
				fmt.Fprintf(w, "  sealed to      %s's key, fingerprint %s\n", rv.Job.Owner, rv.RecipientFingerprint)
				if expectRecipient != "" && expectRecipient != rv.RecipientFingerprint {
					return fmt.Errorf("the list would be sealed to a key with fingerprint %s, not %s: not signing", rv.RecipientFingerprint, expectRecipient)
				}
			}
			s, err := attest.SignApproval(priv, a)
			if err != nil {
				return err
			}
			j, err := c.SendApproval(cmd.Context(), args[0], comment, s)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", j.ID, j.State)
			return nil
		},
	}
	approve.Flags().StringVar(&comment, "comment", "", "a note kept with the decision")
	approve.Flags().StringVar(&approveKey, "key", "", "your signing key FILE (from unseen keygen --sign; its public half is your signing_key)")
	approve.Flags().StringVar(&expectRecipient, "expect-recipient", "", "psi_members: refuse unless the analyst's key has this fingerprint")

	var reason string
	reject := &cobra.Command{
		Use:     "reject ID --reason TEXT",
		Short:   "Refuse release of a result (reviewers)",
		Example: `  UNSEEN_TOKEN=example-reviewer-token unseen reject $ID --reason "purpose too broad"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			j, err := c.Reject(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", j.ID, j.State)
			return nil
		},
	}
	reject.Flags().StringVar(&reason, "reason", "", "why the result may not be released (required)")
	_ = reject.MarkFlagRequired("reason")

	var cancelReason string
	cancel := &cobra.Command{
		Use:     "cancel ID",
		Short:   "Cancel one of your jobs that has not finished",
		Example: `  unseen cancel $ID --reason "submitted by mistake"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			j, err := c.Cancel(cmd.Context(), args[0], cancelReason)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", j.ID, j.State)
			return nil
		},
	}
	cancel.Flags().StringVar(&cancelReason, "reason", "", "why")

	var keyFile string
	var resultOut *string
	result := &cobra.Command{
		Use:   "result ID",
		Short: "Print a released result as a table (psi_members lists are decrypted with your key)",
		Long: `Prints a released result: a count, or statistics per group and histogram
bucket. A cell below the dataset's k is shown as suppressed, with why, never as
a number; with -o json it is {"suppressed": "<why>"} (a group), or null (a
histogram bucket), as the API returns it.`,
		Example: "  unseen result $ID\n  unseen result $ID -o json\n  unseen result $ID2 --key examples/keys/alice.key   # psi_members",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			r, err := c.Result(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printReleased(cmd.OutOrStdout(), r, keyFile, *resultOut)
		},
	}
	result.Flags().StringVar(&keyFile, "key", defaultKeyFile(), "your private key FILE (from unseen keygen)")
	resultOut = addOutput(result)

	var dsOut *string
	datasets := &cobra.Command{
		Use:     "datasets",
		Short:   "List the catalog: the datasets departments share, and their rules (metadata only)",
		Example: "  unseen datasets\n  unseen datasets -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			ds, err := c.Datasets(cmd.Context())
			if err != nil {
				return err
			}
			if *dsOut == outJSON {
				return printJSON(cmd.OutOrStdout(), ds)
			}
			return printDatasets(cmd.OutOrStdout(), ds.Datasets)
		},
	}
	dsOut = addOutput(datasets)

	var retryReason string
	retry := &cobra.Command{
		Use:     "retry ID",
		Short:   "Requeue a dead-lettered job once its cause is mended (admins)",
		Example: `  UNSEEN_TOKEN=example-admin-token unseen retry $ID --reason "node housing is back"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			j, err := c.Retry(cmd.Context(), args[0], retryReason)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", j.ID, j.State)
			return nil
		},
	}
	retry.Flags().StringVar(&retryReason, "reason", "", "what was mended")

	var meOut *string
	whoami := &cobra.Command{
		Use:     "whoami",
		Short:   "Show whom your token names, and the keys registered for you",
		Example: "  unseen --token-file ~/.config/unseen/token whoami",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			me, err := c.Me(cmd.Context())
			if err != nil {
				return err
			}
			if *meOut == outJSON {
				return printJSON(cmd.OutOrStdout(), me)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintf(tw, "NAME\t%s\nROLE\t%s\nDEPARTMENT\t%s\n", me.Name, me.Role, me.Department)
			if me.SigningKey != "" {
				fp := ""
				if k, err := attest.ParsePublicKey(me.SigningKey); err == nil {
					fp = " (fingerprint " + attest.Fingerprint(k) + ")"
				}
				fmt.Fprintf(tw, "SIGNING KEY\t%s%s\n", me.SigningKey, fp)
			}
			if me.PublicKey != "" {
				fmt.Fprintf(tw, "PUBLIC KEY\t%s\n", me.PublicKey)
			}
			return tw.Flush()
		},
	}
	meOut = addOutput(whoami)

	var readyTimeout time.Duration
	var readyOut *string
	ready := &cobra.Command{
		Use:   "ready [--wait DURATION]",
		Short: "Check that the coordinator, its job store and every node answer",
		Long: `Asks the coordinator's /readyz (no token needed) and prints each check; with
--wait, retries until everything is ready or the time is up (exit 3). Scripts
start the coordinator and nodes, then run unseen ready --wait 30s.`,
		Example: "  unseen ready\n  unseen --server http://127.0.0.1:18080 ready --wait 30s",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := readyClient()
			if err != nil {
				return err
			}
			deadline := time.Now().Add(readyTimeout)
			for {
				rd, err := c.Ready(cmd.Context())
				if err == nil && rd.Ready || time.Now().After(deadline) {
					if err != nil {
						return &exitError{3, err}
					}
					if *readyOut == outJSON {
						if err := printJSON(cmd.OutOrStdout(), rd); err != nil {
							return err
						}
					} else {
						tw := newTable(cmd.OutOrStdout())
						fmt.Fprintln(tw, "CHECK\tSTATUS")
						for _, k := range []string{"store", "nodes"} {
							if v, ok := rd.Checks[k]; ok {
								fmt.Fprintf(tw, "%s\t%s\n", k, v)
							}
						}
						_ = tw.Flush()
					}
					if !rd.Ready {
						return &exitError{3, errors.New("not ready")}
					}
					return nil
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(250 * time.Millisecond):
				}
			}
		},
	}
	ready.Flags().DurationVar(&readyTimeout, "wait", 0, "retry until ready for this long")
	readyOut = addOutput(ready)

	out := inGroup("analyst", submit, status, waitCmd, list, result, cancel, datasets, whoami)
	out = append(out, inGroup("owner", consentCmd())...)
	out = append(out, inGroup("reviewer", review, approve, reject)...)
	out = append(out, inGroup("admin", retry)...)
	out = append(out, inGroup("server", ready)...)
	return out
}

// readyClient is a client for /readyz: the server as for every command, a
// token only if one is given (readiness needs none).
func readyClient() (*client.Client, error) {
	u := serverURL
	if u == "" {
		u = os.Getenv("UNSEEN_URL")
	}
	if u == "" {
		u = defaultServer
	}
	c := client.New(u, os.Getenv("UNSEEN_TOKEN"))
	ca := caFile
	if ca == "" {
		ca = os.Getenv("UNSEEN_CA")
	}
	if ca != "" {
		if err := c.TrustCAFile(ca); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// sealedList is a released psi_members result's sealed list: the one the
// requesting node delivered (checked against the SHA-256 the approved
// result names), or one carried in the result itself.
func sealedList(r *wire.Result) ([]byte, error) {
	var res struct {
		Sealed string        `json:"sealed_members"`
		SHA256 attest.Digest `json:"sealed_sha256"`
	}
	if err := json.Unmarshal(r.Result, &res); err != nil {
		return nil, fmt.Errorf("the released result is malformed: %w", err)
	}
	if len(r.SealedMembers) > 0 {
		if !res.SHA256.IsZero() && attest.Digest(sha256.Sum256(r.SealedMembers)) != res.SHA256 {
			return nil, fmt.Errorf("the delivered list does not hash to the sealed_sha256 (%s) of the approved result: refusing it", res.SHA256)
		}
		return r.SealedMembers, nil
	}
	if res.Sealed == "" {
		return nil, errors.New("the released result holds no sealed member list")
	}
	return base64.StdEncoding.DecodeString(res.Sealed)
}

// openMembers decrypts a released psi_members result.
func openMembers(r *wire.Result, keyFile string) ([]string, error) {
	ct, err := sealedList(r)
	if err != nil {
		return nil, err
	}
	priv, err := readPrivateKey(keyFile)
	if err != nil {
		return nil, err
	}
	return delivery.Open(priv, r.ID, ct)
}

func defaultKeyFile() string {
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "unseen", "analyst.key")
	}
	return "analyst.key"
}

func readPrivateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading private key: %w (make one with `unseen keygen`)", err)
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("private key %s is not base64", path)
	}
	return k, nil
}

func keygenCmd() *cobra.Command {
	var out string
	var sign bool
	cmd := &cobra.Command{
		Use:   "keygen [--sign] [--out FILE]",
		Short: "Make a key pair: an analyst's (psi_members lists are sealed to it) or, with --sign, a signing key",
		Long: `Writes the private key (mode 0600; never over an existing file) and prints the
public key.

Without --sign: an analyst's HPKE key pair; register the public key as your
user's public_key in the coordinator's configuration.

With --sign: an Ed25519 signing key, printed as ed25519:…, for a reviewer
(approvals) or a data owner (consents): register it as the user's signing_key
at the coordinator, and in the nodes' configurations (federation.reviewers, or
the department's owners), which check every signature themselves. Nodes and
the coordinator make their own signing keys on first start (see
unseen node identity, unseen coordinator identity).`,
		Example: "  unseen keygen                          # analyst: ~/.config/unseen/analyst.key\n  unseen keygen --sign --out rita.ed25519 # reviewer or data owner",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if sign {
				if out == "" {
					out = defaultSigningKeyFile()
				}
				pub, priv, err := attest.GenerateKey()
				if err != nil {
					return err
				}
				if err := attest.WritePrivateKeyFile(out, priv); err != nil {
					return fmt.Errorf("%w (refusing to overwrite an existing key)", err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "signing key written to %s\npublic key (register it as signing_key; fingerprint %s):\n", out, attest.Fingerprint(pub))
				fmt.Fprintln(cmd.OutOrStdout(), attest.FormatPublicKey(pub))
				return nil
			}
			if out == "" {
				out = defaultKeyFile()
			}
			pub, priv, err := delivery.GenerateKey()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
				return err
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("%w (refusing to overwrite an existing key)", err)
			}
			if _, err := fmt.Fprintln(f, base64.StdEncoding.EncodeToString(priv)); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "private key written to %s\npublic key (register it as public_key of your user):\n", out)
			fmt.Fprintln(cmd.OutOrStdout(), base64.StdEncoding.EncodeToString(pub))
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "where to write the private key (default: your config folder's unseen/analyst.key, or unseen/signing.ed25519 with --sign)")
	cmd.Flags().BoolVar(&sign, "sign", false, "make an Ed25519 signing key (reviewers, data owners) instead of an analyst's key")
	return cmd
}

func defaultSigningKeyFile() string {
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "unseen", "signing.ed25519")
	}
	return "signing.ed25519"
}

// checkSigningKey says clearly when a key file is not the registered key.
func checkSigningKey(registered, name string, priv ed25519.PrivateKey) error {
	pub := priv.Public().(ed25519.PublicKey)
	if registered == "" {
		return fmt.Errorf("no signing key is registered for %s at the coordinator: register %s as %s's signing_key", name, attest.FormatPublicKey(pub), name)
	}
	reg, err := attest.ParsePublicKey(registered)
	if err != nil {
		return err
	}
	if !reg.Equal(pub) {
		return fmt.Errorf("this key (fingerprint %s) is not the one registered for %s (fingerprint %s)", attest.Fingerprint(pub), name, attest.Fingerprint(reg))
	}
	return nil
}

func tokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Token helpers for configuration files (admins)",
		Example: "  unseen token new\n  unseen token hash < token.txt"}
	cmd.AddCommand(&cobra.Command{
		Use:   "hash < TOKEN-FILE",
		Short: "Print the SHA-256 of a token read from standard input, as configs store it (token_sha256)",
		Long: `Reads the token from standard input (typed without echo on a terminal, or
piped from a file), never from the command line, where shell history and the
process list would keep it; one trailing newline is ignored.`,
		Example: "  unseen token hash < alice.token\n  printf %s \"$TOKEN\" | unseen token hash",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return errors.New("the token is read from standard input, not the command line (history and ps would keep it): unseen token hash < FILE")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := readSecret(cmd, "token: ")
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), api.HashToken(tok))
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:     "new",
		Short:   "Make a random token: the token on standard output, its token_sha256 on standard error",
		Example: "  unseen token new > alice.token   # give alice the file; put the printed hash in the config",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			tok := randomToken()
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			fmt.Fprintf(cmd.ErrOrStderr(), "token_sha256: %s\n", api.HashToken(tok))
			return nil
		},
	})
	return cmd
}

// readSecret reads one secret from standard input: without echo from a
// terminal (after prompt on stderr), else all of it, less one trailing
// newline.
func readSecret(cmd *cobra.Command, prompt string) (string, error) {
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(cmd.ErrOrStderr(), prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
	b, err := io.ReadAll(io.LimitReader(in, 1<<16))
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", errors.New("no token on standard input")
	}
	return s, nil
}

func consentCmd() *cobra.Command {
	var approve, refuse bool
	var reason, keyFile, until, dataset string
	cmd := &cobra.Command{
		Use:   "consent ID --approve --key FILE | --refuse --reason TEXT",
		Short: "Consent to, or refuse, a job's use of your department's conditional datasets (data owners)",
		Long: `Consent is signed with your key (unseen keygen --sign) over the job as this
command fetched it — its id, the hash of its spec, its requester — the
dataset, your answer, reason and --until: the nodes use a conditional
dataset only with that signature, and only until then. A refusal needs
no key (it is signed if you give one).`,
		Example: `  unseen consent list
  unseen consent $ID --approve --key examples/keys/cora.ed25519 --reason "within our agreement"
  unseen consent $ID --refuse --reason "not within our agreement"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if approve == refuse {
				return errors.New("say exactly one of --approve or --refuse")
			}
			var priv ed25519.PrivateKey
			if approve || keyFile != "" {
				var err error
				if priv, err = readSigningKey(keyFile); err != nil {
					return err
				}
			}
			ans := client.ConsentAnswer{Dataset: dataset, Approve: approve, Reason: reason}
			if until != "" {
				t, err := time.Parse(time.RFC3339, until)
				if err != nil {
					return fmt.Errorf("--until: %w (RFC 3339, e.g. 2026-12-31T23:59:59+08:00)", err)
				}
				ans.Until = t
			}
			c, err := apiClient()
			if err != nil {
				return err
			}
			j, err := c.Consent(cmd.Context(), args[0], ans, priv)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", j.ID, j.State)
			return nil
		},
	}
	cmd.Flags().BoolVar(&approve, "approve", false, "consent (signed: give --key)")
	cmd.Flags().BoolVar(&refuse, "refuse", false, "refuse (give --reason)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (required with --refuse)")
	cmd.Flags().StringVar(&keyFile, "key", "", "your signing key FILE (from unseen keygen --sign)")
	cmd.Flags().StringVar(&until, "until", "", "when the consent lapses, RFC 3339 (default: 30 days from now)")
	cmd.Flags().StringVar(&dataset, "dataset", "", "answer for this dataset only (default: every one of your department's that the job asks for)")
	var listOut *string
	list := &cobra.Command{
		Use:     "list",
		Short:   "Jobs awaiting your department's consent: what is asked, by whom, why, by when",
		Example: "  UNSEEN_TOKEN=example-owner-civil-token unseen consent list",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			js, err := c.Jobs(cmd.Context(), jobs.AwaitingConsent)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if *listOut == outJSON {
				return printJSON(out, wire.Jobs{Jobs: js})
			}
			if len(js) == 0 {
				fmt.Fprintln(out, "no jobs await your consent")
			}
			for _, j := range js {
				fmt.Fprintf(out, "%s  %s  requested by %s (%s)  deadline %s\n  purpose: %s\n", j.ID, j.Type, j.Owner, j.Department, j.ConsentDeadline.Format("2006-01-02 15:04 MST"), j.Purpose)
				for i, in := range j.Spec.Inputs {
					f := in.Filter
					if f == "" {
						f = "(all rows)"
					}
					key := ""
					if in.Key != "" {
						key = " key " + in.Key
					}
					value := ""
					if in.Value != "" {
						value = " value " + in.Value
					}
					fmt.Fprintf(out, "  input %d: %s%s%s filter %s\n", i, in.Dataset, key, value, f)
				}
				if j.Spec.Value != nil {
					fmt.Fprintf(out, "  value: %s.%s\n", j.Spec.Value.Dataset, j.Spec.Value.Column)
				}
				if j.Spec.GroupBy != nil {
					fmt.Fprintf(out, "  group by: %s.%s\n", j.Spec.GroupBy.Dataset, j.Spec.GroupBy.Column)
				}
				if j.Decision != nil {
					fmt.Fprintf(out, "  needs consent for: %s\n", strings.Join(j.Decision.NeedsConsent, ", "))
				}
				for _, c := range j.Consents {
					fmt.Fprintf(out, "  answered: %s by %s approved=%v %s\n", c.Dataset, c.By, c.Approved, c.Reason)
				}
			}
			return nil
		},
	}
	listOut = addOutput(list)
	cmd.AddCommand(list)
	return cmd
}
