// Package wire holds the coordinator API's JSON types, shared by the server
// (package api) and the Go client (package api/client) so that neither
// needs the other.
package wire

import (
	"encoding/json"
	"time"

	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
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
}

// FromJob makes the API view of a job.
func FromJob(j *jobs.Job) Job {
	return Job{ID: j.ID, Type: j.Spec.Type, State: j.State, Owner: j.Owner, Department: j.Department,
		Purpose: j.Spec.Purpose, Spec: j.Spec, Attempt: j.Attempt, Progress: j.Progress, Decision: j.Decision,
		Error: j.Error, Reviewer: j.Reviewer, Comment: j.Comment, CreatedAt: j.CreatedAt, UpdatedAt: j.UpdatedAt, History: j.History,
		Consents: j.Consents, ConsentDeadline: j.ConsentDeadline, Waiting: j.Waiting, ScheduledAt: j.ScheduledAt, Failures: j.Failures}
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
type Review struct {
	Job    Job         `json:"job"`
	Review jobs.Review `json:"review"`
}

// Result answers GET /v1/jobs/{id}/result.
type Result struct {
	ID       string          `json:"id"`
	Type     policy.JobType  `json:"type"`
	State    jobs.State      `json:"state"`
	Result   json.RawMessage `json:"result"`
	Reviewer string          `json:"reviewer"`
	Comment  string          `json:"comment,omitempty"`
}

// Decision is the body of cancel, approve and reject.
type Decision struct {
	Comment string `json:"comment,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// ConsentRequest is the body of POST /v1/jobs/{id}/consent.
type ConsentRequest struct {
	Approve bool   `json:"approve,omitempty"`
	Refuse  bool   `json:"refuse,omitempty"`
	Reason  string `json:"reason,omitempty"`
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
