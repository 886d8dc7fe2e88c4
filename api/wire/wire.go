// Package wire holds the coordinator API's JSON types, shared by the server
// (package api) and the Go client (package api/client) so that neither
// needs the other.
package wire

import (
	"encoding/json"
	"time"

	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// Job is a job as the API shows it: never the review or result payload
// (those have their own endpoints and roles).
type Job struct {
	ID         string           `json:"id"`
	Type       policy.JobType   `json:"type"`
	State      jobs.State       `json:"state"`
	Owner      string           `json:"owner"`
	Department string           `json:"department"`
	Purpose    string           `json:"purpose"`
	Spec       policy.Spec      `json:"spec"`
	Attempt    int              `json:"attempt"`
	Progress   jobs.Progress    `json:"progress"`
	Decision   *policy.Decision `json:"decision,omitempty"`
	Error      string           `json:"error,omitempty"`
	Reviewer   string           `json:"reviewer,omitempty"`
	Comment    string           `json:"comment,omitempty"`
	CreatedAt  time.Time        `json:"created_at"`
	UpdatedAt  time.Time        `json:"updated_at"`
	History    []jobs.Event     `json:"history,omitempty"`
	// Consents and ConsentDeadline: for jobs on conditional datasets.
	Consents        []jobs.Consent `json:"consents,omitempty"`
	ConsentDeadline time.Time      `json:"consent_deadline,omitzero"`
	// Waiting says what a retryable job waits for, and when it is retried
	// (ScheduledAt); Failures counts its transient failures so far.
	Waiting     string    `json:"waiting,omitempty"`
	ScheduledAt time.Time `json:"scheduled_at,omitzero"`
	Failures    int       `json:"failures,omitempty"`
	// Approval is the reviewer's signed approval of a released job (job,
	// spec hash, requester, the result's SHA-256): anyone with the
	// reviewer's public key can check it.
	Approval *attest.SignedApproval `json:"approval,omitempty"`
}

// FromJob makes the API view of a job.
func FromJob(j *jobs.Job) Job {
	return Job{ID: j.ID, Type: j.Spec.Type, State: j.State, Owner: j.Owner, Department: j.Department,
		Purpose: j.Spec.Purpose, Spec: j.Spec, Attempt: j.Attempt, Progress: j.Progress, Decision: j.Decision,
		Error: j.Error, Reviewer: j.Reviewer, Comment: j.Comment, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt, History: j.History,
		Consents: j.Consents, ConsentDeadline: j.ConsentDeadline, Waiting: j.Waiting, ScheduledAt: j.ScheduledAt, Failures: j.Failures,
		Approval: j.Approval}
}

// Submitted answers POST /v1/jobs.
type Submitted struct {
	ID    string     `json:"id"`
	State jobs.State `json:"state"`
}

// Jobs answers GET /v1/jobs.
type Jobs struct {
	Jobs []Job `json:"jobs"`
}

// Review answers GET /v1/jobs/{id}/review.
//
// Approval is the statement a release needs the reviewer to sign: the job
// (id, spec hash, requester), the SHA-256 of Review.Result exactly as these
// bytes stand, and for psi_members the SHA-256 of the analyst's registered
// public key that the member list is sealed to (also shown, shorter, as
// RecipientFingerprint: check it with the analyst before signing). A
// careful client recomputes every field itself from Job.Spec and the raw
// result rather than signing what the server hands it.
type Review struct {
	Job                  Job              `json:"job"`
	Review               jobs.Review      `json:"review"`
	Approval             *attest.Approval `json:"approval,omitempty"`
	RecipientFingerprint string           `json:"recipient_fingerprint,omitempty"`
}

// Result answers GET /v1/jobs/{id}/result. For psi_members, SealedMembers
// is the member list sealed to the analyst (HPKE), which the requesting
// node hands over only against the reviewer's signed Approval; Result
// names its SHA-256 (sealed_sha256).
type Result struct {
	ID            string                 `json:"id"`
	Type          policy.JobType         `json:"type"`
	State         jobs.State             `json:"state"`
	Result        json.RawMessage        `json:"result"`
	Reviewer      string                 `json:"reviewer"`
	Comment       string                 `json:"comment,omitempty"`
	Approval      *attest.SignedApproval `json:"approval,omitempty"`
	SealedMembers []byte                 `json:"sealed_members,omitempty"`
}

// Decision is the body of cancel and reject.
type Decision struct {
	Comment string `json:"comment,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// Approve is the body of POST /v1/jobs/{id}/approve: the reviewer's
// signature over the statement GET /v1/jobs/{id}/review shows.
type Approve struct {
	Comment  string                 `json:"comment,omitempty"`
	Approval *attest.SignedApproval `json:"approval"`
}

// ConsentRequest is the body of POST /v1/jobs/{id}/consent: a data owner's
// answer for one conditional dataset of their department. Signature is the
// owner's Ed25519 signature over attest.Consent{JobRef of the job (id, spec
// hash, requester), Dataset, Approve, Reason, Until, Owner: the user's
// name}; an approval needs it, a refusal may go without. Until (RFC 3339,
// whole seconds) is when the consent lapses: nodes act on it only before.
// Without Dataset, a refusal answers for every dataset of the owner's
// department that the job asks consent for.
type ConsentRequest struct {
	Dataset   string    `json:"dataset,omitempty"`
	Approve   bool      `json:"approve,omitempty"`
	Refuse    bool      `json:"refuse,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Until     time.Time `json:"until,omitzero"`
	Signature []byte    `json:"signature,omitempty"`
}

// Me answers GET /v1/me: who the token belongs to, and the keys registered
// for them (so a client can check its key file before it signs).
type Me struct {
	Name       string      `json:"name"`
	Role       policy.Role `json:"role"`
	Department string      `json:"department"`
	SigningKey string      `json:"signing_key,omitempty"`
	PublicKey  string      `json:"public_key,omitempty"`
}

// Datasets answers GET /v1/datasets.
type Datasets struct {
	Datasets []policy.Dataset `json:"datasets"`
}

// Error is the body of every error response.
type Error struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody says what went wrong, in a stable code and a sentence.
type ErrorBody struct {
	Code       string             `json:"code"`
	Message    string             `json:"message"`
	State      string             `json:"state,omitempty"`
	Violations []policy.Violation `json:"violations,omitempty"`
}

// Verify answers GET /v1/audit/verify.
type Verify struct {
	OK      bool   `json:"ok"`
	Entries int    `json:"entries"`
	Head    string `json:"head,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Ready answers GET /readyz: each check ("store", "nodes") is "ok" or
// what is wrong.
type Ready struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

// Lineage answers GET /v1/lineage: every job that used a dataset, from
// the coordinator's record (a data owner's own account is their node's
// log).
type Lineage struct {
	Dataset string       `json:"dataset"`
	Jobs    []LineageRow `json:"jobs"`
	Source  string       `json:"source"`
}

// LineageRow is one job that used a dataset: who asked, why, for what kind
// of job, which of the dataset's columns it used, and where it stands.
type LineageRow struct {
	Job       string    `json:"job"`
	First     time.Time `json:"first"`
	Requester string    `json:"requester"`
	Purpose   string    `json:"purpose"`
	Type      string    `json:"type"`
	Columns   []string  `json:"columns"`
	State     string    `json:"state"`
}
