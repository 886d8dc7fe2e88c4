// Package memstore is the embedded job store: everything in one process's
// memory, the audit chain in whatever audit.Log it is given (a FileLog in
// the coordinator, a MemLog in tests). It is the default backend when no
// Redis is configured.
//
// One mutex makes every transition a compare-and-set. The audit entry is
// appended while the mutex is held and before the change is applied, so the
// chain's order is the order of the changes, and a change whose entry could
// not be appended does not happen (fail closed).
package memstore

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/internal/storeutil"
)

// Store is the embedded backend. The zero value is not usable: call New.
type Store struct {
	log   audit.Log
	clock jobs.Clock

	mu      sync.Mutex
	jobs    map[string]*record
	order   []*record  // creation order, for List (newest first = from the end)
	queue   *list.List // of *record: exactly the queued jobs, FIFO
	idem    map[idemKey]string
	wake    chan struct{} // closed (and replaced) to wake blocked Claims
	waiting int           // Claims currently blocked, for tests
	closed  bool
	spent   map[string]counter
}

type counter struct {
	v       int64
	expires time.Time // zero: never
}

type record struct {
	job  *jobs.Job
	elem *list.Element // position in queue while queued
	beat time.Time     // last claim or heartbeat while running: the lease age
}

type idemKey struct{ owner, key string }

var _ jobs.Store = (*Store)(nil)

// New returns an empty store that writes its audit chain to log and takes
// timestamps and lease ages from clock (jobs.SystemClock if nil).
func New(log audit.Log, clock jobs.Clock) *Store {
	if clock == nil {
		clock = jobs.SystemClock{}
	}
	return &Store{
		log:   log,
		clock: clock,
		jobs:  map[string]*record{},
		queue: list.New(),
		idem:  map[idemKey]string{},
		wake:  make(chan struct{}),
		spent: map[string]counter{},
	}
}

// Spend implements jobs.Store.
func (s *Store) Spend(ctx context.Context, key string, amount, limit int64, ttl time.Duration) (int64, bool, error) {
	if err := s.lock(ctx); err != nil {
		return 0, false, err
	}
	defer s.mu.Unlock()
	now := s.now()
	c := s.spent[key]
	if !c.expires.IsZero() && !now.Before(c.expires) {
		c = counter{}
	}
	if c.v+amount > limit {
		return c.v, false, nil
	}
	if c.v == 0 && ttl > 0 && c.expires.IsZero() {
		c.expires = now.Add(ttl)
	}
	c.v += amount
	s.spent[key] = c
	return c.v, true, nil
}

var errClosed = fmt.Errorf("%w: memstore closed", jobs.ErrUnavailable)

func (s *Store) now() time.Time { return s.clock.Now().UTC() }

// lock takes the mutex unless the store is closed or ctx is done.
func (s *Store) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	return nil
}

// appendAudit writes e, or explains why the change it describes is refused.
func (s *Store) appendAudit(ctx context.Context, e audit.Entry) error {
	if _, err := s.log.Append(ctx, e); err != nil {
		return fmt.Errorf("jobs: audit append failed, change not applied: %w", err)
	}
	return nil
}

// Create implements jobs.Store.
func (s *Store) Create(ctx context.Context, in *jobs.Job, idempotencyKey string) (*jobs.Job, bool, error) {
	if err := s.lock(ctx); err != nil {
		return nil, false, err
	}
	defer s.mu.Unlock()
	now := s.now()
	j, err := storeutil.NewJob(in, now)
	if err != nil {
		return nil, false, err
	}
	ik := idemKey{j.Owner, idempotencyKey}
	if idempotencyKey != "" {
		if id, ok := s.idem[ik]; ok {
			prev := s.jobs[id].job
			if !storeutil.SameSpec(&prev.Spec, &j.Spec) {
				return nil, false, fmt.Errorf("%w (key %q, job %s)", jobs.ErrIdempotency, idempotencyKey, id)
			}
			return storeutil.Clone(prev), false, nil
		}
	}
	if _, ok := s.jobs[j.ID]; ok {
		return nil, false, fmt.Errorf("%w: job %s already exists", jobs.ErrConflict, j.ID)
	}
	if err := s.appendAudit(ctx, storeutil.SubmittedEntry(j, now)); err != nil {
		return nil, false, err
	}
	r := &record{job: j}
	s.jobs[j.ID] = r
	s.order = append(s.order, r)
	if idempotencyKey != "" {
		s.idem[ik] = j.ID
	}
	if j.State == jobs.Queued {
		s.enqueueLocked(r)
	}
	return storeutil.Clone(j), true, nil
}

// Get implements jobs.Store.
func (s *Store) Get(ctx context.Context, id string) (*jobs.Job, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	r, ok := s.jobs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", jobs.ErrNotFound, id)
	}
	return storeutil.Clone(r.job), nil
}

// List implements jobs.Store.
func (s *Store) List(ctx context.Context, f jobs.ListFilter) ([]*jobs.Job, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var out []*jobs.Job
	for i := len(s.order) - 1; i >= 0 && len(out) < limit; i-- {
		j := s.order[i].job
		if f.Owner != "" && j.Owner != f.Owner || len(f.States) > 0 && !slices.Contains(f.States, j.State) {
			continue
		}
		out = append(out, storeutil.Clone(j))
	}
	return out, nil
}

// Transition implements jobs.Store.
func (s *Store) Transition(ctx context.Context, id string, c jobs.Change) (*jobs.Job, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	r, ok := s.jobs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", jobs.ErrNotFound, id)
	}
	j, err := s.applyLocked(ctx, r, c)
	if err != nil {
		return nil, err
	}
	return storeutil.Clone(j), nil
}

// applyLocked is the compare-and-set: check, audit, then change.
func (s *Store) applyLocked(ctx context.Context, r *record, c jobs.Change) (*jobs.Job, error) {
	old := r.job
	if old.State != c.From || old.Attempt != c.Attempt {
		return nil, storeutil.Conflict(old.ID, c, old.State, old.Attempt)
	}
	now := s.now()
	if err := s.appendAudit(ctx, jobs.AuditEntry(old, c, now)); err != nil {
		return nil, err
	}
	r.job = storeutil.Apply(old, c, now)
	if c.From == jobs.Queued {
		s.queue.Remove(r.elem)
		r.elem = nil
	}
	switch c.To {
	case jobs.Queued:
		s.enqueueLocked(r)
	case jobs.Running:
		r.beat = now // a new attempt's lease starts now
	}
	return r.job, nil
}

func (s *Store) enqueueLocked(r *record) {
	r.elem = s.queue.PushBack(r)
	close(s.wake) // broadcast: every blocked Claim re-checks the queue
	s.wake = make(chan struct{})
}

// Progress implements jobs.Store: only the lease holder of the current
// attempt of a running job may record progress.
func (s *Store) Progress(ctx context.Context, id string, attempt int, p jobs.Progress) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	r, ok := s.jobs[id]
	if !ok {
		return fmt.Errorf("%w: %s", jobs.ErrNotFound, id)
	}
	if r.job.State != jobs.Running || r.job.Attempt != attempt {
		return fmt.Errorf("%w: job %s is %s at attempt %d, progress is for attempt %d", jobs.ErrLeaseLost, id, r.job.State, r.job.Attempt, attempt)
	}
	// Replace rather than mutate: a stored *Job is never changed in place.
	n := *r.job
	n.Progress, n.UpdatedAt = p, s.now()
	r.job = &n
	return nil
}

// Claim implements jobs.Store. It waits for an enqueue signal, not a timer
// loop; block is real time, not the injected clock (it is a wait, not a
// lease).
func (s *Store) Claim(ctx context.Context, worker string, block time.Duration) (*jobs.Lease, error) {
	var timeout <-chan time.Time
	for {
		if err := s.lock(ctx); err != nil {
			return nil, err
		}
		if e := s.queue.Front(); e != nil {
			r := e.Value.(*record)
			j, err := s.applyLocked(ctx, r, storeutil.ClaimChange(r.job, worker, "claimed"))
			s.mu.Unlock()
			if err != nil {
				return nil, err
			}
			return &jobs.Lease{Job: storeutil.Clone(j), Attempt: j.Attempt, Worker: worker}, nil
		}
		if block <= 0 {
			s.mu.Unlock()
			return nil, nil
		}
		wake := s.wake
		s.waiting++
		s.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(block)
			defer t.Stop()
			timeout = t.C
		}
		var done bool
		select {
		case <-wake:
		case <-timeout:
			done = true
		case <-ctx.Done():
		}
		s.mu.Lock()
		s.waiting--
		s.mu.Unlock()
		if done {
			return nil, nil
		}
	}
}

// Heartbeat implements jobs.Store.
func (s *Store) Heartbeat(ctx context.Context, l *jobs.Lease) error {
	if l == nil || l.Job == nil {
		return errors.New("jobs: heartbeat without a lease")
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	r, ok := s.jobs[l.Job.ID]
	if !ok {
		return fmt.Errorf("%w: %s", jobs.ErrNotFound, l.Job.ID)
	}
	if r.job.State != jobs.Running || r.job.Attempt != l.Attempt {
		return fmt.Errorf("%w: job %s is %s at attempt %d, lease is for attempt %d", jobs.ErrLeaseLost, r.job.ID, r.job.State, r.job.Attempt, l.Attempt)
	}
	r.beat = s.now()
	return nil
}

// Reclaim implements jobs.Store, measuring lease age by the injected clock.
// If an audit append fails it stops and returns the leases taken so far
// with the error; the rest stay running, to be reclaimed later.
func (s *Store) Reclaim(ctx context.Context, worker string, minIdle time.Duration) ([]*jobs.Lease, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	now := s.now()
	var out []*jobs.Lease
	for _, r := range s.order {
		if r.job.State != jobs.Running || now.Sub(r.beat) < minIdle {
			continue
		}
		j, err := s.applyLocked(ctx, r, storeutil.ClaimChange(r.job, worker, "reclaimed: lease expired"))
		if err != nil {
			return out, err
		}
		out = append(out, &jobs.Lease{Job: storeutil.Clone(j), Attempt: j.Attempt, Worker: worker})
	}
	return out, nil
}

// Audit implements jobs.Store.
func (s *Store) Audit() audit.Log { return s.log }

// Ping implements jobs.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	s.mu.Unlock()
	return nil
}

// Close wakes blocked Claims; every later call returns jobs.ErrUnavailable.
// It does not close the audit log, which the caller owns.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.wake)
	}
	return nil
}

// waitingClaims reports how many Claims are blocked, so tests can enqueue
// only once a Claim is really waiting.
func (s *Store) waitingClaims() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiting
}
