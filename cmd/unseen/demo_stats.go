package main

import (
	"context"
	"crypto/ed25519"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"

	"github.com/unseen-data/unseen/api/client"
	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/compute/idnum"
	"github.com/unseen-data/unseen/examples"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// demoK is the example datasets' min_count.
const demoK = 10

// consentStep shows the civil affairs data owner what is asked and has her
// consent, as `unseen consent list` and `unseen consent ID --approve` would.
func consentStep(ctx context.Context, say func(string, ...any), owner *client.Client, key ed25519.PrivateKey, j *wire.Job) {
	var needs []string
	if j.Decision != nil {
		needs = j.Decision.NeedsConsent
	}
	say("   cora (civil affairs data owner) is asked to consent: %s wants %v for %q (deadline %s)",
		j.Owner, needs, j.Purpose, j.ConsentDeadline.Format("2006-01-02"))
	ans := client.ConsentAnswer{Approve: true, Reason: "within the agreed purposes of the social assistance data-sharing agreement"}
	if _, err := owner.Consent(ctx, j.ID, ans, key); err != nil {
		say("   consent failed: %v", err)
		return
	}
	say("   cora consents, signed with her key (%s) → the job is queued", attest.Fingerprint(key.Public().(ed25519.PublicKey)))
}

// demoStats is a stats result reduced to what must match exactly.
type demoStats struct {
	Total  demoGroup            `json:"total"`
	Groups map[string]demoGroup `json:"groups,omitempty"`
}

type demoGroup struct {
	Suppressed bool              `json:"suppressed,omitempty"`
	Count      *int64            `json:"count,omitempty"`
	Sum        *int64            `json:"sum,omitempty"`
	Mean       string            `json:"mean,omitempty"`
	Variance   string            `json:"variance,omitempty"`
	Histogram  map[string]*int64 `json:"histogram,omitempty"`
}

// released stats, as the coordinator renders them.
type releasedStats struct {
	Count         *int64                    `json:"count"`
	Sum           *int64                    `json:"sum"`
	MeanExact     string                    `json:"mean_exact"`
	VarianceExact string                    `json:"variance_exact"`
	Histogram     map[string]*int64         `json:"histogram"`
	Suppressed    string                    `json:"suppressed"`
	Groups        map[string]*releasedStats `json:"groups"`
}

func (r *releasedStats) group() demoGroup {
	if r.Suppressed != "" {
		return demoGroup{Suppressed: true}
	}
	return demoGroup{Count: r.Count, Sum: r.Sum, Mean: r.MeanExact, Variance: r.VarianceExact, Histogram: r.Histogram}
}

func gotStats(r *wire.Result) (any, error) {
	var rs releasedStats
	if err := json.Unmarshal(r.Result, &rs); err != nil {
		return nil, err
	}
	out := &demoStats{Total: rs.group()}
	if rs.Groups != nil {
		out.Groups = map[string]demoGroup{}
		for g, v := range rs.Groups {
			out.Groups[g] = v.group()
		}
	}
	return out, nil
}

func (d *demoStats) print(say func(string, ...any), want *demoStats) {
	line := func(name string, g demoGroup) string {
		if g.Suppressed {
			return fmt.Sprintf("%-8s suppressed (fewer than k = %d rows; not rounded)", name, demoK)
		}
		s := name
		if g.Count != nil {
			s += fmt.Sprintf("  n=%d", *g.Count)
		}
		if g.Sum != nil {
			s += fmt.Sprintf("  Σ=%s yuan", yuan(*g.Sum))
		}
		if g.Mean != "" {
			s += "  mean=" + ratYuan(g.Mean)
		}
		if g.Variance != "" {
			s += "  sd=" + sdYuan(g.Variance)
		}
		if g.Histogram != nil {
			labels := make([]string, 0, len(g.Histogram))
			for l := range g.Histogram {
				labels = append(labels, l)
			}
			sort.Slice(labels, func(i, j int) bool { return bucketOrder(labels[i]) < bucketOrder(labels[j]) })
			var parts []string
			for _, l := range labels {
				if v := g.Histogram[l]; v == nil {
					parts = append(parts, l+":<k")
				} else {
					parts = append(parts, fmt.Sprintf("%s:%d", l, *v))
				}
			}
			s += "  histogram(fen) " + strings.Join(parts, " ")
		}
		return s
	}
	say("     %s", line("all", d.Total))
	names := make([]string, 0, len(d.Groups))
	for g := range d.Groups {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		say("     %s", line(g, d.Groups[g]))
	}
}

func yuan(fen int64) string { return fmt.Sprintf("%d.%02d", fen/100, abs(fen%100)) }

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func ratYuan(s string) string {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return s
	}
	return new(big.Rat).Quo(r, big.NewRat(100, 1)).FloatString(2) + " yuan"
}

// sdYuan shows a variance in fen² as a standard deviation in yuan.
func sdYuan(s string) string {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return s
	}
	f, _ := r.Float64()
	return fmt.Sprintf("%.2f yuan", math.Sqrt(f)/100)
}

// bucketOrder sorts "<a", "[a,b)", "≥b" by their lower edge.
func bucketOrder(l string) int64 {
	if strings.HasPrefix(l, "<") {
		return math.MinInt64
	}
	l = strings.TrimPrefix(strings.TrimPrefix(l, "["), "≥")
	n, _ := strconv.ParseInt(strings.SplitN(l, ",", 2)[0], 10, 64)
	return n
}

// csvRows reads an example file as maps, independently of the node code.
func csvRows(name string) ([]map[string]string, error) {
	f, err := examples.FS.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	head, err := r.Read()
	if err != nil {
		return nil, err
	}
	for i := range head {
		head[i] = strings.TrimPrefix(head[i], "\ufeff")
	}
	var out []map[string]string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		m := map[string]string{}
		for i, h := range head {
			m[h] = rec[i]
		}
		out = append(out, m)
	}
}

type acc struct {
	n, sum, sq *big.Int
	bins       []int64
	hist       []int64
}

func newAcc() *acc { return &acc{n: big.NewInt(0), sum: big.NewInt(0), sq: big.NewInt(0)} }

func (a *acc) add(v int64) {
	if a.bins != nil {
		b := 0
		for b < len(a.bins) && v >= a.bins[b] {
			b++
		}
		a.hist[b]++
	}
	a.n.Add(a.n, big.NewInt(1))
	x := big.NewInt(v)
	a.sum.Add(a.sum, x)
	a.sq.Add(a.sq, new(big.Int).Mul(x, x))
}

// group renders exact stats the way the spec asks for them.
func (a *acc) group(stats []string) demoGroup {
	n := a.n.Int64()
	if n < demoK {
		return demoGroup{Suppressed: true}
	}
	var g demoGroup
	has := func(s string) bool {
		for _, x := range stats {
			if x == s {
				return true
			}
		}
		return false
	}
	if has("count") {
		g.Count = &n
	}
	if has("sum") {
		s := a.sum.Int64()
		g.Sum = &s
	}
	mean := new(big.Rat).SetFrac(a.sum, a.n)
	if has("mean") {
		g.Mean = mean.RatString()
	}
	if has("variance") {
		v := new(big.Rat).Sub(new(big.Rat).SetFrac(a.sq, a.n), new(big.Rat).Mul(mean, mean))
		g.Variance = v.RatString()
	}
	if has("histogram") {
		g.Histogram = map[string]*int64{}
		small, smallest := 0, -1
		for _, c := range a.hist {
			if c > 0 && c < demoK {
				small++
			}
		}
		if small == 1 { // one alone would follow from the count: hide the next smallest
			for b, c := range a.hist {
				if c >= demoK && (smallest < 0 || c < a.hist[smallest]) {
					smallest = b
				}
			}
		}
		for b, c := range a.hist {
			var label string
			switch {
			case b == 0:
				label = fmt.Sprintf("<%d", a.bins[0])
			case b == len(a.bins):
				label = fmt.Sprintf("≥%d", a.bins[b-1])
			default:
				label = fmt.Sprintf("[%d,%d)", a.bins[b-1], a.bins[b])
			}
			if c > 0 && c < demoK || b == smallest {
				g.Histogram[label] = nil // suppressed
				continue
			}
			v := c
			g.Histogram[label] = &v
		}
	}
	return g
}

func specStats(file string) ([]string, error) {
	b, err := examples.FS.ReadFile(file)
	if err != nil {
		return nil, err
	}
	s, err := policy.DecodeSpec(b)
	if err != nil {
		return nil, err
	}
	return s.Stats, nil
}

func plaintextAggregate() (*demoStats, error) {
	b, err := examples.FS.ReadFile("jobs/allowance_by_district.json")
	if err != nil {
		return nil, err
	}
	var spec struct {
		Stats []string `json:"stats"`
		Bins  []int64  `json:"bins"`
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, err
	}
	stats := spec.Stats
	rows, err := csvRows("data/civil/minimum_living_allowance.csv")
	if err != nil {
		return nil, err
	}
	mk := func() *acc {
		a := newAcc()
		if len(spec.Bins) > 0 {
			a.bins, a.hist = spec.Bins, make([]int64, len(spec.Bins)+1)
		}
		return a
	}
	total, groups := mk(), map[string]*acc{}
	for _, r := range rows {
		v, err := strconv.ParseInt(r["monthly_allowance_fen"], 10, 64)
		if err != nil {
			return nil, err
		}
		total.add(v)
		if groups[r["district"]] == nil {
			groups[r["district"]] = mk()
		}
		groups[r["district"]].add(v)
	}
	return finish(stats, total, groups), nil
}

func plaintextIntersectionStats() (*demoStats, error) {
	stats, err := specStats("jobs/benefits_to_owners_on_allowance.json")
	if err != nil {
		return nil, err
	}
	owners, err := readIDs("data/housing/property_owners.csv")
	if err != nil {
		return nil, err
	}
	allowance, err := readIDs("data/civil/minimum_living_allowance.csv")
	if err != nil {
		return nil, err
	}
	rows, err := csvRows("data/hrss/unemployment_benefits.csv")
	if err != nil {
		return nil, err
	}
	total, groups := newAcc(), map[string]*acc{}
	for _, r := range rows {
		id, err := idnum.Normalise(r["id_number"])
		if err != nil || !owners[id] || !allowance[id] {
			continue
		}
		v, err := strconv.ParseInt(r["monthly_benefit_fen"], 10, 64)
		if err != nil {
			return nil, err
		}
		total.add(v)
		if groups[r["district"]] == nil {
			groups[r["district"]] = newAcc()
		}
		groups[r["district"]].add(v)
	}
	return finish(stats, total, groups), nil
}

func finish(stats []string, total *acc, groups map[string]*acc) *demoStats {
	d := &demoStats{Total: total.group(stats), Groups: map[string]demoGroup{}}
	small, smallest := 0, ""
	for g, a := range groups {
		d.Groups[g] = a.group(stats)
		if d.Groups[g].Suppressed {
			small++
		} else if smallest == "" || a.n.Cmp(groups[smallest].n) < 0 || a.n.Cmp(groups[smallest].n) == 0 && g < smallest {
			smallest = g
		}
	}
	// One group alone below k would follow from the total: the coordinator
	// hides the next smallest too, and so must the check.
	if small == 1 && smallest != "" {
		d.Groups[smallest] = demoGroup{Suppressed: true}
	}
	return d
}
