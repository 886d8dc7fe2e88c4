package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/api/internal/contract"
	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/boltstore"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/psi/delivery"
)

// ---------------------------------------------------------------------------
// Fixture: the real handler over the embedded store and a static catalog.
// ---------------------------------------------------------------------------

// fixedClock stamps everything with one instant (nothing here ages leases).
type fixedClock struct{}

func (fixedClock) Now() time.Time { return time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC) }

// Test users, one token each ("tok-" + name).
const (
	alice = "alice" // analyst, hrss, no public key
	bob   = "bob"   // analyst, housing
	carol = "carol" // analyst, hrss, with a public key (psi_members)
	rita  = "rita"  // reviewer
	ray   = "ray"   // reviewer
	audra = "audra" // auditor
	adam  = "adam"  // admin
	olga  = "olga"  // data owner, hrss
	oscar = "oscar" // data owner, tax (owns nothing any job here touches)
)

const (
	dsBenefits = "hrss.unemployment_benefits"
	dsOwners   = "housing.property_owners"
	dsClosed   = "police.records"
)

func token(name string) string  { return "tok-" + name }
func bearer(name string) string { return "Bearer " + token(name) }

// testKey is name's signing key (deterministic, for tests only).
func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("unseen api test signing key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func testUsers(t *testing.T) []User {
	pub, _, err := delivery.GenerateKey()
	require.NoError(t, err)
	mk := func(name string, role Role, dept string) User {
		u := User{Name: name, Role: role, Department: dept, TokenSHA256: HashToken(token(name))}
		if role.Signs() {
			u.SigningKey = attest.FormatPublicKey(testKey(name).Public().(ed25519.PublicKey))
		}
		return u
	}
	c := mk(carol, RoleAnalyst, "hrss")
	c.PublicKey = base64.StdEncoding.EncodeToString(pub)
	return []User{
		mk(alice, RoleAnalyst, "hrss"),
		mk(bob, RoleAnalyst, "housing"),
		c,
		mk(rita, RoleReviewer, "security"),
		mk(ray, RoleReviewer, "security"),
		mk(audra, RoleAuditor, "audit"),
		mk(adam, RoleAdmin, "it"),
		mk(olga, RoleDataOwner, "hrss"),
		mk(oscar, RoleDataOwner, "tax"),
	}
}

func idColumn() policy.Column {
	return policy.Column{Name: "id_number", Kind: policy.KindID, PII: true, Uses: []policy.Use{policy.UseKey}}
}

func testCatalog() StaticCatalog {
	all := []policy.JobType{policy.PSICardinality, policy.PSIMembers, policy.IntersectionStats, policy.Aggregate}
	return StaticCatalog{
		dsBenefits: {
			Name: dsBenefits, Classification: "important", Sharing: "open", JobTypes: all,
			Columns: []policy.Column{
				idColumn(),
				{Name: "district", Kind: policy.KindString, Uses: []policy.Use{policy.UseFilter, policy.UseGroupBy}},
				{Name: "monthly_benefit_fen", Kind: policy.KindInt, Uses: []policy.Use{policy.UseValue, policy.UseFilter}},
			},
		},
		dsOwners: {
			Name: dsOwners, Classification: "important", Sharing: "open", JobTypes: all,
			Columns: []policy.Column{idColumn(), {Name: "district", Kind: policy.KindString, Uses: []policy.Use{policy.UseFilter}}},
		},
		dsClosed: {
			Name: dsClosed, Classification: "core", Sharing: "closed", JobTypes: all,
			Columns: []policy.Column{idColumn()},
		},
	}
}

// Job specs used throughout.
const (
	specPSI = `{"type":"psi_cardinality","purpose":"eligibility check","inputs":[` +
		`{"dataset":"hrss.unemployment_benefits","key":"id_number"},` +
		`{"dataset":"housing.property_owners","key":"id_number"}]}`
	specPSIFiltered = `{"type":"psi_cardinality","purpose":"eligibility check","inputs":[` +
		`{"dataset":"hrss.unemployment_benefits","key":"id_number","filter":"district = '天河区'"},` +
		`{"dataset":"housing.property_owners","key":"id_number"}]}`
	specMembers = `{"type":"psi_members","purpose":"which of ours own property","inputs":[` +
		`{"dataset":"hrss.unemployment_benefits","key":"id_number"},` +
		`{"dataset":"housing.property_owners","key":"id_number"}]}`
)

type fixture struct {
	t   *testing.T
	api *API
	// contract checks every response of do against api/openapi.yaml
	// (openapi_test.go); a test may give the fixture its own, to see what
	// its traffic covered.
	contract *contract.Contract
	store    *boltstore.Store
	log      audit.Log // the audit log as the API sees it
	fault    atomic.Pointer[error]
}

// failAudit makes every audit append fail with err (nil: succeed again), as
// a full disk would: the change the entry is for is not made either.
func (f *fixture) failAudit(err error) {
	if err == nil {
		f.fault.Store(nil)
		return
	}
	f.fault.Store(&err)
}

// viewedStore is the embedded store with its audit log seen through a
// wrapper (tests of what the API does with a chain that does not verify).
type viewedStore struct {
	*boltstore.Store
	log audit.Log
}

func (s viewedStore) Audit() audit.Log { return s.log }

// openStore opens the embedded store on a file of the test's own.
func openStore(t *testing.T, opts boltstore.Options) *boltstore.Store {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "unseen.db"), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newFixture builds the API over a fresh embedded store; view, if set,
// wraps the audit log the API reads; cfg may adjust the configuration.
func newFixture(t *testing.T, view func(audit.Log) audit.Log, cfg func(*Config)) *fixture {
	t.Helper()
	f := &fixture{t: t}
	st := openStore(t, boltstore.Options{Clock: fixedClock{}, AuditFault: func() error {
		if e := f.fault.Load(); e != nil {
			return *e
		}
		return nil
	}})
	f.store, f.log = st, st.Audit()
	var store Store = st
	if view != nil {
		f.log = view(st.Audit())
		store = viewedStore{st, f.log}
	}
	c := Config{Store: store, Users: testUsers(t), Catalog: testCatalog(), Clock: fixedClock{}, Logger: quietLogger()}
	if cfg != nil {
		cfg(&c)
	}
	a, err := New(c)
	require.NoError(t, err)
	f.api = a
	return f
}

// do serves one request through the real handler. hdr are name/value pairs.
func (f *fixture) do(method, path, auth, body string, hdr ...string) *httptest.ResponseRecorder {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	f.api.Handler().ServeHTTP(rec, req)
	c := f.contract
	if c == nil {
		c = sharedContract(f.t)
	}
	if err := c.CheckResponse(req, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
		f.t.Errorf("%v\nbody: %.2000s", err, rec.Body.String())
	}
	return rec
}

func requireStatus(t *testing.T, rec *httptest.ResponseRecorder, want int) {
	t.Helper()
	require.Equal(t, want, rec.Code, "body: %s", rec.Body.String())
}

// errBody decodes an error response strictly: exactly {"error": {...}} with
// a code and a message.
func errBody(t *testing.T, rec *httptest.ResponseRecorder) wire.ErrorBody {
	t.Helper()
	require.True(t, strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json"), "content type %q", rec.Header().Get("Content-Type"))
	var e wire.Error
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&e), "body: %s", rec.Body.String())
	require.NotEmpty(t, e.Error.Code, "body: %s", rec.Body.String())
	require.NotEmpty(t, e.Error.Message, "body: %s", rec.Body.String())
	return e.Error
}

func decodeJSON[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v), "body: %s", rec.Body.String())
	return v
}

// submit submits spec as user and returns the new job's id.
func (f *fixture) submit(user, spec string) string {
	f.t.Helper()
	rec := f.do("POST", "/v1/jobs", bearer(user), spec)
	requireStatus(f.t, rec, http.StatusAccepted)
	s := decodeJSON[wire.Submitted](f.t, rec)
	require.True(f.t, jobs.ValidID(s.ID), s.ID)
	return s.ID
}

// toReview plays the worker: claims the job (which must be the only one
// queued) and finishes it with result, leaving it awaiting review.
func (f *fixture) toReview(id, result string) {
	f.t.Helper()
	ctx := context.Background()
	l, err := f.store.Claim(ctx, "w1", 0)
	require.NoError(f.t, err)
	require.NotNil(f.t, l, "nothing queued")
	require.Equal(f.t, id, l.Job.ID, "another job was queued first")
	rv, err := json.Marshal(jobs.Review{Result: json.RawMessage(result), Checks: []jobs.Check{{Name: "min_count", Passed: true, Detail: "count 42 ≥ k 10"}}})
	require.NoError(f.t, err)
	_, err = f.store.Transition(ctx, id, jobs.Change{From: jobs.Running, Attempt: l.Attempt, To: jobs.AwaitingReview, Actor: "worker:w1", Role: "worker", Review: rv})
	require.NoError(f.t, err)
}

// createAs stores a queued job owned by owner directly (bypassing the API).
func (f *fixture) createAs(owner, dept, spec string) string {
	f.t.Helper()
	s, err := policy.DecodeSpec([]byte(spec))
	require.NoError(f.t, err)
	j, created, err := f.store.Create(context.Background(), &jobs.Job{Spec: *s, Owner: owner, Department: dept, State: jobs.Queued}, "")
	require.NoError(f.t, err)
	require.True(f.t, created)
	return j.ID
}

// approval is the statement a reviewer signs to release job id, computed
// by the test itself from the stored job (not asked of the API).
func (f *fixture) approval(id, reviewer string) *attest.Approval {
	f.t.Helper()
	j := f.job(id)
	var rv jobs.Review
	require.NoError(f.t, json.Unmarshal(j.Review, &rv))
	a := &attest.Approval{
		JobRef:   attest.JobRef{Job: id, SpecHash: j.Spec.Hash(), Requester: policy.Requester{User: j.Owner, Department: j.Department}},
		Result:   sha256.Sum256(rv.Result),
		Reviewer: reviewer,
		At:       fixedClock{}.Now(),
	}
	if j.Spec.Type == policy.PSIMembers {
		k, err := base64.StdEncoding.DecodeString(f.api.users.byName[j.Owner].PublicKey)
		require.NoError(f.t, err)
		a.Recipient = sha256.Sum256(k)
	}
	return a
}

// signedApproveBody is an approve body with a signed statement.
func signedApproveBody(t *testing.T, priv ed25519.PrivateKey, a *attest.Approval, comment string) string {
	t.Helper()
	s, err := attest.SignApproval(priv, a)
	require.NoError(t, err)
	b, err := json.Marshal(wire.Approve{Comment: comment, Approval: s})
	require.NoError(t, err)
	return string(b)
}

// approveBody is reviewer's honest, signed approval of job id.
func (f *fixture) approveBody(id, reviewer, comment string) string {
	f.t.Helper()
	return signedApproveBody(f.t, testKey(reviewer), f.approval(id, reviewer), comment)
}

func (f *fixture) job(id string) *jobs.Job {
	f.t.Helper()
	j, err := f.store.Get(context.Background(), id)
	require.NoError(f.t, err)
	return j
}

func (f *fixture) entries() []audit.Entry {
	f.t.Helper()
	es, err := f.log.All(context.Background())
	require.NoError(f.t, err)
	return es
}

func (f *fixture) countAction(action string) int {
	n := 0
	for _, e := range f.entries() {
		if e.Action == action {
			n++
		}
	}
	return n
}

func (f *fixture) allJobs() []*jobs.Job {
	f.t.Helper()
	js, err := f.store.List(context.Background(), jobs.ListFilter{Limit: 1000})
	require.NoError(f.t, err)
	return js
}

// snapshot is what a refused request must leave unchanged.
type snapshot struct {
	audit  int
	states map[string]string
}

func (f *fixture) snapshot() snapshot {
	s := snapshot{audit: len(f.entries()), states: map[string]string{}}
	for _, j := range f.allJobs() {
		s.states[j.ID] = fmt.Sprintf("%s/%d/%s", j.State, j.Attempt, j.Reviewer)
	}
	return s
}

// requireEmpty checks that the store holds no job, the queue is
// empty and the audit chain is empty.
func (f *fixture) requireEmpty() {
	f.t.Helper()
	require.Empty(f.t, f.allJobs())
	l, err := f.store.Claim(context.Background(), "probe", 0)
	require.NoError(f.t, err)
	require.Nil(f.t, l)
	require.Empty(f.t, f.entries())
}

const reviewResult = `{"count":42}`

// ---------------------------------------------------------------------------
// Roles × endpoints
// ---------------------------------------------------------------------------

type endpoint struct {
	name   string
	method string
	path   func(review, released string) string
	body   string
	// ok is the status of the role(s) allowed; roles not in allowed get 403.
	ok      int
	allowed []string // user names
}

func endpoints() []endpoint {
	all := []string{alice, rita, audra, adam, olga}
	return []endpoint{
		{"submit", "POST", func(_, _ string) string { return "/v1/jobs" }, specPSI, 202, []string{alice}},
		{"list", "GET", func(_, _ string) string { return "/v1/jobs" }, "", 200, all},
		{"get", "GET", func(r, _ string) string { return "/v1/jobs/" + r }, "", 200, all},
		{"cancel", "POST", func(r, _ string) string { return "/v1/jobs/" + r + "/cancel" }, `{"reason":"no longer needed"}`, 200, []string{alice}},
		{"review", "GET", func(r, _ string) string { return "/v1/jobs/" + r + "/review" }, "", 200, []string{rita}},
		{"approve", "POST", func(r, _ string) string { return "/v1/jobs/" + r + "/approve" }, `{"comment":"fine"}`, 200, []string{rita}},
		{"reject", "POST", func(r, _ string) string { return "/v1/jobs/" + r + "/reject" }, `{"reason":"too revealing"}`, 200, []string{rita}},
		{"result", "GET", func(_, rel string) string { return "/v1/jobs/" + rel + "/result" }, "", 200, []string{alice}},
		// The job is past consent, so the data owner allowed here gets 409.
		{"consent", "POST", func(r, _ string) string { return "/v1/jobs/" + r + "/consent" }, `{"approve":true}`, 409, []string{olga}},
		// Not dead-lettered, so the admin allowed here gets 409.
		{"retry", "POST", func(r, _ string) string { return "/v1/jobs/" + r + "/retry" }, `{"reason":"node is back"}`, 409, []string{adam}},
		// This fixture has no key ceremony configured: allowed roles get 501.
		{"keys_init", "POST", func(_, _ string) string { return "/v1/keys/init" }, `{"threshold":2}`, 501, []string{adam}},
		{"keys_status", "GET", func(_, _ string) string { return "/v1/keys" }, "", 501, []string{adam, audra}},
		{"datasets", "GET", func(_, _ string) string { return "/v1/datasets" }, "", 200, all},
		{"audit", "GET", func(_, _ string) string { return "/v1/audit" }, "", 200, []string{audra}},
		{"audit_verify", "GET", func(_, _ string) string { return "/v1/audit/verify" }, "", 200, []string{audra}},
	}
}

// matrixFixture has two jobs of alice's: one awaiting review, one released.
func matrixFixture(t *testing.T) (f *fixture, review, released string) {
	f = newFixture(t, nil, nil)
	review = f.submit(alice, specPSI)
	f.toReview(review, reviewResult)
	released = f.submit(alice, specPSIFiltered)
	f.toReview(released, `{"count":7}`)
	requireStatus(t, f.do("POST", "/v1/jobs/"+released+"/approve", bearer(ray), f.approveBody(released, ray, "")), 200)
	return f, review, released
}

func TestRoleEndpointMatrix(t *testing.T) {
	roles := []struct {
		user string
		role Role
	}{{alice, RoleAnalyst}, {rita, RoleReviewer}, {audra, RoleAuditor}, {adam, RoleAdmin}, {olga, RoleDataOwner}}
	for _, ep := range endpoints() {
		for _, r := range roles {
			t.Run(ep.name+"/"+string(r.role), func(t *testing.T) {
				f, review, released := matrixFixture(t)
				want := http.StatusForbidden
				for _, u := range ep.allowed {
					if u == r.user {
						want = ep.ok
					}
				}
				before := f.snapshot()
				body := ep.body
				if ep.name == "approve" {
					body = f.approveBody(review, rita, "fine")
				}
				rec := f.do(ep.method, ep.path(review, released), bearer(r.user), body)
				requireStatus(t, rec, want)
				if want == http.StatusForbidden {
					e := errBody(t, rec)
					require.Equal(t, "forbidden", e.Code)
					require.Contains(t, e.Message, string(r.role))
					require.Equal(t, before, f.snapshot(), "a refused request changed something")
				}
			})
		}
	}
}

// TestMatrixSideEffects checks what the allowed calls of the matrix did.
func TestMatrixSideEffects(t *testing.T) {
	t.Run("cancel", func(t *testing.T) {
		f, review, _ := matrixFixture(t)
		rec := f.do("POST", "/v1/jobs/"+review+"/cancel", bearer(alice), `{"reason":"no longer needed"}`)
		requireStatus(t, rec, 200)
		require.Equal(t, jobs.Cancelled, decodeJSON[wire.Job](t, rec).State)
		require.Equal(t, jobs.Cancelled, f.job(review).State)
		// A finished job cannot be cancelled again.
		rec = f.do("POST", "/v1/jobs/"+review+"/cancel", bearer(alice), "")
		requireStatus(t, rec, 409)
		require.Equal(t, string(jobs.Cancelled), errBody(t, rec).State)
	})
	t.Run("reject", func(t *testing.T) {
		f, review, _ := matrixFixture(t)
		rec := f.do("POST", "/v1/jobs/"+review+"/reject", bearer(rita), `{"reason":"too revealing"}`)
		requireStatus(t, rec, 200)
		j := f.job(review)
		require.Equal(t, jobs.Rejected, j.State)
		require.Equal(t, rita, j.Reviewer)
		require.Empty(t, j.Result, "a rejected job must carry no result")
		require.Equal(t, 1, f.countAction("job.rejected"))
	})
	t.Run("data owner of another department", func(t *testing.T) {
		f, review, _ := matrixFixture(t)
		requireStatus(t, f.do("GET", "/v1/jobs/"+review, bearer(oscar), ""), 404)
		requireStatus(t, f.do("GET", "/v1/jobs/"+review, bearer(olga), ""), 200)
	})
	t.Run("unknown job", func(t *testing.T) {
		f, _, _ := matrixFixture(t)
		for _, id := range []string{jobs.NewID(), "not-an-id", "j_" + strings.Repeat("A", 26)} {
			rec := f.do("GET", "/v1/jobs/"+id, bearer(adam), "")
			requireStatus(t, rec, 404)
			require.Equal(t, "not_found", errBody(t, rec).Code)
		}
	})
	t.Run("open endpoints", func(t *testing.T) {
		f, _, _ := matrixFixture(t)
		requireStatus(t, f.do("GET", "/healthz", "", ""), 200)
		rec := f.do("GET", "/readyz", "", "")
		requireStatus(t, rec, 200)
		require.JSONEq(t, `{"ready":true,"checks":{"store":"ok"}}`, rec.Body.String())
		rec = f.do("GET", "/metrics", "", "")
		requireStatus(t, rec, 200)
		require.Contains(t, rec.Body.String(), "unseen_http_requests_total")
	})
	t.Run("not ready", func(t *testing.T) {
		f := newFixture(t, nil, func(c *Config) { c.Ready = func(context.Context) error { return errors.New("node hrss unreachable") } })
		rec := f.do("GET", "/readyz", "", "")
		requireStatus(t, rec, 503)
		require.Contains(t, rec.Body.String(), "node hrss unreachable")
	})
}

func TestListVisibility(t *testing.T) {
	f := newFixture(t, nil, nil)
	a1 := f.submit(alice, specPSI)
	f.toReview(a1, reviewResult)
	a2 := f.submit(alice, specPSIFiltered)
	b1 := f.submit(bob, `{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"housing.property_owners","key":"id_number"},{"dataset":"hrss.unemployment_benefits","key":"id_number"}]}`)

	ids := func(user, query string) []string {
		rec := f.do("GET", "/v1/jobs"+query, bearer(user), "")
		requireStatus(t, rec, 200)
		var out []string
		for _, j := range decodeJSON[wire.Jobs](t, rec).Jobs {
			out = append(out, j.ID)
		}
		return out
	}
	require.ElementsMatch(t, []string{a1, a2}, ids(alice, ""))
	require.ElementsMatch(t, []string{b1}, ids(bob, ""))
	require.ElementsMatch(t, []string{a2}, ids(alice, "?state=queued"))
	require.ElementsMatch(t, []string{a1}, ids(rita, ""), "reviewers see only jobs awaiting review")
	require.ElementsMatch(t, []string{a1, a2, b1}, ids(audra, ""))
	require.ElementsMatch(t, []string{a1, a2, b1}, ids(adam, ""))
	require.Empty(t, ids(olga, ""), "nothing awaits consent")
	require.Len(t, ids(adam, "?limit=1"), 1)

	for _, c := range []struct {
		user, query string
		status      int
	}{
		{rita, "?state=queued", 403},
		{olga, "?state=released", 403},
		{alice, "?state=bogus", 400},
		{alice, "?limit=0", 400},
		{alice, "?limit=1001", 400},
		{alice, "?limit=x", 400},
	} {
		rec := f.do("GET", "/v1/jobs"+c.query, bearer(c.user), "")
		requireStatus(t, rec, c.status)
		errBody(t, rec)
	}
}

// ---------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------

func TestUnauthenticated(t *testing.T) {
	f, review, released := matrixFixture(t)
	before := f.snapshot()
	auths := map[string]string{
		"missing":             "",
		"basic scheme":        "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+token(alice))),
		"bare token":          token(alice),
		"other scheme":        "Token " + token(alice),
		"scheme only":         "Bearer",
		"empty token":         "Bearer ",
		"double space":        "Bearer  " + token(alice),
		"trailing space":      bearer(alice) + " ",
		"wrong token":         "Bearer tok-mallory",
		"hash as token":       "Bearer " + HashToken(token(alice)),
		"token of other case": "Bearer TOK-ALICE",
	}
	for _, ep := range endpoints() {
		for name, auth := range auths {
			t.Run(ep.name+"/"+name, func(t *testing.T) {
				rec := f.do(ep.method, ep.path(review, released), auth, ep.body)
				requireStatus(t, rec, http.StatusUnauthorized)
				require.Equal(t, "unauthenticated", errBody(t, rec).Code)
				require.True(t, strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer"), "a 401 must say how to authenticate (RFC 9110 §15.5.2)")
			})
		}
	}
	require.Equal(t, before, f.snapshot(), "unauthenticated requests changed something")
}

func TestNewRejectsBadUsers(t *testing.T) {
	st := openStore(t, boltstore.Options{Clock: fixedClock{}})
	good := User{Name: "u", Role: RoleAnalyst, TokenSHA256: HashToken("t")}
	for name, users := range map[string][]User{
		"unknown role": {{Name: "u", Role: "superuser", TokenSHA256: HashToken("t")}},
		"no role":      {{Name: "u", TokenSHA256: HashToken("t")}},
		"no name":      {{Role: RoleAnalyst, TokenSHA256: HashToken("t")}},
		"short hash":   {{Name: "u", Role: RoleAnalyst, TokenSHA256: "abcd"}},
		"not hex":      {{Name: "u", Role: RoleAnalyst, TokenSHA256: strings.Repeat("zz", 32)}},
		"duplicate":    {good, good},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(Config{Store: st, Catalog: testCatalog(), Users: users})
			require.Error(t, err)
		})
	}
	_, err := New(Config{Catalog: testCatalog()})
	require.Error(t, err, "a store is required")
	_, err = New(Config{Store: st})
	require.Error(t, err, "a catalog is required")
}

// ---------------------------------------------------------------------------
// HTTP hygiene
// ---------------------------------------------------------------------------

func TestForwardedHeadersIgnored(t *testing.T) {
	f := newFixture(t, nil, nil)
	require.False(t, f.api.engine.ForwardedByClientIP)
	require.Empty(t, f.api.engine.TrustedPlatform)
	// Probe what gin would report as the client address on this engine.
	f.api.engine.GET("/test/client-ip", func(c *gin.Context) { c.String(200, c.ClientIP()) })
	req := httptest.NewRequest("GET", "/test/client-ip", nil)
	req.RemoteAddr = "10.1.2.3:40000"
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("X-Real-IP", "203.0.113.10")
	req.Header.Set("CF-Connecting-IP", "203.0.113.11")
	req.Header.Set("X-Appengine-Remote-Addr", "203.0.113.12")
	rec := httptest.NewRecorder()
	f.api.Handler().ServeHTTP(rec, req)
	requireStatus(t, rec, 200)
	require.Equal(t, "10.1.2.3", rec.Body.String())
}

func TestUnknownRouteAndMethod(t *testing.T) {
	f := newFixture(t, nil, nil)
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/nope", 404, "not_found"},
		{"GET", "/v1/nope", 404, "not_found"},
		{"GET", "/v2/jobs", 404, "not_found"},
		{"POST", "/v1/jobs/" + jobs.NewID() + "/frobnicate", 404, "not_found"},
		{"DELETE", "/v1/jobs", 405, "method_not_allowed"},
		{"PUT", "/v1/jobs/" + jobs.NewID(), 405, "method_not_allowed"},
		{"GET", "/v1/jobs/" + jobs.NewID() + "/approve", 405, "method_not_allowed"},
		{"POST", "/healthz", 405, "method_not_allowed"},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			rec := f.do(c.method, c.path, bearer(adam), "")
			requireStatus(t, rec, c.status)
			var raw map[string]map[string]any
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &raw))
			require.Len(t, raw, 1)
			require.Contains(t, raw, "error")
			require.Equal(t, c.code, raw["error"]["code"])
			require.NotEmpty(t, raw["error"]["message"])
			if c.status == 405 {
				require.NotEmpty(t, rec.Header().Get("Allow"))
			}
		})
	}
}

func TestServerTimeouts(t *testing.T) {
	f := newFixture(t, nil, nil)
	srv := f.api.Server("127.0.0.1:0")
	require.Equal(t, "127.0.0.1:0", srv.Addr)
	require.Positive(t, srv.ReadHeaderTimeout)
	require.Positive(t, srv.ReadTimeout)
	require.Positive(t, srv.WriteTimeout)
	require.Positive(t, srv.IdleTimeout)
	require.Positive(t, srv.MaxHeaderBytes)
	require.LessOrEqual(t, srv.ReadHeaderTimeout, 10*time.Second)
	require.NotNil(t, srv.Handler)
}

// TestSlowHeaderClientDisconnected starts a real server and checks that a
// client that sends half a request line and stalls is cut off.
func TestSlowHeaderClientDisconnected(t *testing.T) {
	f := newFixture(t, nil, nil)
	srv := f.api.Server("127.0.0.1:0")
	const headerTimeout = 200 * time.Millisecond
	srv.ReadHeaderTimeout = headerTimeout
	srv.ReadTimeout = time.Minute // only the header timeout can end the stall
	ln, err := net.Listen("tcp", srv.Addr)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		require.ErrorIs(t, <-done, http.ErrServerClosed)
	})
	addr := ln.Addr().String()

	// The server works for a well-behaved client.
	resp, err := http.Get("http://" + addr + "/healthz")
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)

	// Headers larger than MaxHeaderBytes are refused.
	req, err := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
	require.NoError(t, err)
	req.Header.Set("X-Padding", strings.Repeat("a", srv.MaxHeaderBytes+8192))
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)

	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("GET /healthz HTT"))
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, conn.SetReadDeadline(start.Add(10*time.Second)))
	// Read until the server hangs up. (On the timeout, net/http may first
	// answer the half line it has as a malformed request: 400, then close.)
	got, err := io.ReadAll(conn)
	elapsed := time.Since(start)
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server did not hang up on a stalled client within 10s")
	require.True(t, err == nil || errors.Is(err, syscall.ECONNRESET), "want EOF or reset, got %v", err)
	if len(got) > 0 {
		require.True(t, strings.HasPrefix(string(got), "HTTP/1.1 4"), "a stalled request was answered: %q", got)
	}
	require.GreaterOrEqual(t, elapsed, headerTimeout/2, "the connection was closed before the header timeout: not a timeout")
}

// ---------------------------------------------------------------------------
// Audit endpoints
// ---------------------------------------------------------------------------

func TestAuditEntriesFilter(t *testing.T) {
	f := newFixture(t, nil, nil)
	j1 := f.submit(alice, specPSI)
	f.toReview(j1, reviewResult)
	j2 := f.submit(bob, `{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"housing.property_owners","key":"id_number"},{"dataset":"hrss.unemployment_benefits","key":"id_number"}]}`)
	requireStatus(t, f.do("GET", "/v1/jobs/"+j1+"/review", bearer(rita), ""), 200)
	requireStatus(t, f.do("POST", "/v1/jobs/"+j1+"/approve", bearer(rita), f.approveBody(j1, rita, "")), 200)
	requireStatus(t, f.do("GET", "/v1/jobs/"+j1+"/result", bearer(alice), ""), 200)

	get := func(query string) []audit.Entry {
		rec := f.do("GET", "/v1/audit"+query, bearer(audra), "")
		requireStatus(t, rec, 200)
		return decodeJSON[struct{ Entries []audit.Entry }](t, rec).Entries
	}
	es := get("?job=" + j1)
	var actions []string
	for _, e := range es {
		require.Equal(t, j1, e.Job)
		actions = append(actions, e.Action)
	}
	require.Equal(t, []string{"job.submitted", "job.running", "job.awaiting_review", "review.viewed", "job.released", "result.read"}, actions)

	es = get("?job=" + j2)
	require.Len(t, es, 1)
	require.Equal(t, "job.submitted", es[0].Action)
	require.Equal(t, bob, es[0].Actor)

	require.Len(t, get("?actor="+rita), 2)
	require.Len(t, get("?action=job.submitted"), 2)
	require.Len(t, get("?dataset="+dsOwners), 7)
	require.Len(t, get("?limit=2"), 2)
	require.Empty(t, get("?job="+jobs.NewID()))
	require.Len(t, get(""), len(f.entries()))

	for _, q := range []string{"?limit=0", "?limit=-1", "?limit=abc", "?limit=100001"} {
		rec := f.do("GET", "/v1/audit"+q, bearer(audra), "")
		requireStatus(t, rec, 400)
		require.Equal(t, "bad_request", errBody(t, rec).Code)
	}
}

func TestAuditVerify(t *testing.T) {
	verify := func(t *testing.T, f *fixture) wire.Verify {
		rec := f.do("GET", "/v1/audit/verify", bearer(audra), "")
		requireStatus(t, rec, 200)
		return decodeJSON[wire.Verify](t, rec)
	}
	t.Run("memlog ok", func(t *testing.T) {
		f := newFixture(t, nil, nil)
		require.Equal(t, wire.Verify{OK: true, Entries: 0}, verify(t, f))
		j := f.submit(alice, specPSI)
		f.toReview(j, reviewResult)
		require.Equal(t, wire.Verify{OK: true, Entries: 3}, verify(t, f))
	})
	t.Run("tampered head", func(t *testing.T) {
		hl := &headLog{}
		f := newFixture(t, func(l audit.Log) audit.Log { hl.Log = l; return hl }, nil)
		f.submit(alice, specPSI)
		f.submit(alice, specPSIFiltered)
		require.Equal(t, wire.Verify{OK: true, Entries: 2}, verify(t, f))
		// Someone rewrites the recorded head (as they would to hide a
		// truncated chain): it no longer matches the chain, which ends at seq 2.
		hl.head = &audit.Head{Seq: 1, Hash: f.entries()[0].Hash}
		v := verify(t, f)
		require.False(t, v.OK)
		require.Equal(t, 2, v.Entries)
		require.Contains(t, v.Error, "head")
	})
	t.Run("entry edited", func(t *testing.T) {
		tl := &tamperLog{}
		f := newFixture(t, func(l audit.Log) audit.Log { tl.Log = l; return tl }, nil)
		f.submit(alice, specPSI)
		f.submit(alice, specPSIFiltered)
		require.True(t, verify(t, f).OK)
		tl.editSecond = true
		v := verify(t, f)
		require.False(t, v.OK)
		require.Equal(t, 2, v.Entries)
		require.Contains(t, v.Error, "seq 2")
	})
	t.Run("log unreadable", func(t *testing.T) {
		f := newFixture(t, func(l audit.Log) audit.Log { return &tamperLog{Log: l, allErr: errors.New("disk gone")} }, nil)
		rec := f.do("GET", "/v1/audit/verify", bearer(audra), "")
		requireStatus(t, rec, 503)
		require.Equal(t, "audit_unavailable", errBody(t, rec).Code)
	})
}

// headLog is a log whose recorded head can be overwritten.
type headLog struct {
	audit.Log
	head *audit.Head
}

func (l *headLog) Head(ctx context.Context) (audit.Head, error) {
	if l.head != nil {
		return *l.head, nil
	}
	return l.Log.(audit.HeadReader).Head(ctx)
}

// tamperLog is a log whose stored chain can be edited behind its back.
type tamperLog struct {
	audit.Log
	editSecond bool
	allErr     error
}

func (l *tamperLog) All(ctx context.Context) ([]audit.Entry, error) {
	if l.allErr != nil {
		return nil, l.allErr
	}
	es, err := l.Log.All(ctx)
	if err == nil && l.editSecond && len(es) > 1 {
		es[1].Detail = map[string]string{"purpose": "something innocent"}
	}
	return es, err
}
