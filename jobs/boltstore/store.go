// Package boltstore is the embedded job store: jobs, their history, the
// queue and leases, the retry schedule, idempotency keys, counters (privacy
// budgets, rate-limit windows) and the coordinator's audit chain, all in
// one bbolt file. It is the coordinator's default backend when no Redis is
// configured.
//
// Every change is one bbolt read-write transaction, committed with an
// fsync before the call returns: a job acknowledged to a client survives a
// SIGKILL or a power cut. A transition writes its audit entry in the same
// transaction as the change, so the two are committed together or not at
// all: a transition that cannot be audited does not happen.
//
// Only one process may open the file (bbolt holds an exclusive flock);
// a second one gets ErrLocked after Options.LockTimeout instead of
// hanging. Because of that lock, every lease found when the file is opened
// belongs to a process that is gone, and is made reclaimable at once.
//
// # Layout
//
// Buckets, all at the top level; seq8 is a big-endian uint64, so keys sort
// in numeric order:
//
//	jobs      id → record (JSON: the job with its history, its creation
//	          seq, its queue seq while queued)
//	order     seq8 → id: creation order, for List (newest first)
//	owners    len(owner) owner seq8 → id: one owner's jobs, same order
//	idem      len(owner) owner key → id: idempotency keys
//	queue     qseq8 → id: exactly the queued jobs, FIFO
//	leases    id → last claim or heartbeat (unix ns, by Options.Clock):
//	          exactly the running jobs
//	retry     scheduled_at (unix ns) id → "": exactly the retryable jobs
//	counters  key → {v, expires}
//	audit     seq8 → audit.Entry.Encode(): the chain
//	meta      "audit_head" → audit.Head of the chain's last entry, kept apart
//	          from it so that cutting entries off the end is detected
//	blobs     key → version8 ‖ value (jobs.Blobs; made on the first write)
//	chunks    len(job) job key → attempt8 ‖ SHA-256 ‖ size8: the index of
//	          the checkpoint files in <path>.chunks/<job>/ (jobs.Checkpoints,
//	          checkpoints.go; made on the first save)
//
// Lease ages, retry due times and counter windows are measured by the
// injected clock (Options.Clock), so tests drive them with a fake clock.
package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/internal/storeutil"
)

// Options configure Open.
type Options struct {
	// Clock stamps jobs, history and audit entries and measures leases,
	// retry times and counter windows. Default jobs.SystemClock.
	Clock jobs.Clock
	// LockTimeout bounds the wait for the file's lock when another process
	// holds it. Default 1 s.
	LockTimeout time.Duration
	// ReadOnly opens the file for reading only (a shared lock: several
	// readers, no writer); every change then fails. For inspecting a
	// stopped coordinator's file.
	ReadOnly bool
	// AuditFault, if set, is asked before every audit append; an error
	// fails the append, and so rolls back the change it was for, as a full
	// disk would. It lets callers' tests (the API's) check that they fail
	// closed; leave it nil otherwise.
	AuditFault func() error
}

// ErrLocked is returned by Open when another process has the file open.
var ErrLocked = errors.New("boltstore: the store file is in use by another process (is another coordinator running on it?)")

var (
	bJobs      = []byte("jobs")
	bOrder     = []byte("order")
	bOwners    = []byte("owners")
	bIdem      = []byte("idem")
	bQueue     = []byte("queue")
	bLeases    = []byte("leases")
	bRetry     = []byte("retry")
	bCounters  = []byte("counters")
	bAudit     = []byte("audit")
	bMeta      = []byte("meta")
	allBuckets = [][]byte{bJobs, bOrder, bOwners, bIdem, bQueue, bLeases, bRetry, bCounters, bAudit, bMeta}

	kAuditHead = []byte("audit_head")
)

// Store is the embedded backend of jobs.Store.
type Store struct {
	db    *bolt.DB
	path  string
	clock jobs.Clock
	fault func() error
	audit *AuditLog

	mu      sync.Mutex
	wake    chan struct{} // closed (and replaced) to wake blocked Claims
	waiting int           // Claims currently blocked, for tests
	closed  bool
}

var _ jobs.Store = (*Store)(nil)

// Open opens (creating if needed, with its folder) the store file at path.
func Open(path string, opts Options) (*Store, error) {
	if opts.Clock == nil {
		opts.Clock = jobs.SystemClock{}
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = time.Second
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("boltstore: %w", err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.LockTimeout, ReadOnly: opts.ReadOnly})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	s := &Store{db: db, path: path, clock: opts.Clock, fault: opts.AuditFault, wake: make(chan struct{})}
	s.audit = &AuditLog{s: s}
	if opts.ReadOnly {
		err = db.View(func(tx *bolt.Tx) error {
			for _, b := range allBuckets {
				if tx.Bucket(b) == nil {
					return fmt.Errorf("no bucket %s: not a store file", b)
				}
			}
			return nil
		})
	} else {
		err = db.Update(s.initialise)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: initialise %s: %w", path, err)
	}
	if !opts.ReadOnly {
		s.sweepChunks()
	}
	return s, nil
}

// initialise makes the buckets and lets go of the leases of the process
// that had the file before.
func (s *Store) initialise(tx *bolt.Tx) error {
	for _, b := range allBuckets {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	// The flock says no other process has the file: every lease in it
	// is a dead process's, reclaimable now.
	l := tx.Bucket(bLeases)
	var ids [][]byte
	_ = l.ForEach(func(k, _ []byte) error { ids = append(ids, slices.Clone(k)); return nil })
	for _, id := range ids {
		if err := l.Put(id, timeKey(time.Time{})); err != nil {
			return err
		}
	}
	return nil
}

// Path is the store's file.
func (s *Store) Path() string { return s.path }

var errClosed = fmt.Errorf("%w: boltstore closed", jobs.ErrUnavailable)

func (s *Store) now() time.Time { return s.clock.Now().UTC() }

func (s *Store) usable(ctx context.Context) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errClosed
	}
	return ctx.Err()
}

// update runs fn in a read-write transaction (committed with an fsync).
func (s *Store) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	return mapErr(s.db.Update(fn))
}

// view runs fn in a read-only transaction.
func (s *Store) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	return mapErr(s.db.View(fn))
}

// mapErr makes a closed database jobs.ErrUnavailable (Close racing a call).
func mapErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %w", errClosed, err)
	}
	return err
}

// record is what the jobs bucket holds for a job.
type record struct {
	Job  *jobs.Job `json:"job"`
	Seq  uint64    `json:"seq"`
	QSeq uint64    `json:"qseq,omitempty"`
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// timeKey orders times: unix nanoseconds, offset so earlier sorts first.
func timeKey(t time.Time) []byte {
	if t.IsZero() {
		return u64(0)
	}
	return u64(uint64(t.UnixNano()) ^ 1<<63)
}

func keyTime(b []byte) time.Time {
	n := binary.BigEndian.Uint64(b)
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n^1<<63)).UTC()
}

// lenPrefixed is len(s) as a uvarint, then s: owner names and keys can
// hold any byte, and still never run into what follows.
func lenPrefixed(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

func retryKey(at time.Time, id string) []byte { return append(timeKey(at), id...) }

func getRecord(tx *bolt.Tx, id string) (*record, error) {
	v := tx.Bucket(bJobs).Get([]byte(id))
	if v == nil {
		return nil, fmt.Errorf("%w: %s", jobs.ErrNotFound, id)
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("boltstore: job %s: %w", id, err)
	}
	return &r, nil
}

func putRecord(tx *bolt.Tx, r *record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Bucket(bJobs).Put([]byte(r.Job.ID), b)
}

// Create implements jobs.Jobs.
func (s *Store) Create(ctx context.Context, in *jobs.Job, idempotencyKey string) (*jobs.Job, bool, error) {
	now := s.now()
	j, err := storeutil.NewJob(in, now)
	if err != nil {
		return nil, false, err
	}
	var (
		out     *jobs.Job
		created bool
	)
	err = s.update(ctx, func(tx *bolt.Tx) error {
		ik := lenPrefixed(j.Owner, idempotencyKey)
		if idempotencyKey != "" {
			if id := tx.Bucket(bIdem).Get(ik); id != nil {
				prev, err := getRecord(tx, string(id))
				if err != nil {
					return err
				}
				if !storeutil.SameSpec(&prev.Job.Spec, &j.Spec) {
					return fmt.Errorf("%w (key %q, job %s)", jobs.ErrIdempotency, idempotencyKey, id)
				}
				out = prev.Job
				return nil
			}
		}
		if tx.Bucket(bJobs).Get([]byte(j.ID)) != nil {
			return fmt.Errorf("%w: job %s already exists", jobs.ErrConflict, j.ID)
		}
		if _, err := s.appendAudit(tx, storeutil.SubmittedEntry(j, now)); err != nil {
			return err
		}
		order := tx.Bucket(bOrder)
		seq, err := order.NextSequence()
		if err != nil {
			return err
		}
		r := &record{Job: j, Seq: seq}
		if err := order.Put(u64(seq), []byte(j.ID)); err != nil {
			return err
		}
		if err := tx.Bucket(bOwners).Put(append(lenPrefixed(j.Owner), u64(seq)...), []byte(j.ID)); err != nil {
			return err
		}
		if idempotencyKey != "" {
			if err := tx.Bucket(bIdem).Put(ik, []byte(j.ID)); err != nil {
				return err
			}
		}
		if j.State == jobs.Queued {
			if err := enqueue(tx, r); err != nil {
				return err
			}
		}
		out, created = j, true
		return putRecord(tx, r)
	})
	if err != nil {
		return nil, false, err
	}
	if created && out.State == jobs.Queued {
		s.signal()
	}
	return out, created, nil
}

// Get implements jobs.Jobs.
func (s *Store) Get(ctx context.Context, id string) (*jobs.Job, error) {
	var j *jobs.Job
	err := s.view(ctx, func(tx *bolt.Tx) error {
		r, err := getRecord(tx, id)
		if err == nil {
			j = r.Job
		}
		return err
	})
	return j, err
}

// List implements jobs.Jobs: newest first, walking the (owner's) index.
func (s *Store) List(ctx context.Context, f jobs.ListFilter) ([]*jobs.Job, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	var out []*jobs.Job
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bOrder).Cursor()
		k, v := c.Last()
		var prefix []byte
		if f.Owner != "" {
			prefix = lenPrefixed(f.Owner)
			c = tx.Bucket(bOwners).Cursor()
			// Seek past the owner's last key: the prefix followed by 0xff…
			k, v = c.Seek(append(slices.Clone(prefix), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
			if k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		for ; k != nil && len(out) < limit; k, v = c.Prev() {
			if prefix != nil && !bytes.HasPrefix(k, prefix) {
				break // walked back past the owner's first job
			}
			r, err := getRecord(tx, string(v))
			if err != nil {
				return err
			}
			if len(f.States) > 0 && !slices.Contains(f.States, r.Job.State) {
				continue
			}
			out = append(out, r.Job)
		}
		return nil
	})
	return out, err
}

// Transition implements jobs.Jobs.
func (s *Store) Transition(ctx context.Context, id string, c jobs.Change) (*jobs.Job, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	var out *jobs.Job
	err := s.update(ctx, func(tx *bolt.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		out, err = s.apply(tx, r, c)
		return err
	})
	if err != nil {
		return nil, err
	}
	if out.State == jobs.Queued {
		s.signal()
	}
	if !out.State.Resumable() && jobs.ValidID(id) {
		_ = s.removeChunkDir(id) // what is left is swept at the next Open
	}
	return out, nil
}

// apply is the compare-and-set, inside tx: check, audit, change, and the
// bookkeeping of the queue, leases and retry schedule.
func (s *Store) apply(tx *bolt.Tx, r *record, c jobs.Change) (*jobs.Job, error) {
	old := r.Job
	if old.State != c.From || old.Attempt != c.Attempt {
		return nil, storeutil.Conflict(old.ID, c, old.State, old.Attempt)
	}
	c = storeutil.Normalize(c)
	now := s.now()
	if _, err := s.appendAudit(tx, jobs.AuditEntry(old, c, now)); err != nil {
		return nil, err
	}
	id := []byte(old.ID)
	switch c.From {
	case jobs.Queued:
		if err := tx.Bucket(bQueue).Delete(u64(r.QSeq)); err != nil {
			return nil, err
		}
		r.QSeq = 0
	case jobs.Running:
		if err := tx.Bucket(bLeases).Delete(id); err != nil {
			return nil, err
		}
	case jobs.Retryable:
		if err := tx.Bucket(bRetry).Delete(retryKey(old.ScheduledAt, old.ID)); err != nil {
			return nil, err
		}
	}
	r.Job = storeutil.Apply(old, c, now)
	if !r.Job.State.Resumable() {
		// The job never runs again: its checkpoints go with this change
		// (their files after the commit, in Transition).
		if err := dropChunkIndex(tx, old.ID); err != nil {
			return nil, err
		}
	}
	switch c.To {
	case jobs.Queued:
		if err := enqueue(tx, r); err != nil {
			return nil, err
		}
	case jobs.Running: // a new attempt's lease starts now
		if err := tx.Bucket(bLeases).Put(id, timeKey(now)); err != nil {
			return nil, err
		}
	case jobs.Retryable:
		if err := tx.Bucket(bRetry).Put(retryKey(r.Job.ScheduledAt, old.ID), nil); err != nil {
			return nil, err
		}
	}
	if err := putRecord(tx, r); err != nil {
		return nil, err
	}
	return r.Job, nil
}

func enqueue(tx *bolt.Tx, r *record) error {
	q := tx.Bucket(bQueue)
	seq, err := q.NextSequence()
	if err != nil {
		return err
	}
	r.QSeq = seq
	return q.Put(u64(seq), []byte(r.Job.ID))
}

// Progress implements jobs.Jobs: only the lease holder of the current
// attempt of a running job may record progress.
func (s *Store) Progress(ctx context.Context, id string, attempt int, p jobs.Progress) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		r, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if r.Job.State != jobs.Running || r.Job.Attempt != attempt {
			return fmt.Errorf("%w: job %s is %s at attempt %d, progress is for attempt %d", jobs.ErrLeaseLost, id, r.Job.State, r.Job.Attempt, attempt)
		}
		r.Job.Progress, r.Job.UpdatedAt = p, s.now()
		return putRecord(tx, r)
	})
}

// counter is a value of the counters bucket.
type counter struct {
	V       int64     `json:"v"`
	Expires time.Time `json:"expires,omitzero"`
}

// Spend implements jobs.Counters; windows expire by the injected clock.
func (s *Store) Spend(ctx context.Context, key string, amount, limit int64, ttl time.Duration) (int64, bool, error) {
	var (
		total int64
		ok    bool
	)
	run := s.update
	if amount == 0 {
		run = s.view // a read: no write, no fsync (and it works read-only)
	}
	err := run(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bCounters)
		now := s.now()
		var c counter
		if v := b.Get([]byte(key)); v != nil {
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("boltstore: counter %q: %w", key, err)
			}
		}
		if !c.Expires.IsZero() && !now.Before(c.Expires) {
			c = counter{}
		}
		if c.V+amount > limit {
			total = c.V
			return nil
		}
		if c.V == 0 && ttl > 0 && c.Expires.IsZero() {
			c.Expires = now.Add(ttl)
		}
		c.V += amount
		total, ok = c.V, true
		if amount == 0 {
			return nil
		}
		v, err := json.Marshal(c)
		if err != nil {
			return err
		}
		return b.Put([]byte(key), v)
	})
	return total, ok, err
}

// Audit implements jobs.Audited.
func (s *Store) Audit() audit.Log { return s.audit }

// Ping implements jobs.Pinger.
func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, func(*bolt.Tx) error { return nil })
}

// Close wakes blocked Claims and closes the file (releasing its lock);
// every later call returns jobs.ErrUnavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.wake)
	s.mu.Unlock()
	return s.db.Close()
}

// signal wakes every blocked Claim to look at the queue again.
func (s *Store) signal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		close(s.wake)
		s.wake = make(chan struct{})
	}
}

// waitingClaims reports how many Claims are blocked, so tests can enqueue
// only once a Claim is really waiting.
func (s *Store) waitingClaims() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiting
}
