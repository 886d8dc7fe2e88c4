package redisstore

import (
	"context"
	"os/exec"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/jobs/redistest"
)

func TestCheckServerRefusesEviction(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		// The shared server is checked instead (it must be noeviction).
		require.NoError(t, CheckServer(context.Background(), redistest.Client(t)))
		return
	}
	c := redis.NewClient(&redis.Options{Addr: redistest.StartServer(t, bin)})
	defer c.Close()
	ctx := context.Background()
	require.NoError(t, CheckServer(ctx, c))
	require.NoError(t, c.ConfigSet(ctx, "maxmemory-policy", "allkeys-lru").Err())
	err = CheckServer(ctx, c)
	require.ErrorContains(t, err, "allkeys-lru")
	require.ErrorContains(t, err, "noeviction")
}
