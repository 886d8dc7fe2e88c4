package api

import (
	"sort"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/filter"
)

// maxLineageEntries bounds the audit entries one lineage request reads.
const maxLineageEntries = 20000

// lineage lists the jobs that used a dataset (data owners: only their own
// department's; auditors: any), newest audit entries first read, oldest job
// first shown. It is the coordinator's record; the owner's node keeps its
// own, which needs no trust in the coordinator.
func (a *API) lineage(c *gin.Context) {
	u := currentUser(c)
	ds := c.Query("dataset")
	if !policy.ValidDatasetName(ds) {
		abort(c, errf(400, "bad_request", "dataset must be a dataset name (department.dataset)"))
		return
	}
	if u.Role == RoleDataOwner && policy.Department(ds) != u.Department {
		abort(c, errf(403, "not_owner", "dataset %s is not of your department %s", ds, u.Department))
		return
	}
	es, err := a.cfg.Store.Audit().Entries(c.Request.Context(), audit.Filter{Dataset: ds, Limit: maxLineageEntries})
	if err != nil {
		abort(c, errf(503, "audit_unavailable", "%v", err))
		return
	}
	rows := map[string]*wire.LineageRow{}
	for i := range es {
		e := &es[i]
		if e.Job == "" {
			continue
		}
		r, ok := rows[e.Job]
		if !ok {
			r = &wire.LineageRow{Job: e.Job, First: e.Time.UTC(), Purpose: e.Detail["purpose"], Type: e.Detail["type"], Columns: []string{}}
			rows[e.Job] = r
		}
		if e.Time.Before(r.First) {
			r.First = e.Time.UTC()
		}
		if e.Action == "job.submitted" {
			r.Requester = e.Actor
		}
	}
	out := make([]wire.LineageRow, 0, len(rows))
	for _, r := range rows {
		if j, err := a.cfg.Store.Get(c.Request.Context(), r.Job); err == nil {
			r.State, r.Requester, r.Purpose, r.Type = string(j.State), j.Owner, j.Spec.Purpose, string(j.Spec.Type)
			r.Columns = columnsUsed(&j.Spec, ds)
		}
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].First.Equal(out[j].First) {
			return out[i].First.Before(out[j].First)
		}
		return out[i].Job < out[j].Job
	})
	if err := a.record(c, "lineage.read", nil, map[string]string{"dataset": ds}); err != nil {
		abort(c, err)
		return
	}
	c.JSON(200, wire.Lineage{Dataset: ds, Jobs: out, Source: "coordinator"})
}

// columnsUsed lists the columns of dataset ds that spec uses, as key,
// filter, value or group-by, each once, sorted.
func columnsUsed(spec *policy.Spec, ds string) []string {
	set := map[string]bool{}
	for _, in := range spec.Inputs {
		if in.Dataset != ds {
			continue
		}
		if in.Key != "" {
			set[in.Key] = true
		}
		if strings.TrimSpace(in.Filter) != "" {
			if e, err := filter.Parse(in.Filter); err == nil {
				for _, col := range filter.Columns(e) {
					set[col] = true
				}
			}
		}
	}
	for _, r := range []*policy.ColumnRef{spec.Value, spec.GroupBy} {
		if r != nil && (r.Dataset == ds || r.Dataset == "" && spec.Type == policy.Aggregate && touches(spec, ds)) {
			set[r.Column] = true
		}
	}
	out := make([]string, 0, len(set))
	for col := range set {
		out = append(out, col)
	}
	sort.Strings(out)
	return out
}

func touches(spec *policy.Spec, ds string) bool {
	for _, in := range spec.Inputs {
		if in.Dataset == ds {
			return true
		}
	}
	return false
}
