package coordinator

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/boltstore"
)

func writeConfig(t *testing.T, body string) *Config {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "coordinator.yaml")
	if err := os.WriteFile(path, []byte("listen: 127.0.0.1:0\nnodes: [{department: a, url: \"http://127.0.0.1:1\", token: t}]\n"+body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// With no Redis the store is the embedded file beside the config (or where
// store: says); a second coordinator on the same file is refused at once.
func TestOpenStoreEmbedded(t *testing.T) {
	c := writeConfig(t, "")
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(c.dir, "state", "coordinator", "unseen.db")
	if c.Store != want || c.Backend() != "embedded" {
		t.Fatalf("store %q (%s), want %q", c.Store, c.Backend(), want)
	}
	s, err := OpenStore(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.Create(t.Context(), &jobs.Job{Owner: "alice", State: jobs.Queued}, ""); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = OpenStore(t.Context(), c)
	if !errors.Is(err, boltstore.ErrLocked) || !strings.Contains(err.Error(), "another coordinator") {
		t.Errorf("second OpenStore on the same file: %v, want ErrLocked saying why", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("second OpenStore took %v", d)
	}

	c = writeConfig(t, "store: data/jobs.db\nretry: {attempts: 5, max_delay: 30s}\n")
	if c.Store != filepath.Join(c.dir, "data", "jobs.db") || c.Retry.Attempts != 5 || c.Retry.MaxDelay != 30*time.Second {
		t.Errorf("store %q, retry %+v", c.Store, c.Retry)
	}
}

func TestConfigRefusesAuditLog(t *testing.T) {
	c := writeConfig(t, "audit_log: state/coordinator/audit.jsonl\n")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "store") {
		t.Errorf("Validate with audit_log: %v, want an error pointing at store", err)
	}
	c = writeConfig(t, "retry: {attempts: -1}\n")
	if err := c.Validate(); err == nil {
		t.Error("Validate accepted negative retry attempts")
	}
}
