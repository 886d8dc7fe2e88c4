package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/unseen-data/unseen/policy/disclosure"

	"github.com/spf13/cobra"

	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
)

// Human output of the read commands: tables by default, JSON with -o json
// (the API's own documents, for scripts).

const (
	outTable = "table"
	outJSON  = "json"
)

// addOutput registers -o/--output on a read command.
func addOutput(cmd *cobra.Command) *string {
	var o string
	cmd.Flags().StringVarP(&o, "output", "o", outTable, "output format: table (for people) or json (the API's document, for scripts)")
	prev := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		if o != outTable && o != outJSON {
			return fmt.Errorf("--output must be table or json, not %q", o)
		}
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
	return &o
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 2, 4, 2, ' ', 0) }

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// describeInput is one input as people read it.
func describeInput(spec *policy.Spec, in policy.Input) string {
	f := in.Filter
	if f == "" {
		f = "(all rows)"
	}
	if spec.Type == policy.Aggregate {
		return fmt.Sprintf("%s, filter %s", in.Dataset, f)
	}
	return fmt.Sprintf("%s, key %s, filter %s", in.Dataset, in.Key, f)
}

func colRef(r *policy.ColumnRef) string {
	if r.Dataset == "" {
		return r.Column
	}
	return r.Dataset + "." + r.Column
}

// nextStep says what a job waits for, and who acts next.
func nextStep(j *wire.Job) string {
	switch j.State {
	case jobs.AwaitingConsent:
		var want []string
		if j.Decision != nil {
			for _, ds := range j.Decision.NeedsConsent {
				done := false
				for _, c := range j.Consents {
					done = done || c.Dataset == ds && c.Approved
				}
				if !done {
					want = append(want, ds)
				}
			}
		}
		return fmt.Sprintf("waiting for the data owner's consent for %s (unseen consent %s --approve --key FILE), until %s", strings.Join(want, ", "), j.ID, fmtTime(j.ConsentDeadline))
	case jobs.Queued:
		return "a worker will run it"
	case jobs.Running:
		return "the nodes are computing it"
	case jobs.Retryable:
		return "waiting to retry: " + j.Waiting
	case jobs.DeadLetter:
		return fmt.Sprintf("needs an admin: unseen retry %s once the cause is mended", j.ID)
	case jobs.AwaitingReview:
		return fmt.Sprintf("waiting for a reviewer (unseen review %s; unseen approve %s --key FILE)", j.ID, j.ID)
	case jobs.Released:
		return fmt.Sprintf("read it with unseen result %s", j.ID)
	case jobs.Rejected, jobs.Cancelled:
		if j.Comment != "" {
			return "by " + orDash(j.Reviewer) + ": " + j.Comment
		}
	case jobs.Failed:
		return j.Error
	}
	return "-"
}

// printJob is `unseen status` as a table.
func printJob(w io.Writer, j *wire.Job) error {
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("JOB", j.ID)
	row("TYPE", string(j.Type))
	row("STATE", string(j.State))
	row("NEXT", nextStep(j))
	row("REQUESTER", j.Owner+" ("+j.Department+")")
	row("PURPOSE", j.Purpose)
	for i, in := range j.Spec.Inputs {
		row(fmt.Sprintf("INPUT %d", i+1), describeInput(&j.Spec, in))
	}
	if j.Spec.Value != nil {
		row("VALUE", colRef(j.Spec.Value))
	}
	if len(j.Spec.Stats) > 0 {
		s := strings.Join(j.Spec.Stats, ", ")
		if len(j.Spec.Bins) > 0 {
			s += fmt.Sprintf(" (bins %v)", j.Spec.Bins)
		}
		row("STATS", s)
	}
	if j.Spec.GroupBy != nil {
		row("GROUP BY", colRef(j.Spec.GroupBy))
	}
	if j.Progress.Total > 0 {
		row("PROGRESS", fmt.Sprintf("%d/%d %s", j.Progress.Done, j.Progress.Total, j.Progress.Step))
	}
	for _, c := range j.Consents {
		ans := "consented"
		if !c.Approved {
			ans = "refused"
		}
		signed := "unsigned"
		if c.Signed != nil {
			signed = "signed"
		}
		row("CONSENT", fmt.Sprintf("%s %s by %s (%s) %s", c.Dataset, ans, c.By, signed, c.Reason))
	}
	if j.Error != "" {
		row("ERROR", j.Error)
	}
	if j.Reviewer != "" {
		row("REVIEWER", j.Reviewer+" "+j.Comment)
	}
	row("CREATED", fmtTime(j.CreatedAt))
	row("UPDATED", fmtTime(j.UpdatedAt))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(j.History) > 0 {
		fmt.Fprintln(w)
		tw = newTable(w)
		fmt.Fprintln(tw, "TIME\tSTATE\tACTOR\tNOTE")
		for _, e := range j.History {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", fmtTime(e.At), e.State, e.Actor, e.Note)
		}
		return tw.Flush()
	}
	return nil
}

func printJobs(w io.Writer, js []wire.Job) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tTYPE\tSTATE\tOWNER\tPROGRESS\tUPDATED\tPURPOSE")
	for _, j := range js {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", j.ID, j.Type, j.State, j.Owner, j.Progress.Done, j.Progress.Total, fmtTime(j.UpdatedAt), j.Purpose)
	}
	return tw.Flush()
}

// printResult shows a result document (released or under review) as a
// table: a count, or statistics per group with the histogram's buckets; a
// suppressed cell says so and why, never a number.
func printResult(w io.Writer, typ policy.JobType, raw json.RawMessage) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		fmt.Fprintf(w, "%s\n", raw)
		return nil
	}
	total := doc
	if t, ok := doc["total"].(map[string]any); ok {
		total = t
	}
	groups, _ := doc["groups"].(map[string]any)
	if typ == policy.PSICardinality || typ == policy.PSIMembers {
		tw := newTable(w)
		if s, ok := total["suppressed"]; ok && s != nil {
			fmt.Fprintf(tw, "COUNT\tsuppressed (%v; not rounded)\n", s)
		} else {
			fmt.Fprintf(tw, "COUNT\t%v\n", total["count"])
		}
		if s, ok := doc["sealed_sha256"]; ok {
			fmt.Fprintf(tw, "SEALED LIST SHA-256\t%v\n", s)
		}
		return tw.Flush()
	}
	stats := []string{}
	for _, s := range []string{"count", "sum", "mean", "variance"} {
		present := total[s] != nil
		for _, g := range groups {
			if gm, ok := g.(map[string]any); ok && gm[s] != nil {
				present = true
			}
		}
		if present {
			stats = append(stats, s)
		}
	}
	var buckets []string
	if h, ok := total["histogram"].(map[string]any); ok {
		for b := range h {
			buckets = append(buckets, b)
		}
		sort.Slice(buckets, func(i, j int) bool { return bucketLess(buckets[i], buckets[j]) })
	}
	tw := newTable(w)
	head := []string{"GROUP"}
	for _, s := range stats {
		head = append(head, strings.ToUpper(s))
	}
	head = append(head, buckets...)
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	line := func(name string, v any) {
		gm, _ := v.(map[string]any)
		if s, ok := gm["suppressed"]; gm == nil || ok && s != nil && s != false {
			why := fmt.Sprint(gm["suppressed"])
			if why == "true" || why == "<nil>" {
				why = "below k"
			}
			fmt.Fprintf(tw, "%s\tsuppressed: %s (not rounded)\n", name, why)
			return
		}
		cells := []string{name}
		for _, s := range stats {
			cells = append(cells, cell(gm[s]))
		}
		h, _ := gm["histogram"].(map[string]any)
		for _, b := range buckets {
			if h == nil {
				cells = append(cells, "-")
			} else if h[b] == nil {
				cells = append(cells, "suppressed")
			} else {
				cells = append(cells, cell(h[b]))
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	line("(all)", total)
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		line(g, groups[g])
	}
	return tw.Flush()
}

func cell(v any) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprint(v)
}

// bucketLess orders histogram labels "<a", "[a,b)", …, "≥z" by their edges.
func bucketLess(a, b string) bool {
	key := func(s string) (int, int64) {
		var n int64
		switch {
		case strings.HasPrefix(s, "<"):
			fmt.Sscan(strings.TrimPrefix(s, "<"), &n)
			return 0, n
		case strings.HasPrefix(s, "["):
			fmt.Sscan(strings.TrimPrefix(strings.SplitN(s, ",", 2)[0], "["), &n)
			return 1, n
		}
		fmt.Sscan(strings.TrimPrefix(s, "≥"), &n)
		return 2, n
	}
	ka, na := key(a)
	kb, nb := key(b)
	if ka != kb {
		return ka < kb
	}
	return na < nb
}

// checkSentence explains a disclosure check in one sentence, when the
// server gives none: the sentences are policy/disclosure's, the one room
// for disclosure control.
var checkSentence = disclosure.Protects

// printReview is `unseen review` as tables: the job, the result, the
// checks, and the statement an approval signs.
func printReview(w io.Writer, rv *wire.Review, raw []byte) error {
	j := &rv.Job
	fmt.Fprintf(w, "job %s (%s) requested by %s (%s)\npurpose: %s\n", j.ID, j.Type, j.Owner, j.Department, j.Purpose)
	for i, in := range j.Spec.Inputs {
		fmt.Fprintf(w, "input %d: %s\n", i+1, describeInput(&j.Spec, in))
	}
	fmt.Fprintln(w, "\nRESULT (as it would be released)")
	if err := printResult(w, j.Type, rv.Review.Result); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nDISCLOSURE CHECKS")
	tw := newTable(w)
	fmt.Fprintln(tw, "CHECK\tRESULT\tWHAT IT PROTECTS\tDETAIL")
	var protects map[string]string
	if raw != nil {
		var x struct {
			Review struct {
				Checks []struct {
					Name     string `json:"name"`
					Protects string `json:"protects"`
				} `json:"checks"`
			} `json:"review"`
		}
		if json.Unmarshal(raw, &x) == nil {
			protects = map[string]string{}
			for _, c := range x.Review.Checks {
				protects[c.Name] = c.Protects
			}
		}
	}
	for _, c := range rv.Review.Checks {
		res := "pass"
		if !c.Passed {
			res = "FLAG"
		}
		why := protects[c.Name]
		if why == "" {
			why = checkSentence[c.Name]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, res, orDash(why), c.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if a := rv.Approval; a != nil {
		fmt.Fprintf(w, "\nTO RELEASE IT, SIGN (unseen approve %s --key FILE computes this itself)\n", j.ID)
		tw = newTable(w)
		fmt.Fprintf(tw, "spec sha256\t%s\nresult sha256\t%s\n", a.SpecHash, a.Result)
		if !a.Recipient.IsZero() {
			fmt.Fprintf(tw, "sealed to\t%s's key, fingerprint %s\n", j.Owner, rv.RecipientFingerprint)
		}
		return tw.Flush()
	}
	return nil
}

func printDatasets(w io.Writer, ds []policy.Dataset) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "DATASET\tCLASS\tSHARING\tK\tJOB TYPES\tCOLUMNS (USES)")
	for _, d := range ds {
		var cols []string
		for _, c := range d.Columns {
			var uses []string
			for _, u := range c.Uses {
				uses = append(uses, string(u))
			}
			cols = append(cols, c.Name+"("+strings.Join(uses, "/")+")")
		}
		var types []string
		for _, t := range d.JobTypes {
			types = append(types, string(t))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.Name, d.Classification, d.Sharing, d.EffectiveMinCount(), strings.Join(types, ","), strings.Join(cols, " "))
	}
	return tw.Flush()
}
