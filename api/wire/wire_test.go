package wire

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// Every wire type round-trips through JSON unchanged, with every field set
// (so a field without a JSON name, or one that does not decode back, fails).
func TestRoundTrip(t *testing.T) {
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	spec := policy.Spec{Type: policy.IntersectionStats, Purpose: "p <&>", Inputs: []policy.Input{{Dataset: "a.x", Key: "k", Filter: "d = 'x'"}, {Dataset: "b.y", Key: "k"}},
		Value: &policy.ColumnRef{Dataset: "a.x", Column: "v"}, Stats: []string{"count"}, GroupBy: &policy.ColumnRef{Dataset: "a.x", Column: "d"}}
	ref := attest.Ref("j_x", &spec, policy.Requester{User: "alice", Department: "a"})
	appr := &attest.SignedApproval{Statement: &attest.Approval{JobRef: ref, Result: attest.Digest{1}, Recipient: attest.Digest{2}, Reviewer: "rita", At: at}, Signature: []byte{1, 2, 3}}
	job := Job{ID: "j_x", Type: spec.Type, State: jobs.Released, Owner: "alice", Department: "a", Purpose: spec.Purpose, Spec: spec, Attempt: 2,
		Progress: jobs.Progress{Done: 1, Total: 2, Step: "psi"}, Decision: &policy.Decision{Allow: true, Versions: map[string]string{"a.x": "v1"}, NeedsConsent: []string{"b.y"}, Epsilon: map[string]float64{"a.x": 0.5}},
		Error: "e", Reviewer: "rita", Comment: "c", CreatedAt: at, UpdatedAt: at, History: []jobs.Event{{State: jobs.Queued, At: at, Actor: "alice", Attempt: 0, Note: "n"}},
		Consents:        []jobs.Consent{{Dataset: "b.y", By: "cora", Approved: true, Reason: "r", At: at, Signed: &attest.SignedConsent{Statement: &attest.Consent{JobRef: ref, Dataset: "b.y", Approve: true, Reason: "r", Until: at, Owner: "cora"}, Signature: []byte{4}}}},
		ConsentDeadline: at, Waiting: "w", ScheduledAt: at, Failures: 3, Approval: appr}
	for name, v := range map[string]any{
		"Job":            &job,
		"Submitted":      &Submitted{ID: "j_x", State: jobs.Queued},
		"Jobs":           &Jobs{Jobs: []Job{job}},
		"Review":         &Review{Job: job, Review: jobs.Review{Result: json.RawMessage(`{"count":1}`), Checks: []jobs.Check{{Name: "min_count", Passed: true, Detail: "d"}}, Suppressed: []string{"groups.x"}}, Approval: appr.Statement, RecipientFingerprint: "ab"},
		"Result":         &Result{ID: "j_x", Type: spec.Type, State: jobs.Released, Result: json.RawMessage(`{"count":1}`), Reviewer: "rita", Comment: "c", Approval: appr, SealedMembers: []byte{9}},
		"Decision":       &Decision{Comment: "c", Reason: "r"},
		"Approve":        &Approve{Comment: "c", Approval: appr},
		"ConsentRequest": &ConsentRequest{Dataset: "b.y", Approve: true, Refuse: false, Reason: "r", Until: at, Signature: []byte{5}},
		"Me":             &Me{Name: "rita", Role: policy.RoleReviewer, Department: "d", SigningKey: "ed25519:x", PublicKey: "y"},
		"Datasets":       &Datasets{Datasets: []policy.Dataset{{Name: "a.x", Classification: "core", Sharing: "open", MinCount: 10}}},
		"Error":          &Error{Error: ErrorBody{Code: "c", Message: "m", State: "queued", Violations: []policy.Violation{{Rule: "r", Dataset: "a.x", Column: "k", Message: "m"}}}},
		"Verify":         &Verify{OK: true, Entries: 3, Head: "h", Error: "e"},
		"Ready":          &Ready{Ready: true, Checks: map[string]string{"store": "ok"}},
		"Lineage":        &Lineage{Dataset: "a.x", Jobs: []LineageRow{{Job: "j_x", First: at, Requester: "alice", Purpose: "p", Type: "t", Columns: []string{"k"}, State: "released"}}, Source: "coordinator"},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			back := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := json.Unmarshal(b, back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(v, back) {
				t.Fatalf("round trip changed it:\n%s", b)
			}
		})
	}
}
