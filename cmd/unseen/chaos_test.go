package main

// Reliability tests against real processes: the coordinator runs as a
// separate OS process (this test binary re-executed with execMainEnv, so it
// is the real main), on a real Redis or on the embedded store file, with
// real department nodes in this process (nodetest). TestKillWorkers (Redis)
// and TestKillWorkersEmbedded (bbolt) SIGKILL coordinators at random points
// while jobs run; TestRedisRestarts kills and restarts Redis (AOF, fsync
// always) while jobs are submitted. All check that nothing acknowledged is
// lost and nothing is released twice; the kill tests also that budgets and
// rate limits charged before the kills are intact.
//
// The bounded versions (10 kills, 3 restarts) run in every `go test`
// (.ci/run); UNSEEN_LONG=1 runs the full figures (100 kills, 20
// restarts of Redis under 1,000 jobs). TestKillResumesPSI kills a
// coordinator mid-PSI and checks that its successor resumes from the
// checkpoints. -short skips them.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/unseen-data/unseen/api"
	"github.com/unseen-data/unseen/api/client"
	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/coordinator"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/boltstore"
	"github.com/unseen-data/unseen/jobs/redisstore"
	"github.com/unseen-data/unseen/jobs/redistest"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// chaosLong reports whether the full-size versions were asked for.
func chaosLong() bool { return os.Getenv("UNSEEN_LONG") == "1" }

func skipChaosIfShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("chaos test (kills real processes, takes tens of seconds): skipped with -short")
	}
}

// chaosRand is the test's source of randomness, seeded from
// UNSEEN_CHAOS_SEED if set (to replay a failure) and logged either way.
func chaosRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("UNSEEN_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "UNSEEN_CHAOS_SEED")
		seed = v
	}
	t.Logf("chaos seed %d (UNSEEN_CHAOS_SEED=%d replays it)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// Users of the chaos coordinators.
const (
	chaosAnalyst  = "alice"
	chaosReviewer = "rita"
	chaosAuditor  = "aldo"
)

var chaosTokens = map[string]string{
	chaosAnalyst:  "chaos-analyst-token",
	chaosReviewer: "chaos-reviewer-token",
	chaosAuditor:  "chaos-auditor-token",
}

func sha256Hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// chaosSpec is one kind of job the tests submit, with its plaintext answer.
type chaosSpec struct {
	spec  []byte
	count int
}

// chaosFederation starts nodes a (dataset a.x: rows 0..n-1) and b (b.y:
// rows n/2..3n/2-1) and returns job specs over them, each with the
// intersection size computed in the clear.
func chaosFederation(t *testing.T, n int) (*nodetest.Federation, []chaosSpec) {
	t.Helper()
	rows := map[string][]int{"a.x": rangeInts(0, n), "b.y": rangeInts(n/2, n/2+n), "c.z": rangeInts(0, 100)}
	fed := nodetest.Start(t, rows, func(d *policy.Dataset) {
		if d.Name == budgetDataset { // charged by the budget phase of TestKillWorkers*
			d.DP = &policy.DP{Epsilon: budgetEpsilon, Budget: budgetTotal}
			d.RateLimit = &policy.RateLimit{Jobs: budgetJobs + 1, Per: budgetPer}
		}
	})
	// Filters on amount (= the row index), so each kind has its own count.
	type side struct {
		filter string
		keep   func(i int) bool
	}
	all := side{"", func(int) bool { return true }}
	kinds := []struct{ a, b side }{
		{all, all},
		{side{fmt.Sprintf("amount < %d", 3*n/4), func(i int) bool { return i < 3*n/4 }}, all},
		{all, side{fmt.Sprintf("amount >= %d", 2*n/3), func(i int) bool { return i >= 2*n/3 }}},
	}
	var out []chaosSpec
	for k, kind := range kinds {
		inA := map[string]bool{}
		for _, i := range rows["a.x"] {
			if kind.a.keep(i) {
				inA[nodetest.ID(i)] = true
			}
		}
		count := 0
		for _, i := range rows["b.y"] {
			if kind.b.keep(i) && inA[nodetest.ID(i)] {
				count++
			}
		}
		in := func(ds string, s side) map[string]string {
			m := map[string]string{"dataset": ds, "key": "id_number"}
			if s.filter != "" {
				m["filter"] = s.filter
			}
			return m
		}
		spec, err := json.Marshal(map[string]any{
			"type":    "psi_cardinality",
			"purpose": fmt.Sprintf("chaos test, kind %d", k),
			"inputs":  []any{in("a.x", kind.a), in("b.y", kind.b)},
		})
		require.NoError(t, err)
		out = append(out, chaosSpec{spec: spec, count: count})
	}
	return fed, out
}

func rangeInts(lo, hi int) []int {
	out := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

// writeChaosConfig writes a coordinator configuration (the real
// CoordinatorConfig type, so unknown fields would be refused) into dir: on
// Redis if redisURL is set, else on the embedded store file storePath.
func writeChaosConfig(t *testing.T, dir, redisURL, prefix string, fed *nodetest.Federation, storePath ...string) string {
	t.Helper()
	cfg := coordinator.Config{
		Listen:      "127.0.0.1:0", // every start passes --listen
		Redis:       redisURL,
		RedisPrefix: prefix,
		Workers:     2,
		LeaseIdle:   time.Second,
		Users: []api.User{
			{Name: chaosAnalyst, Role: api.RoleAnalyst, Department: "a", TokenSHA256: sha256Hex(chaosTokens[chaosAnalyst])},
			{Name: chaosReviewer, Role: api.RoleReviewer, Department: "review", TokenSHA256: sha256Hex(chaosTokens[chaosReviewer]), SigningKey: nodetest.PublicKey(chaosReviewer)},
			{Name: chaosAuditor, Role: api.RoleAuditor, Department: "audit", TokenSHA256: sha256Hex(chaosTokens[chaosAuditor])},
		},
	}
	depts := make([]string, 0, len(fed.Clients))
	for d := range fed.Clients {
		depts = append(depts, d)
	}
	sort.Strings(depts)
	for _, d := range depts {
		cfg.Nodes = append(cfg.Nodes, coordinator.NodeRef{Department: d, URL: fed.Clients[d].BaseURL, Token: nodetest.Token})
	}
	if len(storePath) > 0 {
		cfg.Store = storePath[0]
	}
	// The coordinator signs its audit head with the key the test nodes'
	// federation.coordinator names.
	cfg.SigningKey = filepath.Join(dir, "coordinator.ed25519")
	if _, err := os.Stat(cfg.SigningKey); err != nil {
		require.NoError(t, attest.WritePrivateKeyFile(cfg.SigningKey, nodetest.PrivateKey("coordinator")))
	}
	b, err := yaml.Marshal(&cfg)
	require.NoError(t, err)
	path := filepath.Join(dir, "coordinator.yaml")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

// redisURLOf turns the client redistest gave into a URL for the child.
func redisURLOf(t *testing.T, c redis.UniversalClient) string {
	t.Helper()
	if u := os.Getenv(redistest.EnvVar); u != "" {
		return u
	}
	rc, ok := c.(*redis.Client)
	require.True(t, ok, "redistest returned a %T; cannot pass it to a child process", c)
	o := rc.Options()
	u := "redis://"
	if o.Password != "" {
		u += strings.TrimSpace(o.Username) + ":" + o.Password + "@"
	}
	return fmt.Sprintf("%s%s/%d", u, o.Addr, o.DB)
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// coordProc is a coordinator running as a child process.
type coordProc struct {
	name    string
	cmd     *exec.Cmd
	base    string
	logPath string
	exited  chan struct{}
	waitErr error
}

// coordinators starts coordinator processes on one configuration and keeps
// their logs.
type coordinators struct {
	t       *testing.T
	cfgPath string
	logDir  string
	mu      sync.Mutex
	all     []*coordProc
}

func newCoordinators(t *testing.T, cfgPath string) *coordinators {
	logDir := t.TempDir()
	if d := os.Getenv("UNSEEN_CHAOS_LOGS"); d != "" { // keep the coordinators' logs
		logDir = filepath.Join(d, t.Name())
		require.NoError(t, os.MkdirAll(logDir, 0o755))
	}
	cs := &coordinators{t: t, cfgPath: cfgPath, logDir: logDir}
	// Registered before any process is started, so it runs after all of
	// their kills (cleanups run last-in first-out).
	t.Cleanup(cs.check)
	return cs
}

// start runs a coordinator on a fresh loopback port and returns once its
// API answers. It is killed when the test ends, whatever happens.
func (cs *coordinators) start() *coordProc {
	t := cs.t
	t.Helper()
	var lastErr error
	for try := 0; try < 3; try++ { // the free port can be taken before the child binds it
		cs.mu.Lock()
		n := len(cs.all)
		cs.mu.Unlock()
		addr := freeLoopbackAddr(t)
		p := &coordProc{
			name:    fmt.Sprintf("coordinator-%03d", n),
			base:    "http://" + addr,
			logPath: filepath.Join(cs.logDir, fmt.Sprintf("coordinator-%03d.log", n)),
			exited:  make(chan struct{}),
		}
		lf, err := os.Create(p.logPath)
		require.NoError(t, err)
		p.cmd = exec.Command(os.Args[0], "coordinator", "--config", cs.cfgPath, "--listen", addr)
		p.cmd.Env = append(os.Environ(), execMainEnv+"=1")
		p.cmd.Stdout, p.cmd.Stderr = lf, lf
		err = p.cmd.Start()
		lf.Close()
		require.NoError(t, err)
		go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
		t.Cleanup(p.kill)
		cs.mu.Lock()
		cs.all = append(cs.all, p)
		cs.mu.Unlock()
		if lastErr = p.waitHealthy(60 * time.Second); lastErr == nil {
			return p
		}
		p.kill()
		t.Logf("%s did not come up: %v\n%s", p.name, lastErr, p.logTail(20))
	}
	t.Fatalf("no coordinator came up: %v", lastErr)
	return nil
}

func (p *coordProc) waitHealthy(timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := hc.Get(p.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited: %v", p.name, p.waitErr)
		case <-deadline.C:
			return fmt.Errorf("%s did not answer /healthz within %s", p.name, timeout)
		case <-tick.C:
		}
	}
}

// kill sends SIGKILL (no chance to hand jobs back) and reaps the process.
func (p *coordProc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

func (p *coordProc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *coordProc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// check fails the test if any coordinator reported a data race or a panic,
// and shows the last log of each on failure.
func (cs *coordinators) check() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, p := range cs.all {
		f, err := os.Open(p.logPath)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "WARNING: DATA RACE") || strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") {
				cs.t.Errorf("%s: %s (log %s)", p.name, line, p.logPath)
			}
		}
		f.Close()
	}
	if cs.t.Failed() && len(cs.all) > 0 {
		last := cs.all[len(cs.all)-1]
		cs.t.Logf("last lines of %s:\n%s", last.name, last.logTail(40))
	}
}

// retryable reports whether a request failed only because the coordinator
// (or its store) was not there: the process died (transport error) or the
// API answered 503. Anything else is an answer.
func retryable(err error) bool {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.Status == http.StatusServiceUnavailable
	}
	return err != nil
}

func httpStatus(err error) int {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.Status
	}
	return 0
}

// submitJob is POST /v1/jobs as the analyst with an Idempotency-Key, by
// hand rather than with api/client so the test sees the status: 202 made
// the job, 200 found it under the key. status is 0 if the request failed in
// transport (the coordinator died).
func submitJob(ctx context.Context, hc *http.Client, base string, spec []byte, key string) (status int, id string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/jobs", bytes.NewReader(spec))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+chaosTokens[chaosAnalyst])
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err // cut off mid-answer: as good as no answer
	}
	if resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		return resp.StatusCode, "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	var sub wire.Submitted
	if err := json.Unmarshal(b, &sub); err != nil || sub.ID == "" {
		return resp.StatusCode, "", fmt.Errorf("HTTP %d with a malformed body %q: %v", resp.StatusCode, b, err)
	}
	return resp.StatusCode, sub.ID, nil
}

func chaosClient(base, user string, timeout time.Duration) *client.Client {
	c := client.New(base, chaosTokens[user])
	c.HTTP.Timeout = timeout
	return c
}

// ackedJob is a submission the coordinator acknowledged.
type ackedJob struct {
	key  string
	id   string
	kind int
}

// waitStates polls the jobs until every one is in state want, failing at
// once if one reaches another final state, or at the deadline.
func waitStates(t *testing.T, c *client.Client, ids []string, want jobs.State, timeout time.Duration, alive func() bool) map[string]*wire.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	got := map[string]*wire.Job{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, id := range ids {
			if _, ok := got[id]; ok {
				continue
			}
			j, err := c.Job(ctx, id)
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				require.True(t, retryable(err), "GET job %s: %v", id, err)
				continue
			}
			if j.State == want {
				got[id] = j
				continue
			}
			require.False(t, j.State.Final(), "job %s ended %s (error %q), wanted %s", id, j.State, j.Error, want)
		}
		if len(got) == len(ids) {
			return got
		}
		require.True(t, alive(), "the coordinator died while jobs were running")
		select {
		case <-ctx.Done():
			var missing []string
			for _, id := range ids {
				if got[id] == nil {
					j, err := c.Job(context.Background(), id)
					if err == nil {
						missing = append(missing, fmt.Sprintf("%s %s attempt %d progress %+v", id, j.State, j.Attempt, j.Progress))
					} else {
						missing = append(missing, fmt.Sprintf("%s: %v", id, err))
					}
				}
			}
			t.Fatalf("%d of %d jobs never became %s within %s; first: %v", len(ids)-len(got), len(ids), want, timeout, missing[:min(5, len(missing))])
		case <-tick.C:
		}
	}
}

// queueCheck returns the pending count of the workers' group and the
// stream's length.
func queueCheck(t *testing.T, rc redis.UniversalClient, prefix string) (pending, length int64) {
	t.Helper()
	ctx := t.Context()
	p, err := rc.XPending(ctx, prefix+":queue", redisstore.DefaultGroup).Result()
	require.NoError(t, err)
	n, err := rc.XLen(ctx, prefix+":queue").Result()
	require.NoError(t, err)
	return p.Count, n
}

// storedJobIDs is every job id in the store's index.
func storedJobIDs(t *testing.T, rc redis.UniversalClient, prefix string) []string {
	t.Helper()
	ids, err := rc.ZRange(t.Context(), prefix+":jobs", 0, -1).Result()
	require.NoError(t, err)
	return ids
}

// The budget phase of TestKillWorkers*: before any kill the analyst spends
// from a dataset's privacy budget and rate limit, and afterwards both are
// checked, through the API (a job that needs more ε than is left is
// refused, saying what is left) and in the store itself.
const (
	budgetDataset = "c.z"
	budgetEpsilon = 4.0
	budgetTotal   = 14.0
	budgetJobs    = 3 // 3 × 4 = 12 of 14 spent: a 4th job is refused
	budgetPer     = 10000 * time.Hour
)

// killBackend is the store TestKillWorkers* runs the coordinators on.
type killBackend struct {
	// config writes the coordinators' configuration.
	config func(t *testing.T, fed *nodetest.Federation) string
	// exclusive: only one process can open the store (the embedded file,
	// at file), so the test reads it only while no coordinator runs.
	exclusive bool
	file      string
	// leasesHeld reports, right after a kill, whether the killed process
	// held a lease (seen accumulates what earlier kills found).
	leasesHeld func(t *testing.T, seen map[string]bool) bool
	// storedJobIDs is every job id in the store.
	storedJobIDs func(t *testing.T) []string
	// idleQueue checks that nothing is queued, running or leased.
	idleQueue func(t *testing.T)
	// counter reads a counter (budget or rate-limit window).
	counter func(t *testing.T, key string) int64
}

func redisKillBackend(t *testing.T) *killBackend {
	rc := redistest.Client(t)
	prefix := redistest.Prefix(t, rc)
	return &killBackend{
		config: func(t *testing.T, fed *nodetest.Federation) string {
			return writeChaosConfig(t, t.TempDir(), redisURLOf(t, rc), prefix, fed)
		},
		leasesHeld: func(t *testing.T, seen map[string]bool) bool {
			pend, err := rc.XPending(t.Context(), prefix+":queue", redisstore.DefaultGroup).Result()
			require.NoError(t, err)
			held := false
			for cons, n := range pend.Consumers {
				if !seen[cons] && n > 0 {
					held = true
				}
				seen[cons] = true
			}
			return held
		},
		storedJobIDs: func(t *testing.T) []string { return storedJobIDs(t, rc, prefix) },
		idleQueue: func(t *testing.T) {
			pend, qlen := queueCheck(t, rc, prefix)
			require.Zero(t, pend, "queue entries still pending with every job released")
			require.Zero(t, qlen, "queue entries left in the stream with every job released")
		},
		counter: func(t *testing.T, key string) int64 {
			st, err := redisstore.New(t.Context(), rc, redisstore.Options{Prefix: prefix})
			require.NoError(t, err)
			defer st.Close()
			v, _, err := st.Spend(t.Context(), key, 0, 1<<62, 0)
			require.NoError(t, err)
			return v
		},
	}
}

func embeddedKillBackend(t *testing.T) *killBackend {
	path := filepath.Join(t.TempDir(), "state", "unseen.db")
	// read opens the file read-only (no coordinator may be running).
	read := func(t *testing.T, fn func(s *boltstore.Store)) {
		t.Helper()
		st, err := boltstore.Open(path, boltstore.Options{ReadOnly: true})
		require.NoError(t, err)
		defer st.Close()
		fn(st)
	}
	list := func(t *testing.T, states ...jobs.State) []*jobs.Job {
		var out []*jobs.Job
		read(t, func(s *boltstore.Store) {
			var err error
			out, err = s.List(t.Context(), jobs.ListFilter{States: states, Limit: 1 << 20})
			require.NoError(t, err)
		})
		return out
	}
	return &killBackend{
		exclusive: true,
		file:      path,
		config: func(t *testing.T, fed *nodetest.Federation) string {
			return writeChaosConfig(t, t.TempDir(), "", "", fed, path)
		},
		leasesHeld: func(t *testing.T, seen map[string]bool) bool {
			held := false
			for _, j := range list(t, jobs.Running) {
				k := fmt.Sprintf("%s@%d", j.ID, j.Attempt)
				if !seen[k] {
					held = true
				}
				seen[k] = true
			}
			return held
		},
		storedJobIDs: func(t *testing.T) []string {
			var ids []string
			for _, j := range list(t) {
				ids = append(ids, j.ID)
			}
			return ids
		},
		idleQueue: func(t *testing.T) {
			require.Empty(t, list(t, jobs.Queued, jobs.Running, jobs.Retryable), "jobs still queued, running (leased) or waiting to retry")
		},
		counter: func(t *testing.T, key string) int64 {
			var v int64
			read(t, func(s *boltstore.Store) {
				var err error
				v, _, err = s.Spend(t.Context(), key, 0, 1<<62, 0)
				require.NoError(t, err)
			})
			return v
		},
	}
}

// TestKillWorkers runs the kill test on Redis (many coordinators could share
// it; here they run one after another).
func TestKillWorkers(t *testing.T) {
	skipChaosIfShort(t)
	runKillWorkers(t, redisKillBackend(t))
}

// TestKillWorkersEmbedded runs the kill test on the embedded store: each
// coordinator process is SIGKILLed and the next one opens the same bbolt
// file. It also checks that a second coordinator on the file is refused
// quickly while one runs (the file's lock), not left hanging.
func TestKillWorkersEmbedded(t *testing.T) {
	skipChaosIfShort(t)
	runKillWorkers(t, embeddedKillBackend(t))
}

// runKillWorkers SIGKILLs coordinator processes (API and workers) at
// random points while they accept and run jobs, then lets a last one
// finish, kills one more in the middle of a round of concurrent approvals,
// and checks: every acknowledged job exists, each idempotency key made one
// job, every job was released exactly once (one released event in its
// history, one job.released audit entry) with the plaintext count, the
// privacy budget and rate-limit window charged before the kills are
// intact, the audit chain verifies, and nothing is left queued or leased.
func runKillWorkers(t *testing.T, kb *killBackend) {
	kills, perRound := 10, 3
	if chaosLong() {
		kills = 100
	}
	rng := chaosRand(t)
	// 3,000 rows a side: a job takes a few hundred ms, so kills land mid-job.
	fed, kinds := chaosFederation(t, 3000)
	cfgPath := kb.config(t, fed)
	cs := newCoordinators(t, cfgPath)
	hc := &http.Client{Timeout: 30 * time.Second}

	// The budget phase, before any kill.
	budgetSpec, err := json.Marshal(map[string]any{"type": "psi_cardinality", "purpose": "chaos test, budget",
		"inputs": []any{map[string]string{"dataset": "a.x", "key": "id_number"}, map[string]string{"dataset": budgetDataset, "key": "id_number"}}})
	require.NoError(t, err)
	budgetLeft := fmt.Sprintf("only %g of your budget of %g is left", budgetTotal-budgetJobs*budgetEpsilon, budgetTotal)
	overBudget := func(base string) {
		t.Helper()
		status, _, err := submitJob(t.Context(), hc, base, budgetSpec, fmt.Sprintf("budget-over-%d", rng.Int64()))
		require.Equal(t, http.StatusTooManyRequests, status, "a job over the budget: %v", err)
		require.ErrorContains(t, err, budgetLeft)
	}
	p := cs.start()
	var budgetIDs []string
	for i := range budgetJobs {
		status, id, err := submitJob(t.Context(), hc, p.base, budgetSpec, fmt.Sprintf("budget-%d", i))
		require.NoError(t, err)
		require.Equal(t, http.StatusAccepted, status)
		budgetIDs = append(budgetIDs, id)
	}
	overBudget(p.base)
	for _, id := range budgetIDs { // they have served their purpose: spent budget
		_, err := chaosClient(p.base, chaosAnalyst, 30*time.Second).Cancel(t.Context(), id, "budget phase")
		require.NoError(t, err)
	}
	rateKey := fmt.Sprintf("rate:%s:%s:%d:%d", chaosAnalyst, budgetDataset, int64(budgetPer), time.Now().UnixNano()/int64(budgetPer))
	p.kill()

	if kb.exclusive {
		// One process per file: a second coordinator is refused within
		// seconds, saying why, while the first keeps serving.
		p = cs.start()
		second := exec.Command(os.Args[0], "coordinator", "--config", cfgPath, "--listen", freeLoopbackAddr(t))
		second.Env = append(os.Environ(), execMainEnv+"=1")
		start := time.Now()
		out, err := second.CombinedOutput()
		require.Error(t, err, "a second coordinator on the same store file started:\n%s", out)
		require.Less(t, time.Since(start), 20*time.Second, "the second coordinator took long to give up")
		require.Contains(t, string(out), "in use by another process", "the second coordinator's error")
		require.True(t, p.alive(), "the first coordinator died when a second one tried the file")
		p.kill()
	}

	var (
		mu       sync.Mutex
		acked    = map[string]*ackedJob{} // by idempotency key
		cutOff   int                      // submission requests a kill cut off (or that found the coordinator dead)
		idemHits int                      // retries answered 200: the job was made before the kill cut the answer off
		todo     []*ackedJob              // submissions not yet acknowledged
		midJob   int                      // kills that found the process holding a lease
		seen     = map[string]bool{}      // leases of earlier processes
	)
	submit := func(base string, s *ackedJob, retry bool) {
		status, id, err := submitJob(t.Context(), hc, base, kinds[s.kind].spec, s.key)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			if _, ok := acked[s.key]; ok {
				t.Errorf("key %s submitted again after it was acknowledged", s.key)
			}
			if status == http.StatusOK {
				if !retry {
					t.Errorf("first submission of key %s answered 200 (an existing job)", s.key)
				}
				idemHits++
			}
			s.id = id
			acked[s.key] = s
		case status == 0 || status == http.StatusServiceUnavailable:
			cutOff++
			todo = append(todo, s)
		default:
			t.Errorf("submission %s refused: %v", s.key, err)
		}
	}
	for round := range kills {
		p := cs.start()
		mu.Lock()
		retries := todo
		todo = nil
		var fresh []*ackedJob
		for i := range perRound {
			fresh = append(fresh, &ackedJob{key: fmt.Sprintf("kill-%03d-%d", round, i), kind: rng.IntN(len(kinds))})
		}
		mu.Unlock()
		var wg sync.WaitGroup
		for _, s := range retries {
			wg.Go(func() { submit(p.base, s, true) })
		}
		// New submissions at random moments of the window the kill falls
		// in, so some are in flight when it lands.
		for _, s := range fresh {
			at := time.Duration(rng.IntN(401)) * time.Millisecond
			wg.Go(func() {
				<-time.After(at)
				submit(p.base, s, false)
			})
		}
		// The chaos: a random moment, whatever the process is doing.
		delay := time.Duration(rng.IntN(401)) * time.Millisecond
		diedAlone := false
		select {
		case <-time.After(delay):
		case <-p.exited:
			diedAlone = true
		}
		p.kill()
		wg.Wait()
		if diedAlone {
			t.Fatalf("%s exited by itself: %v\n%s", p.name, p.waitErr, p.logTail(20))
		}
		if kb.leasesHeld(t, seen) {
			midJob++
		}
	}

	// A last coordinator finishes everything: jobs left queued, and jobs
	// whose worker died (reclaimed once their lease has been idle 1s, or at
	// once on the embedded store, whose lock says their process is gone).
	p = cs.start()
	c := chaosClient(p.base, chaosAnalyst, 30*time.Second)
	for len(todo) > 0 {
		batch := todo
		todo = nil
		var wg sync.WaitGroup
		for _, s := range batch {
			wg.Go(func() { submit(p.base, s, true) })
		}
		wg.Wait()
		require.True(t, p.alive(), "the final coordinator died")
	}
	ids := make([]string, 0, len(acked))
	byID := map[string]*ackedJob{}
	for _, a := range acked {
		ids = append(ids, a.id)
		byID[a.id] = a
	}
	sort.Strings(ids)
	require.Len(t, ids, kills*perRound, "every submission is acknowledged in the end")
	require.Len(t, byID, len(ids), "distinct idempotency keys made distinct jobs")
	// Two workers run what the kills left: allow a second a job on a busy
	// machine (300 jobs with UNSEEN_LONG=1).
	drainStart := time.Now()
	waitStates(t, c, ids, jobs.AwaitingReview, 2*time.Minute+time.Duration(len(ids))*time.Second, p.alive)
	drained := time.Since(drainStart)

	// Approvals: three concurrent approvals of each job, job after job; a
	// kill lands in the middle of the round, and what it interrupted is
	// retried against a new coordinator.
	var (
		approvedOK   = map[string]int{}
		approveRetry int
		conflicts    int
	)
	approveRound := func(base string, id string) (done bool) {
		rv := chaosClient(base, chaosReviewer, 30*time.Second)
		var wg sync.WaitGroup
		var amu sync.Mutex
		for range 3 {
			wg.Go(func() {
				_, err := rv.Approve(t.Context(), id, "chaos test", nodetest.PrivateKey(chaosReviewer))
				amu.Lock()
				defer amu.Unlock()
				var ce *client.Error
				switch {
				case err == nil:
					approvedOK[id]++
					done = true
				case errors.As(err, &ce) && ce.Status == http.StatusConflict:
					conflicts++
					if ce.State == string(jobs.Released) {
						done = true
					} else if ce.State != string(jobs.AwaitingReview) {
						t.Errorf("approving %s: %v (state %s)", id, err, ce.State)
					}
				case retryable(err):
					approveRetry++
				default:
					t.Errorf("approving %s: %v", id, err)
				}
			})
		}
		wg.Wait()
		return done
	}
	killedDuringApprovals := make(chan struct{})
	var pending []string
	for i, id := range ids {
		if i == len(ids)/2 {
			d, victim := time.Duration(rng.IntN(21))*time.Millisecond, p
			go func() {
				time.Sleep(d) // a random moment inside the round: chaos, not synchronisation
				victim.kill()
				close(killedDuringApprovals)
			}()
		}
		if !approveRound(p.base, id) {
			pending = append(pending, id)
		}
	}
	<-killedDuringApprovals
	require.NotEmpty(t, pending, "the kill during the approval round interrupted nothing")
	interrupted := len(pending)
	p = cs.start()
	deadline := time.Now().Add(time.Minute)
	for len(pending) > 0 {
		require.True(t, time.Now().Before(deadline), "approvals still failing after a minute: %v", pending)
		var next []string
		for _, id := range pending {
			if !approveRound(p.base, id) {
				next = append(next, id)
			}
		}
		pending = next
	}

	// The checks, first through the API.
	ctx := t.Context()
	c = chaosClient(p.base, chaosAnalyst, 30*time.Second)
	au := chaosClient(p.base, chaosAuditor, time.Minute)
	lost, reclaimEvents, reclaimedJobs, maxAttempt := 0, 0, 0, 0
	for _, id := range ids {
		j, err := c.Job(ctx, id)
		if err != nil {
			lost++
			t.Errorf("acknowledged job %s: %v", id, err)
			continue
		}
		require.Equal(t, jobs.Released, j.State, "job %s", id)
		require.LessOrEqual(t, approvedOK[id], 1, "job %s: two approvals both succeeded", id)
		released, reclaimed := 0, false
		for _, ev := range j.History {
			if ev.State == jobs.Released {
				released++
			}
			if ev.State == jobs.Running && ev.Attempt > 1 {
				reclaimEvents++
				reclaimed = true
			}
		}
		require.Equal(t, 1, released, "job %s: released events in its history", id)
		if reclaimed {
			reclaimedJobs++
		}
		maxAttempt = max(maxAttempt, j.Attempt)
		res, err := c.Result(ctx, id)
		require.NoError(t, err, "result of %s", id)
		var v struct {
			Count *int `json:"count"`
		}
		require.NoError(t, json.Unmarshal(res.Result, &v), "result of %s: %s", id, res.Result)
		require.NotNil(t, v.Count, "result of %s: %s", id, res.Result)
		require.Equal(t, kinds[byID[id].kind].count, *v.Count, "job %s (kind %d): count against the plaintext intersection", id, byID[id].kind)
	}
	require.Zero(t, lost, "acknowledged jobs lost")
	for _, id := range budgetIDs {
		j, err := c.Job(ctx, id)
		require.NoError(t, err, "budget job %s", id)
		require.Equal(t, jobs.Cancelled, j.State, "budget job %s", id)
	}

	// Every key, submitted once more, names its job and makes no other.
	for _, a := range acked {
		status, id, err := submitJob(ctx, hc, p.base, kinds[a.kind].spec, a.key)
		require.NoError(t, err, "resubmitting key %s", a.key)
		require.Equal(t, http.StatusOK, status, "resubmitting key %s", a.key)
		require.Equal(t, a.id, id, "resubmitting key %s", a.key)
	}
	// The budget spent before the kills is still spent.
	overBudget(p.base)

	entries, err := au.Audit(ctx, audit.Filter{Action: "job.released", Limit: 100000})
	require.NoError(t, err)
	perJob := map[string]int{}
	for _, e := range entries {
		perJob[e.Job]++
	}
	duplicates := 0
	for _, id := range ids {
		if perJob[id] != 1 {
			t.Errorf("job %s has %d job.released audit entries, want 1", id, perJob[id])
		}
		if perJob[id] > 1 {
			duplicates += perJob[id] - 1
		}
	}
	require.Len(t, entries, len(ids), "job.released audit entries")
	v, err := au.AuditVerify(ctx)
	require.NoError(t, err)
	require.True(t, v.OK, "audit chain: %s", v.Error)

	// Then in the store itself.
	if kb.exclusive {
		p.kill()
		n, err := boltstore.VerifyFile(kb.file)
		require.NoError(t, err, "audit chain in the store file")
		require.Equal(t, v.Entries, n, "audit entries in the file")
	}
	require.ElementsMatch(t, append(append([]string(nil), ids...), budgetIDs...), kb.storedJobIDs(t),
		"the store holds exactly the acknowledged jobs (no job created twice by a retried submission)")
	kb.idleQueue(t)
	dp := kb.counter(t, fmt.Sprintf("dp:%s:%s", chaosAnalyst, budgetDataset))
	require.Equal(t, policy.MicroEpsilon(budgetJobs*budgetEpsilon), dp, "privacy budget spent (µε)")
	rate := kb.counter(t, rateKey)
	require.EqualValues(t, budgetJobs, rate, "jobs in the rate-limit window")

	require.Positive(t, midJob, "no kill landed while a job was running: the test exercised nothing")
	require.Positive(t, reclaimedJobs, "no job was ever reclaimed after a kill")
	t.Logf("kills %d while running jobs (%d of them held a lease) + 1 during approvals (%d approvals interrupted, %d retried requests); "+
		"jobs %d acknowledged (%d submission requests cut off by a kill and retried, %d of them had made the job: 200 on retry), lost 0; "+
		"reclaims: %d running events at attempt > 1 over %d jobs (max attempt %d); "+
		"released %d, duplicate job.released entries %d, concurrent approvals refused %d; "+
		"budget %d µε and rate window %d jobs intact; audit chain %d entries ok; nothing left queued or leased; last coordinator drained the rest in %s",
		kills, midJob, interrupted, approveRetry, len(ids), cutOff, idemHits, reclaimEvents, reclaimedJobs, maxAttempt,
		len(ids), duplicates, conflicts, dp, rate, v.Entries, drained.Round(time.Second))
}

// redisServer is a redis-server of the test's own with AOF (fsync always),
// killed and restarted on the same port and files.
type redisServer struct {
	t      *testing.T
	bin    string
	dir    string
	addr   string
	cmd    *exec.Cmd
	exited chan struct{}
}

func (r *redisServer) start() {
	t := r.t
	t.Helper()
	_, port, _ := net.SplitHostPort(r.addr)
	r.cmd = exec.Command(r.bin, "--port", port, "--bind", "127.0.0.1", "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
		"--logfile", "redis.log")
	require.NoError(t, r.cmd.Start())
	exited := make(chan struct{})
	r.exited = exited
	cmd := r.cmd
	go func() { _ = cmd.Wait(); close(exited) }()
	c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err() // LOADING while it replays the AOF
		cancel()
		if err == nil {
			return
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			t.Fatalf("redis-server exited: %s", b)
		case <-deadline.C:
			t.Fatalf("redis-server on %s not ready: %v", r.addr, err)
		case <-tick.C:
		}
	}
}

func (r *redisServer) kill() {
	if r.cmd == nil {
		return
	}
	select {
	case <-r.exited:
	default:
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

// TestRedisRestarts kills Redis (SIGKILL; AOF with appendfsync always) and
// starts it again on the same files and port, over and over, while jobs are
// submitted and run: submissions during an outage get 503 (never 500) and
// are retried with their Idempotency-Key, and afterwards every acknowledged
// job is in the store, once, and reaches awaiting_review by itself.
func TestRedisRestarts(t *testing.T) {
	skipChaosIfShort(t)
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv(redistest.EnvVar) != "" {
			t.Fatalf("%s is set but redis-server is not on PATH: this test restarts a Redis of its own", redistest.EnvVar)
		}
		t.Skip("redis-server not on PATH (.ci/run installs it; set UNSEEN_TEST_REDIS to make its absence a failure)")
	}
	total, restarts := 60, 3
	if chaosLong() {
		total, restarts = 1000, 20
	}
	rng := chaosRand(t)
	rs := &redisServer{t: t, bin: bin, dir: t.TempDir(), addr: freeLoopbackAddr(t)}
	rs.start()
	t.Cleanup(rs.kill)
	rc := redis.NewClient(&redis.Options{Addr: rs.addr})
	t.Cleanup(func() { rc.Close() })
	prefix := redistest.Prefix(t, rc)

	// Small inputs: this test is about acknowledgements, and 1,000 jobs
	// must run within the test's time.
	fed, kinds := chaosFederation(t, 200)
	cfgPath := writeChaosConfig(t, t.TempDir(), "redis://"+rs.addr+"/0", prefix, fed)
	cs := newCoordinators(t, cfgPath)
	p := cs.start()
	c := chaosClient(p.base, chaosAnalyst, 30*time.Second)

	var (
		mu         sync.Mutex
		acked      []ackedJob
		statuses   = map[int]int{} // answers to submissions, 0 = transport error
		ackedCount atomic.Int64
		progress   = make(chan struct{}, 1)
	)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	hc := &http.Client{Timeout: 30 * time.Second}
	submitOne := func(i int) {
		s := ackedJob{key: fmt.Sprintf("restart-%04d", i), kind: i % len(kinds)}
		for {
			status, id, err := submitJob(ctx, hc, p.base, kinds[s.kind].spec, s.key)
			mu.Lock()
			statuses[status]++
			if err == nil {
				s.id = id
				acked = append(acked, s)
			}
			mu.Unlock()
			if err == nil {
				ackedCount.Add(1)
				select {
				case progress <- struct{}{}:
				default:
				}
				return
			}
			if ctx.Err() != nil {
				return
			}
			if status != http.StatusServiceUnavailable {
				t.Errorf("submission %s: %v (want success or 503)", s.key, err)
				return
			}
			select { // retry backoff while Redis is away
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}

	// Submissions, paced so they overlap the restarts, from four goroutines
	// (stopped before the test ends, however it ends).
	work := make(chan int)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for range 4 {
		wg.Go(func() {
			for i := range work {
				submitOne(i)
			}
		})
	}
	pace := 5 * time.Second / time.Duration(total)
	if chaosLong() {
		pace = 30 * time.Second / time.Duration(total)
	}
	go func() {
		defer close(work)
		tick := time.NewTicker(pace)
		defer tick.Stop()
		for i := range total {
			select {
			case work <- i:
			case <-ctx.Done():
				return
			}
			<-tick.C
		}
	}()

	// Restarts, each once a further share of the jobs is acknowledged.
	outages := 0
	for r := range restarts {
		threshold := int64((r + 1) * total / (restarts + 1))
		for ackedCount.Load() < threshold {
			select {
			case <-progress:
			case <-ctx.Done():
				t.Fatalf("submissions stalled at %d of %d", ackedCount.Load(), total)
			}
		}
		rs.kill()
		outages++
		// Stay down 2-3 s: longer than go-redis rides out by retrying (its
		// dial and command retries absorb up to a second or two), so
		// submissions and workers meet the outage.
		time.Sleep(time.Duration(2000+rng.IntN(1001)) * time.Millisecond)
		rs.start()
		require.True(t, p.alive(), "the coordinator died when Redis restarted:\n%s", p.logTail(20))
	}
	wg.Wait()
	require.NoError(t, ctx.Err())
	require.True(t, p.alive(), "the coordinator died:\n%s", p.logTail(20))

	mu.Lock()
	got := append([]ackedJob(nil), acked...)
	st := map[int]int{}
	for k, v := range statuses {
		st[k] = v
	}
	mu.Unlock()
	for status, n := range st {
		if status != 0 && status != http.StatusAccepted && status != http.StatusOK && status != http.StatusServiceUnavailable {
			t.Errorf("%d submissions answered HTTP %d", n, status)
		}
	}
	require.Zero(t, st[0], "submissions that failed in transport (the coordinator must answer 503, not drop the connection)")
	require.Zero(t, st[http.StatusInternalServerError], "submissions answered 500")
	require.Len(t, got, total, "every submission acknowledged in the end")
	require.Positive(t, st[http.StatusServiceUnavailable], "no submission met an outage: the restarts tested nothing")

	// Every acknowledged job is in the store, once.
	ids := make([]string, 0, len(got))
	seen := map[string]string{}
	lost := 0
	for _, a := range got {
		if k, dup := seen[a.id]; dup {
			t.Errorf("keys %s and %s acknowledged as the same job %s", k, a.key, a.id)
		}
		seen[a.id] = a.key
		ids = append(ids, a.id)
		if _, err := c.Job(ctx, a.id); err != nil {
			lost++
			t.Errorf("acknowledged job %s (key %s): %v", a.id, a.key, err)
		}
	}
	require.Zero(t, lost, "acknowledged jobs lost")
	require.ElementsMatch(t, ids, storedJobIDs(t, rc, prefix), "the store holds exactly the acknowledged jobs")

	// And the runner recovers by itself: every job reaches review.
	done := waitStates(t, c, ids, jobs.AwaitingReview, 5*time.Minute, p.alive)
	reclaimed := 0
	for _, j := range done {
		if j.Attempt > 1 {
			reclaimed++
		}
	}
	au := chaosClient(p.base, chaosAuditor, time.Minute)
	v, err := au.AuditVerify(ctx)
	require.NoError(t, err)
	require.True(t, v.OK, "audit chain: %s", v.Error)
	pend, _ := queueCheck(t, rc, prefix)
	require.Zero(t, pend, "queue entries still pending with every job awaiting review")
	t.Logf("redis restarts %d; jobs %d acknowledged (202: %d, 200 on a retried key: %d), lost 0, duplicated 0; "+
		"503 answers during outages %d, 500 answers 0; all %d awaiting review (%d needed more than one attempt); audit chain %d entries ok",
		outages, len(got), st[http.StatusAccepted], st[http.StatusOK], st[http.StatusServiceUnavailable], len(done), reclaimed, v.Entries)
}

// TestKillResumesPSI SIGKILLs a coordinator process in the middle of an
// ECDH PSI job, once its progress passes half, starts another on the same
// store (the embedded store's file, or Redis), and checks from the new
// process's log that the job resumed from the first one's checkpoints (psi
// resumed, and fewer chunks computed than the job has) and that the
// released count is exact.
func TestKillResumesPSI(t *testing.T) {
	skipChaosIfShort(t)
	t.Run("embedded", func(t *testing.T) {
		killResumesPSI(t, func(fed *nodetest.Federation) string {
			return writeChaosConfig(t, t.TempDir(), "", "", fed, filepath.Join(t.TempDir(), "state", "unseen.db"))
		})
	})
	t.Run("redis", func(t *testing.T) {
		rc := redistest.Client(t)
		prefix := redistest.Prefix(t, rc)
		killResumesPSI(t, func(fed *nodetest.Federation) string {
			return writeChaosConfig(t, t.TempDir(), redisURLOf(t, rc), prefix, fed)
		})
	})
}

func killResumesPSI(t *testing.T, config func(*nodetest.Federation) string) {
	const n = 1 << 16 // 16 chunks of 4096 a list: a few seconds of PSI
	fed := nodetest.Start(t, map[string][]int{"a.x": rangeInts(0, n), "b.y": rangeInts(n/2, n/2+n)}, nil)
	cs := newCoordinators(t, config(fed))
	spec, err := json.Marshal(map[string]any{"type": "psi_cardinality", "purpose": "resume after a kill", "psi_protocol": "ecdh",
		"inputs": []any{map[string]string{"dataset": "a.x", "key": "id_number"}, map[string]string{"dataset": "b.y", "key": "id_number"}}})
	require.NoError(t, err)

	p := cs.start()
	hc := &http.Client{Timeout: 30 * time.Second}
	status, id, err := submitJob(t.Context(), hc, p.base, spec, "resume-1")
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, status)
	// Kill once more than half the chunk hops are done (progress is the
	// job's own record, polled through the API).
	c := chaosClient(p.base, chaosAnalyst, 30*time.Second)
	deadline := time.Now().Add(5 * time.Minute)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		j, err := c.Job(t.Context(), id)
		require.NoError(t, err)
		require.Contains(t, []jobs.State{jobs.Queued, jobs.Running}, j.State, "the job left running before the kill: %+v", j.Progress)
		if j.Progress.Total > 0 && 2*j.Progress.Done > j.Progress.Total {
			t.Logf("killing %s at progress %d/%d", p.name, j.Progress.Done, j.Progress.Total)
			break
		}
		require.True(t, time.Now().Before(deadline), "no progress past half within 5 minutes")
		<-tick.C // polling the job's own record, as waitStates does
	}
	p.kill()

	p = cs.start()
	c = chaosClient(p.base, chaosAnalyst, 30*time.Second)
	waitStates(t, c, []string{id}, jobs.AwaitingReview, 5*time.Minute, p.alive)
	_, err = chaosClient(p.base, chaosReviewer, 30*time.Second).Approve(t.Context(), id, "resume test", nodetest.PrivateKey(chaosReviewer))
	require.NoError(t, err)
	res, err := c.Result(t.Context(), id)
	require.NoError(t, err)
	var v struct {
		Count *int `json:"count"`
	}
	require.NoError(t, json.Unmarshal(res.Result, &v))
	require.NotNil(t, v.Count, "result: %s", res.Result)
	require.Equal(t, n/2, *v.Count, "the resumed job's count against the plaintext intersection")

	logb, err := os.ReadFile(p.logPath)
	require.NoError(t, err)
	var resumed, chunks, computed int
	for _, line := range strings.Split(string(logb), "\n") {
		if strings.Contains(line, "psi resumed") && strings.Contains(line, id) {
			_, err := fmt.Sscanf(field(line, "resumed_chunks"), "%d", &resumed)
			require.NoError(t, err, line)
		}
		if strings.Contains(line, "psi done") && strings.Contains(line, id) {
			_, err := fmt.Sscanf(field(line, "chunks")+" "+field(line, "computed_chunks"), "%d %d", &chunks, &computed)
			require.NoError(t, err, line)
		}
	}
	require.Positive(t, resumed, "the restarted coordinator resumed no chunk:\n%s", logb)
	require.Equal(t, 2*n/4096, chunks)
	require.Equal(t, chunks-resumed, computed, "the restarted coordinator computed only the missing chunks")
	t.Logf("after the kill: %d of %d chunks resumed, %d computed; count %d exact", resumed, chunks, computed, *v.Count)
}

// field is the value of key=value in a text log line.
func field(line, key string) string {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}
