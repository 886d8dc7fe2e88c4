package audit

import (
	"slices"
	"sort"
	"strings"
)

// LineageRow is one job that touched a dataset, as a node's own log tells it.
type LineageRow struct {
	Job       string `json:"job"`
	First     string `json:"first"` // time of the first entry
	Requester string `json:"requester"`
	Purpose   string `json:"purpose"`
	Type      string `json:"type"`
	Columns   string `json:"columns"`
	Refused   string `json:"refused,omitempty"` // the node's reason, if it refused
	Outcome   string `json:"outcome"`           // what the node last heard of the job
}

// Lineage lists, oldest first, every job whose entries name dataset: who
// asked, why, for what kind of job, which columns were used, and how it
// ended as far as the node knows.
func Lineage(entries []Entry, dataset string) []LineageRow {
	rows := map[string]*LineageRow{}
	var order []string
	for i := range entries {
		e := &entries[i]
		if e.Job == "" || !(Filter{Dataset: dataset}).Match(e) {
			continue
		}
		r, ok := rows[e.Job]
		if !ok {
			r = &LineageRow{Job: e.Job, First: e.Time.UTC().Format("2006-01-02T15:04:05Z"), Outcome: "in progress"}
			rows[e.Job] = r
			order = append(order, e.Job)
		}
		d := e.Detail
		for k, dst := range map[string]*string{"requester": &r.Requester, "purpose": &r.Purpose, "type": &r.Type} {
			if v := d[k]; v != "" && *dst == "" {
				*dst = v
			}
		}
		for _, cs := range []string{d["key"], d["filter_columns"], d["value"], d["group_by"]} {
			for _, col := range strings.Split(cs, ",") {
				if col != "" && !slices.Contains(strings.Split(r.Columns, ","), col) {
					r.Columns = joinNonEmpty(r.Columns, col)
				}
			}
		}
		switch e.Action {
		case "psi.refused", "he.refused":
			r.Refused, r.Outcome = d["reason"], "refused"
		case "job.finish":
			if r.Outcome != "refused" {
				r.Outcome = "finished: " + d["outcome"]
			}
		case "job.released", "job.rejected":
			r.Outcome = e.Action[len("job."):]
		}
	}
	out := make([]LineageRow, 0, len(order))
	for _, id := range order {
		out = append(out, *rows[id])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].First < out[j].First })
	return out
}

func joinNonEmpty(parts ...string) string {
	s := ""
	for _, p := range parts {
		if p == "" {
			continue
		}
		if s != "" {
			s += ","
		}
		s += p
	}
	return s
}
