package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
)

func TestResultBeforeRelease(t *testing.T) {
	f := newFixture(t, nil, nil)
	queued := f.submit(alice, specPSI)
	check := func(id string, state jobs.State) {
		t.Helper()
		rec := f.do("GET", "/v1/jobs/"+id+"/result", bearer(alice), "")
		requireStatus(t, rec, http.StatusConflict)
		e := errBody(t, rec)
		require.Equal(t, "not_released", e.Code)
		require.Equal(t, string(state), e.State)
	}
	check(queued, jobs.Queued)
	f.toReview(queued, reviewResult)
	check(queued, jobs.AwaitingReview)
	requireStatus(t, f.do("POST", "/v1/jobs/"+queued+"/reject", bearer(rita), `{"reason":"k too small"}`), 200)
	check(queued, jobs.Rejected)
	require.Zero(t, f.countAction("result.read"))
}

func TestOwnerOnlyVisibility(t *testing.T) {
	f := newFixture(t, nil, nil)
	id := f.submit(alice, specPSI)
	f.toReview(id, reviewResult)
	requireStatus(t, f.do("POST", "/v1/jobs/"+id+"/approve", bearer(rita), f.approveBody(id, rita, "")), 200)
	before := f.snapshot()

	missing := f.do("GET", "/v1/jobs/"+jobs.NewID(), bearer(bob), "")
	requireStatus(t, missing, http.StatusNotFound)
	for _, c := range []struct{ method, suffix string }{
		{"GET", ""}, {"GET", "/result"}, {"POST", "/cancel"},
	} {
		rec := f.do(c.method, "/v1/jobs/"+id+c.suffix, bearer(bob), "")
		requireStatus(t, rec, http.StatusNotFound)
		// Indistinguishable from a job that does not exist.
		require.Equal(t, errBody(t, missing), errBody(t, rec))
	}
	require.Equal(t, before, f.snapshot())
	require.Zero(t, f.countAction("result.read"))
	// The owner can.
	requireStatus(t, f.do("GET", "/v1/jobs/"+id+"/result", bearer(alice), ""), 200)
}

func TestJobViewHidesPayloads(t *testing.T) {
	f := newFixture(t, nil, nil)
	id := f.submit(alice, specPSI)
	f.toReview(id, `{"count":987654}`)
	for _, u := range []string{alice, rita, audra, adam, olga} {
		rec := f.do("GET", "/v1/jobs/"+id, bearer(u), "")
		requireStatus(t, rec, 200)
		require.NotContains(t, rec.Body.String(), "987654", "GET /v1/jobs/{id} showed the review to %s", u)
	}
	rec := f.do("GET", "/v1/jobs", bearer(rita), "")
	requireStatus(t, rec, 200)
	require.NotContains(t, rec.Body.String(), "987654")
}

func TestSeparationOfDuties(t *testing.T) {
	f := newFixture(t, nil, nil)
	// Roles are single, so a reviewer never submits through the API; a job
	// with the reviewer as owner is made in the store directly (say rita was
	// an analyst before she became a reviewer).
	id := f.createAs(rita, "security", specPSI)
	f.toReview(id, reviewResult)
	before := f.snapshot()
	for _, c := range []struct{ method, suffix, body string }{
		{"GET", "/review", ""},
		{"POST", "/approve", `{"comment":"looks fine to me"}`},
		{"POST", "/reject", `{"reason":"changed my mind"}`},
	} {
		rec := f.do(c.method, "/v1/jobs/"+id+c.suffix, bearer(rita), c.body)
		requireStatus(t, rec, http.StatusForbidden)
		require.Equal(t, "separation_of_duties", errBody(t, rec).Code)
	}
	require.Equal(t, before, f.snapshot(), "a refused review changed something")
	require.Zero(t, f.countAction("review.viewed"))

	// Another reviewer may.
	requireStatus(t, f.do("GET", "/v1/jobs/"+id+"/review", bearer(ray), ""), 200)
	requireStatus(t, f.do("POST", "/v1/jobs/"+id+"/approve", bearer(ray), f.approveBody(id, ray, "")), 200)
	require.Equal(t, ray, f.job(id).Reviewer)
}

func TestDecisionsOnlyFromAwaitingReview(t *testing.T) {
	f := newFixture(t, nil, nil)
	queued := f.submit(alice, specPSI)
	released := f.createAs(alice, "hrss", specPSIFiltered)
	// queued is first in the queue: put it back behind released.
	l, err := f.store.Claim(t.Context(), "w0", 0)
	require.NoError(t, err)
	require.Equal(t, queued, l.Job.ID)
	_, err = f.store.Transition(t.Context(), queued, jobs.Change{From: jobs.Running, Attempt: l.Attempt, To: jobs.Queued, Actor: "worker:w0", Role: "worker", Note: "handed back"})
	require.NoError(t, err)
	f.toReview(released, reviewResult)
	requireStatus(t, f.do("POST", "/v1/jobs/"+released+"/approve", bearer(rita), f.approveBody(released, rita, "")), 200)
	cancelled := f.submit(alice, specPSI)
	requireStatus(t, f.do("POST", "/v1/jobs/"+cancelled+"/cancel", bearer(alice), ""), 200)

	before := f.snapshot()
	for _, c := range []struct {
		id    string
		state jobs.State
	}{{queued, jobs.Queued}, {released, jobs.Released}, {cancelled, jobs.Cancelled}} {
		for _, r := range []struct{ method, suffix, body string }{
			{"GET", "/review", ""},
			{"POST", "/approve", ""},
			{"POST", "/reject", `{"reason":"no"}`},
		} {
			rec := f.do(r.method, "/v1/jobs/"+c.id+r.suffix, bearer(rita), r.body)
			requireStatus(t, rec, http.StatusConflict)
			e := errBody(t, rec)
			require.Equal(t, "not_awaiting_review", e.Code)
			require.Equal(t, string(c.state), e.State)
		}
	}
	require.Equal(t, before, f.snapshot())
}

func TestRejectNeedsReason(t *testing.T) {
	f := newFixture(t, nil, nil)
	id := f.submit(alice, specPSI)
	f.toReview(id, reviewResult)
	before := f.snapshot()
	for name, c := range map[string]struct {
		body string
		code string
	}{
		"no body":          {"", "reason_required"},
		"empty object":     {"{}", "reason_required"},
		"comment only":     {`{"comment":"nope"}`, "reason_required"},
		"empty reason":     {`{"reason":""}`, "reason_required"},
		"reason not text":  {`{"reason":5}`, "bad_request"},
		"unknown field":    {`{"reason":"x","severity":"high"}`, "bad_request"},
		"trailing data":    {`{"reason":"x"} {}`, "bad_request"},
		"reason too long":  {`{"reason":"` + strings.Repeat("r", 2001) + `"}`, "bad_request"},
		"comment too long": {`{"reason":"x","comment":"` + strings.Repeat("c", 2001) + `"}`, "bad_request"},
	} {
		t.Run(name, func(t *testing.T) {
			rec := f.do("POST", "/v1/jobs/"+id+"/reject", bearer(rita), c.body)
			requireStatus(t, rec, http.StatusBadRequest)
			require.Equal(t, c.code, errBody(t, rec).Code)
		})
	}
	require.Equal(t, before, f.snapshot())
	rec := f.do("POST", "/v1/jobs/"+id+"/reject", bearer(rita), `{"reason":"cell below k"}`)
	requireStatus(t, rec, 200)
	j := f.job(id)
	require.Equal(t, jobs.Rejected, j.State)
	require.Equal(t, "cell below k", j.Comment)
}

// gatedStore holds every Transition until the test opens the gate, so that
// racing requests all pass their state checks before any of them changes
// the job: the worst interleaving, made certain rather than likely.
type gatedStore struct {
	Store
	arrived chan struct{}
	open    chan struct{}
}

func (g *gatedStore) Transition(ctx context.Context, id string, c jobs.Change) (*jobs.Job, error) {
	g.arrived <- struct{}{}
	<-g.open
	return g.Store.Transition(ctx, id, c)
}

func TestRacingApprovals(t *testing.T) {
	const n = 20
	for _, gated := range []bool{false, true} {
		t.Run(fmt.Sprintf("gated=%v", gated), func(t *testing.T) {
			gate := &gatedStore{arrived: make(chan struct{}, n), open: make(chan struct{})}
			f := newFixture(t, nil, func(c *Config) {
				if gated {
					gate.Store = c.Store
					c.Store = gate
				}
			})
			id := f.submit(alice, specPSI)
			f.toReview(id, reviewResult)
			start := make(chan struct{})
			type res struct {
				code  int
				state string
			}
			results := make(chan res, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					reviewer := rita
					if i%2 == 1 {
						reviewer = ray
					}
					body := f.approveBody(id, reviewer, "ok")
					<-start
					rec := f.do("POST", "/v1/jobs/"+id+"/approve", bearer(reviewer), body)
					var e wire.Error
					_ = json.Unmarshal(rec.Body.Bytes(), &e)
					results <- res{rec.Code, e.Error.State}
				}()
			}
			close(start)
			if gated {
				opened := false
				defer func() {
					if !opened {
						close(gate.open)
					}
				}()
				deadline := time.After(20 * time.Second)
				for range n {
					select {
					case <-gate.arrived:
					case <-deadline:
						t.Fatal("not every approval reached the store")
					}
				}
				opened = true
				close(gate.open)
			}
			wg.Wait()
			close(results)
			count := map[int]int{}
			for r := range results {
				count[r.code]++
				if r.code == http.StatusConflict {
					require.Equal(t, string(jobs.Released), r.state)
				}
			}
			require.Equal(t, map[int]int{http.StatusOK: 1, http.StatusConflict: n - 1}, count)
			require.Equal(t, 1, f.countAction("job.released"))
			j := f.job(id)
			require.Equal(t, jobs.Released, j.State)
			require.JSONEq(t, reviewResult, string(j.Result))
		})
	}
}

func TestApprovalReleasesReviewedResult(t *testing.T) {
	f := newFixture(t, nil, nil)
	id := f.submit(alice, specPSI)
	const result = `{"count":42,"note":"exact"}`
	f.toReview(id, result)

	// The reviewer sees the result with its checks; the view is audited.
	rec := f.do("GET", "/v1/jobs/"+id+"/review", bearer(rita), "")
	requireStatus(t, rec, 200)
	rv := decodeJSON[wire.Review](t, rec)
	require.Equal(t, id, rv.Job.ID)
	require.JSONEq(t, result, string(rv.Review.Result))
	require.Len(t, rv.Review.Checks, 1)
	require.Equal(t, "min_count", rv.Review.Checks[0].Name)
	requireEntry(t, f, "review.viewed", id, rita, RoleReviewer)

	rec = f.do("POST", "/v1/jobs/"+id+"/approve", bearer(rita), f.approveBody(id, rita, "k satisfied"))
	requireStatus(t, rec, 200)
	require.Equal(t, jobs.Released, decodeJSON[wire.Job](t, rec).State)
	requireEntry(t, f, "job.released", id, rita, RoleReviewer)

	rec = f.do("GET", "/v1/jobs/"+id+"/result", bearer(alice), "")
	requireStatus(t, rec, 200)
	res := decodeJSON[wire.Result](t, rec)
	require.Equal(t, id, res.ID)
	require.Equal(t, jobs.Released, res.State)
	require.Equal(t, rita, res.Reviewer)
	require.Equal(t, "k satisfied", res.Comment)
	require.JSONEq(t, result, string(res.Result))
	requireEntry(t, f, "result.read", id, alice, RoleAnalyst)

	// Every read is accounted for.
	requireStatus(t, f.do("GET", "/v1/jobs/"+id+"/result", bearer(alice), ""), 200)
	require.Equal(t, 2, f.countAction("result.read"))
	_, err := audit.VerifyLog(t.Context(), f.log)
	require.NoError(t, err)
}

// requireEntry finds the single entry of action for job and checks who.
func requireEntry(t *testing.T, f *fixture, action, job, actor string, role Role) {
	t.Helper()
	var found []audit.Entry
	for _, e := range f.entries() {
		if e.Action == action && e.Job == job {
			found = append(found, e)
		}
	}
	require.Len(t, found, 1, "entries with action %s", action)
	require.Equal(t, actor, found[0].Actor)
	require.Equal(t, string(role), found[0].Role)
	require.ElementsMatch(t, []string{dsBenefits, dsOwners}, found[0].Datasets)
	require.Equal(t, "eligibility check", found[0].Detail["purpose"])
}

func TestFailClosed(t *testing.T) {
	diskFull := errors.New("disk full")

	t.Run("submission", func(t *testing.T) {
		f := newFixture(t, nil, nil)
		f.failAudit(diskFull)
		for _, spec := range []string{specPSI, specMembers} {
			user := alice
			if spec == specMembers {
				user = carol
			}
			rec := f.do("POST", "/v1/jobs", bearer(user), spec, "Idempotency-Key", "k1")
			requireStatus(t, rec, http.StatusServiceUnavailable)
			require.Equal(t, "unavailable", errBody(t, rec).Code)
		}
		f.failAudit(nil)
		f.requireEmpty()
		// The failed attempt did not consume the idempotency key.
		rec := f.do("POST", "/v1/jobs", bearer(alice), specPSI, "Idempotency-Key", "k1")
		requireStatus(t, rec, http.StatusAccepted)
	})

	t.Run("decisions and reads", func(t *testing.T) {
		f := newFixture(t, nil, nil)
		review := f.submit(alice, specPSI)
		f.toReview(review, reviewResult)
		released := f.submit(alice, specPSIFiltered)
		f.toReview(released, `{"count":7}`)
		requireStatus(t, f.do("POST", "/v1/jobs/"+released+"/approve", bearer(rita), f.approveBody(released, rita, "")), 200)
		before := f.snapshot()

		f.failAudit(diskFull)
		for _, c := range []struct{ method, path, user, body, code string }{
			{"POST", "/v1/jobs/" + review + "/approve", rita, f.approveBody(review, rita, "ok"), "unavailable"},
			{"POST", "/v1/jobs/" + review + "/reject", rita, `{"reason":"no"}`, "unavailable"},
			{"POST", "/v1/jobs/" + review + "/cancel", alice, "", "unavailable"},
			{"GET", "/v1/jobs/" + review + "/review", rita, "", "audit_unavailable"},
			{"GET", "/v1/jobs/" + released + "/result", alice, "", "audit_unavailable"},
		} {
			rec := f.do(c.method, c.path, bearer(c.user), c.body)
			requireStatus(t, rec, http.StatusServiceUnavailable)
			e := errBody(t, rec)
			require.Equal(t, c.code, e.Code, c.path)
			require.NotContains(t, rec.Body.String(), "42", "a refused read leaked the result")
		}
		f.failAudit(nil)
		require.Equal(t, before, f.snapshot(), "a change was made without its audit entry")
		require.Zero(t, f.countAction("result.read"))
		require.Zero(t, f.countAction("review.viewed"))

		// Once the log is writable again, everything works.
		requireStatus(t, f.do("POST", "/v1/jobs/"+review+"/approve", bearer(rita), f.approveBody(review, rita, "")), 200)
		rec := f.do("GET", "/v1/jobs/"+released+"/result", bearer(alice), "")
		requireStatus(t, rec, 200)
		var res wire.Result
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &res))
		require.JSONEq(t, `{"count":7}`, string(res.Result))
	})
}

func TestRetryDeadLetter(t *testing.T) {
	f := newFixture(t, nil, nil)
	id := f.submit(alice, specPSI)
	l, err := f.store.Claim(t.Context(), "w1", 0)
	require.NoError(t, err)
	_, err = f.store.Transition(t.Context(), id, jobs.Change{From: jobs.Running, Attempt: l.Attempt, To: jobs.DeadLetter, Actor: "worker:w1", Role: "worker", Error: "node housing unreachable"})
	require.NoError(t, err)

	// The analyst sees it parked, with the reason.
	v := decodeJSON[wire.Job](t, f.do("GET", "/v1/jobs/"+id, bearer(alice), ""))
	require.Equal(t, jobs.DeadLetter, v.State)
	require.Contains(t, v.Error, "unreachable")

	rec := f.do("POST", "/v1/jobs/"+id+"/retry", bearer(adam), `{"reason":"housing node restored"}`)
	requireStatus(t, rec, 200)
	require.Equal(t, jobs.Queued, decodeJSON[wire.Job](t, rec).State)
	l, err = f.store.Claim(t.Context(), "w2", 0)
	require.NoError(t, err)
	require.Equal(t, id, l.Job.ID)
	require.Equal(t, 2, l.Attempt)
	requireStatus(t, f.do("POST", "/v1/jobs/"+id+"/retry", bearer(adam), ""), 409)
}

// A job waiting out a retry says what it waits for, and when, in GET
// /v1/jobs/{id}; it can be cancelled meanwhile, but an admin retry is only
// for dead letters (the scheduler requeues it when due).
func TestRetryableJobSaysWhatItWaitsFor(t *testing.T) {
	f := newFixture(t, nil, nil)
	id := f.submit(alice, specPSI)
	l, err := f.store.Claim(t.Context(), "w1", 0)
	require.NoError(t, err)
	at := time.Date(2026, 3, 1, 10, 41, 7, 0, time.UTC)
	waiting := "node housing unreachable (connection refused); retry 3 of 11 at 10:41:07 UTC"
	_, err = f.store.Transition(t.Context(), id, jobs.Change{From: jobs.Running, Attempt: l.Attempt, To: jobs.Retryable, Actor: "worker:w1", Role: "worker",
		Error: "node housing: dial tcp: connection refused", RetryAt: at, Waiting: waiting})
	require.NoError(t, err)

	rec := f.do("GET", "/v1/jobs/"+id, bearer(alice), "")
	requireStatus(t, rec, 200)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &raw))
	require.Equal(t, "retryable", raw["state"])
	require.Equal(t, waiting, raw["waiting"])
	require.Equal(t, "2026-03-01T10:41:07Z", raw["scheduled_at"])
	require.EqualValues(t, 1, raw["failures"])

	requireStatus(t, f.do("POST", "/v1/jobs/"+id+"/retry", bearer(adam), ""), 409)
	rec = f.do("POST", "/v1/jobs/"+id+"/cancel", bearer(alice), "")
	requireStatus(t, rec, 200)
	v := decodeJSON[wire.Job](t, rec)
	require.Equal(t, jobs.Cancelled, v.State)
	require.Empty(t, v.Waiting)
}
