package redisstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/unseen-data/unseen/jobs"
)

// CheckServer refuses a Redis that could lose queue entries or job records
// on its own: with any maxmemory-policy but noeviction, Redis silently
// deletes keys under memory pressure, and an evicted job is a lost job.
func CheckServer(ctx context.Context, c redis.UniversalClient) error {
	v, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		return fmt.Errorf("%w: reading maxmemory-policy: %v", jobs.ErrUnavailable, err)
	}
	if p := v["maxmemory-policy"]; p != "noeviction" {
		return fmt.Errorf("redisstore: Redis runs with maxmemory-policy %q, which evicts keys under memory pressure and would lose jobs; set `maxmemory-policy noeviction` (redis.conf or CONFIG SET) and start again", p)
	}
	return nil
}
