package node_test

import (
	"context"
	"errors"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
)

// refusal unpacks a Service error.
func refusal(t *testing.T, err error, kind node.Kind, code string) *node.Error {
	t.Helper()
	var e *node.Error
	require.True(t, errors.As(err, &e), "want a *node.Error, got %T %v", err, err)
	require.Equal(t, kind, e.Kind, "%v", err)
	require.Equal(t, code, e.Code, "%v", err)
	return e
}

func TestKindStatus(t *testing.T) {
	// The statuses are the protocol's: nodeapi's client retries 409 and
	// 429 and gives up on other 4xx.
	want := map[node.Kind]int{
		node.KindInternal: 500, node.KindBadRequest: 400, node.KindUnauthenticated: 401, node.KindForbidden: 403,
		node.KindNotFound: 404, node.KindConflict: 409, node.KindTooLarge: 413, node.KindBusy: 429, node.KindUnavailable: 503,
	}
	for k, s := range want {
		require.Equal(t, s, k.Status(), "%v", k)
	}
	require.Equal(t, "conflict", node.KindConflict.String())
	require.Equal(t, 500, node.Kind(99).Status())
}

// TestServiceRefusals checks, without HTTP, that each kind of refusal comes
// back typed and lands in the audit log once, with the caller's actor and
// address: generic refusals as request.refused, a step's own with its
// reasons.
func TestServiceRefusals(t *testing.T) {
	f := newFederation(t)
	ctx := context.Background()
	hrss, c := f.svc["hrss"], f.caller
	refusals := func(action string) []audit.Entry {
		es, err := f.logs["hrss"].Entries(ctx, audit.Filter{Action: action})
		require.NoError(t, err)
		return es
	}

	// Out of step: request.refused, with the endpoint, code and status.
	_, err := hrss.Own(ctx, c, &nodeapi.OwnRequest{Header: nodeapi.Header{Job: "j1", Step: nodeapi.StepOwn, Attempt: 1}, N: 1})
	refusal(t, err, node.KindConflict, "not_prepared")
	es := refusals("request.refused")
	require.Len(t, es, 1)
	require.Equal(t, node.ActorCoordinator, es[0].Actor)
	require.Equal(t, map[string]string{"path": nodeapi.PathOwn, "code": "not_prepared", "status": "409", "remote": "192.0.2.7:4711", "error": err.Error()}, es[0].Detail)

	// A message for another step.
	_, err = hrss.Prepare(ctx, c, &nodeapi.PrepareRequest{Header: nodeapi.Header{Job: "j1", Step: nodeapi.StepOwn, Attempt: 1}})
	refusal(t, err, node.KindBadRequest, "wrong_step")
	require.Len(t, refusals("request.refused"), 2)

	// A policy refusal: psi.refused with its reason, and not again as a
	// generic refusal.
	spec := policy.Spec{Type: policy.PSICardinality, Purpose: "p", Inputs: []policy.Input{{Dataset: "hrss.pensions", Key: "id_number"}, {Dataset: "housing.owners", Key: "id_number"}}}
	_, err = hrss.Prepare(ctx, c, &nodeapi.PrepareRequest{Header: nodeapi.Header{Job: "j2", Step: nodeapi.StepPrepare, Attempt: 1}, Spec: spec, Requester: alice, Parties: 2})
	refusal(t, err, node.KindNotFound, "unknown_dataset")
	es = refusals("psi.refused")
	require.Len(t, es, 1)
	require.Equal(t, "unknown dataset", es[0].Detail["reason"])
	require.Equal(t, "192.0.2.7:4711", es[0].Detail["remote"])
	require.Equal(t, "alice", es[0].Detail["requester"])
	require.Len(t, refusals("request.refused"), 2)

	// A homomorphic step's refusal: <step>.refused.
	agg := policy.Spec{Type: policy.Aggregate, Purpose: "p", Inputs: []policy.Input{{Dataset: "hrss.benefits"}}, Stats: []string{"count"}}
	_, err = hrss.HEAggregate(ctx, c, &nodeapi.HEAggregateRequest{Header: nodeapi.Header{Job: "j3", SpecHash: agg.Hash(), Step: nodeapi.StepHEAggregate, Attempt: 1}, Spec: agg, Requester: alice, MaxRows: 100})
	e := refusal(t, err, node.KindConflict, "no_keys")
	es = refusals("he.aggregate.refused")
	require.Len(t, es, 1)
	require.Equal(t, e.Message, es[0].Detail["reason"])
	require.Equal(t, "192.0.2.7:4711", es[0].Detail["remote"])
	require.Len(t, refusals("request.refused"), 2)

	// A transport's refusal of an undecodable body is recorded the same way.
	err = hrss.RecordRefusal(ctx, c, nodeapi.PathMembers, node.Errorf(node.KindTooLarge, "too_large", "request body larger than 1 bytes"))
	refusal(t, err, node.KindTooLarge, "too_large")
	es = refusals("request.refused")
	require.Len(t, es, 3)
	require.Equal(t, "413", es[2].Detail["status"])
	require.Equal(t, nodeapi.PathMembers, es[2].Detail["path"])

	// Authentication refusals are not audited at all.
	before, err := f.logs["hrss"].All(ctx)
	require.NoError(t, err)
	for _, tok := range []string{"", "x", nodetest.Token + " ", strings.ToUpper(nodetest.Token)} {
		_, err := hrss.Authenticate(tok, "192.0.2.9:1")
		refusal(t, err, node.KindUnauthenticated, "unauthenticated")
	}
	after, err := f.logs["hrss"].All(ctx)
	require.NoError(t, err)
	require.Len(t, after, len(before))
}

// TestAuditFailureServesNothing: a node that cannot write its audit log
// refuses (503, audit_unavailable) and keeps no state from the request.
func TestAuditFailureServesNothing(t *testing.T) {
	f := newFederation(t)
	ctx := context.Background()
	hrss, c := f.svc["hrss"], f.caller
	spec := policy.Spec{Type: policy.PSICardinality, Purpose: "p", Inputs: []policy.Input{{Dataset: "hrss.benefits", Key: "id_number"}, {Dataset: "housing.owners", Key: "id_number"}}}
	req := &nodeapi.PrepareRequest{Header: nodeapi.Header{Job: "j1", SpecHash: spec.Hash(), Step: nodeapi.StepPrepare, Attempt: 1}, Spec: spec, Requester: alice, Parties: 2}
	f.logs["hrss"].Fail = errors.New("disk full")
	_, err := hrss.Prepare(ctx, c, req)
	refusal(t, err, node.KindUnavailable, "audit_unavailable")
	_, err = hrss.KeysStatus(ctx, c)
	refusal(t, err, node.KindUnavailable, "audit_unavailable")
	f.logs["hrss"].Fail = nil
	_, err = hrss.Own(ctx, c, &nodeapi.OwnRequest{Header: nodeapi.Header{Job: "j1", SpecHash: spec.Hash(), Step: nodeapi.StepOwn, Attempt: 1}, N: 1})
	refusal(t, err, node.KindConflict, "not_prepared")
	resp, err := hrss.Prepare(ctx, c, req)
	require.NoError(t, err)
	require.Equal(t, 30, resp.Len)
}

// TestServiceHasNoTransport: the node's logic does not import net/http (its
// transport is package nodehttp), so a check added to a step cannot depend
// on how the step arrived.
func TestServiceHasNoTransport(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	n := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		b, err := os.ReadFile(name)
		require.NoError(t, err)
		f, err := parser.ParseFile(token.NewFileSet(), name, b, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			require.False(t, strings.HasPrefix(path, "net/http"), "%s imports %s", name, path)
			require.NotEqual(t, "github.com/unseen-data/unseen/compute/node/nodehttp", path, "%s imports the transport", name)
		}
		n++
	}
	require.Greater(t, n, 8, "found too few files to check")
}
