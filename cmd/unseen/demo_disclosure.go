package main

// The demo's disclosure-control part: a differentially private aggregate on
// the market department's dataset (which declares dp), printed with its
// noise and the ε it spent; and a differencing pair — the 82/81
// attack — flagged by the coordinator and refused by the node.

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"sort"
	"strings"
	"time"

	"github.com/unseen-data/unseen/api/client"
	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/compute/idnum"
	"github.com/unseen-data/unseen/examples"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/disclosure"
)

// DemoNoise is one noised quantity of the DP job.
type DemoNoise struct {
	Quantity    string `json:"quantity"`
	Sensitivity string `json:"sensitivity"`
	Epsilon     string `json:"epsilon"`
	Scale       string `json:"scale"`
}

// DemoDPGroup is one group of the DP job: released (noised) and exact (the
// plaintext the nodes summed: at most 2 rows per person, values clamped).
type DemoDPGroup struct {
	Count      *int64 `json:"count"`
	Sum        *int64 `json:"sum"`
	ExactCount int64  `json:"exact_count"`
	ExactSum   int64  `json:"exact_sum"`
}

// DemoDP is the demo's differentially private job.
type DemoDP struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Epsilon is the ε the job spent, charged to each DP dataset.
	Epsilon map[string]float64     `json:"epsilon"`
	Noise   []DemoNoise            `json:"noise"`
	Groups  map[string]DemoDPGroup `json:"groups"`
	Checks  []jobs.Check           `json:"checks"`
}

// DemoDifferencing is the demo's differencing pair.
type DemoDifferencing struct {
	First      string `json:"first"`
	FirstCount any    `json:"first_count"`
	Expected   int    `json:"expected"`
	Match      bool   `json:"match"`
	Second     string `json:"second"`
	// Similar is the coordinator's flag: the earlier jobs the second
	// nearly repeats.
	Similar []policy.SimilarJob `json:"similar"`
	State   string              `json:"state"`
	Error   string              `json:"error"`
}

// demoPeople are the demo's people, as runDemo made them.
type demoPeople struct {
	analyst, reviewer, owner *client.Client
	ritaKey, coraKey         ed25519.PrivateKey
}

// lifecycle submits a spec, waits until it settles (consenting on the way
// if asked) and returns the job as it settled.
func (p *demoPeople) lifecycle(ctx context.Context, say func(string, ...any), body []byte, idem string) (*wire.Job, error) {
	sub, err := p.analyst.Submit(ctx, body, idem)
	if err != nil {
		return nil, err
	}
	say("   alice submits          → job %s is %s", sub.ID, sub.State)
	last := jobs.State("")
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	return p.analyst.Wait(wctx, sub.ID, 50*time.Millisecond, func(j *wire.Job) bool { return j.State.Settled() }, func(j *wire.Job) {
		if j.State != last {
			last = j.State
			say("   state                  → %s", j.State)
			if j.State == jobs.AwaitingConsent {
				consentStep(ctx, say, p.owner, p.coraKey, j)
			}
		}
	})
}

// review shows the reviewer's checks (with what each protects against),
// approves and returns the released result.
func (p *demoPeople) review(ctx context.Context, say func(string, ...any), id string) (*wire.Review, *wire.Result, error) {
	rv, err := p.reviewer.Review(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	say("   rita reviews           → result %s", abbreviate(rv.Review.Result))
	printChecks(say, rv.Review.Checks)
	if _, err := p.reviewer.Approve(ctx, id, "demo: checks reviewed", p.ritaKey); err != nil {
		return nil, nil, err
	}
	res, err := p.analyst.Result(ctx, id)
	return rv, res, err
}

func printChecks(say func(string, ...any), cs []jobs.Check) {
	for _, c := range cs {
		mark := "pass"
		if !c.Passed {
			mark = "FLAG"
		}
		say("     check %-20s %s: %s", c.Name, mark, c.Detail)
		if c.Protects != "" {
			say("       protects against: %s", c.Protects)
		}
	}
}

// runDPJob runs the differentially private aggregate on market.
func runDPJob(ctx context.Context, say func(string, ...any), p *demoPeople) (*DemoDP, error) {
	const file = "jobs/market_capital_by_type_dp.json"
	body, err := fs.ReadFile(examples.FS, file)
	if err != nil {
		return nil, err
	}
	spec, err := policy.DecodeSpec(body)
	if err != nil {
		return nil, err
	}
	dsets, err := p.analyst.Datasets(ctx)
	if err != nil {
		return nil, err
	}
	cat := policy.Catalog{}
	for i := range dsets.Datasets {
		cat[dsets.Datasets[i].Name] = &dsets.Datasets[i]
	}
	ds := cat["market.business_owners"]
	if ds == nil || ds.DP == nil {
		return nil, errors.New("demo: market.business_owners declares no dp")
	}
	plan, vs := disclosure.NewPlan(spec, cat)
	if len(vs) > 0 {
		return nil, errors.New(policy.Decision{Violations: vs}.Error())
	}
	say("── %s, differentially private: %s", spec.Type, spec.Purpose)
	say("   market.business_owners declares dp: ε = %g per job (budget %g per analyst), value_bound %s yuan, max_rows_per_key %d",
		ds.DP.Epsilon, ds.DP.Budget, yuan(ds.DP.ValueBound), ds.RowsPerKey())
	out := &DemoDP{Groups: map[string]DemoDPGroup{}}
	for _, q := range plan.DP.Quantities() {
		n := DemoNoise{Quantity: q.Name, Sensitivity: q.Sensitivity.String(), Epsilon: q.Epsilon.FloatString(3), Scale: q.Scale.FloatString(0)}
		out.Noise = append(out.Noise, n)
		unit := ""
		if q.Name == "sum" {
			unit = " fen"
		}
		say("   noise for %-5s        → exact discrete Laplace, Δ = %s%s (one person), ε = %s, scale %s%s", q.Name, n.Sensitivity, unit, n.Epsilon, n.Scale, unit)
	}
	j, err := p.lifecycle(ctx, say, body, "demo-"+file)
	if err != nil {
		return nil, err
	}
	if j.State != jobs.AwaitingReview {
		return nil, fmt.Errorf("demo: DP job %s ended %s: %s", j.ID, j.State, j.Error)
	}
	out.ID = j.ID
	if j.Decision != nil {
		out.Epsilon = j.Decision.Epsilon
	}
	for name, e := range out.Epsilon {
		say("   ε spent                → %g of alice's budget %g on %s (charged once, at submission, whatever the groups)", e, cat[name].DP.Budget, name)
	}
	rv, res, err := p.review(ctx, say, j.ID)
	if err != nil {
		return nil, err
	}
	out.State, out.Checks = string(res.State), rv.Review.Checks
	var rel disclosure.StatsResult
	if err := json.Unmarshal(res.Result, &rel); err != nil {
		return nil, err
	}
	exact, err := plaintextMarket(ds)
	if err != nil {
		return nil, err
	}
	say("   released to alice, beside the exact totals (which nobody but the coordinator ever sees):")
	say("     %8s %8s %18s %18s  %s", "count", "exact", "capital (yuan)", "exact", "business type")
	names := make([]string, 0, len(exact))
	for g := range exact {
		names = append(names, g)
	}
	sort.Strings(names)
	for _, g := range names {
		e := exact[g]
		dg := DemoDPGroup{ExactCount: e[0], ExactSum: e[1]}
		if r := rel.Groups[g]; r != nil {
			dg.Count = r.Count
			if r.Sum != nil && r.Sum.IsInt64() {
				v := r.Sum.Int64()
				dg.Sum = &v
			}
		}
		out.Groups[g] = dg
		say("     %8s %8d %18s %18s  %s", ptr(dg.Count, func(n int64) string { return fmt.Sprint(n) }), e[0], ptr(dg.Sum, yuan), yuan(e[1]), g)
	}
	say("")
	return out, nil
}

func ptr(p *int64, f func(int64) string) string {
	if p == nil {
		return "—"
	}
	return f(*p)
}

// plaintextMarket is the exact count and capital per business type, as
// the market node computes them before encrypting: invalid ID numbers
// skipped, at most max_rows_per_key rows per person (the first in the
// file), values clamped to the value bound.
func plaintextMarket(ds *policy.Dataset) (map[string][2]int64, error) {
	rows, err := csvRows("data/market/business_owners.csv")
	if err != nil {
		return nil, err
	}
	seen := map[string]int{}
	out := map[string][2]int64{}
	for _, r := range rows {
		id, err := idnum.Normalise(r["id_number"])
		if err != nil {
			continue
		}
		if seen[id] >= ds.RowsPerKey() {
			continue
		}
		seen[id]++
		var v big.Int
		if _, ok := v.SetString(r["registered_capital_fen"], 10); !ok {
			return nil, fmt.Errorf("demo: bad capital %q", r["registered_capital_fen"])
		}
		x := min(max(v.Int64(), -ds.DP.ValueBound), ds.DP.ValueBound)
		t := out[r["business_type"]]
		t[0]++
		t[1] += x
		out[r["business_type"]] = t
	}
	return out, nil
}

// runDifferencing runs the attack 5: a count (82 benefit
// recipients in 天河区 above 1,500 yuan who own property), then the same
// count with one term added that removes one person. The coordinator flags
// the second as a near-duplicate of the first; the hrss node refuses it.
func runDifferencing(ctx context.Context, say func(string, ...any), p *demoPeople) (*DemoDifferencing, error) {
	const file = "jobs/tianhe_benefits_property.json"
	body, err := fs.ReadFile(examples.FS, file)
	if err != nil {
		return nil, err
	}
	spec, err := policy.DecodeSpec(body)
	if err != nil {
		return nil, err
	}
	say("── differencing: two nearly identical questions, subtracted (the issue's attack 5)")
	say("   1. %s", spec.Purpose)
	j, err := p.lifecycle(ctx, say, body, "demo-"+file)
	if err != nil {
		return nil, err
	}
	if j.State != jobs.AwaitingReview {
		return nil, fmt.Errorf("demo: job %s ended %s: %s", j.ID, j.State, j.Error)
	}
	_, res, err := p.review(ctx, say, j.ID)
	if err != nil {
		return nil, err
	}
	var got struct {
		Count *int `json:"count"`
	}
	if err := json.Unmarshal(res.Result, &got); err != nil || got.Count == nil {
		return nil, fmt.Errorf("demo: result has no count: %s", res.Result)
	}
	want, err := plaintextTianhe()
	if err != nil {
		return nil, err
	}
	out := &DemoDifferencing{First: j.ID, FirstCount: *got.Count, Expected: want, Match: *got.Count == want}
	say("   released to alice      → count %d; plaintext check → count %d   [%s]", *got.Count, want, map[bool]string{true: "MATCH", false: "MISMATCH"}[out.Match])

	second := *spec
	second.Inputs = append([]policy.Input(nil), spec.Inputs...)
	second.Inputs[0].Filter += " AND monthly_benefit_fen != 168900"
	b, _ := json.Marshal(second)
	say("   2. the same, with %q added to the hrss filter: 82 − 81 would say whether the one recipient it removes owns property", "AND monthly_benefit_fen != 168900")
	j2, err := p.lifecycle(ctx, say, b, "demo-differencing-second")
	if err != nil {
		return nil, err
	}
	out.Second, out.State, out.Error = j2.ID, string(j2.State), j2.Error
	if j2.Decision != nil {
		out.Similar = j2.Decision.Similar
	}
	for _, s := range out.Similar {
		say("   coordinator flags it   → near-duplicate of job %s: %s (the reviewer would see a failing differencing check)", s.Job, s.Why)
	}
	say("   node hrss refuses it   → %s: %s", j2.State, j2.Error)
	say("   (the node compares an IBLT sketch of each job's filtered input with those of the last 90 days; it says \"fewer than k\", never how many)")
	say("")
	if j2.State != jobs.Failed || !strings.Contains(j2.Error, "differencing") || len(out.Similar) == 0 {
		return out, fmt.Errorf("demo: the differencing job was not flagged and refused (state %s, similar %v): %s", j2.State, out.Similar, j2.Error)
	}
	return out, nil
}

// plaintextTianhe is the first differencing job's count, from the CSVs.
func plaintextTianhe() (int, error) {
	hrss, err := csvRows("data/hrss/unemployment_benefits.csv")
	if err != nil {
		return 0, err
	}
	owners, err := readIDs("data/housing/property_owners.csv")
	if err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	for _, r := range hrss {
		id, err := idnum.Normalise(r["id_number"])
		if err != nil || r["district"] != "天河区" {
			continue
		}
		var v big.Int
		if _, ok := v.SetString(r["monthly_benefit_fen"], 10); !ok || v.Int64() <= 150000 {
			continue
		}
		if owners[id] {
			seen[id] = true
		}
	}
	return len(seen), nil
}
