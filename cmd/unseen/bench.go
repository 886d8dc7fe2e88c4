package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/unseen-data/unseen/api/client"
	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/cmd/unseen/internal/benchfed"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/psi"
)

// BenchResult is one measured size of `unseen bench`.
type BenchResult struct {
	Parties  int    `json:"parties"`
	PerParty int    `json:"per_party"`
	Protocol string `json:"psi_protocol"` // the protocol the job ran: ecdh or ot
	Source   string `json:"source"`       // csv or postgres
	Store    string `json:"store"`        // the coordinator's: bolt or redis
	// SetupSeconds is writing the departments' data (not in Seconds);
	// Seconds is the job, from submission to its result awaiting review.
	SetupSeconds float64 `json:"setup_seconds"`
	Seconds      float64 `json:"seconds"`
	ElementsPerS float64 `json:"elements_per_s"`
	// The X25519 limit measured in the same run: all-core scalar
	// multiplications per second, over the parties (each entry costs one
	// per party), and the throughput's ratio to it.
	ScalarMultsPS float64 `json:"scalar_mults_per_s"`
	LimitPerS     float64 `json:"limit_elements_per_s"`
	LimitRatio    float64 `json:"limit_ratio"`
	// CPU: the job's ideal CPU (parties² × per_party multiplications at the
	// CPU cost of one, measured in the same run) over the CPU every process
	// spent (user + system, from wait4), which load elsewhere on the
	// machine cannot push above 1.
	CPUPerMultNS    float64 `json:"cpu_per_mult_ns"`
	IdealCPUSeconds float64 `json:"ideal_cpu_seconds"`
	CPUSeconds      float64 `json:"cpu_seconds"`
	CPURatio        float64 `json:"cpu_ratio"`
	// WireBytes is every byte the nodes' connections carried (both
	// directions, HTTP included: unseen_node_wire_bytes_total), and
	// WireBytesPerElement that over parties × per_party.
	WireBytes           int64   `json:"wire_bytes"`
	WireBytesPerElement float64 `json:"wire_bytes_per_element"`
	// Split is the nodes' time serving each step, summed over nodes (from
	// unseen_node_request_seconds): prepare reads the source and hashes
	// the IDs to the curve; blind is own and reblind (ECDH); ot the OT
	// steps; he the homomorphic ones. Other is the job's time outside the
	// busiest node's steps: transfer, the coordinator's join, scheduling.
	Split         map[string]float64 `json:"split_seconds"`
	Processes     []BenchProcess     `json:"processes"`
	Count         int                `json:"count"`
	ExpectedCount int                `json:"expected_count"`
}

// BenchProcess is one child process: a node or the coordinator.
type BenchProcess struct {
	Name         string  `json:"name"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"`
	CPUSeconds   float64 `json:"cpu_seconds"`
}

type benchOptions struct {
	parties, chunk     int
	protocol, source   string
	postgresDSN, redis string
	pprofDir           string
	pprofSeconds       int
}

func benchCmd() *cobra.Command {
	var sizes string
	var asJSON bool
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure end-to-end PSI on separate node and coordinator processes against this machine's X25519 limit",
		Long: `Lays out a federation on loopback — each department's data streamed to a
CSV file (or a PostgreSQL table), its node a separate 'unseen node' process,
the coordinator a separate 'unseen coordinator' process — runs a
psi_cardinality job through the HTTP API at each size, as an analyst and a
reviewer would, and prints: the throughput (every party's entries per
second) as a ratio to the X25519 limit measured in the same run; the CPU
ratio (the job's ideal CPU for its scalar multiplications over the CPU all
processes spent); the peak RSS and CPU of each process; the bytes on the
wire per element; and the nodes' time by step.`,
		Example: `  unseen bench --parties 2 --sizes 262144
  unseen bench --parties 3 --sizes 1000000 --json
  unseen bench --sizes 10000000 --source postgres --postgres-dsn postgres://postgres@127.0.0.1:5432/test
  unseen bench --sizes 1048576 --redis redis://127.0.0.1:6379/15 --pprof /tmp/profiles`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ns []int
			for _, s := range strings.Split(sizes, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil || n < 2 || n > benchfed.MaxSize {
					return fmt.Errorf("--sizes: %q is not a size from 2 to %d", s, benchfed.MaxSize)
				}
				ns = append(ns, n)
			}
			if o.parties < 2 || o.parties > 5 {
				return errors.New("--parties must be 2 to 5")
			}
			if o.protocol != "" && o.protocol != policy.PSIProtocolECDH && o.protocol != policy.PSIProtocolOT {
				return fmt.Errorf("--psi-protocol: %q is not ecdh or ot", o.protocol)
			}
			if o.source != "csv" && o.source != "postgres" {
				return fmt.Errorf("--source: %q is not csv or postgres", o.source)
			}
			if o.source == "postgres" && o.postgresDSN == "" {
				o.postgresDSN = os.Getenv("UNSEEN_TEST_POSTGRES")
				if o.postgresDSN == "" {
					o.postgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
				}
			}
			out := cmd.OutOrStdout()
			var results []BenchResult
			for _, n := range ns {
				r, err := runBench(cmd.Context(), cmd.ErrOrStderr(), o, n)
				if err != nil {
					return err
				}
				results = append(results, *r)
				if !asJSON {
					printBench(out, r)
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
	cmd.Flags().StringVar(&sizes, "sizes", "65536", "comma-separated list sizes per party, up to 10^8 (e.g. 65536,1048576)")
	cmd.Flags().IntVar(&o.parties, "parties", 2, "number of departments (2 to 5)")
	cmd.Flags().IntVar(&o.chunk, "chunk", 4096, "PSI chunk size (the coordinator's --psi-chunk)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print results as JSON")
	cmd.Flags().StringVar(&o.protocol, "psi-protocol", "", "PSI protocol of the job: ecdh or ot (default: the automatic rule, policy.ChoosePSIProtocol)")
	cmd.Flags().StringVar(&o.source, "source", "csv", "where the nodes read their data: csv (files) or postgres (a table per party, filled by COPY)")
	cmd.Flags().StringVar(&o.postgresDSN, "postgres-dsn", "", "PostgreSQL for --source postgres (default $UNSEEN_TEST_POSTGRES, else postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	cmd.Flags().StringVar(&o.redis, "redis", "", "run the coordinator on this Redis (redis://host:port/db) instead of its embedded store")
	cmd.Flags().StringVar(&o.pprofDir, "pprof", "", "save a CPU profile of every process into this folder (<process>.pprof)")
	cmd.Flags().IntVar(&o.pprofSeconds, "pprof-seconds", 30, "length of the CPU profiles of --pprof, from the job's submission")
	return cmd
}

func printBench(w io.Writer, r *BenchResult) {
	fmt.Fprintf(w, "%s, %d parties × %d (%s source, %s store; nodes and coordinator in separate processes)\n", r.Protocol, r.Parties, r.PerParty, r.Source, r.Store)
	fmt.Fprintf(w, "  job %.1f s (data written in %.1f s before it), %.0f elements/s\n", r.Seconds, r.SetupSeconds, r.ElementsPerS)
	fmt.Fprintf(w, "  limit %.0f elements/s (%.0f X25519/s all cores); limit-ratio %.2f\n", r.LimitPerS, r.ScalarMultsPS, r.LimitRatio)
	fmt.Fprintf(w, "  cpu-ratio %.2f: ideal %.1f s CPU (%d² × %d multiplications at %.0f ns) over %.1f s CPU spent by all processes\n",
		r.CPURatio, r.IdealCPUSeconds, r.Parties, r.PerParty, r.CPUPerMultNS, r.CPUSeconds)
	fmt.Fprintf(w, "  %.1f bytes on the wire per element (%d bytes)\n", r.WireBytesPerElement, r.WireBytes)
	fmt.Fprintf(w, "  time by step (s, summed over nodes):")
	for _, k := range []string{"prepare", "blind", "ot", "he", "other"} {
		if v, ok := r.Split[k]; ok {
			fmt.Fprintf(w, " %s %.2f", k, v)
		}
	}
	fmt.Fprintln(w)
	for _, p := range r.Processes {
		fmt.Fprintf(w, "  %-12s peak RSS %6.1f MiB, CPU %.1f s\n", p.Name, float64(p.PeakRSSBytes)/(1<<20), p.CPUSeconds)
	}
	fmt.Fprintf(w, "  count %d (expected %d)\n", r.Count, r.ExpectedCount)
}

func runBench(ctx context.Context, logw io.Writer, o benchOptions, n int) (res *BenchResult, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	exe, err := benchExecutable()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "unseen-bench-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			fmt.Fprintf(logw, "bench: the processes' logs are kept in %s\n", tmp)
			return
		}
		os.RemoveAll(tmp)
	}()
	setup := time.Now()
	fed, err := benchfed.Layout(ctx, benchfed.Options{Dir: tmp, Parties: o.parties, N: n, Source: o.source, PostgresDSN: o.postgresDSN, Redis: o.redis, Pprof: o.pprofDir != ""})
	if err != nil {
		return nil, err
	}
	setupSecs := time.Since(setup).Seconds()
	fed.Spec.PSIProtocol = o.protocol

	// The costs measured in the same run, before the children start.
	perMult := benchfed.CPUPerMult(20000)
	rate := psi.ScalarMultRate(50000)

	var procs []*benchfed.Proc
	defer func() {
		for _, p := range procs {
			if p.Usage == nil {
				_, _ = p.Stop(10 * time.Second)
			}
		}
	}()
	start := func(name string, args ...string) error {
		p, err := benchfed.Start(name, exe, args, []string{benchfed.DSNEnv + "=" + o.postgresDSN}, filepath.Join(tmp, name+".log"))
		if err == nil {
			procs = append(procs, p)
		}
		return err
	}
	for _, nd := range fed.Nodes {
		args := []string{"node", "--config", nd.Config}
		if nd.Pprof != "" {
			args = append(args, "--pprof", nd.Pprof)
		}
		if err := start(nd.Department, args...); err != nil {
			return nil, err
		}
	}
	// The coordinator starts once the nodes answer, so that its catalog
	// has their datasets.
	if err := waitReady(ctx, procs, fed, nil); err != nil {
		return nil, err
	}
	args := []string{"coordinator", "--config", fed.Coordinator, "--psi-chunk", strconv.Itoa(o.chunk)}
	if fed.Pprof != "" {
		args = append(args, "--pprof", fed.Pprof)
	}
	if err := start("coordinator", args...); err != nil {
		return nil, err
	}
	base := "http://" + fed.API
	analyst, reviewer := client.New(base, fed.Analyst), client.New(base, fed.Reviewer)
	if err := waitReady(ctx, procs, fed, analyst); err != nil {
		return nil, err
	}

	body, _ := json.Marshal(fed.Spec)
	began := time.Now()
	sub, err := analyst.Submit(ctx, body, "")
	if err != nil {
		return nil, err
	}
	var profiles sync.WaitGroup
	profErr := make(chan error, len(procs))
	if o.pprofDir != "" {
		if err := os.MkdirAll(o.pprofDir, 0o755); err != nil {
			return nil, err
		}
		addrs := map[string]string{"coordinator": fed.Pprof}
		for _, nd := range fed.Nodes {
			addrs[nd.Department] = nd.Pprof
		}
		for name, addr := range addrs {
			profiles.Go(func() { profErr <- saveProfile(ctx, addr, o.pprofSeconds, filepath.Join(o.pprofDir, name+".pprof")) })
		}
	}
	every := 20 * time.Millisecond
	if n > 1<<20 {
		every = 500 * time.Millisecond
	}
	j, err := analyst.Wait(ctx, sub.ID, every, func(j *wire.Job) bool { return j.State.Settled() }, nil)
	if err != nil {
		return nil, err
	}
	secs := time.Since(began).Seconds()
	if j.State != jobs.AwaitingReview {
		return nil, fmt.Errorf("bench job ended %s: %s", j.State, j.Error)
	}
	profiles.Wait()
	close(profErr)
	for err := range profErr {
		if err != nil {
			fmt.Fprintf(logw, "bench: %v\n", err)
		}
	}
	rv, err := reviewer.Review(ctx, j.ID)
	if err != nil {
		return nil, err
	}
	var result struct {
		Count *int `json:"count"`
	}
	if err := json.Unmarshal(rv.Review.Result, &result); err != nil || result.Count == nil {
		return nil, fmt.Errorf("bench: no count in %s", rv.Review.Result)
	}
	ran := policy.PSIProtocolECDH
	if strings.HasSuffix(j.Progress.Step, "(ot)") {
		ran = policy.PSIProtocolOT
	}

	// The nodes' figures, scraped before they stop.
	var wireBytes float64
	split := map[string]float64{}
	var busiest float64
	for _, nd := range fed.Nodes {
		m, err := benchfed.Scrape(ctx, "http://"+nd.Listen+"/metrics")
		if err != nil {
			return nil, err
		}
		wireBytes += m.Sum("unseen_node_wire_bytes_total")
		busy := m.Sum("unseen_node_request_seconds_sum")
		busiest = max(busiest, busy)
		sec := func(route string) float64 { return m.Sum("unseen_node_request_seconds_sum", `route="POST `+route) }
		split["prepare"] += sec("/v1/node/psi/prepare")
		split["blind"] += sec("/v1/node/psi/own") + sec("/v1/node/psi/reblind")
		split["ot"] += sec("/v1/node/psi/ot/")
		split["he"] += sec("/v1/node/he/")
	}
	split["other"] = max(0, secs-busiest)

	r := &BenchResult{Parties: o.parties, PerParty: n, Protocol: ran, Source: o.source, Store: "bolt", SetupSeconds: setupSecs, Seconds: secs,
		Count: *result.Count, ExpectedCount: n / 2, Split: split, WireBytes: int64(wireBytes)}
	if o.redis != "" {
		r.Store = "redis"
	}
	var cpu time.Duration
	for _, p := range procs {
		hwm, _ := p.PeakRSS() // read while it runs; wait4's ru_maxrss after
		u, err := p.Stop(30 * time.Second)
		if err != nil {
			return nil, err
		}
		cpu += u.CPU
		r.Processes = append(r.Processes, BenchProcess{Name: p.Name, PeakRSSBytes: max(hwm, u.MaxRSS), CPUSeconds: u.CPU.Seconds()})
	}
	// The limit is the highest of three estimates, so that load elsewhere
	// can only lower the ratio: the all-core rate sampled before and after
	// the job (wall clock: load lowers it), and the cores' rate at the
	// per-multiplication cost on the CPU clock (which load hardly moves).
	rate = max(rate, psi.ScalarMultRate(50000), float64(runtime.GOMAXPROCS(0))/perMult.Seconds())
	elems := float64(o.parties * n)
	r.ElementsPerS = elems / secs
	r.ScalarMultsPS, r.LimitPerS = rate, rate/float64(o.parties)
	r.LimitRatio = r.ElementsPerS / r.LimitPerS
	r.CPUPerMultNS = float64(perMult.Nanoseconds())
	r.IdealCPUSeconds = float64(o.parties*o.parties) * float64(n) * perMult.Seconds()
	r.CPUSeconds = cpu.Seconds()
	r.CPURatio = r.IdealCPUSeconds / r.CPUSeconds
	r.WireBytesPerElement = wireBytes / elems
	return r, nil
}

// waitReady waits until every node answers /healthz and, unless c is nil,
// the coordinator is ready with every node's dataset in its catalog; or
// fails when a child exits.
func waitReady(ctx context.Context, procs []*benchfed.Proc, fed *benchfed.Federation, c *client.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	urls := []string{}
	for _, nd := range fed.Nodes {
		urls = append(urls, "http://"+nd.Listen+"/healthz")
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, p := range procs {
			select {
			case <-p.Exited():
				return fmt.Errorf("bench: %s exited before the job (%v); see %s", p.Name, p.Err(), p.Log)
			default:
			}
		}
		for len(urls) > 0 && httpOK(ctx, urls[0]) {
			urls = urls[1:]
		}
		if len(urls) == 0 && c == nil {
			return nil
		}
		if len(urls) == 0 && coordinatorReady(ctx, c, len(fed.Nodes)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: the federation did not get ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func coordinatorReady(ctx context.Context, c *client.Client, datasets int) bool {
	if r, err := c.Ready(ctx); err != nil || !r.Ready {
		return false
	}
	ds, err := c.Datasets(ctx)
	return err == nil && len(ds.Datasets) >= datasets
}

func httpOK(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// saveProfile fetches a CPU profile of seconds from a child's pprof
// listener into path.
func saveProfile(ctx context.Context, addr string, seconds int, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", path, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// benchExecutable is the binary the children run: this one. os.Args[0]
// is tried first, as the shell resolved it, because a test harness
// (testscript) dispatches on the name it was invoked by, which
// os.Executable resolves away; then os.Executable.
func benchExecutable() (string, error) {
	if p, err := exec.LookPath(os.Args[0]); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs, nil
		}
	}
	return os.Executable()
}
