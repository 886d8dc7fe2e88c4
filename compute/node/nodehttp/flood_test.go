package nodehttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodehttp"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
)

// countingLog counts the appends to the log under it (a FileLog, which
// writes and fsyncs on every append and at no other time).
type countingLog struct {
	audit.Log
	appends atomic.Int64
}

func (l *countingLog) Append(ctx context.Context, e audit.Entry) (audit.Entry, error) {
	l.appends.Add(1)
	return l.Log.Append(ctx, e)
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		out = append(out, m)
	}
	return out
}

type fileState struct {
	size int64
	mod  time.Time
}

func stat(t *testing.T, path string) fileState {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fileState{fi.Size(), fi.ModTime()}
}

// TestUnauthenticatedFlood is the attack: 10,000 requests without a valid
// token, over loopback as anyone on the network could send them, to a node
// whose audit log is a real file. None may reach the log (each would be an
// fsynced entry: a flood would fill the disk, and a node that cannot audit
// serves nothing); each is counted on /metrics, and the node's log gets
// one line a second saying how many it suppressed.
func TestUnauthenticatedFlood(t *testing.T) {
	cfgs, _ := nodetest.Configs(t, map[string][]int{"hrss.benefits": {1, 2, 3}}, nil)
	cfg := cfgs["hrss"]
	fl, err := audit.OpenFile(cfg.Path(cfg.AuditLog))
	require.NoError(t, err)
	t.Cleanup(func() { fl.Close() })
	alog := &countingLog{Log: fl}
	svc, err := node.New(cfg, node.Options{Audit: alog})
	require.NoError(t, err)

	// One authenticated request first, so that the log file and its head
	// exist and any later write would show.
	cl := nodeapi.NewClient("hrss", "", nodetest.Token)
	var logs syncBuffer
	var now atomic.Pointer[time.Time]
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now.Store(&start)
	h := nodehttp.New(svc, nodehttp.Options{
		Logger:  slog.New(slog.NewJSONHandler(&logs, nil)),
		Metrics: prometheus.NewRegistry(),
		Clock:   func() time.Time { return *now.Load() },
	})
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	cl.BaseURL = ts.URL
	_, err = cl.KeysStatus(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 1, alog.appends.Load())
	logFile, headFile := stat(t, cfg.Path(cfg.AuditLog)), stat(t, cfg.Path(cfg.AuditLog)+".head")

	// The flood: every route, every kind of wrong credential.
	routes := []struct{ method, path string }{
		{"GET", nodeapi.PathDatasets}, {"GET", nodeapi.PathKeysStatus},
		{"POST", nodeapi.PathPrepare}, {"POST", nodeapi.PathOwn}, {"POST", nodeapi.PathReblind},
		{"POST", nodeapi.PathMembers}, {"POST", nodeapi.PathFinish}, {"POST", nodeapi.PathOutcome},
		{"POST", nodeapi.PathKeysBegin}, {"POST", nodeapi.PathHERelease},
	}
	auths := []string{"", "Bearer not-the-token", "Bearer ", "Basic " + nodetest.Token, nodetest.Token, "Bearer " + nodetest.Token + "x"}
	const n = 10_000
	var next atomic.Int64
	var wrong atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				r := routes[i%len(routes)]
				req, _ := http.NewRequest(r.method, ts.URL+r.path, strings.NewReader(`{"job":"j1","step":"psi.own","attempt":1,"n":1}`))
				if a := auths[i%len(auths)]; a != "" {
					req.Header.Set("Authorization", a)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					wrong.Add(1)
					continue
				}
				var e nodeapi.Error
				if resp.StatusCode != http.StatusUnauthorized || json.NewDecoder(resp.Body).Decode(&e) != nil || e.Error.Code != "unauthenticated" {
					wrong.Add(1)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	require.Zero(t, wrong.Load(), "requests not refused as unauthenticated")

	// Nothing reached the audit log, so nothing was written or fsynced.
	require.EqualValues(t, 1, alog.appends.Load(), "unauthenticated requests were appended to the audit log")
	require.Equal(t, logFile, stat(t, cfg.Path(cfg.AuditLog)), "the audit file changed")
	require.Equal(t, headFile, stat(t, cfg.Path(cfg.AuditLog)+".head"), "the audit head changed")

	// The counter has every one of them.
	require.Equal(t, float64(n), scrapeSum(t, ts.URL, "unseen_node_unauthenticated_requests_total"))

	// One log line in this (frozen) second; the next second's line says how
	// many were suppressed. No line carries a presented token.
	lines := logs.lines(t)
	require.Len(t, lines, 1)
	require.EqualValues(t, 0, lines[0]["suppressed_since_last"])
	later := start.Add(time.Second)
	now.Store(&later)
	status, _ := rawStatus(t, ts.URL, nodeapi.PathOwn, "Bearer not-the-token")
	require.Equal(t, http.StatusUnauthorized, status)
	lines = logs.lines(t)
	require.Len(t, lines, 2)
	require.EqualValues(t, n-1, lines[1]["suppressed_since_last"])
	require.Equal(t, nodeapi.PathOwn, lines[1]["path"])
	require.True(t, strings.HasPrefix(lines[1]["remote"].(string), "127.0.0.1:"))
	require.NotContains(t, logs.b.String(), "not-the-token")
	require.NotContains(t, logs.b.String(), nodetest.Token)

	// An authenticated refusal is still audited: one append, with the actor
	// and the address it came from.
	status, code := rawStatus(t, ts.URL, nodeapi.PathOwn, "Bearer "+nodetest.Token)
	require.Equal(t, http.StatusConflict, status)
	require.Equal(t, "not_prepared", code)
	require.EqualValues(t, 2, alog.appends.Load())
	es, err := fl.Entries(context.Background(), audit.Filter{Action: "request.refused"})
	require.NoError(t, err)
	require.Len(t, es, 1)
	require.Equal(t, "coordinator", es[0].Actor)
	require.Equal(t, nodeapi.PathOwn, es[0].Detail["path"])
	require.Equal(t, "not_prepared", es[0].Detail["code"])
	require.True(t, strings.HasPrefix(es[0].Detail["remote"], "127.0.0.1:"), "remote %q", es[0].Detail["remote"])
	_, err = audit.VerifyFile(cfg.Path(cfg.AuditLog))
	require.NoError(t, err)
}

// rawStatus posts a psi/own message with the given Authorization header.
func rawStatus(t *testing.T, base, path, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", base+path, strings.NewReader(`{"job":"j1","step":"psi.own","attempt":1,"n":1}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var e nodeapi.Error
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
	return resp.StatusCode, e.Error.Code
}

// scrapeSum reads /metrics as Prometheus would and sums every series of
// the metric.
func scrapeSum(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + nodehttp.PathMetrics)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			fields := strings.Fields(line)
			sum += metricValue(t, fields[len(fields)-1])
		}
	}
	return sum
}
