package policy

import (
	"fmt"
	"strings"
)

// Requester is who asks: the submitting user and their department.
type Requester struct {
	User       string `json:"user" yaml:"user"`
	Department string `json:"department" yaml:"department"`
}

// Violation is one broken rule: which rule, where, and what would be allowed.
type Violation struct {
	Rule    string `json:"rule"`
	Dataset string `json:"dataset,omitempty"`
	Column  string `json:"column,omitempty"`
	Message string `json:"message"`
}

func (v Violation) String() string {
	where := v.Dataset
	if v.Column != "" {
		where += "." + v.Column
	}
	if where != "" {
		return fmt.Sprintf("%s (%s): %s", v.Rule, where, v.Message)
	}
	return fmt.Sprintf("%s: %s", v.Rule, v.Message)
}

// Decision is the outcome of evaluating a job against the catalog.
type Decision struct {
	Allow      bool              `json:"allow"`
	Violations []Violation       `json:"violations,omitempty"`
	Versions   map[string]string `json:"policy_versions,omitempty"` // dataset → policy version in force
	// NeedsConsent lists conditional datasets whose owners must consent.
	NeedsConsent []string `json:"needs_consent,omitempty"`
	// Epsilon is the differential-privacy ε charged to each DP dataset's
	// budget for this job: the job's ε, the smallest of its DP datasets'
	// (policy/disclosure's plan), which is what each of their people loses.
	// The coordinator sets it at submission; Decide leaves it empty.
	Epsilon map[string]float64 `json:"epsilon,omitempty"`
	// Similar lists the analyst's recent jobs whose specs ask nearly the
	// same question (policy/disclosure.NearDuplicate): subtracting the two
	// results could single out the few rows in between, so the reviewer
	// sees them as a failing differencing check. The coordinator sets it at
	// submission; Decide leaves it empty.
	Similar []SimilarJob `json:"similar,omitempty"`
}

// SimilarJob is an earlier job nearly like this one, and what differs.
type SimilarJob struct {
	Job string `json:"job"`
	Why string `json:"why"`
}

// Error summarises the violations as one message.
func (d Decision) Error() string {
	parts := make([]string, len(d.Violations))
	for i, v := range d.Violations {
		parts[i] = v.String()
	}
	return "policy: job refused: " + strings.Join(parts, "; ")
}

// Decide evaluates a structurally valid spec against the catalog for a
// requester. It is the one place rules are applied; the coordinator calls it
// at submission and every node calls it again with its own catalog (which
// holds only its own datasets: onlyLocal restricts the checks to those).
func Decide(cat Catalog, s *Spec, req Requester, onlyLocal bool) Decision {
	d := Decision{Versions: map[string]string{}}
	add := func(rule, ds, col, format string, args ...any) {
		d.Violations = append(d.Violations, Violation{Rule: rule, Dataset: ds, Column: col, Message: fmt.Sprintf(format, args...)})
	}
	if err := s.Validate(); err != nil {
		add("spec", "", "", "%v", err)
		return d
	}
	useColumn := func(ds *Dataset, col string, u Use) {
		c, ok := ds.Column(col)
		if !ok {
			add("unknown_column", ds.Name, col, "no such column; declared columns: %s", strings.Join(columnNames(ds), ", "))
			return
		}
		if !c.Allows(u) {
			add("column_use", ds.Name, col, "may not be used as %s; allowed as %s: %s", u, u, strings.Join(columnsAllowing(ds, u), ", "))
		}
	}
	for i, in := range s.Inputs {
		ds, ok := cat[in.Dataset]
		if !ok {
			if !onlyLocal {
				add("unknown_dataset", in.Dataset, "", "not in the catalog; known datasets: %s", strings.Join(cat.Names(), ", "))
			}
			continue
		}
		d.Versions[ds.Name] = ds.Version()
		if ds.DP != nil && s.Type == PSIMembers {
			add("dp", ds.Name, "", "dataset requires differential privacy, which a member list cannot have; counts and statistics are allowed")
		}
		switch ds.Sharing {
		case "closed":
			add("sharing_closed", ds.Name, "", "dataset is not shared (不予共享) and can never be used")
		case "conditional":
			d.NeedsConsent = append(d.NeedsConsent, ds.Name)
		}
		if !containsType(ds.JobTypes, s.Type) {
			add("job_type", ds.Name, "", "job type %s not allowed; allowed: %v", s.Type, ds.JobTypes)
		}
		if len(ds.Departments) > 0 && !containsString(ds.Departments, req.Department) && req.Department != ds.Department() {
			add("department", ds.Name, "", "department %q may not ask; allowed: %s", req.Department, strings.Join(ds.Departments, ", "))
		}
		if s.Type != Aggregate {
			useColumn(ds, in.Key, UseKey)
			if c, ok := ds.Column(in.Key); ok && c.Kind != KindID && c.Allows(UseKey) {
				add("column_use", ds.Name, in.Key, "join keys must be id columns")
			}
		}
		if s.Type == PSIMembers && i == 0 && ds.Department() != req.Department {
			add("members_own_dataset", ds.Name, "", "psi_members returns keys of the first input, which must belong to the requester's department %q", req.Department)
		}
		if in.Filter != "" {
			checkFilter(ds, in.Filter, add)
		}
	}
	// Value columns: each input's own (inputs[i].value) or the spec's.
	for i, in := range s.Inputs {
		if col := s.ValueColumn(i); col != "" {
			if ds, ok := cat[in.Dataset]; ok {
				useColumn(ds, col, UseValue)
			}
		}
	}
	if r := s.GroupBy; r != nil {
		targets := []string{r.Dataset}
		if r.Dataset == "" { // aggregate: same column in every input
			targets = targets[:0]
			for _, in := range s.Inputs {
				targets = append(targets, in.Dataset)
			}
		}
		for _, name := range targets {
			if ds, ok := cat[name]; ok {
				useColumn(ds, r.Column, UseGroupBy)
			}
		}
	}
	// The noise and its bounds (a value bound for every input a DP job
	// sums, the ε charged) are policy/disclosure's: see disclosure.CheckDP.
	// Sizes: a homomorphic job that could not run on the declared sizes is
	// refused now, not after it was queued.
	d.Violations = append(d.Violations, SizeViolations(cat, s, 0)...)
	d.Allow = len(d.Violations) == 0
	return d
}

func columnNames(ds *Dataset) []string {
	out := make([]string, len(ds.Columns))
	for i, c := range ds.Columns {
		out[i] = c.Name
	}
	return out
}

func columnsAllowing(ds *Dataset, u Use) []string {
	var out []string
	for _, c := range ds.Columns {
		if c.Allows(u) {
			out = append(out, c.Name)
		}
	}
	if len(out) == 0 {
		return []string{"(none)"}
	}
	return out
}

func containsType(ts []JobType, t JobType) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
