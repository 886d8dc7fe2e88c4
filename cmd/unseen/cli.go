package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/unseen-data/unseen/api"
	"github.com/unseen-data/unseen/api/client"
	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/psi/delivery"
)

// apiClient builds a client from UNSEEN_URL and UNSEEN_TOKEN.
func apiClient() (*client.Client, error) {
	u := os.Getenv("UNSEEN_URL")
	if u == "" {
		u = "http://127.0.0.1:8080"
	}
	tok := os.Getenv("UNSEEN_TOKEN")
	if tok == "" {
		return nil, errors.New("set UNSEEN_TOKEN to your bearer token (and UNSEEN_URL if the coordinator is not at http://127.0.0.1:8080)")
	}
	return client.New(u, tok), nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func clientCmds() []*cobra.Command {
	var idem string
	submit := &cobra.Command{
		Use:   "submit JOB.json",
		Short: "Submit a job spec (analysts)",
		Args:  cobra.ExactArgs(1),
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
			fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", s.ID, s.State)
			return nil
		},
	}
	submit.Flags().StringVar(&idem, "idempotency-key", "", "make retries of this submission create one job")

	status := &cobra.Command{
		Use:   "status ID",
		Short: "Show a job's state, progress and history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			j, err := c.Job(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), j)
		},
	}

	var listState string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the jobs you may see (yours; reviewers: those awaiting review)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			js, err := c.Jobs(cmd.Context(), jobs.State(listState))
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTYPE\tSTATE\tOWNER\tPROGRESS\tPURPOSE")
			for _, j := range js {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\n", j.ID, j.Type, j.State, j.Owner, j.Progress.Done, j.Progress.Total, j.Purpose)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&listState, "state", "", "only jobs in this state")

	review := &cobra.Command{
		Use:   "review ID",
		Short: "Show a finished job's result and disclosure checks (reviewers)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			r, err := c.Review(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), r)
		},
	}

	var comment string
	approve := &cobra.Command{
		Use:   "approve ID",
		Short: "Release a reviewed result to its analyst (reviewers)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			j, err := c.Approve(cmd.Context(), args[0], comment)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", j.ID, j.State)
			return nil
		},
	}
	approve.Flags().StringVar(&comment, "comment", "", "a note kept with the decision")

	var reason string
	reject := &cobra.Command{
		Use:   "reject ID --reason TEXT",
		Short: "Refuse release of a result (reviewers)",
		Args:  cobra.ExactArgs(1),
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
		Use:   "cancel ID",
		Short: "Cancel one of your jobs that has not finished",
		Args:  cobra.ExactArgs(1),
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
	result := &cobra.Command{
		Use:   "result ID",
		Short: "Print a released result (psi_members lists are decrypted with your key)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			r, err := c.Result(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if r.Type != "psi_members" {
				return printJSON(cmd.OutOrStdout(), r)
			}
			members, err := openMembers(r, keyFile)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), map[string]any{"id": r.ID, "type": r.Type, "count": len(members), "members": members, "reviewer": r.Reviewer})
		},
	}
	result.Flags().StringVar(&keyFile, "key", defaultKeyFile(), "your private key from `unseen keygen`")

	datasets := &cobra.Command{
		Use:   "datasets",
		Short: "List the catalog: the datasets departments share, and their rules (metadata only)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			ds, err := c.Datasets(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "DATASET\tCLASS\tSHARING\tK\tJOB TYPES\tCOLUMNS")
			for _, d := range ds.Datasets {
				var cols []string
				for _, c := range d.Columns {
					cols = append(cols, c.Name)
				}
				var types []string
				for _, t := range d.JobTypes {
					types = append(types, string(t))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.Name, d.Classification, d.Sharing, d.EffectiveMinCount(), strings.Join(types, ","), strings.Join(cols, ","))
			}
			return tw.Flush()
		},
	}
	var retryReason string
	retry := &cobra.Command{
		Use:   "retry ID",
		Short: "Requeue a dead-lettered job once its cause is mended (admins)",
		Args:  cobra.ExactArgs(1),
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
	return []*cobra.Command{submit, status, list, review, approve, reject, cancel, result, datasets, consentCmd(), retry}
}

// openMembers decrypts a released psi_members result.
func openMembers(r *wire.Result, keyFile string) ([]string, error) {
	var res struct {
		Sealed string `json:"sealed_members"`
	}
	if err := json.Unmarshal(r.Result, &res); err != nil || res.Sealed == "" {
		return nil, errors.New("the released result holds no sealed member list")
	}
	ct, err := base64.StdEncoding.DecodeString(res.Sealed)
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
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Make the analyst key pair that psi_members results are sealed to",
		Long:  "Writes the private key (mode 0600) and prints the public key to register with your user in the coordinator's configuration (public_key).",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
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
	cmd.Flags().StringVar(&out, "out", defaultKeyFile(), "where to write the private key")
	return cmd
}

func tokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Token helpers for configuration files"}
	cmd.AddCommand(&cobra.Command{
		Use:   "hash TOKEN",
		Short: "Print the SHA-256 of a token, as configs store it (token_sha256)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), api.HashToken(args[0]))
			return nil
		},
	})
	return cmd
}

func consentCmd() *cobra.Command {
	var approve, refuse bool
	var reason string
	cmd := &cobra.Command{
		Use:   "consent ID --approve|--refuse [--reason TEXT]",
		Short: "Consent to, or refuse, a job's use of your department's conditional datasets (data owners)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if approve == refuse {
				return errors.New("say exactly one of --approve or --refuse")
			}
			c, err := apiClient()
			if err != nil {
				return err
			}
			j, err := c.Consent(cmd.Context(), args[0], approve, reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", j.ID, j.State)
			return nil
		},
	}
	cmd.Flags().BoolVar(&approve, "approve", false, "consent")
	cmd.Flags().BoolVar(&refuse, "refuse", false, "refuse (give --reason)")
	cmd.Flags().StringVar(&reason, "reason", "", "why (required with --refuse)")
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "Jobs awaiting your department's consent: what is asked, by whom, why, by when",
		Args:  cobra.NoArgs,
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
					fmt.Fprintf(out, "  input %d: %s%s filter %s\n", i, in.Dataset, key, f)
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
	})
	return cmd
}
