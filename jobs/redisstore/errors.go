package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
)

// unavailablePrefixes are Redis error replies that mean "not now" rather
// than "wrong": the server is loading (a transaction queued then is
// aborted: EXECABORT), a replica, or its cluster is down.
var unavailablePrefixes = []string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "NOREPLICAS", "EXECABORT"}

// mapErr wraps a go-redis error: connection-level failures become
// jobs.ErrUnavailable (so the API can answer 503 and callers can retry);
// Redis error replies (wrong type, script errors) stay plain errors; the
// caller's own cancellation is passed through.
func mapErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("redisstore: %s: %w", op, err)
	}
	if redis.HasErrorPrefix(err, "AUDITBROKEN") {
		return fmt.Errorf("redisstore: %s: %w: %v", op, audit.ErrBroken, err)
	}
	var re redis.Error
	if errors.As(err, &re) {
		for _, p := range unavailablePrefixes {
			if redis.HasErrorPrefix(err, p) {
				return fmt.Errorf("%w: redisstore: %s: %w", jobs.ErrUnavailable, op, err)
			}
		}
		return fmt.Errorf("redisstore: %s: %w", op, err)
	}
	return fmt.Errorf("%w: redisstore: %s: %w", jobs.ErrUnavailable, op, err)
}
