package api

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/api/internal/contract"
	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/coordinator/hefed"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
)

// TestOpenAPIRoutes: every gin route is documented, and every documented
// operation is routed.
func TestOpenAPIRoutes(t *testing.T) {
	c := sharedContract(t)
	f := newFixture(t, nil, nil)
	var routed []string
	for _, r := range f.api.engine.Routes() {
		routed = append(routed, r.Method+" "+ginPath(r.Path))
		if strings.Contains(r.Path, "/*") {
			// A catch-all serves the empty name too: /console/ is
			// documented as a path of its own.
			routed = append(routed, r.Method+" "+r.Path[:strings.Index(r.Path, "*")])
		}
	}
	sort.Strings(routed)
	require.Equal(t, c.Operations(), routed, "api/openapi.yaml and the routes differ")
}

// ginPath writes gin's :id and *file as OpenAPI's {id} and {file}.
func ginPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") || strings.HasPrefix(s, "*") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// TestOpenAPIServed: the document is served as it is embedded.
func TestOpenAPIServed(t *testing.T) {
	f := newFixture(t, nil, nil)
	rec := f.do("GET", "/v1/openapi.yaml", "", "")
	requireStatus(t, rec, 200)
	require.Equal(t, string(OpenAPI), rec.Body.String())
	require.Contains(t, rec.Body.String(), "openapi: 3.1.0")
}

// TestContractBites: the check fails on a response the document does not
// describe — a field it does not list, a status it does not list — so the
// contract test would catch a drifting route.
func TestContractBites(t *testing.T) {
	f := newFixture(t, nil, nil)
	id := f.submit(alice, specPSI)
	for name, mutate := range map[string]func(string) string{
		"field dropped from Job": func(s string) string {
			return strings.Replace(s, "        attempt: {type: integer}\n        progress:", "        progress:", 1)
		},
		"status dropped from getJob": func(s string) string {
			return strings.Replace(s, `      operationId: getJob
      summary: A job's state, progress, history, policy decision and error.
      responses:
        "200":`, `      operationId: getJob
      summary: A job's state, progress, history, policy decision and error.
      responses:
        "201":`, 1)
		},
	} {
		t.Run(name, func(t *testing.T) {
			doc := mutate(string(OpenAPI))
			require.NotEqual(t, string(OpenAPI), doc, "the mutation must change the document")
			c, err := contract.Load([]byte(doc))
			require.NoError(t, err)
			req := httptest.NewRequest("GET", "/v1/jobs/"+id, nil)
			req.Header.Set("Authorization", bearer(alice))
			_, err = c.Serve(f.api.Handler(), req)
			require.Error(t, err)
		})
	}
}

// ---------------------------------------------------------------------------
// Every documented status of every operation, and every documented field,
// seen in a real response.
// ---------------------------------------------------------------------------

// switchCatalog fails while down is set.
type switchCatalog struct {
	cat  policy.Catalog
	down atomic.Bool
}

func (s *switchCatalog) Catalog(context.Context) (policy.Catalog, error) {
	if s.down.Load() {
		return nil, errors.New("no node answers")
	}
	return s.cat, nil
}

// downStore is the store with a switch: while down, the job store answers
// jobs.ErrUnavailable (as Redis gone away does).
type downStore struct {
	Store
	down *atomic.Bool
}

func (s downStore) err() error {
	if s.down.Load() {
		return jobs.ErrUnavailable
	}
	return nil
}

func (s downStore) Create(ctx context.Context, j *jobs.Job, k string) (*jobs.Job, bool, error) {
	if err := s.err(); err != nil {
		return nil, false, err
	}
	return s.Store.Create(ctx, j, k)
}

func (s downStore) Get(ctx context.Context, id string) (*jobs.Job, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.Get(ctx, id)
}

func (s downStore) List(ctx context.Context, f jobs.ListFilter) ([]*jobs.Job, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.List(ctx, f)
}

func (s downStore) Transition(ctx context.Context, id string, c jobs.Change) (*jobs.Job, error) {
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.Transition(ctx, id, c)
}

func (s downStore) Ping(ctx context.Context) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.Store.Ping(ctx)
}

// fakeKeys answers like the coordinator's key ceremony (its real Status
// type), or fails while failing is set.
type fakeKeys struct{ failing atomic.Bool }

func (k *fakeKeys) status() *hefed.Status {
	return &hefed.Status{Epoch: 1, Ceremony: "e1-test", Threshold: 2, Created: fixedClock{}.Now(), Params: []string{"sums", "squares"},
		Nodes: []hefed.NodeStatus{{Node: "hrss", InRoster: true, Reachable: true, HoldsShares: true}, {Node: "housing", InRoster: true, Error: "connection refused"}}}
}

func (k *fakeKeys) Init(context.Context, int) (any, error) {
	if k.failing.Load() {
		return nil, errors.New("node housing refused the roster")
	}
	return k.status(), nil
}

func (k *fakeKeys) Status(context.Context) (any, error) {
	if k.failing.Load() {
		return nil, errors.New("node housing unreachable")
	}
	return k.status(), nil
}

// permanent is a node's refusal (not worth retrying).
type permanent struct{ error }

func (permanent) Permanent() bool { return true }

// fakeDeliverer hands over the sealed list, or refuses (mode 1), or cannot
// reach the node (mode 2).
type fakeDeliverer struct {
	list []byte
	mode atomic.Int32
}

func (d *fakeDeliverer) Deliver(context.Context, *jobs.Job) ([]byte, error) {
	switch d.mode.Load() {
	case 1:
		return nil, permanent{errors.New("no valid approval")}
	case 2:
		return nil, errors.New("connection refused")
	}
	return d.list, nil
}

// auditSwitch fails reads of the chain while down.
type auditSwitch struct {
	audit.Log
	down atomic.Bool
}

func (a *auditSwitch) Entries(ctx context.Context, f audit.Filter) ([]audit.Entry, error) {
	if a.down.Load() {
		return nil, errors.New("disk gone")
	}
	return a.Log.Entries(ctx, f)
}

func (a *auditSwitch) All(ctx context.Context) ([]audit.Entry, error) {
	if a.down.Load() {
		return nil, errors.New("disk gone")
	}
	return a.Log.All(ctx)
}

func (a *auditSwitch) Head(ctx context.Context) (audit.Head, error) {
	return a.Log.(audit.HeadReader).Head(ctx)
}

const (
	dsCond = "hrss.allowance_cond" // conditional: olga (hrss) consents
	dsDP   = "tax.income"          // differential privacy and a rate limit of one job
)

func contractCatalog() policy.Catalog {
	cat := policy.Catalog(testCatalog())
	all := []policy.JobType{policy.PSICardinality, policy.PSIMembers, policy.IntersectionStats, policy.Aggregate}
	cat[dsCond] = &policy.Dataset{Name: dsCond, Description: "households on allowance", Classification: "important", Sharing: "conditional", JobTypes: all,
		Departments: []string{"hrss", "housing"}, MinCount: 10, MaxRowsPerKey: 1, PersonKey: "id_number",
		Columns: []policy.Column{idColumn()}}
	cat[dsDP] = &policy.Dataset{Name: dsDP, Classification: "core", Sharing: "open", JobTypes: all, MinCount: 10,
		DP:        &policy.DP{Epsilon: 0.5, Budget: 1, ValueBound: 1000, TotalBudget: 10},
		RateLimit: &policy.RateLimit{Jobs: 1, Per: time.Hour, TotalJobs: 5},
		Columns:   []policy.Column{idColumn()}}
	cat[dsPay] = &policy.Dataset{Name: dsPay, Classification: "important", Sharing: "open", JobTypes: all, MinCount: 10,
		MaxRows: 100000, Differencing: policy.DifferencingFlag,
		Columns: []policy.Column{idColumn(), {Name: "pay_fen", Kind: policy.KindInt, Uses: []policy.Use{policy.UseValue}}}}
	return cat
}

// dsPay is an aggregate input with its own value column's name.
const dsPay = "tax.pay"

// specPerInput sums each input's own value column.
const specPerInput = `{"type":"aggregate","purpose":"benefits and pay","inputs":[` +
	`{"dataset":"hrss.unemployment_benefits","value":"monthly_benefit_fen"},{"dataset":"tax.pay","value":"pay_fen"}],"stats":["count","sum"]}`

const (
	specCond = `{"type":"psi_cardinality","purpose":"allowance check","inputs":[` +
		`{"dataset":"housing.property_owners","key":"id_number"},{"dataset":"hrss.allowance_cond","key":"id_number"}]}`
	specDP = `{"type":"psi_cardinality","purpose":"income check","inputs":[` +
		`{"dataset":"housing.property_owners","key":"id_number"},{"dataset":"tax.income","key":"id_number"}]}`
	specBadColumn = `{"type":"psi_cardinality","purpose":"x","inputs":[` +
		`{"dataset":"hrss.unemployment_benefits","key":"nope"},{"dataset":"housing.property_owners","key":"id_number"}]}`
	specGrouped = `{"type":"intersection_stats","purpose":"per district","inputs":[` +
		`{"dataset":"hrss.unemployment_benefits","key":"id_number","filter":"monthly_benefit_fen > 0"},{"dataset":"housing.property_owners","key":"id_number"}],` +
		`"value":{"dataset":"hrss.unemployment_benefits","column":"monthly_benefit_fen"},"stats":["count","sum"],` +
		`"group_by":{"dataset":"hrss.unemployment_benefits","column":"district"}}`
)

// drive claims job id (which must be the only one queued) and moves it
// from running through the given changes.
func (f *fixture) drive(id string, changes ...jobs.Change) *jobs.Job {
	f.t.Helper()
	ctx := context.Background()
	l, err := f.store.Claim(ctx, "w1", 0)
	require.NoError(f.t, err)
	require.NotNil(f.t, l, "nothing queued")
	require.Equal(f.t, id, l.Job.ID, "another job was queued first")
	j := l.Job
	for _, c := range changes {
		c.From, c.Attempt, c.Actor, c.Role = j.State, j.Attempt, "worker:w1", "worker"
		if c.From == jobs.Running {
			c.Attempt = l.Attempt
		}
		j, err = f.store.Transition(ctx, id, c)
		require.NoError(f.t, err)
	}
	return j
}

func reviewJSON(t *testing.T, result string, suppressed ...string) []byte {
	b, err := json.Marshal(jobs.Review{Result: json.RawMessage(result), Suppressed: suppressed,
		Checks: []jobs.Check{{Name: "min_count", Passed: len(suppressed) == 0, Detail: "42 rows ≥ k = 10", Protects: "no released number describes fewer than k people"}}})
	require.NoError(t, err)
	return b
}

func TestOpenAPIEveryStatusAndField(t *testing.T) {
	c, err := contract.Load(OpenAPI)
	require.NoError(t, err)
	cat := &switchCatalog{cat: contractCatalog()}
	keys := &fakeKeys{}
	var down atomic.Bool
	sealed := []byte("sealed member list")
	sum := sha256.Sum256(sealed)
	deliver := &fakeDeliverer{list: sealed}
	var audits *auditSwitch
	f := newFixture(t, func(l audit.Log) audit.Log { audits = &auditSwitch{Log: l}; return audits }, func(cfg *Config) {
		cfg.Catalog = cat
		cfg.Keys = keys
		cfg.Deliverer = deliver
		cfg.Store = downStore{Store: cfg.Store, down: &down}
		cfg.Ready = func(context.Context) error { return nil }
	})
	f.contract = c
	noKeys := newFixture(t, nil, nil)
	noKeys.contract = c
	big := `{"reason":"` + strings.Repeat("x", 1<<20) + `"}`
	do := func(method, path, who, body string, want int, hdr ...string) *httptest.ResponseRecorder {
		t.Helper()
		auth := ""
		if who != "" {
			auth = bearer(who)
		}
		rec := f.do(method, path, auth, body, hdr...)
		require.Equal(t, want, rec.Code, "%s %s as %q: %s", method, path, who, rec.Body.String())
		return rec
	}
	outage := func(fn func()) {
		down.Store(true)
		defer down.Store(false)
		fn()
	}
	const unknown = "/v1/jobs/j_aaaaaaaaaaaaaaaaaaaaaaaaaa"

	// Ops, the console, the document.
	do("GET", "/healthz", "", "", 200)
	do("GET", "/readyz", "", "", 200)
	outage(func() { do("GET", "/readyz", "", "", 503) })
	do("GET", "/metrics", "", "", 200)
	do("GET", "/", "", "", 302)
	do("GET", "/console", "", "", 301)
	for _, file := range []string{"", "index.html", "app.js", "style.css", "icon.svg", "i18n.js"} {
		rec := do("GET", "/console/"+file, "", "", 200)
		require.Equal(t, ConsoleCSP, rec.Header().Get("Content-Security-Policy"))
	}
	do("GET", "/console/nope.txt", "", "", 404)
	do("GET", "/console/../api.go", "", "", 404)
	do("GET", "/v1/openapi.yaml", "", "", 200)

	// Every /v1 operation answers 401 without a token.
	for _, op := range c.Operations() {
		method, path, _ := strings.Cut(op, " ")
		if !strings.HasPrefix(path, "/v1/") || path == "/v1/openapi.yaml" {
			continue
		}
		path = strings.ReplaceAll(path, "{id}", "j_aaaaaaaaaaaaaaaaaaaaaaaaaa")
		rec := do(method, path, "", "", 401)
		require.NotEmpty(t, rec.Header().Get("WWW-Authenticate"))
	}
	do("GET", "/v1/me", carol, "", 200)
	do("GET", "/v1/me", rita, "", 200)

	// Submission.
	psi := decodeJSON[wire.Submitted](t, do("POST", "/v1/jobs", alice, specPSI, 202, "Idempotency-Key", "k1"))
	do("POST", "/v1/jobs", alice, specPSI, 200, "Idempotency-Key", "k1")
	do("POST", "/v1/jobs", alice, specPSIFiltered, 422, "Idempotency-Key", "k1")
	do("POST", "/v1/jobs", alice, `{"type":`, 400)
	require.Equal(t, "policy_violation", errBody(t, do("POST", "/v1/jobs", alice, specBadColumn, 403)).Code)
	do("POST", "/v1/jobs", rita, specPSI, 403)
	do("POST", "/v1/jobs", alice, `{"purpose":"`+strings.Repeat("x", policy.MaxSpecBytes)+`"}`, 413)
	do("POST", "/v1/jobs", bob, specDP, 202)
	require.Equal(t, "limit_exceeded", errBody(t, do("POST", "/v1/jobs", bob, specDP, 429)).Code)
	cat.down.Store(true)
	do("POST", "/v1/jobs", alice, specPSIFiltered, 503)
	do("GET", "/v1/datasets", alice, "", 503)
	cat.down.Store(false)
	do("GET", "/v1/datasets", alice, "", 200)
	outage(func() { do("POST", "/v1/jobs", alice, specPSIFiltered, 503) })

	// Lists and one job.
	do("GET", "/v1/jobs", alice, "", 200)
	do("GET", "/v1/jobs?state=bogus", alice, "", 400)
	do("GET", "/v1/jobs?state=queued", rita, "", 403)
	outage(func() { do("GET", "/v1/jobs", alice, "", 503) })
	do("GET", "/v1/jobs/"+psi.ID, alice, "", 200)
	do("GET", unknown, alice, "", 404)
	outage(func() { do("GET", "/v1/jobs/"+psi.ID, alice, "", 503) })

	// The DP job (queued first) runs to a retryable state (what it waits
	// for), then dead letter: the admin requeues it.
	dp := f.allJobs()
	var dpID string
	for _, j := range dp {
		if j.Owner == bob {
			dpID = j.ID
		}
	}
	// Claim order is submission order: the psi job first.
	f.drive(psi.ID, jobs.Change{To: jobs.AwaitingReview, Review: reviewJSON(t, `{"count":42}`)})
	f.drive(dpID, jobs.Change{To: jobs.Retryable, RetryAt: fixedClock{}.Now().Add(time.Minute), Waiting: "node tax unreachable (connection refused); retry 1 of 11"})
	retryable := decodeJSON[wire.Job](t, do("GET", "/v1/jobs/"+dpID, bob, "", 200))
	require.NotEmpty(t, retryable.Waiting)
	_, err = f.store.Transition(context.Background(), dpID, jobs.Change{From: jobs.Retryable, Attempt: retryable.Attempt, To: jobs.Queued, Actor: "scheduler", Role: "system"})
	require.NoError(t, err)
	f.drive(dpID, jobs.Change{To: jobs.DeadLetter, Error: "node tax unreachable 12 times"})
	do("POST", "/v1/jobs/"+dpID+"/retry", adam, `{`, 400)
	do("POST", "/v1/jobs/"+dpID+"/retry", adam, big, 413)
	do("POST", "/v1/jobs/"+dpID+"/retry", alice, `{}`, 403)
	do("POST", unknown+"/retry", adam, `{}`, 404)
	outage(func() { do("POST", "/v1/jobs/"+dpID+"/retry", adam, `{}`, 503) })
	do("POST", "/v1/jobs/"+dpID+"/retry", adam, `{"reason":"node tax is back"}`, 200)
	do("POST", "/v1/jobs/"+dpID+"/retry", adam, `{}`, 409)
	// Failed, with its error.
	f.drive(dpID, jobs.Change{To: jobs.Failed, Error: "node tax refused: below k"})
	do("GET", "/v1/jobs/"+dpID, bob, "", 200)

	// Review and approval of the psi job.
	do("GET", "/v1/jobs/"+psi.ID+"/review", rita, "", 200)
	do("GET", "/v1/jobs/"+psi.ID+"/review", alice, "", 403)
	do("GET", unknown+"/review", rita, "", 404)
	outage(func() { do("GET", "/v1/jobs/"+psi.ID+"/review", rita, "", 503) })
	do("POST", "/v1/jobs/"+psi.ID+"/approve", rita, `{"comment":"fine"}`, 400)
	do("POST", "/v1/jobs/"+psi.ID+"/approve", rita, big, 413)
	wrong := f.approval(psi.ID, rita)
	wrong.Result = sha256.Sum256([]byte("another result"))
	do("POST", "/v1/jobs/"+psi.ID+"/approve", rita, signedApproveBody(t, testKey(rita), wrong, ""), 403)
	do("POST", unknown+"/approve", rita, f.approveBody(psi.ID, rita, ""), 404)
	do("POST", "/v1/jobs/"+psi.ID+"/reject", rita, `{}`, 400)
	do("POST", "/v1/jobs/"+psi.ID+"/reject", rita, big, 413)
	do("POST", "/v1/jobs/"+psi.ID+"/reject", alice, `{"reason":"x"}`, 403)
	do("POST", unknown+"/reject", rita, `{"reason":"x"}`, 404)
	outage(func() { do("POST", "/v1/jobs/"+psi.ID+"/reject", rita, `{"reason":"x"}`, 503) })
	outage(func() { do("POST", "/v1/jobs/"+psi.ID+"/approve", rita, f.approveBody(psi.ID, rita, ""), 503) })
	do("GET", "/v1/jobs/"+psi.ID+"/result", alice, "", 409)
	do("POST", "/v1/jobs/"+psi.ID+"/approve", rita, f.approveBody(psi.ID, rita, "checks fine"), 200)
	do("POST", "/v1/jobs/"+psi.ID+"/approve", rita, f.approveBody(psi.ID, rita, ""), 409)
	do("POST", "/v1/jobs/"+psi.ID+"/reject", rita, `{"reason":"late"}`, 409)
	do("GET", "/v1/jobs/"+psi.ID+"/review", rita, "", 409)
	do("GET", "/v1/jobs/"+psi.ID+"/result", alice, "", 200)
	do("GET", "/v1/jobs/"+psi.ID+"/result", rita, "", 403)
	do("GET", unknown+"/result", alice, "", 404)
	outage(func() { do("GET", "/v1/jobs/"+psi.ID+"/result", alice, "", 503) })
	do("GET", "/v1/jobs/"+psi.ID, alice, "", 200) // with its signed approval

	// Cancel (a job that has started: its progress shows).
	grouped := f.submit(alice, specGrouped)
	running := f.drive(grouped)
	require.NoError(t, f.store.Progress(context.Background(), grouped, running.Attempt, jobs.Progress{Done: 3, Total: 8, Step: "psi"}))
	require.Equal(t, "psi", decodeJSON[wire.Job](t, do("GET", "/v1/jobs/"+grouped, alice, "", 200)).Progress.Step)
	do("POST", "/v1/jobs/"+grouped+"/cancel", alice, `{`, 400)
	do("POST", "/v1/jobs/"+grouped+"/cancel", alice, big, 413)
	do("POST", "/v1/jobs/"+grouped+"/cancel", rita, `{}`, 403)
	do("POST", unknown+"/cancel", alice, `{}`, 404)
	outage(func() { do("POST", "/v1/jobs/"+grouped+"/cancel", alice, `{}`, 503) })
	do("POST", "/v1/jobs/"+psi.ID+"/cancel", alice, `{}`, 409)
	do("POST", "/v1/jobs/"+grouped+"/cancel", alice, `{"reason":"asked the wrong question"}`, 200)

	// A histogram (aggregate), queued.
	hist := f.submit(alice, `{"type":"aggregate","purpose":"benefit brackets","inputs":[{"dataset":"hrss.unemployment_benefits"}],`+
		`"value":{"dataset":"hrss.unemployment_benefits","column":"monthly_benefit_fen"},"stats":["count","histogram"],"bins":[100000,150000]}`)
	require.Equal(t, []int64{100000, 150000}, decodeJSON[wire.Job](t, do("GET", "/v1/jobs/"+hist, alice, "", 200)).Spec.Bins)
	do("POST", "/v1/jobs/"+hist+"/cancel", alice, `{}`, 200)

	// A grouped result with a suppressed group, rejected with a reason.
	grouped = f.submit(alice, strings.Replace(specGrouped, "per district", "per district, again", 1))
	f.drive(grouped, jobs.Change{To: jobs.AwaitingReview, Review: reviewJSON(t, `{"count":42,"sum":4200,"groups":{"天河区":{"count":40,"sum":4000},"越秀区":{"suppressed":"fewer than k = 10 rows"}}}`, "groups.越秀区")})
	do("GET", "/v1/jobs/"+grouped+"/review", rita, "", 200)
	do("POST", "/v1/jobs/"+grouped+"/reject", rita, `{"reason":"purpose too broad"}`, 200)

	// A stored review that is not a review: 500, for review and approve.
	broken := f.submit(alice, strings.Replace(specGrouped, "per district", "per district, broken", 1))
	f.drive(broken, jobs.Change{To: jobs.AwaitingReview, Review: []byte(`{"checks":[]}`)})
	do("GET", "/v1/jobs/"+broken+"/review", rita, "", 500)
	do("POST", "/v1/jobs/"+broken+"/approve", rita, f.approveBody(psi.ID, rita, ""), 500)

	// psi_members: the review names the analyst's key; the sealed list is
	// fetched from the node after release (or refused, or unreachable).
	members := f.submit(carol, specMembers)
	f.drive(members, jobs.Change{To: jobs.AwaitingReview, Review: reviewJSON(t, fmt.Sprintf(`{"count":3,"sealed_sha256":"%x"}`, sum))})
	rv := decodeJSON[wire.Review](t, do("GET", "/v1/jobs/"+members+"/review", rita, "", 200))
	require.NotEmpty(t, rv.RecipientFingerprint)
	do("POST", "/v1/jobs/"+members+"/approve", rita, f.approveBody(members, rita, ""), 200)
	deliver.mode.Store(1)
	do("GET", "/v1/jobs/"+members+"/result", carol, "", 502)
	deliver.mode.Store(2)
	do("GET", "/v1/jobs/"+members+"/result", carol, "", 503)
	deliver.mode.Store(0)
	res := decodeJSON[wire.Result](t, do("GET", "/v1/jobs/"+members+"/result", carol, "", 200))
	require.Equal(t, sealed, res.SealedMembers)
	// Released without a signed approval (as an older coordinator did):
	// the node would hand nothing over, so 500.
	unsigned := f.submit(carol, strings.Replace(specMembers, "which of ours", "which of ours, unsigned", 1))
	j := f.drive(unsigned, jobs.Change{To: jobs.AwaitingReview, Review: reviewJSON(t, `{"count":3}`)})
	_, err = f.store.Transition(context.Background(), unsigned, jobs.Change{From: jobs.AwaitingReview, Attempt: j.Attempt, To: jobs.Released, Result: []byte(`{"count":3}`), Actor: rita, Role: "reviewer", Reviewer: rita})
	require.NoError(t, err)
	do("GET", "/v1/jobs/"+unsigned+"/result", carol, "", 500)

	// Consent: a conditional dataset of olga's department.
	cond := decodeJSON[wire.Submitted](t, do("POST", "/v1/jobs", bob, specCond, 202))
	require.Equal(t, jobs.AwaitingConsent, cond.State)
	do("GET", "/v1/jobs", olga, "", 200)
	do("GET", "/v1/jobs/"+cond.ID, olga, "", 200)
	do("POST", "/v1/jobs/"+cond.ID+"/consent", olga, `{"approve":true,"refuse":true}`, 400)
	do("POST", "/v1/jobs/"+cond.ID+"/consent", olga, big, 413)
	do("POST", "/v1/jobs/"+cond.ID+"/consent", alice, `{"refuse":true,"reason":"x"}`, 403)
	do("POST", unknown+"/consent", olga, `{"refuse":true,"reason":"x"}`, 404)
	until := fixedClock{}.Now().Add(30 * 24 * time.Hour)
	outage(func() {
		do("POST", "/v1/jobs/"+cond.ID+"/consent", olga, f.consentBody(cond.ID, olga, dsCond, true, "within our agreement", until), 503)
	})
	do("POST", "/v1/jobs/"+cond.ID+"/consent", olga, f.consentBody(cond.ID, olga, dsCond, true, "within our agreement", until), 200)
	do("GET", "/v1/jobs/"+cond.ID, bob, "", 200) // with the signed consent
	do("POST", "/v1/jobs/"+cond.ID+"/consent", olga, f.consentBody(cond.ID, olga, dsCond, true, "again", until), 409)

	// Keys.
	do("POST", "/v1/keys/init", adam, `{"threshold":2}`, 200)
	do("POST", "/v1/keys/init", adam, `{"threshold":0}`, 400)
	do("POST", "/v1/keys/init", adam, `{"threshold":"`+strings.Repeat("9", 1<<20)+`"}`, 413)
	do("POST", "/v1/keys/init", alice, `{"threshold":2}`, 403)
	do("GET", "/v1/keys", audra, "", 200)
	do("GET", "/v1/keys", alice, "", 403)
	keys.failing.Store(true)
	do("POST", "/v1/keys/init", adam, `{"threshold":2}`, 502)
	do("GET", "/v1/keys", adam, "", 502)
	keys.failing.Store(false)
	f.failAudit(errors.New("disk full"))
	do("POST", "/v1/keys/init", adam, `{"threshold":2}`, 503)
	f.failAudit(nil)
	for _, r := range []struct{ method, path, body string }{{"POST", "/v1/keys/init", `{"threshold":2}`}, {"GET", "/v1/keys", ""}} {
		rec := noKeys.do(r.method, r.path, bearer(adam), r.body)
		require.Equal(t, 501, rec.Code, rec.Body.String())
	}

	// Audit and lineage.
	do("GET", "/v1/audit?job="+psi.ID, audra, "", 200)
	do("GET", "/v1/audit?limit=0", audra, "", 400)
	do("GET", "/v1/audit", alice, "", 403)
	do("GET", "/v1/audit/verify", audra, "", 200)
	do("GET", "/v1/audit/verify", alice, "", 403)
	l := decodeJSON[wire.Lineage](t, do("GET", "/v1/lineage?dataset="+dsCond, olga, "", 200))
	require.Len(t, l.Jobs, 1)
	require.Equal(t, cond.ID, l.Jobs[0].Job)
	require.Equal(t, bob, l.Jobs[0].Requester)
	require.Equal(t, []string{"id_number"}, l.Jobs[0].Columns)
	do("GET", "/v1/lineage?dataset="+dsOwners, audra, "", 200)
	do("GET", "/v1/lineage?dataset="+dsOwners, olga, "", 403)
	do("GET", "/v1/lineage?dataset=nope", olga, "", 400)
	do("GET", "/v1/lineage?dataset="+dsCond, alice, "", 403)
	audits.down.Store(true)
	do("GET", "/v1/audit", audra, "", 503)
	do("GET", "/v1/audit/verify", audra, "", 503)
	do("GET", "/v1/lineage?dataset="+dsCond, olga, "", 503)
	audits.down.Store(false)
	// A chain that does not verify: 200 with ok false and the error.
	tl := &tamperLog{}
	tf := newFixture(t, func(l audit.Log) audit.Log { tl.Log = l; return tl }, nil)
	tf.contract = c
	tf.submit(alice, specPSI)
	tf.submit(alice, specPSIFiltered)
	tl.editSecond = true
	v := decodeJSON[wire.Verify](t, tf.do("GET", "/v1/audit/verify", bearer(audra), ""))
	require.False(t, v.OK)

	// Every documented status was answered by some request above.
	seen := c.Seen()
	var missing []string
	for _, d := range c.Documented() {
		if !seen[d] {
			missing = append(missing, d)
		}
	}
	require.Empty(t, missing, "documented statuses no request produced")
	t.Logf("%d documented (operation, status) pairs, each answered by a real response", len(c.Documented()))

	// A near-duplicate of an earlier spec of alice's (flagged for the
	// reviewer), and an aggregate naming each input's value column.
	sim := decodeJSON[wire.Submitted](t, do("POST", "/v1/jobs", alice, specPSIFiltered, 202))
	require.Contains(t, do("GET", "/v1/jobs/"+sim.ID, alice, "", 200).Body.String(), `"similar"`)
	agg := decodeJSON[wire.Submitted](t, do("POST", "/v1/jobs", alice, specPerInput, 202))
	require.Contains(t, do("GET", "/v1/jobs/"+agg.ID, alice, "", 200).Body.String(), `"value":"pay_fen"`)
	require.Contains(t, do("GET", "/v1/datasets", alice, "", 200).Body.String(), `"differencing":"flag"`)

	// Every documented response field was in some answer.
	exempt := map[string]string{
		"PolicyDecision.violations": "a stored job's decision allowed it: refused jobs are not stored (their violations are in the 403 error)",
	}
	fields := c.Fields()
	missing = nil
	for fld := range c.ResponseFields() {
		if !fields[fld] && exempt[fld] == "" {
			missing = append(missing, fld)
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "documented response fields no answer held")
}
