package disclosure

import (
	"fmt"
	"slices"
	"strings"
)

// Check is one automatic disclosure check, as jobs.Check plus Protects:
// the one sentence saying what the check protects against.
type Check struct {
	Name     string `json:"name"`
	Passed   bool   `json:"passed"`
	Detail   string `json:"detail"`
	Protects string `json:"protects"`
}

// Check names (Check.Name).
const (
	NameMinCount     = "min_count"
	NameIsolation    = "input_isolation"
	NameLinked       = "linked_suppression"
	NameDP           = "differential_privacy"
	NameDifferencing = "differencing"
	NameMembersK     = "psi_members_k"
)

// Protects is each check's one-sentence explanation.
var Protects = map[string]string{
	NameMinCount:     "Stops a released count, group or bucket from describing fewer than k people, who could then be singled out.",
	NameIsolation:    "Stops a filter that narrows an input to a few people, so that even a large-looking result is really about them.",
	NameLinked:       "Stops a suppressed cell from being recovered by adding and subtracting released cells along the table's totals (such as a group's total minus its other buckets).",
	NameDP:           "Bounds what the released numbers say about any one person, even across many jobs, by calibrated random noise charged to a privacy budget.",
	NameDifferencing: "Stops two jobs whose inputs differ by only a few people from being subtracted to reveal those people.",
	NameMembersK:     "Stops a member list so short that it singles out the few people matched.",
}

func check(name string, passed bool, format string, args ...any) Check {
	return Check{Name: name, Passed: passed, Detail: fmt.Sprintf(format, args...), Protects: Protects[name]}
}

// kPhrase says what k means for the plan, e.g. "k = 10 people (up to 3
// rows each: below 28 rows)".
func kPhrase(p *Plan) string {
	if p.RowsPerPerson <= 1 {
		return fmt.Sprintf("k = %d", p.K)
	}
	return fmt.Sprintf("k = %d people (up to %d rows each: below %d rows)", p.K, p.RowsPerPerson, p.MinRows)
}

// isolationCheck flags inputs whose node said the filter leaves fewer
// keys than the dataset's k.
func isolationCheck(belowK []string) Check {
	if len(belowK) == 0 {
		return check(NameIsolation, true, "every input keeps at least its dataset's k people after filtering (enforced by the nodes: each refuses to take part otherwise)")
	}
	return check(NameIsolation, false, "the filter on %s leaves fewer people than the dataset's k: the result could single them out", strings.Join(belowK, ", "))
}

func dpCheck(p *Plan, what string) Check {
	d := p.DP
	parts := make([]string, 0, 3)
	for _, q := range d.Quantities() {
		parts = append(parts, fmt.Sprintf("%s Δ = %s, ε = %s, scale %s", q.Name, q.Sensitivity, q.Epsilon.FloatString(6), q.Scale.FloatString(3)))
	}
	return check(NameDP, true, "exact discrete Laplace noise added to %s (ε = %s for the job, split over %s; totals derived from the noised cells); ε was charged at submission to %s",
		what, d.Epsilon.FloatString(6), strings.Join(parts, "; "), chargeList(d.Charges))
}

func chargeList(c map[string]int64) string {
	names := make([]string, 0, len(c))
	for n := range c {
		names = append(names, n)
	}
	slices.Sort(names)
	for i, n := range names {
		names[i] = fmt.Sprintf("%s (%d µε)", n, c[n])
	}
	return strings.Join(names, ", ")
}
