package client_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/api/client"
	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
)

// TestEveryMethod calls every method of the client against the real API,
// each request and answer checked against api/openapi.yaml (newEnv), and
// checks what each returns.
func TestEveryMethod(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice := client.New(e.url, "tok-alice")
	rita := client.New(e.url, "tok-rita")
	cora := client.New(e.url, "tok-cora")
	aldo := client.New(e.url, "tok-aldo")
	adam := client.New(e.url, "tok-adam")

	me, err := rita.Me(ctx)
	require.NoError(t, err)
	require.Equal(t, "rita", me.Name)
	require.Equal(t, pub("rita"), me.SigningKey)

	ds, err := alice.Datasets(ctx)
	require.NoError(t, err)
	require.Len(t, ds.Datasets, 2)

	rd, err := alice.Ready(ctx)
	require.NoError(t, err)
	require.True(t, rd.Ready)
	require.Equal(t, "ok", rd.Checks["store"])

	// Submit, idempotently; the same key for another spec is an *Error.
	spec := []byte(`{"type":"psi_cardinality","purpose":"check","inputs":[{"dataset":"hrss.benefits","key":"id_number"},{"dataset":"civil.allowance","key":"id_number"}]}`)
	sub, err := alice.Submit(ctx, spec, "k")
	require.NoError(t, err)
	again, err := alice.Submit(ctx, spec, "k")
	require.NoError(t, err)
	require.Equal(t, sub.ID, again.ID)
	_, err = alice.Submit(ctx, []byte(`{"type":"psi_cardinality","purpose":"other","inputs":[{"dataset":"hrss.benefits","key":"id_number"},{"dataset":"civil.allowance","key":"id_number"}]}`), "k")
	var ce *client.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 422, ce.Status)
	require.Equal(t, "idempotency_key_reused", ce.Code)
	// A policy refusal carries its violations.
	_, err = alice.Submit(ctx, []byte(`{"type":"psi_cardinality","purpose":"x","inputs":[{"dataset":"hrss.benefits","key":"nope"},{"dataset":"civil.allowance","key":"id_number"}]}`), "")
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 403, ce.Status)
	require.NotEmpty(t, ce.Violations)
	require.Equal(t, "unknown_column", ce.Violations[0].Rule)

	j, err := alice.Job(ctx, sub.ID)
	require.NoError(t, err)
	require.Equal(t, jobs.AwaitingConsent, j.State)
	js, err := alice.Jobs(ctx, jobs.AwaitingConsent)
	require.NoError(t, err)
	require.Len(t, js, 1)

	// Lineage of cora's dataset names the job.
	l, err := cora.Lineage(ctx, "civil.allowance")
	require.NoError(t, err)
	require.Len(t, l.Jobs, 1)
	require.Equal(t, sub.ID, l.Jobs[0].Job)
	require.Equal(t, "alice", l.Jobs[0].Requester)

	// Consent (signed), then the job runs (played here) to review; Wait
	// sees each state.
	_, err = cora.Consent(ctx, sub.ID, client.ConsentAnswer{Approve: true, Reason: "fits"}, key("cora"))
	require.NoError(t, err)
	lease, err := e.store.Claim(ctx, "w", 0)
	require.NoError(t, err)
	rv, _ := json.Marshal(jobs.Review{Result: json.RawMessage(`{"count":42}`), Checks: []jobs.Check{{Name: "min_count", Passed: true, Detail: "42 ≥ k"}}})
	_, err = e.store.Transition(ctx, sub.ID, jobs.Change{From: jobs.Running, Attempt: lease.Attempt, To: jobs.AwaitingReview, Actor: "worker:w", Role: "worker", Review: rv})
	require.NoError(t, err)
	var states []jobs.State
	w, err := alice.Wait(ctx, sub.ID, time.Millisecond, func(j *wire.Job) bool { return j.State == jobs.AwaitingReview }, func(j *wire.Job) { states = append(states, j.State) })
	require.NoError(t, err)
	require.Equal(t, jobs.AwaitingReview, w.State)
	require.Equal(t, []jobs.State{jobs.AwaitingReview}, states)

	// Review, raw and decoded, agree.
	raw, err := rita.ReviewRaw(ctx, sub.ID)
	require.NoError(t, err)
	review, err := rita.Review(ctx, sub.ID)
	require.NoError(t, err)
	var decoded wire.Review
	require.NoError(t, json.Unmarshal(raw, &decoded))
	require.Equal(t, review.Approval, decoded.Approval)
	require.JSONEq(t, `{"count":42}`, string(review.Review.Result))

	// Before release the result is a 409 with the state.
	_, err = alice.Result(ctx, sub.ID)
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 409, ce.Status)
	require.Equal(t, "awaiting_review", ce.State)

	out, err := rita.Approve(ctx, sub.ID, "fine", key("rita"))
	require.NoError(t, err)
	require.Equal(t, jobs.Released, out.State)
	res, err := alice.Result(ctx, sub.ID)
	require.NoError(t, err)
	require.JSONEq(t, `{"count":42}`, string(res.Result))
	require.Equal(t, "rita", res.Reviewer)

	// Reject and cancel.
	sub2, err := alice.Submit(ctx, []byte(`{"type":"psi_cardinality","purpose":"second","inputs":[{"dataset":"hrss.benefits","key":"id_number"},{"dataset":"civil.allowance","key":"id_number"}]}`), "")
	require.NoError(t, err)
	c2, err := alice.Cancel(ctx, sub2.ID, "not needed")
	require.NoError(t, err)
	require.Equal(t, jobs.Cancelled, c2.State)
	_, err = rita.Reject(ctx, sub2.ID, "too late")
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 409, ce.Status)

	// Retry of a job that is not dead-lettered: 409, said so.
	_, err = adam.Retry(ctx, sub.ID, "x")
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "not_dead_letter", ce.Code)

	// Keys.
	st, err := adam.KeysStatus(ctx)
	require.NoError(t, err)
	require.JSONEq(t, `{"epoch":0,"nodes":null}`, string(st))
	st, err = adam.KeysInit(ctx, 2)
	require.NoError(t, err)
	require.Contains(t, string(st), `"epoch":1`)

	// Audit.
	es, err := aldo.Audit(ctx, audit.Filter{Job: sub.ID, Limit: 100})
	require.NoError(t, err)
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action)
	}
	require.Contains(t, actions, "job.released")
	v, err := aldo.AuditVerify(ctx)
	require.NoError(t, err)
	require.True(t, v.OK)

	// A token the coordinator does not know: 401 as an *Error.
	_, err = client.New(e.url, "nope").Me(ctx)
	require.ErrorAs(t, err, &ce)
	require.Equal(t, 401, ce.Status)
	require.Equal(t, "unauthenticated", ce.Code)
}
