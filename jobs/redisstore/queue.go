package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/internal/storeutil"
)

// maxBlock bounds one XREADGROUP wait: go-redis does not interrupt a
// blocking read when ctx is cancelled, so Claim re-checks ctx this often.
const maxBlock = time.Second

// Claim implements jobs.Store: XREADGROUP (blocking in Redis, not polling)
// for the next entry, then the transition script moves its job queued →
// running. Entries whose job cannot start from them are settled and the
// next one is read, within the same block budget.
func (s *Store) Claim(ctx context.Context, worker string, block time.Duration) (*jobs.Lease, error) {
	if worker == "" {
		return nil, errors.New("jobs: claim: no worker name")
	}
	deadline := time.Now().Add(block)
	regrouped := false
	for {
		if err := s.usable(ctx); err != nil {
			return nil, err
		}
		wait := min(time.Until(deadline), maxBlock)
		b := time.Duration(-1) // no BLOCK argument: return at once
		if wait >= time.Millisecond {
			b = wait // BLOCK 0 would mean forever, so never pass less than 1ms
		}
		res, err := s.c.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: s.group, Consumer: worker, Streams: []string{s.k.queue, ">"}, Count: 1, Block: b,
		}).Result()
		switch {
		case errors.Is(err, redis.Nil):
			if time.Until(deadline) < time.Millisecond {
				return nil, nil
			}
			continue
		case redis.HasErrorPrefix(err, "NOGROUP") && !regrouped:
			// The stream was deleted (by hand, or a test's cleanup racing
			// it): recreate the group once and read again.
			regrouped = true
			if err := s.ensureGroup(ctx); err != nil {
				return nil, err
			}
			continue
		case err != nil:
			return nil, mapErr(ctx, "claim", err)
		}
		for _, st := range res {
			for _, m := range st.Messages {
				if l, err := s.take(ctx, worker, m, false); l != nil || err != nil {
					return l, err
				}
			}
		}
	}
}

// take starts (or, reclaiming, restarts) the job of queue entry m for
// worker. It returns nil, nil if the entry is stale (settled) or is the
// lease clock of a job running without a Claim.
func (s *Store) take(ctx context.Context, worker string, m redis.XMessage, reclaiming bool) (*jobs.Lease, error) {
	id, _ := m.Values["job"].(string)
	for try := 0; try < 3; try++ {
		j, msg, err := s.load(ctx, id)
		if errors.Is(err, jobs.ErrNotFound) {
			return nil, s.settle(ctx, id, m.ID)
		}
		if err != nil {
			return nil, err
		}
		var note string
		switch {
		case msg != m.ID:
			return nil, s.settle(ctx, id, m.ID)
		case j.State == jobs.Queued && !reclaiming:
			note = "claimed"
		case j.State == jobs.Queued:
			note = "claimed: the previous claimer died before starting it"
		case j.State == jobs.Running && reclaiming:
			note = "reclaimed: lease expired"
		default:
			return nil, s.settle(ctx, id, m.ID)
		}
		n, err := s.apply(ctx, j, storeutil.ClaimChange(j, worker, note), worker, m.ID)
		switch {
		case errors.Is(err, jobs.ErrConflict):
			continue // it moved between load and script: look again
		case errors.Is(err, errStaleEntry):
			return nil, s.settle(ctx, id, m.ID)
		case err != nil:
			return nil, err
		}
		return &jobs.Lease{Job: n, Attempt: n.Attempt, Worker: worker, Token: m.ID}, nil
	}
	return nil, nil
}

// settle acknowledges and deletes an entry its job cannot run from (see
// settleScript).
func (s *Store) settle(ctx context.Context, id, entry string) error {
	if !jobs.ValidID(id) { // garbage in the stream: no job key to look at
		_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.XAck(ctx, s.k.queue, s.group, entry)
			p.XDel(ctx, s.k.queue, entry)
			return nil
		})
		return mapErr(ctx, "drop queue entry", err)
	}
	err := settleScript.Run(ctx, s.c, []string{s.k.job(id), s.k.queue}, entry, s.group).Err()
	return mapErr(ctx, "settle queue entry", err)
}

// Heartbeat implements jobs.Store.
func (s *Store) Heartbeat(ctx context.Context, l *jobs.Lease) error {
	if l == nil || l.Job == nil || l.Token == "" {
		return errors.New("jobs: heartbeat without a lease")
	}
	if err := s.usable(ctx); err != nil {
		return err
	}
	if !jobs.ValidID(l.Job.ID) {
		return fmt.Errorf("%w: %q", jobs.ErrNotFound, l.Job.ID)
	}
	code, err := heartbeatScript.Run(ctx, s.c, []string{s.k.job(l.Job.ID), s.k.queue},
		l.Attempt, l.Token, s.group, l.Worker).Int64()
	if err != nil {
		return mapErr(ctx, "heartbeat", err)
	}
	return leaseCode(code, l.Job.ID, l.Attempt)
}

// Reclaim implements jobs.Store with XAUTOCLAIM, so idle time is measured
// by Redis. If a transition fails it returns the leases taken so far with
// the error; the rest stay pending and are reclaimed by a later call.
func (s *Store) Reclaim(ctx context.Context, worker string, minIdle time.Duration) ([]*jobs.Lease, error) {
	if worker == "" {
		return nil, errors.New("jobs: reclaim: no worker name")
	}
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	var out []*jobs.Lease
	start := "0-0"
	for page := 0; page < 100; page++ {
		msgs, next, err := s.c.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: s.k.queue, Group: s.group, Consumer: worker, MinIdle: minIdle, Start: start, Count: 100,
		}).Result()
		if redis.HasErrorPrefix(err, "NOGROUP") {
			return out, s.ensureGroup(ctx) // no group, so nothing pending
		}
		if err != nil {
			return out, mapErr(ctx, "reclaim", err)
		}
		for _, m := range msgs {
			l, err := s.take(ctx, worker, m, true)
			if err != nil {
				return out, err
			}
			if l != nil {
				out = append(out, l)
			}
		}
		if next == "0-0" || next == "" {
			break
		}
		start = next
	}
	return out, nil
}

// promotePage bounds how many due jobs one dueScript call lists.
const promotePage = 100

// PromoteDue implements jobs.Queue: dueScript lists the due jobs (by
// Options.Clock), and each moves retryable → queued through the transition
// script. A job another coordinator moved first is a conflict, skipped.
func (s *Store) PromoteDue(ctx context.Context, actor string) ([]*jobs.Job, error) {
	if actor == "" {
		return nil, errors.New("jobs: promote: no actor")
	}
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	now := s.clock.Now()
	var out []*jobs.Job
	for page := 0; page < 100; page++ {
		ids, err := dueScript.Run(ctx, s.c, []string{s.k.retry}, now.UnixMilli(), promotePage).StringSlice()
		if err != nil {
			return out, mapErr(ctx, "list due retries", err)
		}
		moved := 0
		for _, id := range ids {
			j, err := s.promote(ctx, id, actor)
			if err != nil {
				return out, err
			}
			if j != nil {
				out = append(out, j)
				moved++
			}
		}
		if len(ids) < promotePage || moved == 0 {
			break
		}
	}
	return out, nil
}

// promote moves one listed job retryable → queued; nil, nil if it is no
// longer retryable (its schedule entry is then dropped).
func (s *Store) promote(ctx context.Context, id, actor string) (*jobs.Job, error) {
	var j *jobs.Job
	var err error
	if jobs.ValidID(id) {
		j, _, err = s.load(ctx, id)
	}
	if !jobs.ValidID(id) || errors.Is(err, jobs.ErrNotFound) || err == nil && j.State != jobs.Retryable {
		err := s.c.ZRem(ctx, s.k.retry, id).Err()
		if jobs.ValidID(id) {
			err = unscheduleScript.Run(ctx, s.c, []string{s.k.job(id), s.k.retry}, id).Err()
		}
		return nil, mapErr(ctx, "drop schedule entry", err)
	}
	if err != nil {
		return nil, err
	}
	n, err := s.apply(ctx, j, jobs.Change{From: jobs.Retryable, Attempt: j.Attempt, To: jobs.Queued, Actor: actor, Role: "system", Note: "retry due"}, actor, "")
	if errors.Is(err, jobs.ErrConflict) {
		return nil, nil // moved by someone else meanwhile
	}
	return n, err
}
