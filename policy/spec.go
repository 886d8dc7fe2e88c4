package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// JobType names one of the questions Unseen can answer (design section 2).
type JobType string

const (
	PSICardinality    JobType = "psi_cardinality"
	PSIMembers        JobType = "psi_members"
	IntersectionStats JobType = "intersection_stats"
	Aggregate         JobType = "aggregate"
)

// JobTypes lists every known job type, in a stable order.
var JobTypes = []JobType{PSICardinality, PSIMembers, IntersectionStats, Aggregate}

func (t JobType) valid() bool {
	for _, k := range JobTypes {
		if t == k {
			return true
		}
	}
	return false
}

// Input is one dataset of a job: its join key and an optional filter on the
// dataset's own columns, applied by the owning node before anything leaves it.
type Input struct {
	Dataset string `json:"dataset" yaml:"dataset"`
	Key     string `json:"key,omitempty" yaml:"key,omitempty"`
	Filter  string `json:"filter,omitempty" yaml:"filter,omitempty"`
	// Value, for aggregate and intersection_stats jobs, names this input's
	// own value column (monthly_allowance_fen here, allowance_fen there)
	// instead of Spec.Value. An aggregate names one for every input or for
	// none; an intersection_stats job for at most one input, which is then
	// the value dataset. Empty (the encoding omits it, so specs without it
	// hash as before): Spec.Value applies.
	Value string `json:"value,omitempty" yaml:"value,omitempty"`
}

// ColumnRef names a column of a dataset.
type ColumnRef struct {
	Dataset string `json:"dataset" yaml:"dataset"`
	Column  string `json:"column" yaml:"column"`
}

// Spec is a job as an analyst submits it. It is the subject of every policy
// decision, at the coordinator and again at each node.
type Spec struct {
	Type    JobType    `json:"type" yaml:"type"`
	Purpose string     `json:"purpose" yaml:"purpose"`
	Inputs  []Input    `json:"inputs" yaml:"inputs"`
	Value   *ColumnRef `json:"value,omitempty" yaml:"value,omitempty"`
	Stats   []string   `json:"stats,omitempty" yaml:"stats,omitempty"`
	GroupBy *ColumnRef `json:"group_by,omitempty" yaml:"group_by,omitempty"`
	// Bins are the ascending edges of a histogram of the value column
	// (stat "histogram", aggregate jobs): buckets x < e0, e0 ≤ x < e1, …,
	// x ≥ e_last.
	Bins []int64 `json:"bins,omitempty" yaml:"bins,omitempty"`
	// PSIProtocol chooses the private set intersection protocol of a job
	// with a PSI phase: "ecdh" or "ot" (protocol.go); empty lets the
	// coordinator choose by ChoosePSIProtocol, a rule every node checks.
	// It is part of the spec, so of its hash: a job submitted for one
	// protocol never runs the other.
	PSIProtocol string `json:"psi_protocol,omitempty" yaml:"psi_protocol,omitempty"`
}

// MaxBins bounds a histogram's edges.
const MaxBins = 32

// Buckets is the number of histogram buckets (0 without bins).
func (s *Spec) Buckets() int {
	if len(s.Bins) == 0 {
		return 0
	}
	return len(s.Bins) + 1
}

// Bucket returns the histogram bucket of x.
func (s *Spec) Bucket(x int64) int {
	i := 0
	for i < len(s.Bins) && x >= s.Bins[i] {
		i++
	}
	return i
}

// BucketLabel names bucket i, as "<e0", "[e0,e1)" or "≥e_last".
func (s *Spec) BucketLabel(i int) string {
	switch {
	case i == 0:
		return fmt.Sprintf("<%d", s.Bins[0])
	case i == len(s.Bins):
		return fmt.Sprintf("≥%d", s.Bins[i-1])
	default:
		return fmt.Sprintf("[%d,%d)", s.Bins[i-1], s.Bins[i])
	}
}

// Limits on a spec's shape; they bound what a submission can make the
// coordinator and nodes do before any policy is consulted.
const (
	MaxSpecBytes   = 64 << 10
	MaxInputs      = 8
	MinPSIInputs   = 2
	MaxPurposeLen  = 1000
	MaxFilterBytes = 4096
)

// Stats accepted in Spec.Stats.
var knownStats = map[string]bool{"count": true, "sum": true, "mean": true, "variance": true, "histogram": true}

// ErrSpec wraps every structural problem with a job spec.
var ErrSpec = errors.New("policy: invalid job spec")

func specErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSpec, fmt.Sprintf(format, args...))
}

// DecodeSpec reads one JSON job spec strictly: unknown fields, trailing data
// and oversized documents are errors. It validates the spec's structure but
// not policy (that needs the catalog: see Decide).
func DecodeSpec(b []byte) (*Spec, error) {
	if len(b) > MaxSpecBytes {
		return nil, specErr("larger than %d bytes", MaxSpecBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return nil, specErr("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, specErr("trailing data after the JSON object")
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Encode returns the canonical JSON encoding of the spec: encoding/json of
// the struct (fixed field order, no maps), so that every party that decodes
// the same spec encodes the same bytes.
func (s *Spec) Encode() []byte {
	b, err := json.Marshal(s)
	if err != nil { // only plain strings and slices: cannot fail
		panic(err)
	}
	return b
}

// SpecHashSize is the size of a spec hash.
const SpecHashSize = sha256.Size

// Hash is the spec's identity: SHA-256("unseen/spec/v1" ‖ 0x00 ‖ Encode()).
// Nodes bind every step of a job to it, consents and approvals are signed
// over it, and per-job PSI keys derive from it, so a job is its spec: the
// same job id with another spec is another job to every node.
func (s *Spec) Hash() [SpecHashSize]byte {
	h := sha256.New()
	h.Write([]byte("unseen/spec/v1\x00"))
	h.Write(s.Encode())
	var out [SpecHashSize]byte
	h.Sum(out[:0])
	return out
}

// Datasets returns the distinct datasets the spec touches, in input order.
func (s *Spec) Datasets() []string {
	var out []string
	seen := map[string]bool{}
	add := func(d string) {
		if d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	for _, in := range s.Inputs {
		add(in.Dataset)
	}
	if s.Value != nil {
		add(s.Value.Dataset)
	}
	if s.GroupBy != nil {
		add(s.GroupBy.Dataset)
	}
	return out
}

// ValueDataset is the dataset whose rows an intersection_stats job sums:
// the value column's (Spec.Value, or the one input naming its own value),
// or for a count-only job the first input's. It is empty for other job
// types.
func (s *Spec) ValueDataset() string {
	if s.Type != IntersectionStats || len(s.Inputs) == 0 {
		return ""
	}
	if s.Value != nil && s.Value.Dataset != "" {
		return s.Value.Dataset
	}
	for _, in := range s.Inputs {
		if in.Value != "" {
			return in.Dataset
		}
	}
	return s.Inputs[0].Dataset
}

// ValueColumn is the value column of input i, or "" if the input
// contributes no values: its own (Inputs[i].Value), else Spec.Value's
// column when that names the input's dataset or (aggregate) no dataset,
// i.e. the same column in every input. For intersection_stats only the
// value dataset's input has one.
func (s *Spec) ValueColumn(i int) string {
	if i < 0 || i >= len(s.Inputs) {
		return ""
	}
	in := s.Inputs[i]
	if s.Type != Aggregate && s.Type != IntersectionStats {
		return ""
	}
	if s.Type == IntersectionStats && in.Dataset != s.ValueDataset() {
		return ""
	}
	if in.Value != "" {
		return in.Value
	}
	if s.Value != nil && (s.Value.Dataset == in.Dataset || s.Type == Aggregate && s.Value.Dataset == "") {
		return s.Value.Column
	}
	return ""
}

// HasValue reports whether the spec names a value column anywhere.
func (s *Spec) HasValue() bool {
	if s.Value != nil {
		return true
	}
	for _, in := range s.Inputs {
		if in.Value != "" {
			return true
		}
	}
	return false
}

// Department returns the department part of a "department.dataset" name.
func Department(dataset string) string {
	d, _, _ := strings.Cut(dataset, ".")
	return d
}

func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// ValidDatasetName reports whether s has the form department.dataset.
func ValidDatasetName(s string) bool {
	d, n, ok := strings.Cut(s, ".")
	return ok && validName(d) && validName(n)
}

// ValidColumnName reports whether s is a legal column identifier.
func ValidColumnName(s string) bool { return validName(s) }

// Validate checks the spec's structure: the job type's required parts are
// present and nothing else is, names are well formed, sizes are bounded.
func (s *Spec) Validate() error {
	if !s.Type.valid() {
		return specErr("unknown job type %q (known: %v)", s.Type, JobTypes)
	}
	p := strings.TrimSpace(s.Purpose)
	if p == "" {
		return specErr("purpose is required: say why this question is asked")
	}
	if !utf8.ValidString(s.Purpose) || len(s.Purpose) > MaxPurposeLen {
		return specErr("purpose must be valid UTF-8 of at most %d bytes", MaxPurposeLen)
	}
	if len(s.Inputs) > MaxInputs {
		return specErr("at most %d inputs", MaxInputs)
	}
	min := MinPSIInputs
	if s.Type == Aggregate {
		min = 1
	}
	if len(s.Inputs) < min {
		return specErr("%s needs at least %d inputs", s.Type, min)
	}
	seen := map[string]bool{}
	depts := map[string]int{}
	for i, in := range s.Inputs {
		if !ValidDatasetName(in.Dataset) {
			return specErr("inputs[%d].dataset %q is not of the form department.dataset", i, in.Dataset)
		}
		if seen[in.Dataset] {
			return specErr("inputs[%d]: dataset %q appears twice", i, in.Dataset)
		}
		seen[in.Dataset] = true
		// One party per department: a department's node holding two inputs
		// of a PSI job would make the last hop of its own second list and of
		// another department's, and so compute their intersection itself.
		if j, dup := depts[Department(in.Dataset)]; dup {
			return specErr("inputs[%d] (%s) and inputs[%d] (%s) belong to the same department %q: a job takes at most one input per department, since a node that held two could compute an intersection itself", j, s.Inputs[j].Dataset, i, in.Dataset, Department(in.Dataset))
		}
		depts[Department(in.Dataset)] = i
		if s.Type == Aggregate {
			if in.Key != "" {
				return specErr("inputs[%d].key: aggregate jobs have no join key", i)
			}
		} else if !ValidColumnName(in.Key) {
			return specErr("inputs[%d].key %q is not a column name", i, in.Key)
		}
		if len(in.Filter) > MaxFilterBytes || !utf8.ValidString(in.Filter) {
			return specErr("inputs[%d].filter must be valid UTF-8 of at most %d bytes", i, MaxFilterBytes)
		}
		if in.Value != "" {
			if s.Type != Aggregate && s.Type != IntersectionStats {
				return specErr("inputs[%d].value: only aggregate and intersection_stats jobs take a value column", i)
			}
			if !ValidColumnName(in.Value) {
				return specErr("inputs[%d].value %q is not a column name", i, in.Value)
			}
		}
	}
	if err := s.validateInputValues(); err != nil {
		return err
	}
	checkRef := func(field string, r *ColumnRef) error {
		if r == nil {
			return nil
		}
		if s.Type == Aggregate && r.Dataset == "" {
			// Horizontal aggregation: the column is named the same in every input.
		} else if !seen[r.Dataset] {
			return specErr("%s.dataset %q is not one of the inputs", field, r.Dataset)
		}
		if !ValidColumnName(r.Column) {
			return specErr("%s.column %q is not a column name", field, r.Column)
		}
		return nil
	}
	if err := checkRef("value", s.Value); err != nil {
		return err
	}
	if err := checkRef("group_by", s.GroupBy); err != nil {
		return err
	}
	for _, st := range s.Stats {
		if !knownStats[st] {
			return specErr("unknown stat %q (known: count, sum, mean, variance, histogram)", st)
		}
	}
	hist := false
	for _, st := range s.Stats {
		hist = hist || st == "histogram"
	}
	if hist != (len(s.Bins) > 0) {
		return specErr("a histogram needs bins (ascending edges), and bins need the stat histogram")
	}
	if hist {
		if s.Type != Aggregate {
			return specErr("histograms are computed for aggregate jobs")
		}
		if len(s.Bins) > MaxBins {
			return specErr("at most %d bin edges", MaxBins)
		}
		for i := 1; i < len(s.Bins); i++ {
			if s.Bins[i] <= s.Bins[i-1] {
				return specErr("bins must be strictly ascending")
			}
		}
	}
	if err := s.validateProtocol(); err != nil {
		return err
	}
	switch s.Type {
	case PSICardinality, PSIMembers:
		if s.Value != nil || s.GroupBy != nil || len(s.Stats) > 0 {
			return specErr("%s takes no value, stats or group_by", s.Type)
		}
	case IntersectionStats, Aggregate:
		if len(s.Stats) == 0 {
			return specErr("%s needs stats", s.Type)
		}
		needsValue := false
		for _, st := range s.Stats {
			if st != "count" {
				needsValue = true
			}
		}
		if needsValue && !s.HasValue() {
			return specErr("%s with stats %v needs a value column", s.Type, s.Stats)
		}
	}
	return nil
}

// validateInputValues checks the per-input value columns: never together
// with Spec.Value (one way of naming them per spec), for an aggregate on
// every input or none, for intersection_stats on at most one.
func (s *Spec) validateInputValues() error {
	named := 0
	for _, in := range s.Inputs {
		if in.Value != "" {
			named++
		}
	}
	if named == 0 {
		return nil
	}
	if s.Value != nil {
		return specErr("value and inputs[].value both name value columns: use one or the other")
	}
	switch s.Type {
	case Aggregate:
		if named != len(s.Inputs) {
			for i, in := range s.Inputs {
				if in.Value == "" {
					return specErr("inputs[%d] (%s) names no value column: an aggregate names one for every input or uses value for all", i, in.Dataset)
				}
			}
		}
	case IntersectionStats:
		if named > 1 {
			return specErr("an intersection_stats job sums the values of one input: at most one inputs[].value")
		}
	}
	return nil
}
