package boltstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/internal/storeutil"
)

// Claim implements jobs.Queue. It waits for an enqueue signal, not a timer
// loop: only this process can write the file, so every enqueue is seen.
// block is real time, not the injected clock (it is a wait, not a lease).
func (s *Store) Claim(ctx context.Context, worker string, block time.Duration) (*jobs.Lease, error) {
	if worker == "" {
		return nil, errors.New("jobs: claim: no worker name")
	}
	var timeout <-chan time.Time
	for {
		s.mu.Lock()
		wake := s.wake
		s.mu.Unlock()
		// Peek in a read transaction: an idle worker's poll costs no write
		// (a read-write commit is an fsync).
		var queued bool
		if err := s.view(ctx, func(tx *bolt.Tx) error {
			k, _ := tx.Bucket(bQueue).Cursor().First()
			queued = k != nil
			return nil
		}); err != nil {
			return nil, err
		}
		var out *jobs.Job
		claim := func(tx *bolt.Tx) error {
			_, id := tx.Bucket(bQueue).Cursor().First()
			if id == nil {
				return nil
			}
			r, err := getRecord(tx, string(id))
			if err != nil {
				return err
			}
			out, err = s.apply(tx, r, storeutil.ClaimChange(r.Job, worker, "claimed"))
			return err
		}
		if queued {
			if err := s.update(ctx, claim); err != nil {
				return nil, err
			}
		}
		if out != nil {
			return &jobs.Lease{Job: out, Attempt: out.Attempt, Worker: worker}, nil
		}
		if block <= 0 {
			return nil, nil
		}
		if timeout == nil {
			t := time.NewTimer(block)
			defer t.Stop()
			timeout = t.C
		}
		s.mu.Lock()
		s.waiting++
		s.mu.Unlock()
		var done bool
		select {
		case <-wake: // something was enqueued (or the store closed) since we looked
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

// Heartbeat implements jobs.Queue.
func (s *Store) Heartbeat(ctx context.Context, l *jobs.Lease) error {
	if l == nil || l.Job == nil {
		return errors.New("jobs: heartbeat without a lease")
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		r, err := getRecord(tx, l.Job.ID)
		if err != nil {
			return err
		}
		if r.Job.State != jobs.Running || r.Job.Attempt != l.Attempt {
			return leaseLost(r.Job, l.Attempt)
		}
		return tx.Bucket(bLeases).Put([]byte(l.Job.ID), timeKey(s.now()))
	})
}

func leaseLost(j *jobs.Job, attempt int) error {
	return fmt.Errorf("%w: job %s is %s at attempt %d, lease is for attempt %d", jobs.ErrLeaseLost, j.ID, j.State, j.Attempt, attempt)
}

// Reclaim implements jobs.Queue, measuring lease age by the injected clock.
// All takeovers of one call are one transaction: if an audit append fails,
// none happens and the jobs stay running, to be reclaimed later.
func (s *Store) Reclaim(ctx context.Context, worker string, minIdle time.Duration) ([]*jobs.Lease, error) {
	if worker == "" {
		return nil, errors.New("jobs: reclaim: no worker name")
	}
	var out []*jobs.Lease
	now := s.now()
	idleIn := func(tx *bolt.Tx) []string {
		var idle []string
		_ = tx.Bucket(bLeases).ForEach(func(k, v []byte) error {
			if now.Sub(keyTime(v)) >= minIdle {
				idle = append(idle, string(k))
			}
			return nil
		})
		return idle
	}
	var some bool
	if err := s.view(ctx, func(tx *bolt.Tx) error { some = len(idleIn(tx)) > 0; return nil }); err != nil || !some {
		return nil, err
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		out = nil
		for _, id := range idleIn(tx) {
			r, err := getRecord(tx, id)
			if err != nil {
				return err
			}
			j, err := s.apply(tx, r, storeutil.ClaimChange(r.Job, worker, "reclaimed: lease expired"))
			if err != nil {
				return err
			}
			out = append(out, &jobs.Lease{Job: j, Attempt: j.Attempt, Worker: worker})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PromoteDue implements jobs.Queue: the retry index is ordered by due
// time, so it reads only the due jobs. All moves of one call are one
// transaction.
func (s *Store) PromoteDue(ctx context.Context, actor string) ([]*jobs.Job, error) {
	if actor == "" {
		return nil, errors.New("jobs: promote: no actor")
	}
	var out []*jobs.Job
	now := s.now()
	due := timeKey(now)
	// A read first: most calls find nothing due and need no write (and no
	// fsync).
	any := false
	if err := s.view(ctx, func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bRetry).Cursor().First()
		any = k != nil && bytes.Compare(k[:8], due) <= 0
		return nil
	}); err != nil || !any {
		return nil, err
	}
	err := s.update(ctx, func(tx *bolt.Tx) error {
		out = nil
		var ids []string
		c := tx.Bucket(bRetry).Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k[:8], due) <= 0; k, _ = c.Next() {
			ids = append(ids, string(k[8:]))
		}
		for _, id := range ids {
			r, err := getRecord(tx, id)
			if err != nil {
				return err
			}
			j, err := s.apply(tx, r, jobs.Change{From: jobs.Retryable, Attempt: r.Job.Attempt, To: jobs.Queued,
				Actor: actor, Role: "system", Note: "retry due"})
			if err != nil {
				return err
			}
			out = append(out, j)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) > 0 {
		s.signal()
	}
	return out, nil
}
