package api

import (
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

type movableClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *movableClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *movableClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// consentFixture makes hrss.unemployment_benefits conditional (有条件共享):
// its owner department (hrss, data owner olga) must consent.
func consentFixture(t *testing.T) (*fixture, *movableClock) {
	clock := &movableClock{t: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)}
	f := newFixture(t, nil, func(c *Config) {
		cat := testCatalog()
		d := *cat[dsBenefits]
		d.Sharing = "conditional"
		cat[dsBenefits] = &d
		c.Catalog = cat
		c.Clock = clock
		c.ConsentTTL = 72 * time.Hour
	})
	return f, clock
}

func TestConsentFlow(t *testing.T) {
	f, clock := consentFixture(t)
	rec := f.do("POST", "/v1/jobs", bearer(alice), specPSI)
	requireStatus(t, rec, http.StatusAccepted)
	sub := decodeJSON[wire.Submitted](t, rec)
	require.Equal(t, jobs.AwaitingConsent, sub.State)
	j := f.job(sub.ID)
	require.Equal(t, clock.Now().Add(72*time.Hour), j.ConsentDeadline)
	require.Equal(t, []string{dsBenefits}, j.Decision.NeedsConsent)

	// The owner sees what is asked.
	rec = f.do("GET", "/v1/jobs", bearer(olga), "")
	requireStatus(t, rec, 200)
	list := decodeJSON[wire.Jobs](t, rec)
	require.Len(t, list.Jobs, 1)
	require.Equal(t, "eligibility check", list.Jobs[0].Purpose)

	// Nothing is queued before consent.
	l, err := f.store.Claim(t.Context(), "w", 0)
	require.NoError(t, err)
	require.Nil(t, l)

	// Someone else's data owner cannot answer; bad bodies change nothing.
	before := f.snapshot()
	// (to a data owner of an uninvolved department the job does not exist)
	requireStatus(t, f.do("POST", "/v1/jobs/"+sub.ID+"/consent", bearer(oscar), `{"approve":true}`), 404)
	requireStatus(t, f.do("POST", "/v1/jobs/"+sub.ID+"/consent", bearer(olga), `{"approve":true,"refuse":true}`), 400)
	requireStatus(t, f.do("POST", "/v1/jobs/"+sub.ID+"/consent", bearer(olga), `{"refuse":true}`), 400)
	requireStatus(t, f.do("POST", "/v1/jobs/"+sub.ID+"/consent", bearer(olga), `{"approve":true,"x":1}`), 400)
	require.Equal(t, before, f.snapshot())

	// Consent queues it, recorded with who and when.
	rec = f.do("POST", "/v1/jobs/"+sub.ID+"/consent", bearer(olga), f.consentBody(sub.ID, olga, dsBenefits, true, "purpose fits our sharing agreement", clock.Now().Add(30*24*time.Hour)))
	requireStatus(t, rec, 200)
	got := decodeJSON[wire.Job](t, rec)
	require.Equal(t, jobs.Queued, got.State)
	require.Len(t, got.Consents, 1)
	require.Equal(t, olga, got.Consents[0].By)
	require.True(t, got.Consents[0].Approved)
	// The owner's signed statement is kept, and verifies for this job.
	sc := got.Consents[0].Signed
	require.NotNil(t, sc)
	require.NoError(t, attest.Keyring{olga: testKey(olga).Public().(ed25519.PublicKey)}.VerifyConsent(sc))
	require.NoError(t, sc.Statement.JobRef.Check(sub.ID, &j.Spec, policy.Requester{User: alice, Department: "hrss"}))
	l, err = f.store.Claim(t.Context(), "w", 0)
	require.NoError(t, err)
	require.Equal(t, sub.ID, l.Job.ID)
	require.Equal(t, 1, f.countAction("job.awaiting_consent"))
	require.Equal(t, 1, f.countAction("job.queued"))

	// Answering again is a conflict: the job no longer awaits consent.
	requireStatus(t, f.do("POST", "/v1/jobs/"+sub.ID+"/consent", bearer(olga), `{"approve":true}`), 409)
}

func TestConsentRefused(t *testing.T) {
	f, _ := consentFixture(t)
	id := decodeJSON[wire.Submitted](t, f.do("POST", "/v1/jobs", bearer(alice), specPSI)).ID
	rec := f.do("POST", "/v1/jobs/"+id+"/consent", bearer(olga), `{"refuse":true,"reason":"not within the agreed purposes"}`)
	requireStatus(t, rec, 200)
	got := decodeJSON[wire.Job](t, rec)
	require.Equal(t, jobs.Rejected, got.State)
	require.Equal(t, "not within the agreed purposes", got.Comment)
	require.False(t, got.Consents[0].Approved)
}

func TestConsentDeadline(t *testing.T) {
	f, clock := consentFixture(t)
	id := decodeJSON[wire.Submitted](t, f.do("POST", "/v1/jobs", bearer(alice), specPSI)).ID
	clock.Advance(73 * time.Hour)
	rec := f.do("POST", "/v1/jobs/"+id+"/consent", bearer(olga), `{"approve":true}`)
	requireStatus(t, rec, 409)
	e := errBody(t, rec)
	require.Equal(t, "consent_expired", e.Code)
	require.Equal(t, string(jobs.Expired), e.State)
	require.Equal(t, jobs.Expired, f.job(id).State)
}

// consentStatement is what owner signs to answer for dataset in job id,
// computed by the test from the stored job.
func (f *fixture) consentStatement(id, owner, dataset string, approve bool, reason string, until time.Time) *attest.Consent {
	f.t.Helper()
	j := f.job(id)
	return &attest.Consent{JobRef: attest.Ref(id, &j.Spec, policy.Requester{User: j.Owner, Department: j.Department}),
		Dataset: dataset, Approve: approve, Reason: reason, Until: until, Owner: owner}
}

// consentBodyOf signs st with priv and sends it as req says.
func consentBodyOf(t *testing.T, priv ed25519.PrivateKey, st *attest.Consent, req wire.ConsentRequest) string {
	t.Helper()
	s, err := attest.SignConsent(priv, st)
	require.NoError(t, err)
	req.Signature = s.Signature
	b, err := json.Marshal(req)
	require.NoError(t, err)
	return string(b)
}

// consentBody is owner's honest, signed answer.
func (f *fixture) consentBody(id, owner, dataset string, approve bool, reason string, until time.Time) string {
	f.t.Helper()
	st := f.consentStatement(id, owner, dataset, approve, reason, until)
	return consentBodyOf(f.t, testKey(owner), st, wire.ConsentRequest{Dataset: dataset, Approve: approve, Refuse: !approve, Reason: reason, Until: until})
}
