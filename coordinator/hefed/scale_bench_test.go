package hefed

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unseen-data/unseen/policy"
)

// BenchmarkAggregateThreeSources runs an aggregate over three departments
// — one on PostgreSQL, one on MySQL/MariaDB, one CSV, each with its own
// value column name — at 10^6 rows each (UNSEEN_BENCH_ROWS overrides), and
// checks every iteration's result against the plaintext totals the
// databases compute themselves (and Go for the CSV file). It reports the
// rows aggregated per second and the process's peak resident memory
// (three nodes and the coordinator in one process).
//
//	UNSEEN_TEST_POSTGRES=… UNSEEN_TEST_MYSQL=… go test -run '^$' -bench AggregateThreeSources -benchtime 1x ./coordinator/hefed/
func BenchmarkAggregateThreeSources(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("UNSEEN_BENCH_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 100 {
			b.Fatalf("UNSEEN_BENCH_ROWS=%q: want a number ≥ 100", v)
		}
	}
	r := rand.New(rand.NewPCG(12, uint64(n)))
	tables := []*scaleTable{
		{name: "civil.allowance", value: "monthly_allowance_fen", backend: "postgres", rows: scaleRows(r, 0, n)},
		{name: "hrss.benefits", value: "allowance_fen", backend: "mysql", rows: scaleRows(r, n/2, n)},
		{name: "tax.income", value: "income_fen", backend: "csv", rows: scaleRows(r, 2*n, n)},
	}
	all := totals{}
	for _, tb := range tables {
		start := time.Now()
		for g, w := range tb.load(b) {
			all.add(g, w[0].Int64(), w[1], w[2])
		}
		b.Logf("%s: %d rows loaded on %s (%.1fs)", tb.name, n, tb.backend, time.Since(start).Seconds())
	}
	start := time.Now()
	c, _ := startScale(b, tables)
	b.Logf("nodes started (CSV validated, databases checked), key ceremony done (%.1fs)", time.Since(start).Seconds())
	agg := policy.Spec{Type: policy.Aggregate, Purpose: "bench", Stats: []string{"count", "sum", "mean", "variance"},
		GroupBy: &policy.ColumnRef{Column: "district"}}
	for _, tb := range tables {
		agg.Inputs = append(agg.Inputs, policy.Input{Dataset: tb.name, Value: tb.value})
	}
	req := policy.Requester{User: "alice", Department: "civil"}
	b.ResetTimer()
	for i := range b.N {
		got, err := c.Aggregate(context.Background(), JobRef{ID: fmt.Sprintf("bench-agg-%d", i), Attempt: 1, Spec: agg, Requester: req})
		if err != nil {
			b.Fatal(err)
		}
		requireTotals(b, "aggregate", all, got)
	}
	b.StopTimer()
	b.ReportMetric(float64(3*n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	if hwm := peakRSSMiB(); hwm > 0 {
		b.ReportMetric(hwm, "peak-rss-MiB")
	}
}

// peakRSSMiB is the process's peak resident set (Linux's VmHWM), or 0.
func peakRSSMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0
			}
			return kb / 1024
		}
	}
	return 0
}
