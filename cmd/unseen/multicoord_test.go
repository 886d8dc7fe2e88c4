package main

// Two coordinator processes serving one federation on one Redis: the key
// ceremony's state and the release keys are in the shared store (sealed
// under the state key both read from their configuration), so either
// coordinator runs any job; one is SIGKILLed with two homomorphic jobs in
// the middle of their node steps, and the other reclaims and finishes them.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/unseen-data/unseen/api"
	"github.com/unseen-data/unseen/api/client"
	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodehttp"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/coordinator"
	"github.com/unseen-data/unseen/coordinator/hefed"
	"github.com/unseen-data/unseen/examples"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/redistest"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/psi/delivery"
)

// holdGate holds node requests of the steps it watches until it is told
// what to do with them: the first `want` jobs to reach one of those steps
// are held (every request of theirs, at their first attempt); later jobs
// pass. After the kill, held requests are answered 503 without reaching
// the node (the process that sent them is dead anyway), so no node does
// work for the dead attempt.
type holdGate struct {
	paths map[string]bool
	want  int

	mu       sync.Mutex
	held     map[string]bool // job ids held
	released chan struct{}
	arrived  chan string
}

func newHoldGate(want int, paths ...string) *holdGate {
	g := &holdGate{paths: map[string]bool{}, want: want, held: map[string]bool{}, released: make(chan struct{}), arrived: make(chan string, 64)}
	for _, p := range paths {
		g.paths[p] = true
	}
	return g
}

func (g *holdGate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.paths[r.URL.Path] {
			h.ServeHTTP(w, r)
			return
		}
		var hdr struct {
			Job     string `json:"job"`
			Attempt int    `json:"attempt"`
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_ = json.Unmarshal(body, &hdr)
		r.Body = io.NopCloser(bytes.NewReader(body))
		g.mu.Lock()
		hold := g.held[hdr.Job] && hdr.Attempt == 1
		if !hold && !g.held[hdr.Job] && len(g.held) < g.want && hdr.Attempt == 1 {
			g.held[hdr.Job], hold = true, true
			g.arrived <- hdr.Job
		}
		g.mu.Unlock()
		if !hold {
			h.ServeHTTP(w, r)
			return
		}
		<-g.released
		http.Error(w, "held by the test, then dropped", http.StatusServiceUnavailable)
	})
}

// TestTwoCoordinatorsOneRedis runs the demo's four job types (its nodes,
// datasets and jobs) on two coordinator processes sharing one Redis. The
// key ceremony runs through A; B serves the same keys from the shared
// store. A is SIGKILLed while it holds the two homomorphic jobs in the
// middle of their node steps (intersection_stats after its PSI, at
// he/values; aggregate after he/groups, at he/aggregate); B reclaims them.
// Every job completes exactly once, with the demo's exact results.
func TestTwoCoordinatorsOneRedis(t *testing.T) {
	skipChaosIfShort(t)
	rc := redistest.Client(t)
	prefix := redistest.Prefix(t, rc)
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	gate := newHoldGate(2, nodeapi.PathHEValues, nodeapi.PathHEAggregate)

	// The demo's nodes, in this process, each behind the gate.
	var refs []coordinator.NodeRef
	for _, dept := range demoDepartments {
		nc, err := node.LoadConfigFS(examples.FS, "nodes/"+dept+".yaml")
		require.NoError(t, err)
		tok := randomToken()
		nc.CoordinatorTokenSHA256 = api.HashToken(tok)
		nc.SecretFile = filepath.Join(dir, dept, "node.secret")
		nc.AuditLog = filepath.Join(dir, dept, "audit.jsonl")
		nc.KeysDir = filepath.Join(dir, dept, "keys")
		nc.StateDB = filepath.Join(dir, dept, "node.db")
		require.NoError(t, os.MkdirAll(filepath.Join(dir, dept), 0o700))
		key, err := exampleKey("node-" + dept)
		require.NoError(t, err)
		s, err := node.New(nc, node.Options{FS: examples.FS, Logger: log, SigningKey: key})
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv := &http.Server{Handler: gate.wrap(nodehttp.New(s, nodehttp.Options{Logger: log}))}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		refs = append(refs, coordinator.NodeRef{Department: dept, URL: "http://" + ln.Addr().String(), Token: tok})
	}
	defer func() {
		select {
		case <-gate.released:
		default:
			close(gate.released)
		}
	}()

	// One configuration for both coordinators: same Redis, same state key
	// file (he_state_key, made by the first to start).
	pub, priv, err := delivery.GenerateKey()
	require.NoError(t, err)
	ritaKey, err := exampleKey("rita")
	require.NoError(t, err)
	coraKey, err := exampleKey("cora")
	require.NoError(t, err)
	coordKey, err := exampleKey("coordinator")
	require.NoError(t, err)
	tokens := map[string]string{"alice": randomToken(), "rita": randomToken(), "cora": randomToken(), "adam": randomToken()}
	cfg := coordinator.Config{
		Listen: "127.0.0.1:0", Redis: redisURLOf(t, rc), RedisPrefix: prefix, Workers: 2, LeaseIdle: time.Second,
		SigningKey: filepath.Join(dir, "coordinator.ed25519"),
		HEStateKey: filepath.Join(dir, "he-state.key"),
		Nodes:      refs,
		Users: []api.User{
			{Name: "alice", Role: api.RoleAnalyst, Department: "hrss", TokenSHA256: api.HashToken(tokens["alice"]), PublicKey: base64.StdEncoding.EncodeToString(pub)},
			{Name: "rita", Role: api.RoleReviewer, Department: "data_bureau", TokenSHA256: api.HashToken(tokens["rita"]), SigningKey: publicOf(ritaKey)},
			{Name: "cora", Role: api.RoleDataOwner, Department: "civil", TokenSHA256: api.HashToken(tokens["cora"]), SigningKey: publicOf(coraKey)},
			{Name: "adam", Role: api.RoleAdmin, Department: "data_bureau", TokenSHA256: api.HashToken(tokens["adam"])},
		},
	}
	require.NoError(t, attest.WritePrivateKeyFile(cfg.SigningKey, coordKey))
	b, err := yaml.Marshal(&cfg)
	require.NoError(t, err)
	cfgPath := filepath.Join(dir, "coordinator.yaml")
	require.NoError(t, os.WriteFile(cfgPath, b, 0o600))
	cs := newCoordinators(t, cfgPath)

	a := cs.start()
	ctx := t.Context()
	cl := func(p *coordProc, user string) *client.Client {
		c := client.New(p.base, tokens[user])
		c.HTTP.Timeout = 5 * time.Minute
		return c
	}
	raw, err := cl(a, "adam").KeysInit(ctx, 2)
	require.NoError(t, err)
	var ks hefed.Status
	require.NoError(t, json.Unmarshal(raw, &ks))
	_, err = os.Stat(cfg.HEStateKey)
	require.NoError(t, err, "the first coordinator made the state key")

	// The demo's jobs, homomorphic ones first so that A claims them.
	files := []string{"jobs/benefits_to_owners_on_allowance.json", "jobs/allowance_by_district.json", "jobs/benefits_property_cardinality.json", "jobs/benefits_allowance_members.json"}
	ids := map[string]string{}
	for _, f := range files {
		spec, err := fs.ReadFile(examples.FS, f)
		require.NoError(t, err)
		sub, err := cl(a, "alice").Submit(ctx, spec, "multi-"+f)
		require.NoError(t, err)
		ids[f] = sub.ID
		if sub.State == jobs.AwaitingConsent {
			_, err := cl(a, "cora").Consent(ctx, sub.ID, client.ConsentAnswer{Approve: true, Reason: "test"}, coraKey)
			require.NoError(t, err)
		}
	}
	// A's two workers reach the gated steps of the two homomorphic jobs.
	held := map[string]bool{}
	for range 2 {
		select {
		case id := <-gate.arrived:
			held[id] = true
		case <-time.After(3 * time.Minute):
			t.Fatalf("the homomorphic jobs never reached their node steps\n%s", a.logTail(30))
		}
	}
	require.True(t, held[ids[files[0]]] && held[ids[files[1]]], "A holds the intersection_stats and aggregate jobs: %v", held)

	// B starts while A holds them, reads the ceremony from Redis, and
	// takes the other jobs; then A dies without handing anything back.
	bp := cs.start()
	bst, err := cl(bp, "adam").KeysStatus(ctx)
	require.NoError(t, err)
	var bks hefed.Status
	require.NoError(t, json.Unmarshal(bst, &bks))
	require.Equal(t, ks.Ceremony, bks.Ceremony, "B serves A's key ceremony from the shared store")
	for _, n := range bks.Nodes {
		require.True(t, n.HoldsShares, "%+v", n)
	}
	for id := range held {
		j, err := cl(bp, "alice").Job(ctx, id)
		require.NoError(t, err)
		require.Equal(t, jobs.Running, j.State)
		require.Equal(t, 1, j.Attempt)
	}
	a.kill()
	close(gate.released)

	// Every job ends awaiting review on B, the held ones at a later attempt.
	var all []string
	for _, f := range files {
		all = append(all, ids[f])
	}
	got := waitStates(t, cl(bp, "alice"), all, jobs.AwaitingReview, 5*time.Minute, bp.alive)
	for id := range held {
		require.GreaterOrEqual(t, got[id].Attempt, 2, "job %s was reclaimed", id)
	}

	// Released once each, with the demo's exact results.
	expect := map[string]func() (any, error){
		files[0]: func() (any, error) { return plaintextIntersectionStats() },
		files[1]: func() (any, error) { return plaintextAggregate() },
		files[2]: func() (any, error) { return plaintextIntersection(true) },
		files[3]: func() (any, error) { return plaintextMembers() },
	}
	for _, f := range files {
		id := ids[f]
		_, err := cl(bp, "rita").Approve(ctx, id, "checked", ritaKey)
		require.NoError(t, err, f)
		res, err := cl(bp, "alice").Result(ctx, id)
		require.NoError(t, err, f)
		require.Equal(t, jobs.Released, res.State)
		var gotV any
		switch {
		case strings.Contains(f, "members"):
			ct, err := sealedList(res)
			require.NoError(t, err)
			members, err := delivery.Open(priv, res.ID, ct)
			require.NoError(t, err)
			sort.Strings(members)
			gotV = members
		case strings.Contains(f, "cardinality"):
			var v struct {
				Count *int `json:"count"`
			}
			require.NoError(t, json.Unmarshal(res.Result, &v))
			require.NotNil(t, v.Count)
			gotV = *v.Count
		default:
			gotV, err = gotStats(res)
			require.NoError(t, err)
		}
		want, err := expect[f]()
		require.NoError(t, err)
		require.True(t, equalJSON(gotV, want), "%s: got %v, want %v", f, describeAny(gotV), describeAny(want))
		// Once: a second approval finds nothing to release.
		_, err = cl(bp, "rita").Approve(ctx, id, "again", ritaKey)
		require.Error(t, err)
		j, err := cl(bp, "alice").Job(ctx, id)
		require.NoError(t, err)
		releases := 0
		for _, h := range j.History {
			if h.State == jobs.Released {
				releases++
			}
		}
		require.Equal(t, 1, releases, "%s released once", f)
	}
	js, err := cl(bp, "alice").Jobs(ctx, "")
	require.NoError(t, err)
	require.Len(t, js, len(files), "no job was duplicated")
}

func describeAny(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 300 {
		b = append(b[:300], "…"...)
	}
	return string(b)
}
