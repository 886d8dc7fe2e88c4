// Package worker is the coordinator's worker: it claims queued jobs from
// the job store's queue, runs their protocol with the departments' nodes,
// runs the automatic disclosure checks and hands the result to review. It
// holds a lease while it works (heartbeats), reclaims the jobs of workers
// that died (their lease went idle), and writes nothing once its lease is
// lost: every write is fenced by the job's attempt.
//
// A transient failure (a node down) is recorded as data: the job moves to
// retryable with a due time, a failure count and a note of what it waits
// for, and the worker is free at once; a scheduler moves due jobs back to
// the queue. Past Retry.Attempts the job is dead-lettered.
//
// Who learns what: the runner sees blinded points, the sizes of the filtered
// lists and which positions match (so the intersection size); for
// psi_members it learns the size and SHA-256 of the list the requesting
// node sealed to the analyst, and fetches the list from that node only with
// the reviewer's signed approval (Deliver). It relays, but cannot make, the
// nodes' signed list lengths and chunk proofs and the owners' signed
// consents: every node checks them itself. On the OT protocol (ot.go) it
// relays frames sealed end to end between two nodes, which it cannot read,
// and joins OPRF outputs with OPRF values: it learns which positions match,
// as on ECDH (with three or more parties, each list's matches with the
// star's centre only).
//
// Resume (resume.go): on ECDH the runner checkpoints each completed PSI
// chunk's tokens in the job store (jobs.Checkpoints), fenced by the
// attempt, and a later attempt computes only the missing chunks. The
// tokens are what the runner holds in every run anyway: under both trust
// models nothing new is revealed. Checkpoints are dropped when the job
// goes to review or ends; the OT protocol does not resume.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/coordinator/hefed"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/policy/disclosure"
	"github.com/unseen-data/unseen/psi"
)

// CatalogSource gives the current catalog (for k and policy versions).
type CatalogSource interface {
	Catalog(ctx context.Context) (policy.Catalog, error)
}

// HE is the coordinator's side of homomorphic aggregation (compute/hefed).
type HE interface {
	Aggregate(ctx context.Context, j hefed.JobRef) (*hefed.Stats, error)
	IntersectionStats(ctx context.Context, j hefed.JobRef, value *nodeapi.Party, positions []int) (*hefed.Stats, error)
}

// Store is what a worker needs of the job store: the jobs and the queue.
type Store interface {
	jobs.Jobs
	jobs.Queue
}

// Runner runs jobs. Its zero-value durations get defaults.
type Runner struct {
	Store   Store
	Nodes   map[string]*nodeapi.Client // by department
	Catalog CatalogSource
	// RecipientKey returns a user's registered public key (psi_members).
	RecipientKey func(user string) ([]byte, error)
	Worker       string
	Logger       *slog.Logger
	Clock        jobs.Clock

	ChunkSize int           // elements per PSI request; default 4096
	LeaseIdle time.Duration // a lease idle this long is reclaimed; default 30 s
	// Retry is the retry schedule for transient failures. Reclaims after a
	// worker died do not count as failures: a crash is not the job's fault.
	Retry Retry
	// Backoff, if set, replaces Retry.Delay (the wait after the n-th
	// transient failure).
	Backoff func(failures int) time.Duration
	// SchedulerPoll is how often the scheduler looks for retryable jobs
	// that are due (by the store's clock); default 1 s.
	SchedulerPoll time.Duration
	// HE runs aggregate and intersection_stats (nil: those job types fail).
	HE HE
	// OnState, if set, is told of every transition the runner makes (tests
	// and the demo wait on it instead of sleeping).
	OnState func(id string, s jobs.State)
	// SignedHead, if set, is the coordinator's signed audit head, sent to
	// the nodes with Finish for them to keep as a witness; the signed heads
	// they answer with are recorded in the job's next transition (detail
	// "witness.<department>", witness.go).
	SignedHead func(ctx context.Context) (*audit.SignedHead, error)
	// Checkpoints keep each PSI chunk's tokens as it completes, so that a
	// later attempt of the job resumes (resume.go). Default: Store, if it
	// implements jobs.Checkpoints; none, otherwise.
	Checkpoints jobs.Checkpoints

	// onChunk, if set, is told of each PSI chunk a run computed, after it
	// was queued for saving (tests interrupt a run with it).
	onChunk func(job string, computed int)

	once sync.Once // defaults, once: Process runs on many goroutines
}

func (r *Runner) defaults() { r.once.Do(r.setDefaults) }

func (r *Runner) setDefaults() {
	if r.ChunkSize <= 0 {
		r.ChunkSize = 4096
	}
	if r.ChunkSize > nodeapi.MaxChunk {
		r.ChunkSize = nodeapi.MaxChunk
	}
	if r.LeaseIdle <= 0 {
		r.LeaseIdle = 30 * time.Second
	}
	r.Retry = r.Retry.withDefaults()
	if r.SchedulerPoll <= 0 {
		r.SchedulerPoll = time.Second
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if r.Clock == nil {
		r.Clock = jobs.SystemClock{}
	}
	if r.Backoff == nil {
		r.Backoff = r.Retry.Delay
	}
	if r.Worker == "" {
		r.Worker = "worker-" + jobs.NewID()[2:10]
	}
	if r.Checkpoints == nil {
		r.Checkpoints, _ = r.Store.(jobs.Checkpoints)
	}
}

// Run claims and runs jobs until ctx ends, with `concurrency` jobs at once.
func (r *Runner) Run(ctx context.Context, concurrency int) error {
	r.defaults()
	if concurrency < 1 {
		concurrency = 1
	}
	var wg sync.WaitGroup
	wg.Go(func() { r.schedule(ctx) })
	for i := 0; i < concurrency; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r.loop(ctx, fmt.Sprintf("%s/%d", r.Worker, i))
		}(i)
	}
	wg.Wait()
	return ctx.Err()
}

// schedule moves due retryable jobs back to the queue until ctx ends. Every
// coordinator runs one; the store's compare-and-set moves each job once.
func (r *Runner) schedule(ctx context.Context) {
	t := time.NewTicker(r.SchedulerPoll)
	defer t.Stop()
	for {
		js, err := r.Store.PromoteDue(ctx, "scheduler:"+r.Worker)
		if err != nil && ctx.Err() == nil {
			r.Logger.Warn("promoting due retries failed", "err", err)
		}
		for _, j := range js {
			r.Logger.Info("retry due: job requeued", "job", j.ID, "failures", j.Failures)
			r.notify(j.ID, jobs.Queued)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Runner) loop(ctx context.Context, worker string) {
	lastReclaim := time.Time{}
	for ctx.Err() == nil {
		if time.Since(lastReclaim) > r.LeaseIdle/2 {
			lastReclaim = time.Now()
			if n, err := ExpireConsents(ctx, r.Store, r.Clock); err != nil && ctx.Err() == nil {
				r.Logger.Warn("expiring consents failed", "err", err)
			} else if n > 0 {
				r.Logger.Info("jobs expired awaiting consent", "count", n)
			}
			leases, err := r.Store.Reclaim(ctx, worker, r.LeaseIdle)
			if err != nil && ctx.Err() == nil {
				r.Logger.Warn("reclaim failed", "err", err)
			}
			r.runReclaimed(ctx, leases)
		}
		l, err := r.Store.Claim(ctx, worker, time.Second)
		if err != nil {
			if ctx.Err() == nil {
				r.Logger.Warn("claim failed", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		if l == nil {
			continue
		}
		r.notify(l.Job.ID, jobs.Running)
		r.Process(ctx, l)
	}
}

// runReclaimed runs the jobs one Reclaim handed this worker, one after the
// other. The leases waiting their turn are renewed meanwhile: otherwise
// they go idle again while the first job runs, another worker reclaims them
// (bumping the attempt) and this one later runs them on a lost lease, over
// and over when several workers died at once.
func (r *Runner) runReclaimed(ctx context.Context, leases []*jobs.Lease) {
	lost := make([]bool, len(leases))
	for i, l := range leases {
		if lost[i] {
			r.Logger.Warn("reclaimed job taken over before its turn; skipped", "job", l.Job.ID, "attempt", l.Attempt)
			continue
		}
		rctx, stop := context.WithCancel(ctx)
		renewed := make(chan struct{})
		go func() {
			defer close(renewed)
			r.renew(rctx, leases[i+1:], lost[i+1:])
		}()
		r.Logger.Info("reclaimed job of a dead worker", "job", l.Job.ID, "attempt", l.Attempt)
		r.notify(l.Job.ID, jobs.Running)
		r.Process(ctx, l)
		stop()
		<-renewed
	}
}

// renew heartbeats leases until ctx ends, marking in lost those it lost.
func (r *Runner) renew(ctx context.Context, leases []*jobs.Lease, lost []bool) {
	if len(leases) == 0 {
		return
	}
	t := time.NewTicker(r.LeaseIdle / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i, l := range leases {
			if !lost[i] && errors.Is(r.Store.Heartbeat(ctx, l), jobs.ErrLeaseLost) {
				lost[i] = true
			}
		}
	}
}

func (r *Runner) notify(id string, s jobs.State) {
	if r.OnState != nil {
		r.OnState(id, s)
	}
}

// permanentError marks a failure that retrying cannot mend.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func permanent(format string, args ...any) error {
	return permanentError{fmt.Errorf(format, args...)}
}

func isPermanent(err error) bool {
	var pe permanentError
	return errors.As(err, &pe) || nodeapi.IsPermanent(err) || errors.Is(err, psi.ErrInvalidRequest)
}

// Process runs one leased job to its next state.
func (r *Runner) Process(ctx context.Context, l *jobs.Lease) {
	r.defaults()
	j := l.Job
	log := r.Logger.With("job", j.ID, "type", j.Spec.Type, "attempt", l.Attempt)
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Heartbeat: renew the lease; if it is lost, stop working on the job.
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		t := time.NewTicker(r.LeaseIdle / 4)
		defer t.Stop()
		for {
			select {
			case <-jctx.Done():
				return
			case <-t.C:
				if err := r.Store.Heartbeat(jctx, l); errors.Is(err, jobs.ErrLeaseLost) {
					log.Warn("lease lost; abandoning job")
					cancel()
					return
				}
			}
		}
	}()
	defer func() { cancel(); <-hbDone }()

	log.Info("running")
	review, err := r.execute(jctx, l)
	witness := r.finishNodes(ctx, l, err)
	if ctx.Err() != nil && err != nil {
		// Shutting down: hand the job back rather than fail it.
		r.transition(context.WithoutCancel(ctx), l, jobs.Change{To: jobs.Queued, Note: "worker shutting down; handed back", Detail: witness})
		return
	}
	switch {
	case err == nil:
		b, _ := json.Marshal(review)
		r.transition(ctx, l, jobs.Change{To: jobs.AwaitingReview, Review: b, Note: "result ready for review", Detail: witness})
	case errors.Is(err, jobs.ErrLeaseLost) || nodeapi.IsStale(err) || jctx.Err() != nil && ctx.Err() == nil:
		log.Warn("job abandoned: lease lost", "err", err)
	case isPermanent(err):
		log.Warn("job failed", "err", err)
		r.transition(ctx, l, jobs.Change{To: jobs.Failed, Error: err.Error(), Note: "failed", Detail: witness})
	case l.Job.Failures+1 >= r.Retry.Attempts:
		log.Warn("job dead-lettered: transient failures outlasted its attempts", "err", err)
		r.transition(ctx, l, jobs.Change{To: jobs.DeadLetter, Error: err.Error(), Detail: witness,
			Note: fmt.Sprintf("gave up after %d transient failures", l.Job.Failures+1)})
	default:
		// The job waits as data (retryable, due at a time), holding no lease
		// and no worker: this worker is free for other jobs at once.
		n := l.Job.Failures + 1
		d := r.Backoff(n)
		at := r.Clock.Now().Add(d).UTC()
		waiting := fmt.Sprintf("%s; retry %d of %d at %s", WaitingFor(err), n, r.Retry.Attempts-1, at.Format("15:04:05 MST"))
		log.Warn("transient failure; job retryable after a backoff", "err", err, "backoff", d, "failures", n)
		r.transition(context.WithoutCancel(ctx), l, jobs.Change{To: jobs.Retryable, Error: err.Error(), RetryAt: at, Waiting: waiting, Detail: witness,
			Note: fmt.Sprintf("transient failure %d of %d; retry in %s", n, r.Retry.Attempts, d.Round(time.Millisecond))})
	}
}

func (r *Runner) transition(ctx context.Context, l *jobs.Lease, c jobs.Change) {
	c.From, c.Attempt, c.Actor, c.Role = jobs.Running, l.Attempt, "worker:"+l.Worker, "worker"
	if _, err := r.Store.Transition(ctx, l.Job.ID, c); err != nil {
		r.Logger.Warn("transition refused", "job", l.Job.ID, "to", c.To, "err", err)
		return
	}
	r.notify(l.Job.ID, c.To)
}

func (r *Runner) execute(ctx context.Context, l *jobs.Lease) (*jobs.Review, error) {
	// The disclosure plan first: a job that cannot be protected as its
	// datasets require runs nowhere (review.go).
	plan, err := r.plan(ctx, l.Job)
	if err != nil {
		return nil, err
	}
	switch l.Job.Spec.Type {
	case policy.PSICardinality, policy.PSIMembers:
		return r.runPSI(ctx, l, plan)
	case policy.Aggregate, policy.IntersectionStats:
		return r.runHE(ctx, l, plan)
	default:
		return nil, permanent("job type %s is not supported by this coordinator yet", l.Job.Spec.Type)
	}
}

func (r *Runner) node(dataset string) (*nodeapi.Client, error) {
	c, ok := r.Nodes[policy.Department(dataset)]
	if !ok {
		return nil, permanent("no node is configured for department %q (dataset %s)", policy.Department(dataset), dataset)
	}
	return c, nil
}

// psiRun is the outcome of a job's PSI phase.
type psiRun struct {
	parties []psi.Party
	res     *psi.Result
	// overlaps are the differencing overlaps the nodes reported (datasets
	// in flag mode; by default a node refuses such a job instead).
	overlaps []disclosure.Overlap
}

// jobHeader is the header of every node request of a job's attempt, as
// party i: the nodes bind each step to the spec's hash.
func jobHeader(j *jobs.Job, attempt, party int) nodeapi.Header {
	return nodeapi.Header{Job: j.ID, SpecHash: j.Spec.Hash(), Attempt: attempt, Party: party}
}

// signedConsents are the owners' signed consents a job holds, which the
// nodes of conditional datasets require.
func signedConsents(j *jobs.Job) []attest.SignedConsent {
	var out []attest.SignedConsent
	for _, c := range j.Consents {
		if c.Signed != nil {
			out = append(out, *c.Signed)
		}
	}
	return out
}

// psiPhase prepares every input at its node and runs the PSI with list
// primary's positions kept (the value input's for intersection_stats).
// The coordinator only relays the nodes' signed lengths and chunk proofs:
// each node checks them itself.
func (r *Runner) psiPhase(ctx context.Context, l *jobs.Lease, primary int) (*psiRun, error) {
	j := l.Job
	n := len(j.Spec.Inputs)
	parties := make([]psi.Party, n)
	lengths := make([]nodeapi.SignedLength, n) // shared by the parties
	digests := make([]string, n)
	overlaps := make([][]disclosure.Overlap, n)
	req := policy.Requester{User: j.Owner, Department: j.Department}
	consents := signedConsents(j)
	// Prepare every party concurrently: each node checks its own policy and
	// loads, filters and blinds its input. The first error wins (and stops
	// the others), so a failed job records one cause, not one per node.
	g, gctx := errgroup.WithContext(ctx)
	for i, in := range j.Spec.Inputs {
		c, err := r.node(in.Dataset)
		if err != nil {
			return nil, err
		}
		h := jobHeader(j, l.Attempt, i)
		g.Go(func() error {
			resp, err := c.Prepare(gctx, &nodeapi.PrepareRequest{Header: h, Spec: j.Spec, Requester: req, Input: i, Parties: n, Consents: consents})
			if err != nil {
				return err
			}
			parties[i] = &nodeapi.Party{Client: c, Header: h, N: resp.Len, Lengths: lengths}
			lengths[i] = resp.Length
			digests[i] = resp.ListDigest
			overlaps[i] = resp.Overlaps
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// The protocol: the spec's, or the automatic rule on the signed lengths
	// (every node checks it the same way).
	lens := make([]int, n)
	for i, sl := range lengths {
		lens[i] = sl.Len
	}
	proto, err := policy.ChoosePSIProtocol(&j.Spec, lens)
	if err != nil {
		return nil, permanent("%v", err)
	}
	if proto == policy.PSIProtocolOT {
		res, err := r.runOT(ctx, l, primary, parties, lengths)
		if err != nil {
			return nil, err
		}
		return &psiRun{parties: parties, res: res}, nil
	}
	_ = r.Store.Progress(ctx, j.ID, l.Attempt, jobs.Progress{Step: "psi"})

	var last time.Time
	var progErr error
	opts := psi.RunOptions{Primary: primary, ChunkSize: r.ChunkSize, Progress: func(done, total int) {
		if done != total && time.Since(last) < 200*time.Millisecond {
			return
		}
		last = time.Now()
		if err := r.Store.Progress(ctx, j.ID, l.Attempt, jobs.Progress{Done: int64(done), Total: int64(total), Step: "psi"}); errors.Is(err, jobs.ErrLeaseLost) || errors.Is(err, jobs.ErrConflict) {
			progErr = jobs.ErrLeaseLost
		}
	}}
	rs := r.resume(ctx, l, lens, digests)
	rs.apply(&opts)
	res, err := psi.RunWith(ctx, parties, opts)
	rs.finish(ctx, err)
	if err != nil {
		return nil, err
	}
	if progErr != nil {
		return nil, progErr
	}
	if rs.enabled() {
		r.Logger.Info("psi done", "job", j.ID, "attempt", l.Attempt, "chunks", res.Chunks, "resumed_chunks", res.ResumedChunks,
			"computed_chunks", res.Chunks-res.ResumedChunks, "checkpoints_saved", rs.saved.Load())
	}
	return &psiRun{parties: parties, res: res, overlaps: slices.Concat(overlaps...)}, nil
}

func (r *Runner) runPSI(ctx context.Context, l *jobs.Lease, plan *disclosure.Plan) (*jobs.Review, error) {
	j := l.Job
	pr, err := r.psiPhase(ctx, l, 0)
	if err != nil {
		return nil, err
	}
	parties, res := pr.parties, pr.res
	// Every node refuses an input whose filter leaves fewer than its k
	// keys (input_below_k), so a PSI job that ran has no input below k.
	overlaps := append(pr.overlaps, similar(j)...)
	switch j.Spec.Type {
	case policy.PSICardinality:
		rel, err := disclosure.ReviewCardinality(plan, int64(res.Count), nil, overlaps, nil)
		if err != nil {
			return nil, permanent("%v", err)
		}
		return fromRelease(rel), nil
	case policy.PSIMembers:
		v := disclosure.ReviewMembers(plan, int64(res.Count), nil, overlaps)
		if !v.Release {
			// No list is sealed: a member list cannot carry noise, so
			// what the checks withhold is not left to the reviewer.
			return &jobs.Review{Result: v.Withheld, Checks: checks(v.Checks), Suppressed: v.Suppressed}, nil
		}
		if r.RecipientKey == nil {
			return nil, permanent("no recipient keys are configured")
		}
		pub, err := r.RecipientKey(j.Owner)
		if err != nil {
			return nil, permanent("analyst %s has no registered public key: %v", j.Owner, err)
		}
		p0 := parties[0].(*nodeapi.Party)
		mr, err := p0.Client.Members(ctx, &nodeapi.MembersRequest{Header: p0.Header, Positions: res.Positions, RecipientKey: pub, Recipient: j.Owner})
		if err != nil {
			return nil, err
		}
		if mr.Count != res.Count {
			return nil, fmt.Errorf("node sealed %d members, expected %d", mr.Count, res.Count)
		}
		// The result names the list the node keeps (not the list itself):
		// the node delivers it only against the reviewer's approval of this
		// very result, which also signs the analyst key's digest.
		rv := &jobs.Review{Checks: checks(v.Checks)}
		rv.Result, _ = json.Marshal(map[string]any{
			"count":                res.Count,
			"recipient":            j.Owner,
			"recipient_key_sha256": nodeapi.DigestOf(pub),
			"sealed_sha256":        mr.SealedSHA256,
			"sealing":              "HPKE base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305",
		})
		for i, c := range rv.Checks {
			if c.Name == disclosure.NameMembersK {
				rv.Checks[i].Detail += fmt.Sprintf(" (%s, key SHA-256 %.16s…) and kept by node %s until a reviewer's signed approval releases it", j.Owner, nodeapi.DigestOf(pub), p0.Client.Department)
			}
		}
		return rv, nil
	}
	return nil, permanent("job type %s is not a PSI job", j.Spec.Type)
}

// finishNodes lets every node drop the job's state (best effort), sending
// the coordinator's signed head and collecting theirs (witness.go): the
// audit detail for the job's next transition.
func (r *Runner) finishNodes(ctx context.Context, l *jobs.Lease, runErr error) map[string]string {
	outcome := "ok"
	if runErr != nil {
		outcome = "error"
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	own := r.ownHead(ctx)
	heads := map[string]string{}
	for i, in := range l.Job.Spec.Inputs {
		c, err := r.node(in.Dataset)
		if err != nil {
			continue
		}
		resp, err := c.Finish(ctx, &nodeapi.FinishRequest{Header: jobHeader(l.Job, l.Attempt, i), Outcome: outcome, Witness: own})
		if err != nil {
			r.Logger.Debug("finish at node failed", "node", c.Department, "err", err)
			continue
		}
		r.witnessed(heads, c.Department, resp.Head)
	}
	return heads
}
