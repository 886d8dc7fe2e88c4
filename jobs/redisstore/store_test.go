package redisstore

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/jobstest"
	"github.com/unseen-data/unseen/jobs/redistest"
)

func newStore(t *testing.T, c redis.UniversalClient, clock jobs.Clock) *Store {
	t.Helper()
	s, err := New(t.Context(), c, Options{Prefix: redistest.Prefix(t, c), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	c := redistest.Client(t)
	h := jobstest.Harness{
		New: func(t *testing.T, clock jobs.Clock) jobs.Store {
			return newStore(t, c, clock)
		},
		Reopen: func(t *testing.T, old jobs.Store, clock jobs.Clock) jobs.Store {
			s, err := New(t.Context(), c, Options{Prefix: old.(*Store).k.prefix, Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		RealTimeLeases: true,
		BreakAudit:     breakAudit,
	}
	if rc, ok := c.(*redis.Client); ok && rc.Options().ClientName != "" {
		// redistest names the client's connections: a Claim is waiting
		// when one of them is blocked in XREADGROUP.
		name := rc.Options().ClientName
		h.ClaimWaiting = func(jobs.Store) bool {
			list, err := c.ClientList(context.Background()).Result()
			if err != nil {
				return false
			}
			for _, line := range strings.Split(list, "\n") {
				if strings.Contains(line, " name="+name+" ") && strings.Contains(line, " cmd=xreadgroup") && strings.Contains(line, " flags=b") {
					return true
				}
			}
			return false
		}
	}
	jobstest.Run(t, h)
}

// breakAudit puts a string where the audit stream belongs: every script
// that appends then fails on its first write (XADD), so nothing it would
// have changed is changed.
func breakAudit(t *testing.T, js jobs.Store) func() {
	s := js.(*Store)
	ctx := context.Background()
	saved := s.audit.stream + ":saved"
	if err := s.c.Rename(ctx, s.audit.stream, saved).Err(); err != nil {
		t.Fatalf("breakAudit: %v", err)
	}
	if err := s.c.Set(ctx, s.audit.stream, "not a stream", 0).Err(); err != nil {
		t.Fatalf("breakAudit: %v", err)
	}
	return func() {
		if err := s.c.Rename(ctx, saved, s.audit.stream).Err(); err != nil {
			t.Fatalf("repair audit: %v", err)
		}
	}
}

// A claimer that dies between XREADGROUP and the compare-and-set leaves
// the entry pending and the job queued; Reclaim starts it (attempt 1), and
// Claim never hands the entry out again.
func TestReclaimQueuedAfterClaimerDied(t *testing.T) {
	c := redistest.Client(t)
	s := newStore(t, c, nil)
	ctx := t.Context()
	j, _, err := s.Create(ctx, &jobs.Job{Owner: "alice", State: jobs.Queued}, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: s.group, Consumer: "dead", Streams: []string{s.k.queue, ">"}, Count: 1, Block: -1}).Result()
	if err != nil || len(res[0].Messages) != 1 {
		t.Fatalf("XREADGROUP = %v, %v", res, err)
	}
	if l, err := s.Claim(ctx, "w1", 0); l != nil || err != nil {
		t.Fatalf("Claim = %v, %v; the entry was already delivered", l, err)
	}
	var ls []*jobs.Lease
	jobstest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool {
		ls, err = s.Reclaim(ctx, "w2", 50*time.Millisecond)
		return err != nil || len(ls) > 0
	}, "the dead claimer's entry to idle")
	if err != nil || len(ls) != 1 || ls[0].Job.ID != j.ID || ls[0].Attempt != 1 || ls[0].Token != res[0].Messages[0].ID {
		t.Fatalf("Reclaim = %+v, %v", ls, err)
	}
	if err := s.Heartbeat(ctx, ls[0]); err != nil {
		t.Fatal(err)
	}
}

// Entries for jobs that are gone, or that are no longer the job's current
// entry, are acknowledged and deleted rather than handed out or left
// pending forever.
func TestStaleEntriesAreDropped(t *testing.T) {
	c := redistest.Client(t)
	s := newStore(t, c, nil)
	ctx := t.Context()
	stale := []map[string]any{{"job": jobs.NewID()}, {"job": "garbage}{"}}
	j, _, err := s.Create(ctx, &jobs.Job{Owner: "alice", State: jobs.Queued}, "")
	if err != nil {
		t.Fatal(err)
	}
	stale = append(stale, map[string]any{"job": j.ID}) // a second entry for a job: not its current one
	for _, v := range stale {
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: s.k.queue, Values: v}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	l, err := s.Claim(ctx, "w1", 0)
	if err != nil || l == nil || l.Job.ID != j.ID {
		t.Fatalf("Claim = %v, %v", l, err)
	}
	if l, err := s.Claim(ctx, "w1", 0); l != nil || err != nil {
		t.Fatalf("Claim = %v, %v; want nil: the rest is stale", l, err)
	}
	if n, _ := c.XLen(ctx, s.k.queue).Result(); n != 1 {
		t.Errorf("queue holds %d entries, want 1 (the running job's lease)", n)
	}
	p, err := c.XPending(ctx, s.k.queue, s.group).Result()
	if err != nil || p.Count != 1 {
		t.Errorf("pending = %+v, %v; want only the lease", p, err)
	}
}

// A running job started by a plain Transition (not Claim) keeps its entry
// when a Claim is handed it: the entry becomes its lease clock, so the job
// can be reclaimed if nobody works on it.
func TestPlainTransitionToRunningIsReclaimable(t *testing.T) {
	c := redistest.Client(t)
	s := newStore(t, c, nil)
	ctx := t.Context()
	j, _, err := s.Create(ctx, &jobs.Job{Owner: "alice", State: jobs.Queued}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Transition(ctx, j.ID, jobs.Change{From: jobs.Queued, To: jobs.Running, Actor: "admin"}); err != nil {
		t.Fatal(err)
	}
	if l, err := s.Claim(ctx, "w1", 0); l != nil || err != nil {
		t.Fatalf("Claim = %v, %v; the job is already running", l, err)
	}
	var ls []*jobs.Lease
	jobstest.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool {
		ls, err = s.Reclaim(ctx, "w2", 50*time.Millisecond)
		return err != nil || len(ls) > 0
	}, "the unattended running job to be reclaimable")
	if err != nil || len(ls) != 1 || ls[0].Attempt != 2 {
		t.Fatalf("Reclaim = %+v, %v", ls, err)
	}
}

// Every kind of write fails closed on a broken audit head too (read by Go
// before sealing), and the chain stays intact.
func TestBrokenAuditHead(t *testing.T) {
	c := redistest.Client(t)
	s := newStore(t, c, nil)
	ctx := t.Context()
	j, _, err := s.Create(ctx, &jobs.Job{Owner: "alice", State: jobs.Queued}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.HSet(ctx, s.audit.head, "seq", "7").Err(); err != nil { // seq no longer matches the stream
		t.Fatal(err)
	}
	if _, err := s.Transition(ctx, j.ID, jobs.Change{From: jobs.Queued, To: jobs.Cancelled, Actor: "alice"}); !errors.Is(err, audit.ErrBroken) {
		t.Fatalf("transition after the head was tampered with: %v, want audit.ErrBroken", err)
	}
	if _, err := s.Audit().Append(ctx, audit.Entry{Actor: "a", Action: "b"}); !errors.Is(err, audit.ErrBroken) {
		t.Fatalf("append after the head was tampered with: %v, want audit.ErrBroken", err)
	}
	if got, _ := s.Get(ctx, j.ID); got.State != jobs.Queued {
		t.Errorf("job is %s", got.State)
	}
	all, err := s.Audit().All(ctx)
	if err != nil || len(all) != 1 || audit.Verify(all) != nil {
		t.Errorf("chain = %d entries, %v", len(all), err)
	}
}

func TestUnavailable(t *testing.T) {
	l, err := closedAddr()
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: l, MaxRetries: -1, DialTimeout: 200 * time.Millisecond, DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
	defer c.Close()
	if _, err := New(t.Context(), c, Options{}); !errors.Is(err, jobs.ErrUnavailable) {
		t.Errorf("New on a dead Redis: %v, want ErrUnavailable", err)
	}
	s := &Store{c: c, k: keys{prefix: "x", queue: "x:queue", index: "x:jobs", seq: "x:seq", retry: "x:retry"}, group: "g", clock: jobs.SystemClock{}, audit: NewAuditLog(c, "x")}
	if _, err := s.Get(t.Context(), jobs.NewID()); !errors.Is(err, jobs.ErrUnavailable) {
		t.Errorf("Get: %v, want ErrUnavailable", err)
	}
	if _, _, err := s.Create(t.Context(), &jobs.Job{Owner: "a", State: jobs.Queued}, ""); !errors.Is(err, jobs.ErrUnavailable) {
		t.Errorf("Create: %v, want ErrUnavailable", err)
	}
	if err := s.Ping(t.Context()); !errors.Is(err, jobs.ErrUnavailable) {
		t.Errorf("Ping: %v, want ErrUnavailable", err)
	}
}

// The scripts compare state and attempt themselves: Go's early check reads
// a snapshot that can be stale by the time the script runs.
func TestScriptCompareAndSet(t *testing.T) {
	c := redistest.Client(t)
	s := newStore(t, c, nil)
	ctx := t.Context()
	if _, _, err := s.Create(ctx, &jobs.Job{Owner: "alice", State: jobs.Queued}, ""); err != nil {
		t.Fatal(err)
	}
	l, err := s.Claim(ctx, "w1", 0)
	if err != nil || l == nil {
		t.Fatal(l, err)
	}
	stale := l.Job // running at attempt 1, as the first worker saw it
	ls, err := s.Reclaim(ctx, "w2", 0)
	if err != nil || len(ls) != 1 || ls[0].Attempt != 2 {
		t.Fatalf("Reclaim = %v, %v", ls, err)
	}
	for _, c := range []jobs.Change{
		{From: jobs.Running, Attempt: 1, To: jobs.AwaitingReview, Actor: "worker:w1"}, // attempt moved on
		{From: jobs.Queued, Attempt: 2, To: jobs.Cancelled, Actor: "alice"},           // state is not queued
	} {
		if _, err := s.apply(ctx, stale, c, "w1", ""); !errors.Is(err, jobs.ErrConflict) {
			t.Errorf("apply(%s@%d → %s) on a stale snapshot: %v, want ErrConflict", c.From, c.Attempt, c.To, err)
		}
	}
	// A claim must hold the job's current entry.
	if _, err := s.apply(ctx, ls[0].Job, jobs.Change{From: jobs.Running, Attempt: 2, To: jobs.Running, Actor: "worker:w3"}, "w3", "1-1"); !errors.Is(err, errStaleEntry) {
		t.Errorf("apply with a foreign queue entry: %v, want errStaleEntry", err)
	}
	all, err := s.Audit().All(ctx)
	if err != nil || len(all) != 3 || audit.Verify(all) != nil {
		t.Errorf("chain: %d entries, %v (want create, claim, reclaim)", len(all), err)
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// Schedule entries whose job is gone, or no longer retryable, are dropped
// rather than listed as due forever; a retryable job's entry is kept until
// it is due.
func TestStaleScheduleEntriesDropped(t *testing.T) {
	c := redistest.Client(t)
	clock := jobstest.NewFakeClock(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC))
	s := newStore(t, c, clock)
	ctx := t.Context()
	q, _, err := s.Create(ctx, &jobs.Job{Owner: "alice", State: jobs.Queued}, "")
	if err != nil {
		t.Fatal(err)
	}
	due := float64(clock.Now().UnixMilli())
	for _, m := range []string{jobs.NewID(), "garbage}{", q.ID} {
		if err := c.ZAdd(ctx, s.k.retry, redis.Z{Score: due, Member: m}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.PromoteDue(ctx, "scheduler"); err != nil || len(got) != 0 {
		t.Fatalf("PromoteDue = %v, %v; want nothing", got, err)
	}
	if n, _ := c.ZCard(ctx, s.k.retry).Result(); n != 0 {
		t.Errorf("%d stale schedule entries left", n)
	}
	if got, _ := s.Get(ctx, q.ID); got.State != jobs.Queued {
		t.Errorf("queued job is %s", got.State)
	}
}
