package jobs

import "encoding/json"

// Review is what a finished job hands the reviewer: the result that would
// be released and the automatic disclosure checks run on it.
type Review struct {
	Result json.RawMessage `json:"result"`
	Checks []Check         `json:"checks"`
	// Suppressed names the parts of Result withheld by the checks.
	Suppressed []string `json:"suppressed,omitempty"`
}

// Check is one automatic disclosure check (policy/disclosure's): what it
// found, and in Protects the one sentence saying what it protects against.
type Check struct {
	Name     string `json:"name"`
	Passed   bool   `json:"passed"`
	Detail   string `json:"detail"`
	Protects string `json:"protects,omitempty"`
}
