package main

import (
	"context"
	"crypto/ed25519"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/unseen-data/unseen/api"
	"github.com/unseen-data/unseen/api/client"
	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/compute/idnum"
	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodehttp"
	"github.com/unseen-data/unseen/coordinator"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/boltstore"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/psi"
)

// BenchResult is one measured size of `unseen bench`.
type BenchResult struct {
	Parties       int     `json:"parties"`
	PerParty      int     `json:"per_party"`
	Seconds       float64 `json:"seconds"`
	ElementsPerS  float64 `json:"elements_per_s"`
	ScalarMultsPS float64 `json:"scalar_mults_per_s"`
	LimitPerS     float64 `json:"limit_elements_per_s"`
	LimitRatio    float64 `json:"limit_ratio"`
	Count         int     `json:"count"`
	ExpectedCount int     `json:"expected_count"`
	// Protocol is the PSI protocol the job ran ("ecdh" or "ot"); WireBytes
	// every byte the nodes' connections carried (both directions, HTTP
	// included), and WireBytesPerElement that over parties × per_party.
	Protocol            string  `json:"psi_protocol"`
	WireBytes           int64   `json:"wire_bytes"`
	WireBytesPerElement float64 `json:"wire_bytes_per_element"`
}

func benchCmd() *cobra.Command {
	var sizes string
	var parties, chunk int
	var asJSON bool
	var protocol string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure end-to-end PSI throughput (HTTP nodes, coordinator, runner) against this machine's X25519 limit",
		Long: `Runs psi_cardinality jobs end to end on loopback — nodes loading CSV files,
the coordinator's API, store and runner — at each size, and prints the
throughput (every party's entries per second) as a ratio to the limit
measured in the same run: the all-core X25519 scalar-multiplication rate
divided by the number of parties (each entry costs one multiplication per
party).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ns []int
			for _, s := range strings.Split(sizes, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil || n < 1 || n > 1<<22 {
					return fmt.Errorf("--sizes: %q is not a size from 1 to 2^22", s)
				}
				ns = append(ns, n)
			}
			if parties < 2 || parties > 5 {
				return errors.New("--parties must be 2 to 5")
			}
			if protocol != "" && protocol != policy.PSIProtocolECDH && protocol != policy.PSIProtocolOT {
				return fmt.Errorf("--psi-protocol: %q is not ecdh or ot", protocol)
			}
			out := cmd.OutOrStdout()
			var results []BenchResult
			for _, n := range ns {
				r, err := runBench(cmd.Context(), parties, n, chunk, protocol)
				if err != nil {
					return err
				}
				results = append(results, *r)
				if !asJSON {
					fmt.Fprintf(out, "%s, %d parties × %d: %.1f s, %.0f elements/s; limit %.0f elements/s (%.0f X25519/s all cores); limit-ratio %.2f; %.1f bytes on the wire per element; count %d (expected %d)\n",
						r.Protocol, r.Parties, r.PerParty, r.Seconds, r.ElementsPerS, r.LimitPerS, r.ScalarMultsPS, r.LimitRatio, r.WireBytesPerElement, r.Count, r.ExpectedCount)
				}
				if r.Count != r.ExpectedCount {
					return fmt.Errorf("bench: count %d, expected %d", r.Count, r.ExpectedCount)
				}
			}
			if asJSON {
				return printJSON(out, results)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&sizes, "sizes", "65536", "comma-separated list sizes per party (e.g. 65536,262144)")
	cmd.Flags().IntVar(&parties, "parties", 2, "number of departments")
	cmd.Flags().IntVar(&chunk, "chunk", 4096, "PSI chunk size")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print results as JSON")
	cmd.Flags().StringVar(&protocol, "psi-protocol", "", "PSI protocol of the job: ecdh or ot (default: the automatic rule, policy.ChoosePSIProtocol)")
	return cmd
}

// benchID returns the i-th synthetic ID number (valid check digit).
func benchID(i int) string {
	birth := time.Date(1940, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i/1000)
	id, err := idnum.Make("440106", birth, i%1000)
	if err != nil {
		panic(err)
	}
	return id
}

func runBench(ctx context.Context, parties, n, chunk int, protocol string) (*BenchResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tmp, err := os.MkdirTemp("", "unseen-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// Half of every list is common to all parties; the rest is its own.
	// Every node and the coordinator sign with fresh keys, each node's
	// federation section naming all of them.
	cfg := &coordinator.Config{Workers: 1, HEState: filepath.Join(tmp, "he.json")}
	_, cfg.SigningKeyPriv, err = attest.GenerateKey()
	if err != nil {
		return nil, err
	}
	fed := node.Federation{Coordinator: attest.FormatPublicKey(cfg.SigningKeyPriv.Public().(ed25519.PublicKey)), Nodes: map[string]string{}}
	keys := make([]ed25519.PrivateKey, parties)
	for p := range keys {
		var pub ed25519.PublicKey
		if pub, keys[p], err = attest.GenerateKey(); err != nil {
			return nil, err
		}
		fed.Nodes[fmt.Sprintf("d%d", p)] = attest.FormatPublicKey(pub)
	}
	spec := policy.Spec{Type: policy.PSICardinality, Purpose: "benchmark", PSIProtocol: protocol}
	var onWire atomic.Int64
	for p := 0; p < parties; p++ {
		dept := fmt.Sprintf("d%d", p)
		file := filepath.Join(tmp, dept+".csv")
		if err := writeBenchCSV(file, p, n); err != nil {
			return nil, err
		}
		tok := randomToken()
		nc := &node.Config{Department: dept, Listen: "127.0.0.1:0", SecretFile: filepath.Join(tmp, dept+".secret"),
			AuditLog: filepath.Join(tmp, dept+".audit"), StateDB: filepath.Join(tmp, dept+".db"), KeysDir: filepath.Join(tmp, dept+".keys"),
			CoordinatorTokenSHA256: api.HashToken(tok), Federation: fed}
		d := policy.Dataset{Name: dept + ".ids", Classification: "general", Sharing: "open", JobTypes: []policy.JobType{policy.PSICardinality},
			Columns: []policy.Column{{Name: "id_number", Kind: policy.KindID, Uses: []policy.Use{policy.UseKey}}}}
		nc.Datasets = []node.DatasetConfig{{Dataset: d, File: file}}
		s, err := node.New(nc, node.Options{Logger: log, SigningKey: keys[p]})
		if err != nil {
			return nil, err
		}
		defer s.Close()
		url, stop, err := serveNodeCounted(s, log, &onWire)
		if err != nil {
			return nil, err
		}
		defer stop()
		cfg.Nodes = append(cfg.Nodes, coordinator.NodeRef{Department: dept, URL: url, Token: tok})
		spec.Inputs = append(spec.Inputs, policy.Input{Dataset: d.Name, Key: "id_number"})
	}
	tok := randomToken()
	cfg.Users = []api.User{{Name: "bench", Role: api.RoleAnalyst, Department: "d0", TokenSHA256: api.HashToken(tok)}}
	store, err := boltstore.Open(filepath.Join(tmp, "coordinator.db"), boltstore.Options{})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	base, coord, wait, err := serveCoordinator(ctx, cfg, store, log, chunk)
	if err != nil {
		return nil, err
	}
	defer func() { cancel(); wait() }()
	c := client.New(base, tok)
	body, _ := json.Marshal(spec)

	// The limit, measured in the same run, before and after the job; the
	// faster of the two is kept, so a moment of load elsewhere on the
	// machine can only make the reported ratio smaller, never flatter it.
	rate := psi.ScalarMultRate(50000)
	start := time.Now()
	sub, err := c.Submit(ctx, body, "")
	if err != nil {
		return nil, err
	}
	j, err := c.Wait(ctx, sub.ID, 20*time.Millisecond, func(j *wire.Job) bool { return j.State.Settled() }, nil)
	if err != nil {
		return nil, err
	}
	secs := time.Since(start).Seconds()
	rate = max(rate, psi.ScalarMultRate(50000))
	if j.State != jobs.AwaitingReview {
		return nil, fmt.Errorf("bench job ended %s: %s", j.State, j.Error)
	}
	rv, err := reviewAsAdmin(coord, j.ID)
	if err != nil {
		return nil, err
	}
	ran := policy.PSIProtocolECDH
	if stored, err := coord.Store.Get(ctx, j.ID); err == nil && strings.HasSuffix(stored.Progress.Step, "(ot)") {
		ran = policy.PSIProtocolOT
	}
	elems := float64(parties * n)
	r := &BenchResult{Parties: parties, PerParty: n, Seconds: secs, ElementsPerS: elems / secs, ScalarMultsPS: rate,
		LimitPerS: rate / float64(parties), Count: rv, ExpectedCount: n / 2,
		Protocol: ran, WireBytes: onWire.Load(), WireBytesPerElement: float64(onWire.Load()) / elems}
	r.LimitRatio = r.ElementsPerS / r.LimitPerS
	return r, nil
}

// reviewAsAdmin reads the count from the stored review directly (the bench
// has no reviewer; it measures the protocol, not the review).
func reviewAsAdmin(c *coordinator.Coordinator, id string) (int, error) {
	j, err := c.Store.Get(context.Background(), id)
	if err != nil {
		return 0, err
	}
	var rv jobs.Review
	if err := json.Unmarshal(j.Review, &rv); err != nil {
		return 0, err
	}
	var res struct {
		Count *int `json:"count"`
	}
	if err := json.Unmarshal(rv.Result, &res); err != nil || res.Count == nil {
		return 0, fmt.Errorf("bench: no count in %s", rv.Result)
	}
	return *res.Count, nil
}

func writeBenchCSV(path string, party, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"id_number"})
	for i := 0; i < n; i++ {
		v := i
		if i >= n/2 {
			v = (party+1)*n + i
		}
		_ = w.Write([]string{benchID(v)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// serveNodeCounted is serveNode counting every byte its connections carry
// (read and written) into n: the bench's bytes on the wire.
func serveNodeCounted(s *node.Service, log *slog.Logger, n *atomic.Int64) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := nodehttp.New(s, nodehttp.Options{Logger: log}).Server("")
	go srv.Serve(&countingListener{Listener: ln, n: n})
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(b []byte) (int, error) {
	k, err := c.Conn.Read(b)
	c.n.Add(int64(k))
	return k, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	k, err := c.Conn.Write(b)
	c.n.Add(int64(k))
	return k, err
}
