package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// ColumnKind is the type of a dataset column.
type ColumnKind string

const (
	KindID     ColumnKind = "id"     // 18-digit resident ID number (GB 11643)
	KindString ColumnKind = "string" // free text, e.g. a district name
	KindInt    ColumnKind = "int"    // int64; money in fen
)

// Use is a role a column may play in a job.
type Use string

const (
	UseKey     Use = "key"
	UseValue   Use = "value"
	UseFilter  Use = "filter"
	UseGroupBy Use = "group_by"
)

// Column is a column's declaration: its kind, whether it is personal
// information, and the uses its owner allows.
type Column struct {
	Name string     `json:"name" yaml:"name"`
	Kind ColumnKind `json:"kind" yaml:"kind"`
	PII  bool       `json:"pii,omitempty" yaml:"pii"`
	Uses []Use      `json:"uses,omitempty" yaml:"uses"`
}

// Allows reports whether the column may be used as u.
func (c Column) Allows(u Use) bool {
	for _, x := range c.Uses {
		if x == u {
			return true
		}
	}
	return false
}

// Dataset is what a department declares about one of its datasets. It is
// metadata only: the coordinator's catalog holds these, never rows.
type Dataset struct {
	Name           string    `json:"name" yaml:"name"`
	Description    string    `json:"description,omitempty" yaml:"description"`
	Classification string    `json:"classification" yaml:"classification"` // general | important | core
	Sharing        string    `json:"sharing" yaml:"sharing"`               // open | conditional | closed
	Columns        []Column  `json:"columns" yaml:"columns"`
	JobTypes       []JobType `json:"job_types" yaml:"job_types"`
	Departments    []string  `json:"departments,omitempty" yaml:"departments"` // who may ask; empty: any
	MinCount       int       `json:"min_count" yaml:"min_count"`
	// DP, if set, adds differential-privacy noise to released results and
	// charges each job's ε to the analyst's budget on this dataset.
	DP *DP `json:"dp,omitempty" yaml:"dp"`
	// RateLimit bounds how many jobs one analyst may run on this dataset.
	RateLimit *RateLimit `json:"rate_limit,omitempty" yaml:"rate_limit"`
	// MaxRowsPerKey is the most rows one person (one key) contributes to a
	// job: the node keeps the first that many rows per key, in the source's
	// order, after the filter, so that every count and sum moves by at most
	// one person's worth. 0 means 1.
	MaxRowsPerKey int `json:"max_rows_per_key,omitempty" yaml:"max_rows_per_key"`
	// PersonKey is the id column that names the person a row is about (for
	// aggregate jobs, which have no join key). Default: the dataset's only
	// id column.
	PersonKey string `json:"person_key,omitempty" yaml:"person_key"`
	// MaxRows is the most rows the dataset holds (0: not declared). The
	// node refuses to serve more, and the coordinator refuses at submission
	// a homomorphic job that could not run on it (SizeViolations).
	MaxRows int64 `json:"max_rows,omitempty" yaml:"max_rows"`
	// Differencing is what the node does with a job whose filtered input
	// differs from an earlier job's (within its window) by 1 to k−1
	// people, so that subtracting the two results would say something about
	// those few: "refuse" (the default, also when empty) takes no part;
	// "flag" takes part and reports the overlap for the reviewer, trusting
	// the coordinator, which sees totals before any reviewer, to pass it on.
	Differencing string `json:"differencing,omitempty" yaml:"differencing"`
}

// Differencing modes (Dataset.Differencing).
const (
	DifferencingRefuse = "refuse"
	DifferencingFlag   = "flag"
)

// DifferencingMode is Differencing with its default (refuse) applied.
func (d *Dataset) DifferencingMode() string {
	if d.Differencing == "" {
		return DifferencingRefuse
	}
	return d.Differencing
}

// DP is a dataset's differential-privacy rule.
type DP struct {
	// Epsilon charged per job (e.g. 0.5).
	Epsilon float64 `json:"epsilon" yaml:"epsilon"`
	// Budget is the total ε one analyst may spend on the dataset.
	Budget float64 `json:"budget" yaml:"budget"`
	// ValueBound is the largest |value| of a value column, so sums can be
	// given noise of the right scale. The node clamps every value it sums
	// to [−ValueBound, ValueBound] before encrypting it, DP job or not.
	ValueBound int64 `json:"value_bound,omitempty" yaml:"value_bound"`
	// TotalBudget is the ε all analysts together may spend on the dataset,
	// kept in the node's own ledger (so a coordinator that invents analysts
	// cannot exceed it). 0: no limit beyond each analyst's budget.
	TotalBudget float64 `json:"total_budget,omitempty" yaml:"total_budget"`
}

// RateLimit is at most Jobs jobs per analyst per Per.
type RateLimit struct {
	Jobs int           `json:"jobs" yaml:"jobs"`
	Per  time.Duration `json:"per" yaml:"per"`
	// TotalJobs bounds the jobs of all analysts together per Per, counted
	// by the node itself. 0: no limit beyond each analyst's.
	TotalJobs int `json:"total_jobs,omitempty" yaml:"total_jobs"`
}

// MicroEpsilon converts ε to the integer units budgets are counted in.
func MicroEpsilon(e float64) int64 { return int64(e*1e6 + 0.5) }

// DefaultMinCount is k when a dataset does not declare one.
const DefaultMinCount = 10

// Department is the owning department.
func (d *Dataset) Department() string { return Department(d.Name) }

// Column returns the named column.
func (d *Dataset) Column(name string) (Column, bool) {
	for _, c := range d.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// Kinds maps each column to its kind (for filter type checks).
func (d *Dataset) Kinds() map[string]ColumnKind {
	m := make(map[string]ColumnKind, len(d.Columns))
	for _, c := range d.Columns {
		m[c.Name] = c.Kind
	}
	return m
}

// Version is a hash of the dataset's policy, recorded with every decision so
// an auditor can tell which rules were in force.
func (d *Dataset) Version() string {
	b, _ := json.Marshal(d)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Validate checks a declaration for internal consistency.
func (d *Dataset) Validate() error {
	if !ValidDatasetName(d.Name) {
		return fmt.Errorf("policy: dataset name %q is not of the form department.dataset", d.Name)
	}
	switch d.Classification {
	case "general", "important", "core":
	default:
		return fmt.Errorf("policy: dataset %s: classification %q is not general, important or core", d.Name, d.Classification)
	}
	switch d.Sharing {
	case "open", "conditional", "closed":
	default:
		return fmt.Errorf("policy: dataset %s: sharing %q is not open, conditional or closed", d.Name, d.Sharing)
	}
	if len(d.Columns) == 0 {
		return fmt.Errorf("policy: dataset %s declares no columns", d.Name)
	}
	seen := map[string]bool{}
	for _, c := range d.Columns {
		if !ValidColumnName(c.Name) || seen[c.Name] {
			return fmt.Errorf("policy: dataset %s: bad or repeated column %q", d.Name, c.Name)
		}
		seen[c.Name] = true
		switch c.Kind {
		case KindID, KindString, KindInt:
		default:
			return fmt.Errorf("policy: dataset %s: column %s: kind %q is not id, string or int", d.Name, c.Name, c.Kind)
		}
		for _, u := range c.Uses {
			switch u {
			case UseKey, UseValue, UseFilter, UseGroupBy:
			default:
				return fmt.Errorf("policy: dataset %s: column %s: unknown use %q", d.Name, c.Name, u)
			}
		}
		if c.Allows(UseValue) && c.Kind != KindInt {
			return fmt.Errorf("policy: dataset %s: column %s: only int columns can be values", d.Name, c.Name)
		}
	}
	for _, t := range d.JobTypes {
		if !t.valid() {
			return fmt.Errorf("policy: dataset %s: unknown job type %q", d.Name, t)
		}
	}
	if d.DP != nil && (d.DP.Epsilon <= 0 || d.DP.Budget < d.DP.Epsilon || d.DP.ValueBound < 0) {
		return fmt.Errorf("policy: dataset %s: dp needs epsilon > 0, a budget of at least one job's epsilon, and a non-negative value_bound", d.Name)
	}
	if d.RateLimit != nil && (d.RateLimit.Jobs < 1 || d.RateLimit.Per <= 0 || d.RateLimit.TotalJobs < 0 || d.RateLimit.TotalJobs > 0 && d.RateLimit.TotalJobs < d.RateLimit.Jobs) {
		return fmt.Errorf("policy: dataset %s: rate_limit needs jobs ≥ 1, a positive per, and total_jobs (if set) at least jobs", d.Name)
	}
	if d.DP != nil && (d.DP.TotalBudget < 0 || d.DP.TotalBudget > 0 && d.DP.TotalBudget < d.DP.Budget) {
		return fmt.Errorf("policy: dataset %s: dp.total_budget (if set) must be at least the per-analyst budget", d.Name)
	}
	if d.MaxRowsPerKey < 0 {
		return fmt.Errorf("policy: dataset %s: max_rows_per_key must not be negative", d.Name)
	}
	if d.PersonKey != "" {
		c, ok := d.Column(d.PersonKey)
		if !ok || c.Kind != KindID {
			return fmt.Errorf("policy: dataset %s: person_key %q must name an id column", d.Name, d.PersonKey)
		}
	}
	if d.MaxRows < 0 {
		return fmt.Errorf("policy: dataset %s: max_rows must not be negative", d.Name)
	}
	if d.MinCount < 0 {
		return fmt.Errorf("policy: dataset %s: min_count must not be negative", d.Name)
	}
	switch d.Differencing {
	case "", DifferencingRefuse, DifferencingFlag:
	default:
		return fmt.Errorf("policy: dataset %s: differencing %q is not refuse or flag", d.Name, d.Differencing)
	}
	return nil
}

// RowsPerKey is MaxRowsPerKey with its default (1) applied.
func (d *Dataset) RowsPerKey() int { return max(1, d.MaxRowsPerKey) }

// EffectiveMinCount is k with the default applied.
func (d *Dataset) EffectiveMinCount() int {
	if d.MinCount == 0 {
		return DefaultMinCount
	}
	return d.MinCount
}

// Catalog is the set of declared datasets, by name.
type Catalog map[string]*Dataset

// Names returns the dataset names, sorted.
func (c Catalog) Names() []string {
	out := make([]string, 0, len(c))
	for n := range c {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
