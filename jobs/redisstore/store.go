package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/internal/storeutil"
)

// Defaults for Options.
const (
	DefaultPrefix = "unseen"
	DefaultGroup  = "workers"
)

// Options configure a Store.
type Options struct {
	// Prefix namespaces every key (so several deployments, or parallel
	// tests, can share one Redis). Default "unseen".
	Prefix string
	// Stream is the queue stream's key. Default Prefix+":queue".
	Stream string
	// Group is the workers' consumer group on Stream. Default "workers".
	Group string
	// Clock stamps jobs, history and audit entries and decides when
	// retryable jobs are due. Lease ages are measured by Redis (stream idle
	// times), not by Clock. Default jobs.SystemClock.
	Clock jobs.Clock
}

// Store is the Redis backend of jobs.Store.
type Store struct {
	c      redis.UniversalClient
	k      keys
	group  string
	clock  jobs.Clock
	audit  *AuditLog
	closed atomic.Bool
	// waitAOF: AOF is on and the server has WAITAOF (Redis ≥ 7.2), so a
	// submission is acknowledged only once it is fsynced.
	waitAOF bool
	// owned is the client Open made, closed with the store.
	owned *redis.Client
}

var _ jobs.Store = (*Store)(nil)

type keys struct{ prefix, queue, index, seq, retry string }

func (k keys) job(id string) string     { return k.prefix + ":{" + id + "}:job" }
func (k keys) history(id string) string { return k.prefix + ":{" + id + "}:history" }
func (k keys) chunks(id string) string  { return k.prefix + ":{" + id + "}:chunks" }
func (k keys) owner(o string) string    { return k.prefix + ":owner:{" + url.QueryEscape(o) + "}:jobs" }
func (k keys) idem(o, key string) string {
	return k.prefix + ":idem:{" + url.QueryEscape(o) + "}:" + url.QueryEscape(key)
}

// New returns a store on c (which the caller keeps owning and closes). It
// creates the consumer group if missing and loads the scripts, so an
// unreachable Redis is reported here, as jobs.ErrUnavailable.
func New(ctx context.Context, c redis.UniversalClient, opts Options) (*Store, error) {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.Stream == "" {
		opts.Stream = opts.Prefix + ":queue"
	}
	if opts.Group == "" {
		opts.Group = DefaultGroup
	}
	if opts.Clock == nil {
		opts.Clock = jobs.SystemClock{}
	}
	s := &Store{
		c:     c,
		k:     keys{prefix: opts.Prefix, queue: opts.Stream, index: opts.Prefix + ":jobs", seq: opts.Prefix + ":seq", retry: opts.Prefix + ":retry"},
		group: opts.Group,
		clock: opts.Clock,
		audit: NewAuditLog(c, opts.Prefix),
	}
	if err := s.ensureGroup(ctx); err != nil {
		return nil, err
	}
	for _, sc := range allScripts {
		if err := sc.Load(ctx, c).Err(); err != nil {
			return nil, mapErr(ctx, "load scripts", err)
		}
	}
	s.waitAOF = durability(ctx, c)
	return s, nil
}

// durability reports whether submissions can wait for the AOF fsync, and
// warns when AOF is on but they cannot (Redis before 7.2 has no WAITAOF:
// run it with appendfsync always for the same guarantee).
func durability(ctx context.Context, c redis.UniversalClient) bool {
	cfg, err := c.ConfigGet(ctx, "append*").Result()
	if err != nil || cfg["appendonly"] != "yes" {
		return false
	}
	info, err := c.Do(ctx, "COMMAND", "INFO", "WAITAOF").Slice()
	if err == nil && len(info) == 1 && info[0] != nil {
		return true
	}
	if cfg["appendfsync"] != "always" {
		slog.Warn("Redis has AOF on but no WAITAOF (Redis < 7.2): an acknowledged submission may be lost in a crash unless appendfsync is always", "appendfsync", cfg["appendfsync"])
	}
	return false
}

// ensureGroup creates the consumer group (and the stream). It starts at
// "0" so entries added before the group existed are still handed out.
func (s *Store) ensureGroup(ctx context.Context) error {
	err := s.c.XGroupCreateMkStream(ctx, s.k.queue, s.group, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return mapErr(ctx, "create consumer group", err)
	}
	return nil
}

var errClosed = fmt.Errorf("%w: redisstore closed", jobs.ErrUnavailable)

func (s *Store) usable(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	return ctx.Err()
}

// Create implements jobs.Store.
func (s *Store) Create(ctx context.Context, in *jobs.Job, idempotencyKey string) (*jobs.Job, bool, error) {
	if err := s.usable(ctx); err != nil {
		return nil, false, err
	}
	now := s.clock.Now().UTC()
	j, err := storeutil.NewJob(in, now)
	if err != nil {
		return nil, false, err
	}
	useIdem := "0"
	if idempotencyKey != "" {
		useIdem = "1"
	}
	keys := []string{
		s.k.job(j.ID), s.k.history(j.ID), s.k.idem(j.Owner, idempotencyKey), s.k.index,
		s.k.owner(j.Owner), s.k.queue, s.k.seq, s.audit.stream, s.audit.head,
	}
	var (
		code     int64
		existing string
	)
	_, err = s.audit.seal(ctx, storeutil.SubmittedEntry(j, now), func(auditArgs []any) error {
		args := append([]any{j.ID, useIdem, string(j.State), mustJSON(j.History[0])}, auditArgs...)
		args = append(args, newJobFields(j)...)
		r, err := createScript.Run(ctx, s.c, keys, args...).Slice()
		if err != nil {
			return mapErr(ctx, "create job", err)
		}
		code, _ = r[0].(int64)
		switch code {
		case codeHeadMoved:
			return errHeadMoved
		case codeIdemHit:
			existing, _ = r[1].(string)
		case codeOK, codeExists:
		default:
			return fmt.Errorf("redisstore: create job: unexpected reply %v", r)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	switch code {
	case codeExists:
		return nil, false, fmt.Errorf("%w: job %s already exists", jobs.ErrConflict, j.ID)
	case codeIdemHit:
		prev, _, err := s.load(ctx, existing)
		if err != nil {
			return nil, false, err
		}
		if !storeutil.SameSpec(&prev.Spec, &j.Spec) {
			return nil, false, fmt.Errorf("%w (key %q, job %s)", jobs.ErrIdempotency, idempotencyKey, existing)
		}
		return prev, false, nil
	}
	if s.waitAOF {
		// Acknowledge only what is on disk: WAITAOF numlocal=1 numreplicas=0.
		if err := s.c.Do(ctx, "WAITAOF", 1, 0, 5000).Err(); err != nil {
			return nil, false, mapErr(ctx, "waitaof", err)
		}
	}
	return j, true, nil
}

// Get implements jobs.Store.
func (s *Store) Get(ctx context.Context, id string) (*jobs.Job, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	j, _, err := s.load(ctx, id)
	return j, err
}

// load reads a job and its current queue entry id in one MULTI (both keys
// share the job's slot).
func (s *Store) load(ctx context.Context, id string) (*jobs.Job, string, error) {
	if !jobs.ValidID(id) {
		return nil, "", fmt.Errorf("%w: %q", jobs.ErrNotFound, id)
	}
	var (
		h    *redis.MapStringStringCmd
		hist *redis.StringSliceCmd
	)
	if _, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		h = p.HGetAll(ctx, s.k.job(id))
		hist = p.LRange(ctx, s.k.history(id), 0, -1)
		return nil
	}); err != nil {
		return nil, "", mapErr(ctx, "get job", err)
	}
	if len(h.Val()) == 0 {
		return nil, "", fmt.Errorf("%w: %s", jobs.ErrNotFound, id)
	}
	return decodeJob(h.Val(), hist.Val())
}

// List implements jobs.Store: it walks the (owner's) index newest first in
// pages, filtering by state.
func (s *Store) List(ctx context.Context, f jobs.ListFilter) ([]*jobs.Job, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	index := s.k.index
	if f.Owner != "" {
		index = s.k.owner(f.Owner)
	}
	page := int64(max(limit, 100))
	var out []*jobs.Job
	for start := int64(0); len(out) < limit; start += page {
		ids, err := s.c.ZRevRange(ctx, index, start, start+page-1).Result()
		if err != nil {
			return nil, mapErr(ctx, "list jobs", err)
		}
		hs := make([]*redis.MapStringStringCmd, len(ids))
		hists := make([]*redis.StringSliceCmd, len(ids))
		if _, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range ids {
				hs[i] = p.HGetAll(ctx, s.k.job(id))
				hists[i] = p.LRange(ctx, s.k.history(id), 0, -1)
			}
			return nil
		}); err != nil {
			return nil, mapErr(ctx, "list jobs", err)
		}
		for i := range ids {
			if len(hs[i].Val()) == 0 {
				continue // deleted by hand; the index is only an index
			}
			j, _, err := decodeJob(hs[i].Val(), hists[i].Val())
			if err != nil {
				return nil, err
			}
			if f.Owner != "" && j.Owner != f.Owner || len(f.States) > 0 && !slices.Contains(f.States, j.State) {
				continue
			}
			if out = append(out, j); len(out) == limit {
				break
			}
		}
		if int64(len(ids)) < page {
			break
		}
	}
	return out, nil
}

// Transition implements jobs.Store.
func (s *Store) Transition(ctx context.Context, id string, c jobs.Change) (*jobs.Job, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	j, _, err := s.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.State != c.From || j.Attempt != c.Attempt {
		return nil, storeutil.Conflict(id, c, j.State, j.Attempt)
	}
	return s.apply(ctx, j, c, c.Actor, "")
}

var errStaleEntry = errors.New("redisstore: queue entry is no longer the job's")

// apply runs the transition script for c on j (as read; the script
// re-checks). consumer takes the lease when c enters running; entry is the
// queue entry a Claim or Reclaim was handed ("" otherwise).
func (s *Store) apply(ctx context.Context, j *jobs.Job, c jobs.Change, consumer, entry string) (*jobs.Job, error) {
	c = storeutil.Normalize(c)
	now := s.clock.Now().UTC()
	ev := storeutil.Event(c, now)
	reset := "0"
	if storeutil.StartsAttempt(c) {
		reset = "1"
	}
	keys := []string{s.k.job(j.ID), s.k.history(j.ID), s.k.queue, s.audit.stream, s.audit.head, s.k.retry, s.k.chunks(j.ID)}
	retryAt := ""
	if !c.RetryAt.IsZero() {
		retryAt = strconv.FormatInt(c.RetryAt.UnixMilli(), 10)
	}
	var (
		code  int64
		reply []any
	)
	_, err := s.audit.seal(ctx, jobs.AuditEntry(j, c, now), func(auditArgs []any) error {
		args := []any{
			string(c.From), strconv.Itoa(c.Attempt), string(c.To), strconv.Itoa(ev.Attempt),
			fmtTime(now), mustJSON(ev), s.group, consumer, entry, reset, retryAt,
		}
		args = append(args, auditArgs...)
		args = append(args, changeFields(c)...)
		r, err := transitionScript.Run(ctx, s.c, keys, args...).Slice()
		if err != nil {
			return mapErr(ctx, "transition job", err)
		}
		code, _ = r[0].(int64)
		if code == codeHeadMoved {
			return errHeadMoved
		}
		reply = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch code {
	case codeOK:
		h, err := flatMap(reply[1])
		if err != nil {
			return nil, err
		}
		// History only changes by transitions, and (state, attempt) pairs
		// never repeat, so the history read with j plus this event is exact.
		n, _, err := decodeJob(h, nil)
		if err != nil {
			return nil, err
		}
		n.History = append(j.History, ev)
		return n, nil
	case codeNotFound:
		return nil, fmt.Errorf("%w: %s", jobs.ErrNotFound, j.ID)
	case codeConflict:
		st, _ := reply[1].(string)
		at, _ := strconv.Atoi(fmt.Sprint(reply[2]))
		return nil, storeutil.Conflict(j.ID, c, jobs.State(st), at)
	case codeStale:
		return nil, errStaleEntry
	}
	return nil, fmt.Errorf("redisstore: transition job: unexpected reply %v", reply)
}

// Progress implements jobs.Store.
func (s *Store) Progress(ctx context.Context, id string, attempt int, p jobs.Progress) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	if !jobs.ValidID(id) {
		return fmt.Errorf("%w: %q", jobs.ErrNotFound, id)
	}
	code, err := progressScript.Run(ctx, s.c, []string{s.k.job(id)},
		strconv.Itoa(attempt), mustJSON(p), fmtTime(s.clock.Now())).Int64()
	if err != nil {
		return mapErr(ctx, "record progress", err)
	}
	return leaseCode(code, id, attempt)
}

func leaseCode(code int64, id string, attempt int) error {
	switch code {
	case codeOK:
		return nil
	case codeNotFound:
		return fmt.Errorf("%w: %s", jobs.ErrNotFound, id)
	case codeLeaseLost:
		return fmt.Errorf("%w: job %s is no longer running at attempt %d", jobs.ErrLeaseLost, id, attempt)
	}
	return fmt.Errorf("redisstore: unexpected reply %d", code)
}

// Audit implements jobs.Store.
func (s *Store) Audit() audit.Log { return s.audit }

// Spend implements jobs.Store. Counters live at <prefix>:spend:<key>.
func (s *Store) Spend(ctx context.Context, key string, amount, limit int64, ttl time.Duration) (int64, bool, error) {
	if err := s.usable(ctx); err != nil {
		return 0, false, err
	}
	r, err := spendScript.Run(ctx, s.c, []string{s.k.prefix + ":spend:" + key}, amount, limit, ttl.Milliseconds()).Slice()
	if err != nil {
		return 0, false, mapErr(ctx, "spend", err)
	}
	ok, _ := r[0].(int64)
	total, _ := r[1].(int64)
	return total, ok == 1, nil
}

// Ping implements jobs.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	return mapErr(ctx, "ping", s.c.Ping(ctx).Err())
}

// Close marks the store closed: later calls return jobs.ErrUnavailable. It
// does not close the client, which the caller owns.
func (s *Store) Close() error {
	if s.closed.Swap(true) || s.owned == nil {
		return nil
	}
	return s.owned.Close()
}
