package main

// TestKillNode is the node's crash test, run as a department would meet a
// crash: `unseen node --config …` as a child process (this test binary
// re-executed with execMainEnv, so the real main), serving PSI steps that
// each write an audit entry, SIGKILLed at random moments and started again.
// It checks that the node always starts again (its audit log recovers by
// itself), that what each kill left is a state the log recovers from, and
// that `unseen audit verify --file` passes at the end. It counts the kills
// that landed between an entry's write and its head's (and mid-entry) and
// checks them against the log's own audit.recovered entries.
//
// 20 kills in every `go test`; UNSEEN_LONG=1 runs 200; -short skips it.

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

const killDataset = "hrss.benefits"

// writeKillNode writes a node configuration (the real node.Config type, so
// unknown fields would be refused) and its CSV of rows rows into dir, and
// returns the config's path and the audit log's.
func writeKillNode(t *testing.T, dir string, rows int) (cfgPath, auditPath string) {
	t.Helper()
	csvPath := filepath.Join(dir, "benefits.csv")
	fh, err := os.Create(csvPath)
	require.NoError(t, err)
	w := csv.NewWriter(fh)
	require.NoError(t, w.Write([]string{"id_number", "district", "amount"}))
	for i := 0; i < rows; i++ {
		require.NoError(t, w.Write([]string{nodetest.ID(i), nodetest.Districts[i%len(nodetest.Districts)], strconv.Itoa(i)}))
	}
	w.Flush()
	require.NoError(t, w.Error())
	require.NoError(t, fh.Close())
	// The node signs (its audit heads too) with the test key of its name,
	// which its federation section lists.
	keyPath := filepath.Join(dir, "signing.ed25519")
	if _, err := os.Stat(keyPath); err != nil {
		require.NoError(t, attest.WritePrivateKeyFile(keyPath, nodetest.PrivateKey("node-hrss")))
	}
	cfg := node.Config{
		Department:             "hrss",
		Listen:                 "127.0.0.1:0", // every start passes --listen
		SecretFile:             "state/node.secret",
		AuditLog:               "state/audit.jsonl",
		SigningKey:             "signing.ed25519",
		CoordinatorTokenSHA256: sha256Hex(nodetest.Token),
		Federation:             node.Federation{Coordinator: nodetest.PublicKey("coordinator"), Nodes: map[string]string{"hrss": nodetest.PublicKey("node-hrss")}},
		Datasets:               []node.DatasetConfig{{Dataset: nodetest.Dataset(killDataset), File: "benefits.csv"}},
	}
	b, err := yaml.Marshal(&cfg)
	require.NoError(t, err)
	cfgPath = filepath.Join(dir, "node.yaml")
	require.NoError(t, os.WriteFile(cfgPath, b, 0o600))
	return cfgPath, filepath.Join(dir, "state", "audit.jsonl")
}

// nodeProc is a node running as a child process.
type nodeProc struct {
	cmd     *exec.Cmd
	base    string
	logPath string
	exited  chan struct{}
	waitErr error
}

// startNode runs `unseen node` on a fresh loopback port and returns once
// it answers /healthz; it fails the test if the node exits or does not
// answer in time (a refusal to start is exactly what this test hunts).
func startNode(t *testing.T, cfgPath, logPath string) *nodeProc {
	t.Helper()
	for try := 0; ; try++ { // the free port can be taken before the child binds it
		addr := freeLoopbackAddr(t)
		p := &nodeProc{base: "http://" + addr, logPath: logPath, exited: make(chan struct{})}
		lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		require.NoError(t, err)
		p.cmd = exec.Command(os.Args[0], "node", "--config", cfgPath, "--listen", addr)
		p.cmd.Env = append(os.Environ(), execMainEnv+"=1")
		p.cmd.Stdout, p.cmd.Stderr = lf, lf
		err = p.cmd.Start()
		lf.Close()
		require.NoError(t, err)
		go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
		t.Cleanup(p.kill)
		err = p.waitHealthy(30 * time.Second)
		if err == nil {
			return p
		}
		p.kill()
		if try < 2 && strings.Contains(tail(logPath, 5), "address already in use") {
			continue
		}
		t.Fatalf("the node did not start again: %v\n%s", err, tail(logPath, 20))
	}
}

func (p *nodeProc) waitHealthy(timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := hc.Get(p.base + nodeapi.PathHealth)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("it exited: %v", p.waitErr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fmt.Errorf("no answer on /healthz within %s", timeout)
}

// kill sends SIGKILL and reaps the process.
func (p *nodeProc) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// stop asks the node to shut down (SIGTERM) and waits for it.
func (p *nodeProc) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.exited:
		require.NoError(t, p.waitErr, "the node's exit after SIGTERM")
	case <-time.After(20 * time.Second):
		t.Fatal("the node did not stop within 20s of SIGTERM")
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// driveNode sends, until ctx ends, what a coordinator's workers send: PSI
// jobs (prepare, the list in chunks, finish: an audit entry each) from
// `workers` goroutines, and requests with a wrong token (audited as
// auth.refused). Failures are expected once the node is killed.
func driveNode(ctx context.Context, base string, round, workers, rows int, ok *atomic.Int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	spec := policy.Spec{Type: policy.PSICardinality, Purpose: "node kill test",
		Inputs: []policy.Input{{Dataset: killDataset, Key: "id_number"}, {Dataset: "housing.owners", Key: "id_number"}}}
	req := policy.Requester{User: "alice", Department: "hrss"}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := nodeapi.NewClient("hrss", base, nodetest.Token)
			c.HTTP.Timeout = 5 * time.Second
			for j := 0; ctx.Err() == nil; j++ {
				h := nodeapi.Header{Job: fmt.Sprintf("j_r%03d_w%d_%d", round, w, j), Attempt: 1, Party: 0}
				pr, err := c.Prepare(ctx, &nodeapi.PrepareRequest{Header: h, Spec: spec, Requester: req, Input: 0, Parties: 2})
				if err != nil {
					continue
				}
				ok.Add(1)
				for off := 0; off < pr.Len && ctx.Err() == nil; off += rows / 4 {
					if _, err := c.Own(ctx, &nodeapi.OwnRequest{Header: h, Offset: off, N: min(rows/4, pr.Len-off)}); err == nil {
						ok.Add(1)
					}
				}
				if _, err := c.Finish(ctx, &nodeapi.FinishRequest{Header: h, Outcome: "ok"}); err == nil {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		hc := &http.Client{Timeout: 5 * time.Second}
		for ctx.Err() == nil {
			r, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+nodeapi.PathDatasets, nil)
			r.Header.Set("Authorization", "Bearer not-the-coordinator")
			if resp, err := hc.Do(r); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusUnauthorized {
					ok.Add(1)
				}
			}
		}
	}()
	return &wg
}

func TestKillNode(t *testing.T) {
	skipChaosIfShort(t)
	kills := 20
	if chaosLong() {
		kills = 200
	}
	rng := chaosRand(t)
	dir := t.TempDir()
	const rows = 400
	cfgPath, auditPath := writeKillNode(t, dir, rows)
	logPath := filepath.Join(dir, "node.log")
	if d := os.Getenv("UNSEEN_CHAOS_LOGS"); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		logPath = filepath.Join(d, t.Name()+".log")
	}

	var served atomic.Int64
	pastHead, torn, clean := 0, 0, 0
	start := time.Now()
	for k := 0; k < kills; k++ {
		p := startNode(t, cfgPath, logPath)
		ctx, cancel := context.WithCancel(t.Context())
		wg := driveNode(ctx, p.base, k, 3, rows, &served)
		time.Sleep(time.Duration(20+rng.IntN(280)) * time.Millisecond)
		p.kill()
		cancel()
		wg.Wait()
		// What the kill left, read as an auditor would (read-only): it
		// must be a state the log recovers from.
		c, err := audit.ScanFile(auditPath, nil)
		require.NoError(t, err, "after kill %d the log is not recoverable", k+1)
		switch {
		case c.PastHead > 0:
			pastHead++
		case c.Torn != nil:
			torn++
		default:
			clean++
		}
		if c.PastHead > 0 && c.Torn != nil {
			t.Errorf("kill %d left both an entry past the head and a torn line: %+v", k+1, c)
		}
	}
	p := startNode(t, cfgPath, logPath)
	p.stop(t)
	took := time.Since(start)

	// The auditor's check on the final log, through the real CLI.
	verify := exec.Command(os.Args[0], "audit", "verify", "--file", auditPath)
	verify.Env = append(os.Environ(), execMainEnv+"=1")
	out, err := verify.CombinedOutput()
	require.NoError(t, err, "unseen audit verify --file: %s", out)
	require.Contains(t, string(out), "chain and head intact")

	// Each repair the node made is in its log, and matches what the kills
	// left.
	adopted, cut, recoveries := 0, 0, 0
	check, err := audit.ScanFile(auditPath, func(e *audit.Entry) error {
		if e.Action != audit.ActionRecovered {
			return nil
		}
		recoveries++
		if e.Detail["adopted"] != "" {
			adopted++
		}
		if e.Detail["torn_bytes"] != "" {
			cut++
		}
		return nil
	})
	require.NoError(t, err)
	logged := strings.Count(tail(logPath, 1<<30), "audit: adopted an entry")
	t.Logf("%d kills in %v (%d requests served): %d landed between an entry's write and its head's, %d mid-entry (torn line), %d between entries; "+
		"the log (%d entries) holds %d audit.recovered entries (%d adoptions, %d cuts; %d adoptions in the node's logs)",
		kills, took.Round(time.Millisecond), served.Load(), pastHead, torn, clean, check.Entries, recoveries, adopted, cut, logged)
	require.Equal(t, pastHead, adopted, "adoptions audited vs. kills that left an entry past its head")
	require.Equal(t, torn, cut, "cuts audited vs. kills that left a torn line")
	require.Equal(t, pastHead, logged, "adoptions logged")
	require.Greater(t, served.Load(), int64(kills), "the node served next to nothing between kills")
	if b, err := os.ReadFile(logPath); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") || strings.Contains(l, "DATA RACE") {
				t.Errorf("node log: %s", l)
			}
		}
	}
	var ee *exec.ExitError
	require.False(t, errors.As(p.waitErr, &ee), "the last node exited with %v", p.waitErr)
}
