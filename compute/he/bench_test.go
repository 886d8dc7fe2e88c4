package he

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
)

// BenchmarkEncryptSums: one full ciphertext (8192 rows, range check, encode,
// public-key encryption) at the real Sums parameters.
func BenchmarkEncryptSums(b *testing.B) {
	ps := Sums()
	k := singleKey(ps)
	enc, _ := NewEncryptor(k.pk)
	r := rand.New(rand.NewPCG(1, 1))
	lim, _ := ps.InputLimit(1 << 22)
	v := randVec(r, ps.Slots(), lim)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := enc.Encrypt(v, 1<<22); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	perCT := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(perCT*1e3, "ms/ct")
	b.ReportMetric(float64(ps.Slots())/perCT/1e6, "Mrows/s")
	b.ReportMetric(perCT*float64(1<<20)/float64(ps.Slots()), "s/Mi-rows")
}

// encryptRows encrypts rows one per slot, spread over `workers` goroutines
// (one Encryptor ShallowCopy each).
func encryptRows(b *testing.B, enc *Encryptor, rows []int64, maxTerms, workers int) []*Ciphertext {
	slots := enc.ps.Slots()
	n := (len(rows) + slots - 1) / slots
	out := make([]*Ciphertext, n)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int, e *Encryptor) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				c, err := e.Encrypt(rows[i*slots:min((i+1)*slots, len(rows))], maxTerms)
				if err != nil {
					b.Error(err)
					return
				}
				out[i] = c
			}
		}(w, enc.ShallowCopy())
	}
	wg.Wait()
	return out
}

// BenchmarkAggregate2p20RowsX3Nodes: three nodes each hold 2^20 rows and
// encrypt them one row per slot (2^20/8192 = 128 ciphertexts per node, at
// Sums); the coordinator adds all 384 ciphertexts slot-wise into one (the
// released total is the sum of its slots). Nodes run one after another here
// (in production each is its own machine), each using all cores.
func BenchmarkAggregate2p20RowsX3Nodes(b *testing.B) {
	ps := Sums()
	k := singleKey(ps)
	enc, _ := NewEncryptor(k.pk)
	ev := NewEvaluator(ps)
	const nodes, rowsPerNode = 3, 1 << 20
	r := rand.New(rand.NewPCG(2, 2))
	lim, _ := ps.InputLimit(nodes * rowsPerNode)
	data := make([][]int64, nodes)
	var want int64
	for i := range data {
		data[i] = randVec(r, rowsPerNode, lim)
		for _, v := range data[i] {
			want += v
		}
	}
	workers := runtime.GOMAXPROCS(0)
	var encDur, addDur time.Duration
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		var all []*Ciphertext
		t0 := time.Now()
		for n := 0; n < nodes; n++ {
			all = append(all, encryptRows(b, enc, data[n], nodes*rowsPerNode, workers)...)
		}
		t1 := time.Now()
		sum, err := Sum(ev, all, workers)
		if err != nil {
			b.Fatal(err)
		}
		addDur += time.Since(t1)
		encDur += t1.Sub(t0)
		if it == 0 {
			b.StopTimer()
			if got := ps.TotalModT(k.slots(b, sum)); got != want {
				b.Fatalf("total %d, want %d", got, want)
			}
			if sum.Noise().Terms != uint64(len(all)) {
				b.Fatal("noise terms")
			}
			b.StartTimer()
		}
	}
	n := float64(b.N)
	b.ReportMetric(encDur.Seconds()/n/nodes, "s/node-encrypt-2^20")
	b.ReportMetric(addDur.Seconds()/n*1e3, "ms/coord-add-384ct")
	b.ReportMetric(float64(nodes*rowsPerNode)/((encDur+addDur).Seconds()/n)/1e6, "Mrows/s")
}
