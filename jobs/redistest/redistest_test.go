package redistest

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/redis/go-redis/v9"
)

// The fallback of last resort really starts, serves and cleans up.
func TestStartServer(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(EnvVar) != "" {
			t.Fatalf("%s is set but there is no redis-server on PATH", EnvVar)
		}
		t.Skip("no redis-server on PATH (set UNSEEN_TEST_REDIS to require it)")
	}
	addr := StartServer(t, bin)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	if err := c.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestPrefixCleanup(t *testing.T) {
	c := Client(t)
	ctx := context.Background()
	var p string
	t.Run("use", func(t *testing.T) {
		p = Prefix(t, c)
		for _, k := range []string{p + ":a", p + ":{x}:b", p + ":c:d"} {
			if err := c.Set(ctx, k, "1", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
	})
	keys, err := c.Keys(ctx, p+"*").Result()
	if err != nil || len(keys) != 0 {
		t.Fatalf("keys left under %s: %v, %v", p, keys, err)
	}
	if got := globEscaper.Replace(`a*b?[c]\`); got != `a\*b\?\[c\]\\` {
		t.Errorf("glob escape = %s", got)
	}
}
