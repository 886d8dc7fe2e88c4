// Package jobs owns the job model, its state machine and the small
// interfaces a job store is made of; the backends are packages boltstore
// (embedded, one bbolt file) and redisstore (Redis), which pass one
// conformance suite, package jobstest. Every transition is a
// compare-and-set on the job's state and attempt and writes an audit entry
// atomically with the change; a change that cannot be audited does not
// happen.
//
// State machine (design section 3; the table transitions below is the
// machine, and TestStateMachine checks it edge by edge):
//
//	submitted ─► awaiting_consent ─► queued ─► running ─► awaiting_review ─► released
//	     │              │             ▲  │      │  │  │           │
//	     │              │             │  │      │  │  └► retryable ──► queued (when due)
//	     │              │             │  │      │  └──► dead_letter ─► queued (admin retry)
//	     └──────────────┴─────────────┴──┴──────┴──────┴──► rejected / failed / cancelled / expired
//
// A job is created already queued or awaiting_consent (submission and policy
// check happen before it is stored). awaiting_consent → awaiting_consent
// records one owner's consent while others are still awaited. running →
// running is a reclaim after a worker's lease expired (the attempt goes up,
// fencing the old worker); running → queued hands a job back (shutdown).
// running → retryable records a transient failure (a node down): the job
// holds no lease and no worker while it waits until ScheduledAt, when the
// store's PromoteDue moves it back to queued. running → dead_letter parks a
// job whose transient failures outlasted its attempts, until an admin
// requeues it. Retryable and dead_letter jobs can still be cancelled.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// State is a job's lifecycle state.
type State string

const (
	Submitted       State = "submitted"
	AwaitingConsent State = "awaiting_consent"
	Queued          State = "queued"
	Running         State = "running"
	AwaitingReview  State = "awaiting_review"
	Released        State = "released"
	Rejected        State = "rejected"
	Failed          State = "failed"
	Cancelled       State = "cancelled"
	Expired         State = "expired"
	// Retryable holds a job whose last run failed transiently (a node
	// down) until its ScheduledAt, without a lease or a worker.
	Retryable State = "retryable"
	// DeadLetter holds a job whose transient failures outlasted its
	// attempts; an admin can requeue it once the cause is mended.
	DeadLetter State = "dead_letter"
)

// States lists every state.
var States = []State{Submitted, AwaitingConsent, Queued, Running, AwaitingReview, Released, Rejected, Failed, Cancelled, Expired, Retryable, DeadLetter}

// transitions is the state machine: from → allowed targets.
var transitions = map[State][]State{
	Submitted:       {AwaitingConsent, Queued, Rejected, Failed, Cancelled, Expired},
	AwaitingConsent: {AwaitingConsent, Queued, Rejected, Failed, Cancelled, Expired},
	Queued:          {Running, Rejected, Failed, Cancelled, Expired},
	Running:         {Running, Queued, AwaitingReview, Rejected, Failed, Cancelled, Expired, Retryable, DeadLetter},
	AwaitingReview:  {Released, Rejected, Failed, Cancelled, Expired},
	Retryable:       {Queued, Rejected, Failed, Cancelled, Expired},
	DeadLetter:      {Queued, Cancelled},
}

// CanTransition reports whether from → to is an edge of the state machine.
func CanTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Final reports whether no transition leaves s.
func (s State) Final() bool { return len(transitions[s]) == 0 }

// Settled reports whether nothing more happens to a job in s without a
// person acting: a final state, awaiting review, or dead-lettered. (A
// retryable job is not settled: the scheduler requeues it when it is due.)
func (s State) Settled() bool { return s.Final() || s == AwaitingReview || s == DeadLetter }

// Valid reports whether s is a known state.
func (s State) Valid() bool {
	for _, x := range States {
		if x == s {
			return true
		}
	}
	return false
}

// Progress is how far a running job has got, in units of work (PSI: chunk
// hops), with a short name of the current step.
type Progress struct {
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
	Step  string `json:"step,omitempty"`
}

// Event is one entry of a job's state history.
type Event struct {
	State   State     `json:"state"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Attempt int       `json:"attempt"`
	Note    string    `json:"note,omitempty"`
}

// Job is a job and everything known about it. Review holds the decrypted
// result with its disclosure checks (reviewers only); Result holds what is
// released to the owner, and is set only by the transition to released.
type Job struct {
	ID         string           `json:"id"`
	Spec       policy.Spec      `json:"spec"`
	Owner      string           `json:"owner"`
	Department string           `json:"department"`
	State      State            `json:"state"`
	Attempt    int              `json:"attempt"`
	Progress   Progress         `json:"progress"`
	Decision   *policy.Decision `json:"decision,omitempty"`
	Review     json.RawMessage  `json:"review,omitempty"`
	Result     json.RawMessage  `json:"result,omitempty"`
	Error      string           `json:"error,omitempty"`
	Reviewer   string           `json:"reviewer,omitempty"`
	Comment    string           `json:"comment,omitempty"`
	// Approval is the reviewer's signed approval of the release: nodes
	// deliver nothing (psi_members lists) without it, and anyone holding
	// the reviewer's public key can check that this result was approved.
	Approval  *attest.SignedApproval `json:"approval,omitempty"`
	CreatedAt time.Time              `json:"created_at"`
	UpdatedAt time.Time              `json:"updated_at"`
	History   []Event                `json:"history,omitempty"`
	// Consents are the owners' answers for conditional datasets; past
	// ConsentDeadline a job still awaiting consent expires.
	Consents        []Consent `json:"consents,omitempty"`
	ConsentDeadline time.Time `json:"consent_deadline,omitzero"`
	// Failures counts the runs that ended in a transient failure (running →
	// retryable, and the last one, running → dead_letter). Reclaims after a
	// worker died do not count: a crash is not the job's fault. An admin
	// retry out of dead_letter starts the count afresh.
	Failures int `json:"failures,omitempty"`
	// ScheduledAt is when a retryable job is due back in the queue.
	ScheduledAt time.Time `json:"scheduled_at,omitzero"`
	// Waiting says, while the job is retryable, what it is waiting for, e.g.
	// "node housing unreachable (connection refused); retry 3 of 11 at
	// 10:41:07 UTC".
	Waiting string `json:"waiting,omitempty"`
}

// Consent is a data owner's answer for one conditional dataset.
type Consent struct {
	Dataset  string    `json:"dataset"`
	By       string    `json:"by"`
	Approved bool      `json:"approved"`
	Reason   string    `json:"reason,omitempty"`
	At       time.Time `json:"at"`
	// Signed is the owner's signed statement (policy/attest): the nodes
	// act on a conditional dataset only with it, never on the coordinator's
	// word that the owner agreed.
	Signed *attest.SignedConsent `json:"signed,omitempty"`
}

// Change is a compare-and-set transition: it applies only if the job is in
// From with attempt Attempt, and moves it To, setting the non-empty fields.
type Change struct {
	From    State
	Attempt int
	To      State
	Actor   string // who (user name or "worker:<id>")
	Role    string
	Note    string            // short reason, kept in history and audit
	Detail  map[string]string // extra audit detail (sealed if sensitive)

	Review   json.RawMessage
	Result   json.RawMessage
	Error    string
	Reviewer string
	Comment  string
	// Consent, if set, records one owner's answer for its dataset (replacing
	// an earlier answer for the same dataset). Answers for different
	// datasets commute, so owners answering at once lose nothing.
	Consent *Consent
	// Approval is the reviewer's signed approval, set with the release.
	Approval *attest.SignedApproval
	// RetryAt and Waiting are set, and only set, on running → retryable:
	// when the job is due back in the queue, and what it waits for.
	RetryAt time.Time
	Waiting string
}

// Lease is a worker's claim on a running job. It is fenced by Attempt: once
// the job's attempt moves on (a reclaim), the old lease can write nothing.
type Lease struct {
	Job     *Job
	Attempt int
	Worker  string
	Token   string // backend bookkeeping (Redis: the stream message id)
}

// ListFilter selects jobs; empty fields match all.
type ListFilter struct {
	Owner  string
	States []State
	Limit  int // newest first; 0 means a default of 100
}

var (
	ErrNotFound    = errors.New("jobs: no such job")
	ErrConflict    = errors.New("jobs: job is not in the expected state or attempt")
	ErrIllegal     = errors.New("jobs: transition not allowed by the state machine")
	ErrLeaseLost   = errors.New("jobs: lease lost (the job was reclaimed or left running)")
	ErrIdempotency = errors.New("jobs: idempotency key reused with a different job spec")
	ErrUnavailable = errors.New("jobs: store unavailable")
)

// Jobs is the job records and their state machine: what the API needs to
// submit, show and decide jobs, and what a worker writes as it runs one.
// All methods of every interface here are safe for concurrent use.
type Jobs interface {
	// Create stores a new job (its State must be Queued or AwaitingConsent)
	// and enqueues it if queued, with an audit entry, atomically. With a
	// non-empty idempotency key, a second Create by the same owner with the
	// same key returns the first job and created=false (ErrIdempotency if
	// the spec differs).
	Create(ctx context.Context, j *Job, idempotencyKey string) (job *Job, created bool, err error)
	Get(ctx context.Context, id string) (*Job, error)
	List(ctx context.Context, f ListFilter) ([]*Job, error)
	// Transition applies c if the job is in c.From at c.Attempt (ErrConflict
	// otherwise; ErrIllegal if the edge is not in the machine). Moving to
	// Queued enqueues; moving out of Running releases the lease; moving to
	// Retryable schedules the job for c.RetryAt.
	Transition(ctx context.Context, id string, c Change) (*Job, error)
	// Progress records progress of a running job, fenced by attempt.
	Progress(ctx context.Context, id string, attempt int, p Progress) error
}

// Queue is the work queue: workers claim queued jobs under a lease, keep
// it with heartbeats, take over leases gone idle, and move retryable jobs
// back to the queue when they are due.
type Queue interface {
	// Claim takes the next queued job, moving it to running with attempt+1.
	// It waits up to block for one; it returns (nil, nil) if none came.
	Claim(ctx context.Context, worker string, block time.Duration) (*Lease, error)
	// Heartbeat renews a lease (ErrLeaseLost if the job moved on).
	Heartbeat(ctx context.Context, l *Lease) error
	// Reclaim takes over running jobs whose lease has been idle for at least
	// minIdle (their worker died), bumping the attempt.
	Reclaim(ctx context.Context, worker string, minIdle time.Duration) ([]*Lease, error)
	// PromoteDue moves every retryable job whose ScheduledAt has come (by
	// the store's clock) back to queued, audited as done by actor, and
	// returns them. If a move fails it returns those made so far with the
	// error; the rest stay retryable for a later call.
	PromoteDue(ctx context.Context, actor string) ([]*Job, error)
}

// Counters are bounded counters: privacy budgets and rate-limit windows.
type Counters interface {
	// Spend adds amount to the counter key if the total stays at most
	// limit, atomically, and returns the total; ok is false (and nothing is
	// added) if it would not. A negative amount refunds; amount 0 reads.
	// ttl > 0 makes a new counter expire (rate-limit windows).
	Spend(ctx context.Context, key string, amount, limit int64, ttl time.Duration) (total int64, ok bool, err error)
}

// Audited gives the coordinator's audit log: the same chain transitions
// write, for entries that are not transitions (logins, reads of results).
type Audited interface {
	Audit() audit.Log
}

// Pinger reports whether a backend is reachable.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Store is a whole backend, for wiring: the coordinator opens one, hands
// each user the part it needs (the API: Jobs, Counters, Audited, Pinger;
// a worker: Jobs, Queue and Checkpoints; the homomorphic side: Blobs) and
// closes it. Implementations: boltstore, redisstore.
type Store interface {
	Jobs
	Queue
	Counters
	Blobs
	Checkpoints
	Audited
	Pinger
	Close() error
}

// Clock is injected wherever leases or deadlines are computed.
type Clock interface{ Now() time.Time }

// SystemClock is the real clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now() }

// NewID returns a fresh job id: "j_" and 26 base32 characters (128 bits).
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return "j_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// ValidID reports whether s has the form NewID makes (so ids from URLs can
// be used in keys safely).
func ValidID(s string) bool {
	if len(s) != 28 || !strings.HasPrefix(s, "j_") {
		return false
	}
	for _, r := range s[2:] {
		if !(r >= 'a' && r <= 'z' || r >= '2' && r <= '7') {
			return false
		}
	}
	return true
}

// Check validates a change against the machine before any backend is asked.
func (c Change) Check() error {
	if !c.From.Valid() || !c.To.Valid() || !CanTransition(c.From, c.To) {
		return fmt.Errorf("%w: %s → %s", ErrIllegal, c.From, c.To)
	}
	if c.Actor == "" {
		return fmt.Errorf("jobs: change %s → %s has no actor to audit", c.From, c.To)
	}
	if len(c.Result) > 0 && c.To != Released {
		return fmt.Errorf("jobs: a result is set only on release")
	}
	if c.Approval != nil && c.To != Released {
		return fmt.Errorf("jobs: an approval is set only on release")
	}
	if (c.To == Retryable) != !c.RetryAt.IsZero() || c.Waiting != "" && c.To != Retryable {
		return fmt.Errorf("jobs: a retry time (and what the job waits for) is set on, and only on, running → retryable")
	}
	return nil
}

// AuditEntry is the entry a transition writes (the backend seals it).
func AuditEntry(j *Job, c Change, at time.Time) audit.Entry {
	d := map[string]string{"from": string(c.From), "to": string(c.To), "attempt": fmt.Sprint(attemptAfter(c)), "purpose": j.Spec.Purpose, "type": string(j.Spec.Type)}
	if c.Note != "" {
		d["note"] = c.Note
	}
	if !c.RetryAt.IsZero() {
		d["retry_at"] = c.RetryAt.UTC().Format(time.RFC3339)
	}
	for k, v := range c.Detail {
		d[k] = v
	}
	return audit.Entry{Time: at, Actor: c.Actor, Role: c.Role, Action: "job." + string(c.To), Job: j.ID, Datasets: j.Spec.Datasets(), Detail: d}
}

func attemptAfter(c Change) int {
	if c.From == Running && c.To == Running || c.From == Queued && c.To == Running {
		return c.Attempt + 1
	}
	return c.Attempt
}
