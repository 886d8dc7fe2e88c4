package redisstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Open connects to the Redis at url (redis://[user:pass@]host:port/db or
// rediss:// for TLS), refuses a server that could lose jobs (CheckServer:
// eviction), and returns a store that owns the connection: Close closes it.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	c := redis.NewClient(o)
	if err := CheckServer(ctx, c); err != nil {
		c.Close()
		return nil, err
	}
	s, err := New(ctx, c, opts)
	if err != nil {
		c.Close()
		return nil, err
	}
	s.owned = c
	return s, nil
}
