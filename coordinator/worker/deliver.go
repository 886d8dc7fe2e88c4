package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// ErrNotDeliverable: the job has nothing a node would deliver (not a
// psi_members job, no sealed list in its result, or no reviewer's approval
// of exactly its result).
var ErrNotDeliverable = errors.New("worker: nothing to deliver")

// Deliver fetches the member list of a released psi_members job from the
// node that sealed and keeps it (the department of the job's first input),
// and returns it as the node hands it over: HPKE-sealed to the analyst's
// key (psi/delivery; delivery.Open(analyst key, j.ID, ciphertext) opens
// it). The coordinator never holds the list before release, and keeps none
// after: call Deliver whenever the analyst fetches the result.
//
// Contract:
//   - j.Approval is the reviewer's signed approval of the release, and
//     j.Result the exact bytes of the released result it approves:
//     j.Approval.Statement.Result must be SHA-256(j.Result) over those very
//     bytes (they travel to the node verbatim), and j.Result must be the
//     review's result JSON naming the list (count, sealed_sha256,
//     recipient_key_sha256 as the worker wrote them; other fields may be
//     added). The approval's JobRef is (j.ID, j.Spec.Hash(), requester
//     {j.Owner, j.Department}), and its Recipient the SHA-256 of the
//     analyst key the result names (recipient_key_sha256).
//   - Deliver checks the job's type, that an approval is there and that it
//     signs SHA-256(j.Result) before it asks the node; otherwise it returns
//     an error wrapping ErrNotDeliverable. It does not check the reviewer's
//     signature: the node does, with the reviewers' keys of its own
//     configuration, and refuses (a *nodeapi.RemoteError, permanent, with
//     code approval_invalid, approval_mismatch, result_mismatch,
//     recipient_mismatch, spec_conflict or no_members) anything else.
//   - It checks that what the node returns is the list the result names
//     (its SHA-256 is sealed_sha256). A transport failure is an ordinary
//     error (nodeapi.IsPermanent false): the caller may try again; the node
//     delivers the same ciphertext every time.
func (r *Runner) Deliver(ctx context.Context, j *jobs.Job) ([]byte, error) {
	if j.Spec.Type != policy.PSIMembers || len(j.Spec.Inputs) == 0 {
		return nil, fmt.Errorf("%w: job %s is not a psi_members job", ErrNotDeliverable, j.ID)
	}
	if j.Approval == nil || j.Approval.Statement == nil {
		return nil, fmt.Errorf("%w: job %s has no signed approval", ErrNotDeliverable, j.ID)
	}
	if nodeapi.DigestOf(j.Result) != j.Approval.Statement.Result {
		return nil, fmt.Errorf("%w: job %s: the approval does not sign this result", ErrNotDeliverable, j.ID)
	}
	var res struct {
		Sealed *attest.Digest `json:"sealed_sha256"`
	}
	if err := json.Unmarshal(j.Result, &res); err != nil || res.Sealed == nil {
		return nil, fmt.Errorf("%w: job %s: the result names no sealed member list", ErrNotDeliverable, j.ID)
	}
	c, err := r.node(j.Spec.Inputs[0].Dataset)
	if err != nil {
		return nil, err
	}
	ct, err := c.Deliver(ctx, &nodeapi.DeliverRequest{Header: jobHeader(j, max(1, j.Attempt), 0), Approval: j.Approval, Result: j.Result})
	if err != nil {
		return nil, err
	}
	if nodeapi.DigestOf(ct) != *res.Sealed {
		return nil, fmt.Errorf("node %s delivered a list that is not the one the result names", c.Department)
	}
	return ct, nil
}
