package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/policy/attest"
)

// maxAuditExport is the most entries GET /v1/audit returns at once.
const maxAuditExport = 100000

func auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read and verify audit logs (auditors)",
		Example: "  UNSEEN_TOKEN=example-auditor-token unseen audit verify\n  unseen audit list --job $ID\n  unseen audit lineage hrss.unemployment_benefits --file examples/state/hrss/audit.jsonl"}
	var file, key, name string
	var witnesses, witnessKeys []string
	var verifyOut *string
	verify := &cobra.Command{
		Use:   "verify [--file LOG [--key ed25519:… ] [--witness [NAME=]COPY …]]",
		Short: "Verify a hash chain: a node's log file (--file) or the coordinator's (over the API); with witnesses, across parties",
		Long: `With --file, checks a log file's chain against its head file; with --key
(the keeper's public signing key), that the head file is signed by it, so a
head rewritten without the key is caught.

With --witness, also checks the heads each party recorded of the other:
every head of this log that the witness recorded (detail witness.<name>)
must be an entry of this log with that hash, and every head of the witness
recorded here must be one of the witness's — so a log cut short, or
rewritten, even with its head re-signed by its own keeper, is caught by
the other party's copy. A copy is a node's log file, the coordinator's
store file, or an export of the coordinator's chain (unseen audit list
--json --limit 0 > coordinator.json). --witness-key [NAME=]ed25519:… checks
the witness's keeper's signatures on the heads recorded here.`,
		Example: `  unseen audit verify                                  # the coordinator's chain, over the API
  unseen audit verify --file examples/state/hrss/audit.jsonl --key ed25519:…
  unseen audit verify --file examples/state/hrss/audit.jsonl --witness coordinator=coordinator.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if file == "" {
				if key != "" || len(witnesses) > 0 {
					return errors.New("--key and --witness check a copy of a log: give it with --file")
				}
				c, err := apiClient()
				if err != nil {
					return err
				}
				v, err := c.AuditVerify(cmd.Context())
				if err != nil {
					return err
				}
				if *verifyOut == outJSON {
					if err := printJSON(out, v); err != nil {
						return err
					}
					if !v.OK {
						return &exitError{2, fmt.Errorf("coordinator audit chain: %s", v.Error)}
					}
					return nil
				}
				if !v.OK {
					return &exitError{2, fmt.Errorf("coordinator audit chain: %s", v.Error)}
				}
				fmt.Fprintf(out, "ok: coordinator: %d entries, chain and head intact\n", v.Entries)
				return nil
			}
			if *verifyOut == outJSON {
				return errors.New("-o json is for the coordinator's chain (without --file); a file's check prints one line per finding")
			}
			pub, err := parseKey(key)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			wkeys := map[string]ed25519.PublicKey{}
			for _, wk := range witnessKeys {
				n, v := parseNamed(wk)
				k, err := parseKey(v)
				if err != nil {
					return fmt.Errorf("--witness-key %s: %w", wk, err)
				}
				wkeys[n] = k
			}
			self, err := loadAuditCopy(file, name)
			if err != nil {
				return &exitError{2, err}
			}
			switch {
			case !self.isFile:
				fmt.Fprintf(out, "ok: %s: %d entries, chain and head intact\n", file, len(self.entries))
			case self.check.PastHead == 0 && self.check.Torn == nil:
				fmt.Fprintf(out, "ok: %s: %d entries, chain and head intact\n", file, self.check.Entries)
			default:
				// What a crash (or a write in progress) leaves: the log's
				// owner repairs it when it next opens the log.
				c := self.check
				fmt.Fprintf(out, "ok: %s: %d entries, chain intact, head at seq %d", file, c.Entries, c.Head.Seq)
				if c.PastHead > 0 {
					fmt.Fprintf(out, "; %d entry past the head (written just before a crash, or being written): adopted at the next open", c.PastHead)
				}
				if c.Torn != nil {
					fmt.Fprintf(out, "; a final line of %d bytes at offset %d written in part: cut at the next open", c.Torn.Bytes, c.Torn.Offset)
				}
				fmt.Fprintln(out)
			}
			if pub != nil && self.isFile {
				s := self.signed
				switch {
				case s == nil:
					return &exitError{2, fmt.Errorf("%s: the head file is not signed, so --key cannot vouch for it (the keeper signs every head it writes; an unsigned head was written by something else, or before heads were signed)", file)}
				case s.Head() != self.check.Head:
					return &exitError{2, fmt.Errorf("%s: the head file's signature is over seq %d, not its head seq %d", file, s.Seq, self.check.Head.Seq)}
				}
				if err := s.Verify(pub); err != nil {
					return &exitError{2, fmt.Errorf("%s: %w: the head file was rewritten without the keeper's key", file, err)}
				}
				fmt.Fprintf(out, "head signed by %s (log %s, seq %d)\n", attest.Fingerprint(pub), s.Log, s.Seq)
			}
			for _, w := range witnesses {
				wn, wp := parseNamed(w)
				wc, err := loadAuditCopy(wp, wn)
				if err != nil {
					return &exitError{2, fmt.Errorf("witness: %w", err)}
				}
				wk := wkeys[wc.name]
				if wk == nil && len(witnesses) == 1 {
					wk = wkeys[""]
				}
				line, err := crossCheck(self, wc, pub, wk)
				if err != nil {
					return &exitError{2, err}
				}
				fmt.Fprintln(out, line)
			}
			return nil
		},
	}
	verifyOut = addOutput(verify)
	verify.Flags().StringVar(&file, "file", "", "a node's audit log file, the coordinator's store file (state/coordinator/unseen.db, while the coordinator is stopped), or an export of its chain")
	verify.Flags().StringVar(&key, "key", "", "the log keeper's public signing key (ed25519:…): its head file and witnessed heads must be signed by it")
	verify.Flags().StringVar(&name, "name", "", "whose log --file is (a department, or coordinator); default: as its signed head says")
	verify.Flags().StringArrayVar(&witnesses, "witness", nil, "another party's copy, [NAME=]PATH, to check heads against both ways (repeatable)")
	verify.Flags().StringArrayVar(&witnessKeys, "witness-key", nil, "a witness keeper's public signing key, [NAME=]ed25519:… (repeatable)")

	var f audit.Filter
	var listJSON bool
	var listOut *string
	list := &cobra.Command{
		Use:   "list [--job ID] [--dataset NAME] [--actor USER] [--limit N]",
		Short: "List the coordinator's audit entries (filter by job, dataset, actor); -o json with --limit 0 exports the whole chain for audit verify --witness",
		Example: `  unseen audit list --job $ID
  unseen audit list --dataset civil.minimum_living_allowance --actor alice
  unseen audit list -o json --limit 0 > coordinator.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiClient()
			if err != nil {
				return err
			}
			q := f
			if q.Limit <= 0 {
				q.Limit = maxAuditExport
			}
			es, err := c.Audit(cmd.Context(), q)
			if err != nil {
				return err
			}
			if listJSON || *listOut == outJSON {
				return printJSON(cmd.OutOrStdout(), es)
			}
			tw := newTable(cmd.OutOrStdout())
			fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tROLE\tACTION\tJOB\tDETAIL")
			for _, e := range es {
				var d []string
				for _, k := range sortedKeys(e.Detail) {
					if k == "purpose" || strings.HasPrefix(k, "witness.") {
						continue // long; in -o json
					}
					d = append(d, k+"="+e.Detail[k])
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, fmtTime(e.Time), e.Actor, orDash(e.Role), e.Action, orDash(e.Job), strings.Join(d, " "))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&f.Job, "job", "", "job id")
	list.Flags().StringVar(&f.Dataset, "dataset", "", "dataset name")
	list.Flags().StringVar(&f.Actor, "actor", "", "user")
	list.Flags().IntVar(&f.Limit, "limit", 200, fmt.Sprintf("newest N entries (0: as many as the API gives, %d)", maxAuditExport))
	list.Flags().BoolVar(&listJSON, "json", false, "the same as -o json")
	listOut = addOutput(list)
	var lfile string
	var asJSON bool
	var lineageOut *string
	lineage := &cobra.Command{
		Use:   "lineage DATASET [--file NODE-AUDIT-LOG]",
		Short: "Every job that touched a dataset: from its node's own log (--file), or the coordinator's record (data owners, auditors)",
		Long: `With --file, reads the dataset's node's own audit log (after checking its
chain): the account that needs no trust in the coordinator. Without it, asks
the coordinator (GET /v1/lineage; data owners for their department's
datasets, auditors for any).`,
		Example: `  unseen audit lineage hrss.unemployment_benefits --file examples/state/hrss/audit.jsonl
  UNSEEN_TOKEN=example-owner-civil-token unseen audit lineage civil.minimum_living_allowance`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON = asJSON || *lineageOut == outJSON
			if lfile == "" {
				c, err := apiClient()
				if err != nil {
					return err
				}
				l, err := c.Lineage(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), l)
				}
				tw := newTable(cmd.OutOrStdout())
				fmt.Fprintf(tw, "# %s: %d jobs, from the %s's record (the node's own: --file)\n", l.Dataset, len(l.Jobs), l.Source)
				fmt.Fprintln(tw, "FIRST SEEN\tJOB\tREQUESTER\tTYPE\tCOLUMNS\tSTATE\tPURPOSE")
				for _, r := range l.Jobs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", fmtTime(r.First), r.Job, r.Requester, r.Type, strings.Join(r.Columns, ","), r.State, r.Purpose)
				}
				return tw.Flush()
			}
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
	lineage.Flags().BoolVar(&asJSON, "json", false, "the same as -o json")
	lineageOut = addOutput(lineage)
	cmd.AddCommand(verify, list, lineage)
	return cmd
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
