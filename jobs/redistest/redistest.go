// Package redistest gives tests a real Redis without making anyone set one
// up, and a key prefix of their own on it.
//
// Client picks, in order:
//  1. $UNSEEN_TEST_REDIS (a redis:// URL, e.g. redis://127.0.0.1:6379/15):
//     it must answer, or the test fails — a CI job that asked for Redis
//     must never silently skip;
//  2. a Redis already listening on 127.0.0.1:6379 (database 15);
//  3. a throwaway redis-server from $PATH on a free port, its files in
//     t.TempDir(), stopped when the test ends;
//  4. otherwise the test is skipped, saying how to provide one.
//
// Tests share Redis servers with other packages tested in parallel, so each
// uses its own Prefix, whose keys are deleted (SCAN + DEL, never FLUSHDB)
// when it ends.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvVar names the Redis URL a test run must use.
const EnvVar = "UNSEEN_TEST_REDIS"

// LocalAddr is where Client looks for an already running Redis.
const LocalAddr = "127.0.0.1:6379"

// Client returns a client for a Redis the test may use (see the package
// doc), closed when t ends. Its connections are named with ClientName, so
// a test can find them in CLIENT LIST.
func Client(t testing.TB) redis.UniversalClient {
	t.Helper()
	name := "unseen-test-" + randHex(6)
	if url := os.Getenv(EnvVar); url != "" {
		opts, err := redis.ParseURL(url)
		if err != nil {
			t.Fatalf("%s=%q: %v", EnvVar, url, err)
		}
		opts.ClientName = name
		c := redis.NewClient(opts)
		if err := ping(c); err != nil {
			c.Close()
			t.Fatalf("%s=%q: Redis does not answer: %v", EnvVar, url, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	probe := redis.NewClient(&redis.Options{Addr: LocalAddr, DB: 15, MaxRetries: -1, DialerRetries: 1})
	err := ping(probe) // one quick try: nothing listening is the common case
	probe.Close()
	if err == nil {
		c := redis.NewClient(&redis.Options{Addr: LocalAddr, DB: 15, ClientName: name})
		t.Cleanup(func() { c.Close() })
		return c
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skipf("no Redis: set %s=redis://host:port/db, run one on %s, or put redis-server on PATH", EnvVar, LocalAddr)
	}
	addr := StartServer(t, bin)
	c := redis.NewClient(&redis.Options{Addr: addr, ClientName: name})
	t.Cleanup(func() { c.Close() })
	return c
}

func ping(c *redis.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// StartServer runs bin (a redis-server) on a free loopback port with its
// files in t.TempDir(), without persistence, and returns its address once
// it answers. It is stopped when t ends.
func StartServer(t testing.TB, bin string) string {
	t.Helper()
	dir := t.TempDir()
	var err error
	for range 3 { // the free port can be taken between probing and binding
		var port int
		if port, err = freePort(); err != nil {
			break
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", dir+"/redis.log")
		if err = cmd.Start(); err != nil {
			break
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			cmd.Process.Kill()
			<-exited
		}
		if err = waitUp(addr, exited); err == nil {
			t.Cleanup(stop)
			return addr
		}
		if !errors.Is(err, errExited) {
			stop()
		}
	}
	t.Fatalf("redistest: starting %s: %v (log in %s)", bin, err, dir)
	return ""
}

var errExited = errors.New("redis-server exited")

// waitUp polls addr until Redis answers, the process exits or 10s pass.
func waitUp(addr string, exited <-chan error) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if ping(c) == nil {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("%w: %v", errExited, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("redis-server on %s did not answer within 10s", addr)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Prefix returns a key prefix no other test uses and deletes every key
// under it when t ends.
func Prefix(t testing.TB, c redis.UniversalClient) string {
	t.Helper()
	p := "unseentest:" + randHex(8)
	t.Cleanup(func() {
		if err := DeletePrefix(context.Background(), c, p); err != nil {
			t.Errorf("redistest: cleaning up %s: %v", p, err)
		}
	})
	return p
}

// DeletePrefix deletes every key that starts with prefix+":" (SCAN, then
// one DEL per key, pipelined, so keys in different Cluster slots are fine).
func DeletePrefix(ctx context.Context, c redis.UniversalClient, prefix string) error {
	pattern := globEscaper.Replace(prefix) + ":*"
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Del(ctx, k)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}

var globEscaper = strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`, "]", `\]`)

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
