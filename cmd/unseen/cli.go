package main

import (
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
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/unseen-data/unseen/api"
	"github.com/unseen-data/unseen/api/client"
	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/psi/delivery"
)

// caFile is the root command's --ca: the CA certificate(s) (PEM) the
// coordinator's HTTPS API is checked against; empty: UNSEEN_CA, else the
// system's roots.
var caFile string

// apiClient builds a client from UNSEEN_URL, UNSEEN_TOKEN and --ca or
// UNSEEN_CA.
func apiClient() (*client.Client, error) {
	u := os.Getenv("UNSEEN_URL")
	if u == "" {
		u = "http://127.0.0.1:8080"
	}
	tok := os.Getenv("UNSEEN_TOKEN")
	if tok == "" {
		return nil, errors.New("set UNSEEN_TOKEN to your bearer token (and UNSEEN_URL if the coordinator is not at http://127.0.0.1:8080)")
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
		Args: cobra.ExactArgs(1),
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
	approve.Flags().StringVar(&approveKey, "key", "", "your signing key (from `unseen keygen --sign`; its public half is your signing_key)")
	approve.Flags().StringVar(&expectRecipient, "expect-recipient", "", "psi_members: refuse unless the analyst's key has this fingerprint")

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
		Args: cobra.NoArgs,
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
	var reason, keyFile, until, dataset string
	cmd := &cobra.Command{
		Use:   "consent ID --approve --key FILE | --refuse --reason TEXT",
		Short: "Consent to, or refuse, a job's use of your department's conditional datasets (data owners)",
		Long: `Consent is signed with your key (unseen keygen --sign) over the job as this
command fetched it — its id, the hash of its spec, its requester — the
dataset, your answer, reason and --until: the nodes use a conditional
dataset only with that signature, and only until then. A refusal needs
no key (it is signed if you give one).`,
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
	cmd.Flags().StringVar(&keyFile, "key", "", "your signing key (from `unseen keygen --sign`)")
	cmd.Flags().StringVar(&until, "until", "", "when the consent lapses, RFC 3339 (default: 30 days from now)")
	cmd.Flags().StringVar(&dataset, "dataset", "", "answer for this dataset only (default: every one of your department's that the job asks for)")
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
	})
	return cmd
}
