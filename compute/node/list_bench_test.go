package node_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/idnum"
	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
)

// BenchmarkPrepareListMemory is the node's memory at government scale: one
// node whose dataset is a CSV file of 10^7 rows (UNSEEN_BENCH_LIST_ROWS
// overrides), 10^7 distinct IDs, starts (a validating pass over the file)
// and prepares a PSI list of every row (streamed from the file into
// psi.BuildList's external sort), then hands out the list's last chunk. It
// reports the process's peak resident memory over the node's start and
// prepare (Linux's VmHWM, reset after the file is written), the peak Go
// heap sampled during them, and their times. The goal is ≤ 512 MiB at
// 10^7, not growing with the rows.
//
//	go test ./compute/node/ -run '^$' -bench PrepareListMemory -benchtime 1x
func BenchmarkPrepareListMemory(b *testing.B) {
	n := 10_000_000
	if v := os.Getenv("UNSEEN_BENCH_LIST_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 10 {
			b.Fatalf("UNSEEN_BENCH_LIST_ROWS=%q: want a number ≥ 10", v)
		}
	}
	cfgs, _ := nodetest.Configs(b, map[string][]int{"hrss.benefits": {0}}, nil)
	cfg := cfgs["hrss"]
	file := filepath.Join(b.TempDir(), "big.csv")
	writeBigCSV(b, file, n)
	cfg.Datasets[0].File = file
	ctx := context.Background()
	for i := range b.N {
		runtime.GC()
		debug.FreeOSMemory()
		resetPeakRSS()
		stop := sampleHeap()
		start := time.Now()
		s, err := node.New(cfg, node.Options{Audit: &audit.MemLog{}})
		if err != nil {
			b.Fatal(err)
		}
		started := time.Since(start)
		c, _ := s.Authenticate(nodetest.Token, "bench")
		sp := policy.Spec{Type: policy.PSICardinality, Purpose: "memory", Inputs: []policy.Input{{Dataset: "hrss.benefits", Key: "id_number"}, {Dataset: "housing.owners", Key: "id_number"}}}
		h := nodeapi.Header{Job: fmt.Sprintf("mem-%d", i), SpecHash: sp.Hash(), Step: nodeapi.StepPrepare, Attempt: 1}
		start = time.Now()
		resp, err := s.Prepare(ctx, c, &nodeapi.PrepareRequest{Header: h, Spec: sp, Requester: policy.Requester{User: "alice", Department: "hrss"}, Parties: 2})
		if err != nil {
			b.Fatal(err)
		}
		prepared := time.Since(start)
		if resp.Len != n || resp.ListDigest == "" {
			b.Fatalf("prepared %d of %d IDs (digest %q)", resp.Len, n, resp.ListDigest)
		}
		h.Step = nodeapi.StepOwn
		last := min(nodeapi.MaxChunk, n)
		if _, err := s.Own(ctx, c, &nodeapi.OwnRequest{Header: h, Offset: n - last, N: last}); err != nil {
			b.Fatal(err)
		}
		heapPeak := stop()
		b.ReportMetric(peakRSSMiB(), "peak-rss-MiB")
		b.ReportMetric(float64(heapPeak)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(started.Seconds(), "start-s")
		b.ReportMetric(prepared.Seconds(), "prepare-s")
		s.Close()
	}
}

// writeBigCSV writes n rows with n distinct valid IDs, streamed.
func writeBigCSV(b *testing.B, file string, n int) {
	fh, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(fh, 1<<20)
	w.WriteString("id_number,district,amount\n")
	day0 := time.Date(1940, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		// 1000 sequence numbers a day over 60 years: 2·10^7 distinct IDs
		// per region.
		region := fmt.Sprintf("4401%02d", 6+i/20_000_000)
		id, err := idnum.Make(region, day0.AddDate(0, 0, (i/1000)%20_000), i%1000)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(w, "%s,%s,%d\n", id, nodetest.Districts[i%3], i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		b.Fatal(err)
	}
}

// resetPeakRSS resets Linux's VmHWM (clear_refs 5); elsewhere it does
// nothing.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSSMiB is the process's peak resident set since the last reset.
func peakRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// sampleHeap samples the Go heap in use every 10ms until stopped, and
// returns the largest sample.
func sampleHeap() func() uint64 {
	done := make(chan struct{})
	out := make(chan uint64)
	go func() {
		var peak uint64
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			select {
			case <-done:
				out <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); return <-out }
}
