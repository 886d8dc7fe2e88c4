package nodehttp_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/node/nodehttp"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/psi"
	"github.com/unseen-data/unseen/psi/delivery"
)

// The federation every test starts: node hrss holds benefits (rows 0–29)
// and three datasets with restrictive policies; node housing holds owners
// (rows 10–39), so the two key sets share rows 10–29.
const (
	dsBenefits   = "hrss.benefits"
	dsClosed     = "hrss.closed"
	dsMembersOnl = "hrss.members_only"
	dsRestricted = "hrss.restricted"
	dsOwners     = "housing.owners"
)

func rng(lo, hi int) []int {
	out := make([]int, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

func start(t *testing.T) *nodetest.Federation {
	t.Helper()
	f := nodetest.Start(t, map[string][]int{
		dsBenefits:   rng(0, 30),
		dsClosed:     rng(0, 5),
		dsMembersOnl: rng(0, 5),
		dsRestricted: rng(0, 5),
		dsOwners:     rng(10, 40),
	}, func(d *policy.Dataset) {
		switch d.Name {
		case dsClosed:
			d.Sharing = "closed"
		case dsMembersOnl:
			d.JobTypes = []policy.JobType{policy.PSIMembers}
		case dsRestricted:
			d.Departments = []string{"hrss"}
		}
	})
	t.Cleanup(func() { verifyChains(t, f) })
	return f
}

// verifyChains checks every node's audit chain (and its head).
func verifyChains(t *testing.T, f *nodetest.Federation) {
	for dept, l := range f.Audits {
		_, err := audit.VerifyLog(context.Background(), l)
		require.NoError(t, err, "audit chain of node %s", dept)
	}
}

var alice = policy.Requester{User: "alice", Department: "hrss"}

// spec is a two-input job: first, then housing.owners.
func spec(typ policy.JobType, first policy.Input) policy.Spec {
	if first.Key == "" {
		first.Key = "id_number"
	}
	return policy.Spec{Type: typ, Purpose: "eligibility check", Inputs: []policy.Input{first, {Dataset: dsOwners, Key: "id_number"}}}
}

// header is the header of a request of job (whose spec is s) at attempt,
// as party.
func header(s policy.Spec, job string, attempt, party int) nodeapi.Header {
	return nodeapi.Header{Job: job, SpecHash: s.Hash(), Attempt: attempt, Party: party}
}

// prepare prepares party (= input) of a two-party job at its node.
func prepare(t *testing.T, f *nodetest.Federation, s policy.Spec, req policy.Requester, h nodeapi.Header) (*nodeapi.PrepareResponse, error) {
	t.Helper()
	dept := policy.Department(s.Inputs[h.Party].Dataset)
	return f.Clients[dept].Prepare(context.Background(), &nodeapi.PrepareRequest{Header: h, Spec: s, Requester: req, Input: h.Party, Parties: 2})
}

func mustPrepare(t *testing.T, f *nodetest.Federation, s policy.Spec, h nodeapi.Header) int {
	t.Helper()
	r, err := prepare(t, f, s, alice, h)
	require.NoError(t, err)
	return r.Len
}

// remote unpacks a node's refusal.
func remote(t *testing.T, err error) (int, string) {
	t.Helper()
	var re *nodeapi.RemoteError
	require.True(t, errors.As(err, &re), "want a node refusal, got %v", err)
	return re.Status, re.Code
}

func requireRefused(t *testing.T, err error, status int, code string) {
	t.Helper()
	s, c := remote(t, err)
	require.Equal(t, status, s, "code %s: %v", c, err)
	require.Equal(t, code, c, "%v", err)
}

// raw posts body (marshalled unless it is []byte) with the given
// Authorization header and returns the status and error code.
func raw(t *testing.T, cl *nodeapi.Client, method, path, auth string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			b, err = json.Marshal(body)
			require.NoError(t, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, cl.BaseURL+path, rd)
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var e nodeapi.Error
	if resp.StatusCode/100 != 2 {
		require.NoError(t, json.Unmarshal(b, &e), "error body %q", b)
		require.NotEmpty(t, e.Error.Message)
	}
	return resp.StatusCode, e.Error.Code
}

const bearer = "Bearer " + nodetest.Token

// unauthenticated scrapes the node's /metrics, as Prometheus would, for the
// unauthenticated requests counted on route.
func unauthenticated(t *testing.T, cl *nodeapi.Client, route string) int {
	t.Helper()
	resp, err := http.Get(cl.BaseURL + nodehttp.PathMetrics)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return int(metric(t, string(b), `unseen_node_unauthenticated_requests_total{route="`+route+`"}`))
}

// metric reads one series' value from Prometheus's text format (0 if absent).
func metric(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return metricValue(t, v)
		}
	}
	return 0
}

func metricValue(t *testing.T, v string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(v, 64)
	require.NoError(t, err)
	return f
}

func entries(t *testing.T, f *nodetest.Federation, dept, action string) []audit.Entry {
	t.Helper()
	all, err := f.Audits[dept].Entries(context.Background(), audit.Filter{Action: action})
	require.NoError(t, err)
	return all
}

// ---------------------------------------------------------------------------

func TestAuth(t *testing.T) {
	f := start(t)
	cl := f.Clients["hrss"]
	routes := []struct{ method, path string }{
		{"GET", nodeapi.PathDatasets},
		{"POST", nodeapi.PathPrepare},
		{"POST", nodeapi.PathOwn},
		{"POST", nodeapi.PathReblind},
		{"POST", nodeapi.PathMembers},
		{"POST", nodeapi.PathDeliver},
		{"POST", nodeapi.PathFinish},
	}
	auths := map[string]string{
		"missing":        "",
		"wrong token":    "Bearer not-the-token",
		"no scheme":      nodetest.Token,
		"basic":          "Basic " + nodetest.Token,
		"empty bearer":   "Bearer ",
		"token + suffix": bearer + "x",
	}
	for _, r := range routes {
		for name, a := range auths {
			t.Run(r.path+"/"+name, func(t *testing.T) {
				before := unauthenticated(t, cl, r.path)
				var body any
				if r.method == "POST" {
					body = nodeapi.OwnRequest{Header: nodeapi.Header{Job: "j1", Step: nodeapi.StepOwn, Attempt: 1}, N: 1}
				}
				status, code := raw(t, cl, r.method, r.path, a, body)
				require.Equal(t, http.StatusUnauthorized, status)
				require.Equal(t, "unauthenticated", code)
				require.Equal(t, before+1, unauthenticated(t, cl, r.path), "the refusal was not counted")
			})
		}
	}
	// Nothing was written to the audit log: anyone can send these, and an
	// fsynced entry each would let a flood fill the disk (nodehttp's
	// TestUnauthenticatedFlood).
	all, err := f.Audits["hrss"].All(context.Background())
	require.NoError(t, err)
	require.Empty(t, all)

	// The right token works, and health needs none.
	status, _ := raw(t, cl, "GET", nodeapi.PathHealth, "", nil)
	require.Equal(t, 200, status)
	ds, err := cl.Datasets(context.Background())
	require.NoError(t, err)
	require.Equal(t, "hrss", ds.Department)
	var names []string
	for _, d := range ds.Datasets {
		names = append(names, d.Name)
	}
	require.Equal(t, []string{dsBenefits, dsClosed, dsMembersOnl, dsRestricted}, names)
}

func TestPrepareRefused(t *testing.T) {
	tax := policy.Requester{User: "tom", Department: "tax"}
	housing := policy.Requester{User: "hal", Department: "housing"}
	for _, c := range []struct {
		name   string
		spec   policy.Spec
		req    policy.Requester
		status int
		code   string
		reason string
	}{
		{"unknown dataset", spec(policy.PSICardinality, policy.Input{Dataset: "hrss.pensions"}), alice, 404, "unknown_dataset", "unknown dataset"},
		{"filter on an undeclared column", spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits, Filter: "shoe_size > 40"}), alice, 403, "policy_violation", "unknown_column"},
		{"filter on a non-filter column", spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits, Filter: "id_number = '" + nodetest.ID(3) + "'"}), alice, 403, "policy_violation", "column_use"},
		{"filter of the wrong kind", spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits, Filter: "amount = 'lots'"}), alice, 403, "policy_violation", "filter"},
		{"key not a key column", spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits, Key: "district"}), alice, 403, "policy_violation", "column_use"},
		{"closed dataset", spec(policy.PSICardinality, policy.Input{Dataset: dsClosed}), alice, 403, "policy_violation", "sharing_closed"},
		{"job type not allowed", spec(policy.PSICardinality, policy.Input{Dataset: dsMembersOnl}), alice, 403, "policy_violation", "job_type"},
		{"department not allowed", spec(policy.PSICardinality, policy.Input{Dataset: dsRestricted}), tax, 403, "policy_violation", "department"},
		{"members of another department", spec(policy.PSIMembers, policy.Input{Dataset: dsBenefits}), housing, 403, "policy_violation", "members_own_dataset"},
		{"not a PSI job", policy.Spec{Type: policy.Aggregate, Purpose: "p", Stats: []string{"count"}, Inputs: []policy.Input{{Dataset: dsBenefits, Key: "id_number"}, {Dataset: dsOwners, Key: "id_number"}}}, alice, 403, "unsupported", "job type"},
		{"invalid spec", policy.Spec{Type: policy.PSICardinality, Inputs: []policy.Input{{Dataset: dsBenefits, Key: "id_number"}, {Dataset: dsOwners, Key: "id_number"}}}, alice, 403, "policy_violation", "purpose"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := start(t)
			job := "j_" + strings.ReplaceAll(c.name, " ", "_")
			_, err := prepare(t, f, c.spec, c.req, header(c.spec, job, 1, 0))
			requireRefused(t, err, c.status, c.code)

			es := entries(t, f, "hrss", "psi.refused")
			require.Len(t, es, 1)
			e := es[0]
			require.Equal(t, job, e.Job)
			require.Equal(t, []string{c.spec.Inputs[0].Dataset}, e.Datasets)
			require.Contains(t, e.Detail["reason"], c.reason)
			require.Equal(t, c.req.User, e.Detail["requester"])
			if f := c.spec.Inputs[0].Filter; f != "" {
				require.NotContains(t, string(e.Encode()), f, "a filter's text was written to the log")
			}
			require.Empty(t, entries(t, f, "hrss", string(nodeapi.StepPrepare)), "a refused job was prepared")

			// No state was kept for the job.
			_, err = f.Clients["hrss"].Own(context.Background(), &nodeapi.OwnRequest{Header: header(c.spec, job, 1, 0), N: 1})
			requireRefused(t, err, 409, "not_prepared")
		})
	}
}

func TestPrepareBadRequest(t *testing.T) {
	f := start(t)
	s := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits})
	for name, r := range map[string]nodeapi.PrepareRequest{
		"one party":      {Header: header(s, "j1", 1, 0), Spec: s, Requester: alice, Parties: 1},
		"too many":       {Header: header(s, "j1", 1, 0), Spec: s, Requester: alice, Parties: 9},
		"party past end": {Header: header(s, "j1", 1, 2), Spec: s, Requester: alice, Parties: 2},
		"negative party": {Header: header(s, "j1", 1, -1), Spec: s, Requester: alice, Parties: 2},
		"input past end": {Header: header(s, "j1", 1, 0), Spec: s, Requester: alice, Input: 2, Parties: 2},
		"no job":         {Header: header(s, "", 1, 0), Spec: s, Requester: alice, Parties: 2},
		"long job":       {Header: header(s, strings.Repeat("j", 65), 1, 0), Spec: s, Requester: alice, Parties: 2},
		"attempt 0":      {Header: header(s, "j1", 0, 0), Spec: s, Requester: alice, Parties: 2},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.Clients["hrss"].Prepare(context.Background(), &r)
			requireRefused(t, err, 400, "bad_request")
		})
	}
	mustPrepare(t, f, s, header(s, "j1", 1, 0)) // the node still works
}

func TestMalformedMessages(t *testing.T) {
	f := start(t)
	cl := f.Clients["hrss"]
	s := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits})
	n := mustPrepare(t, f, s, header(s, "j1", 1, 0))
	require.Equal(t, 30, n)
	own := func(step nodeapi.Step) nodeapi.OwnRequest {
		return nodeapi.OwnRequest{Header: nodeapi.Header{Job: "j1", SpecHash: s.Hash(), Step: step, Attempt: 1}, Offset: 0, N: 1}
	}
	prep := nodeapi.PrepareRequest{Header: nodeapi.Header{Job: "j2", SpecHash: s.Hash(), Step: nodeapi.StepOwn, Attempt: 1}, Spec: s, Requester: alice, Parties: 2}
	okOwn, err := json.Marshal(own(nodeapi.StepOwn))
	require.NoError(t, err)

	for _, c := range []struct {
		name   string
		path   string
		body   any
		status int
		code   string
	}{
		{"control", nodeapi.PathOwn, own(nodeapi.StepOwn), 200, ""},
		{"prepare message sent as own", nodeapi.PathPrepare, prep, 400, "wrong_step"},
		{"own message sent as prepare step", nodeapi.PathOwn, own(nodeapi.StepPrepare), 400, "wrong_step"},
		{"own message sent to reblind", nodeapi.PathReblind, own(nodeapi.StepOwn), 400, "bad_request"}, // offset/n are unknown fields there
		{"no step", nodeapi.PathOwn, own(""), 400, "wrong_step"},
		{"finish with own step", nodeapi.PathFinish, nodeapi.FinishRequest{Header: nodeapi.Header{Job: "j1", Step: nodeapi.StepOwn, Attempt: 1}}, 400, "wrong_step"},
		{"unknown field", nodeapi.PathOwn, bytes.Replace(okOwn, []byte(`"offset"`), []byte(`"limit":5,"offset"`), 1), 400, "bad_request"},
		{"unknown field in prepare", nodeapi.PathPrepare, []byte(`{"job":"j3","step":"psi.prepare","attempt":1,"party":0,"parties":2,"input":0,"spec":{},"requester":{},"debug":true}`), 400, "bad_request"},
		{"unknown field in spec", nodeapi.PathPrepare, []byte(`{"job":"j3","step":"psi.prepare","attempt":1,"party":0,"parties":2,"input":0,"spec":{"type":"psi_cardinality","limit":1},"requester":{}}`), 400, "bad_request"},
		{"trailing data", nodeapi.PathOwn, append(slices.Clone(okOwn), []byte(`{}`)...), 400, "bad_request"},
		{"not JSON", nodeapi.PathOwn, []byte(`job=j1`), 400, "bad_request"},
		{"empty body", nodeapi.PathOwn, []byte{}, 400, "bad_request"},
		{"wrong type", nodeapi.PathOwn, []byte(`{"job":"j1","step":"psi.own","attempt":"1","n":1}`), 400, "bad_request"},
		{"oversized", nodeapi.PathReblind, []byte(`{"job":"j1","step":"psi.reblind","attempt":1,"list":1,"elements":"` + strings.Repeat("A", nodeapi.MaxBodyBytes) + `"}`), 413, "too_large"},
		{"valid JSON padded past the limit", nodeapi.PathOwn, append(slices.Clone(okOwn), bytes.Repeat([]byte(" "), nodeapi.MaxBodyBytes)...), 413, "too_large"},
		{"valid JSON padded to the limit", nodeapi.PathOwn, append(slices.Clone(okOwn), bytes.Repeat([]byte(" "), nodeapi.MaxBodyBytes-len(okOwn))...), 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, code := raw(t, cl, "POST", c.path, bearer, c.body)
			require.Equal(t, c.status, status, code)
			require.Equal(t, c.code, code)
		})
	}
}

func TestAttempts(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	hrss := f.Clients["hrss"]
	s := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits})
	n := mustPrepare(t, f, s, header(s, "j1", 2, 0))

	// A worker of an older attempt is refused at every step.
	_, err := hrss.Own(ctx, &nodeapi.OwnRequest{Header: header(s, "j1", 1, 0), N: 1})
	requireRefused(t, err, 409, "stale_attempt")
	_, err = hrss.Reblind(ctx, &nodeapi.ReblindRequest{Header: header(s, "j1", 1, 0), List: 1, Elements: points(t, 1)})
	requireRefused(t, err, 409, "stale_attempt")
	_, err = hrss.Members(ctx, &nodeapi.MembersRequest{Header: header(s, "j1", 1, 0), Recipient: "alice"})
	requireRefused(t, err, 409, "stale_attempt")
	_, err = prepare(t, f, s, alice, header(s, "j1", 1, 0))
	requireRefused(t, err, 409, "stale_attempt")
	// A newer attempt than prepared is not prepared either.
	_, err = hrss.Own(ctx, &nodeapi.OwnRequest{Header: header(s, "j1", 3, 0), N: 1})
	requireRefused(t, err, 409, "stale_attempt")

	// The current attempt is served.
	els, err := hrss.Own(ctx, &nodeapi.OwnRequest{Header: header(s, "j1", 2, 0), N: n})
	require.NoError(t, err)
	require.Len(t, els.Elements, n*psi.ElementSize)

	// A reclaim prepares attempt 3; attempt 2 is now stale.
	require.Equal(t, n, mustPrepare(t, f, s, header(s, "j1", 3, 0)))
	_, err = hrss.Own(ctx, &nodeapi.OwnRequest{Header: header(s, "j1", 2, 0), N: 1})
	requireRefused(t, err, 409, "stale_attempt")

	// A finish from an older attempt does not end the newer one...
	_, err = hrss.Finish(ctx, &nodeapi.FinishRequest{Header: header(s, "j1", 2, 0), Outcome: "stale"})
	require.NoError(t, err)
	_, err = hrss.Own(ctx, &nodeapi.OwnRequest{Header: header(s, "j1", 3, 0), N: 1})
	require.NoError(t, err)
	// ...the current one's does.
	_, err = hrss.Finish(ctx, &nodeapi.FinishRequest{Header: header(s, "j1", 3, 0), Outcome: "done"})
	require.NoError(t, err)
	_, err = hrss.Own(ctx, &nodeapi.OwnRequest{Header: header(s, "j1", 3, 0), N: 1})
	requireRefused(t, err, 409, "not_prepared")

	// Every refusal above is in the node's log, with its code, the
	// authenticated actor and the address it came from.
	codes := map[string]int{}
	for _, e := range entries(t, f, "hrss", "request.refused") {
		codes[e.Detail["code"]]++
		require.Equal(t, "coordinator", e.Actor)
		require.True(t, strings.HasPrefix(e.Detail["remote"], "127.0.0.1:"), "remote %q", e.Detail["remote"])
		require.Equal(t, "409", e.Detail["status"])
	}
	require.Equal(t, map[string]int{"stale_attempt": 6, "not_prepared": 1}, codes)
}

func TestUnprepared(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	hrss := f.Clients["hrss"]
	s := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits})
	mustPrepare(t, f, s, header(s, "j1", 1, 0))
	for _, h := range []nodeapi.Header{header(s, "j2", 1, 0), header(s, "j1", 1, 1)} { // another job; another party of j1
		_, err := hrss.Own(ctx, &nodeapi.OwnRequest{Header: h, N: 1})
		requireRefused(t, err, 409, "not_prepared")
		_, err = hrss.Reblind(ctx, &nodeapi.ReblindRequest{Header: h, List: 1 - h.Party, Elements: points(t, 1)})
		requireRefused(t, err, 409, "not_prepared")
		_, err = hrss.Members(ctx, &nodeapi.MembersRequest{Header: h, Recipient: "alice", Positions: []int{0}})
		requireRefused(t, err, 409, "not_prepared")
	}
	// Out-of-range chunks of a prepared list.
	for _, r := range [][2]int{{0, 0}, {-1, 1}, {30, 1}, {29, 2}, {0, nodeapi.MaxChunk + 1}} {
		_, err := hrss.Own(ctx, &nodeapi.OwnRequest{Header: header(s, "j1", 1, 0), Offset: r[0], N: r[1]})
		requireRefused(t, err, 400, "bad_range")
	}
}

// points returns n valid curve points (hashed IDs, blinded by no node):
// enough for a request the node refuses before it looks at them.
func points(t *testing.T, n int) []byte {
	t.Helper()
	els := make([]psi.Element, n)
	for i := range els {
		els[i] = psi.HashID("any", []byte(nodetest.ID(i)))
	}
	return psi.EncodeElements(els)
}

// prepareBoth prepares job (spec s) at attempt at both nodes and returns
// the parties as the coordinator holds them.
func prepareBoth(t *testing.T, f *nodetest.Federation, s policy.Spec, job string, attempt int) []*nodeapi.Party {
	t.Helper()
	lengths := make([]nodeapi.SignedLength, 2)
	parties := make([]*nodeapi.Party, 2)
	for i, dept := range []string{"hrss", "housing"} {
		h := header(s, job, attempt, i)
		r, err := prepare(t, f, s, alice, h)
		require.NoError(t, err)
		lengths[i] = r.Length
		parties[i] = &nodeapi.Party{Client: f.Clients[dept], Header: h, N: r.Len, Lengths: lengths}
	}
	return parties
}

// ownChunk is positions [offset, offset+n) of a party's own list, as the
// owner hands them out (signed, hop 0), in a reblind request for the
// other party.
func ownChunk(t *testing.T, ps []*nodeapi.Party, list, offset, n int) *nodeapi.ReblindRequest {
	t.Helper()
	own, err := ps[list].Client.Own(context.Background(), &nodeapi.OwnRequest{Header: ps[list].Header, Offset: offset, N: n})
	require.NoError(t, err)
	return &nodeapi.ReblindRequest{Header: ps[1-list].Header, List: list, Offset: offset, Elements: own.Elements, Proof: own.Proof, Length: ps[list].Lengths[list]}
}

func TestReblind(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	hrss := f.Clients["hrss"]
	s := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits})
	ps := prepareBoth(t, f, s, "j1", 1)
	req := ownChunk(t, ps, 1, 0, 5) // housing's list, to hrss
	in := req.Elements

	out, err := hrss.Reblind(ctx, req)
	require.NoError(t, err)
	require.Len(t, out.Elements, len(in))
	require.NotEqual(t, in, out.Elements)
	_, err = psi.DecodeElements(out.Elements, 5)
	require.NoError(t, err)
	require.Len(t, entries(t, f, "hrss", string(nodeapi.StepReblind)), 1)
	// Signed by hrss as hop 1 of list 1, for this job, spec and attempt.
	cs := nodeapi.ChunkStatement{JobRef: req.Ref(), List: 1, Hop: 1, Offset: 0, N: 5, Elements: nodeapi.DigestOf(out.Elements)}
	require.True(t, ed25519.Verify(nodetest.PrivateKey("node-hrss").Public().(ed25519.PublicKey), cs.Message().Encoded(), out.Proof))

	// Never its own list.
	own := *req
	own.List = 0
	_, err = hrss.Reblind(ctx, &own)
	requireRefused(t, err, 403, "own_list")

	uOne := make([]byte, psi.ElementSize)
	uOne[0] = 1
	for name, els := range map[string][]byte{
		"31 bytes":           in[:31],
		"33 bytes":           in[:33],
		"none":               {},
		"all zero":           make([]byte, 32),
		"u = 1 (low order)":  uOne,
		"non-canonical":      bytes.Repeat([]byte{0xff}, psi.ElementSize),
		"valid then zero":    append(slices.Clone(in[:32]), make([]byte, 32)...),
		"more than MaxChunk": make([]byte, (nodeapi.MaxChunk+1)*psi.ElementSize),
	} {
		t.Run(name, func(t *testing.T) {
			bad := *req
			bad.Elements = els
			_, err := hrss.Reblind(ctx, &bad)
			requireRefused(t, err, 400, "invalid_elements")
		})
	}
	require.Len(t, entries(t, f, "hrss", string(nodeapi.StepReblind)), 1, "a refused reblind was recorded as served")
	for _, list := range []int{-1, 2} {
		bad := *req
		bad.List = list
		_, err = hrss.Reblind(ctx, &bad)
		requireRefused(t, err, 400, "bad_list")
	}
}

// TestProtocolEndToEnd runs the coordinator's PSI engine over the two real
// nodes: what the endpoints compute must be the true intersection.
func TestProtocolEndToEnd(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	s := spec(policy.PSIMembers, policy.Input{Dataset: dsBenefits, Filter: "amount >= 5"})
	ps := prepareBoth(t, f, s, "j1", 1)
	require.Equal(t, 25, ps[0].N) // rows 5–29
	require.Equal(t, 30, ps[1].N) // rows 10–39
	res, err := psi.Run(ctx, []psi.Party{ps[0], ps[1]}, 0, 7, nil)
	require.NoError(t, err)
	require.Equal(t, 20, res.Count) // rows 10–29

	// psi_members: the requesting node seals the matches to the analyst
	// and keeps them; a reviewer's approval of the result has it deliver.
	pub, priv, err := delivery.GenerateKey()
	require.NoError(t, err)
	hrss := f.Clients["hrss"]
	mr, err := hrss.Members(ctx, &nodeapi.MembersRequest{Header: header(s, "j1", 1, 0), Positions: res.Positions, RecipientKey: pub, Recipient: "alice"})
	require.NoError(t, err)
	require.Equal(t, 20, mr.Count)
	result, approval := approve(t, "j1", s, alice, mr, pub)
	ct, err := hrss.Deliver(ctx, &nodeapi.DeliverRequest{Header: header(s, "j1", 1, 0), Approval: approval, Result: result})
	require.NoError(t, err)
	require.Equal(t, mr.SealedSHA256, nodeapi.DigestOf(ct))
	ids, err := delivery.Open(priv, "j1", ct)
	require.NoError(t, err)
	var want []string
	for i := 10; i < 30; i++ {
		want = append(want, nodetest.ID(i))
	}
	require.ElementsMatch(t, want, ids)
	es := entries(t, f, "hrss", string(nodeapi.StepMembers))
	require.Len(t, es, 1)
	require.Equal(t, "alice", es[0].Detail["recipient"])
	require.Equal(t, "20", es[0].Detail["count"])
	for _, e := range append(entries(t, f, "hrss", ""), entries(t, f, "housing", "")...) {
		for _, id := range want {
			require.NotContains(t, string(e.Encode()), id, "an ID was written to an audit log")
		}
	}
}

func TestMembersRefused(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	hrss, housing := f.Clients["hrss"], f.Clients["housing"]
	pub, _, err := delivery.GenerateKey()
	require.NoError(t, err)
	members := spec(policy.PSIMembers, policy.Input{Dataset: dsBenefits})
	mustPrepare(t, f, members, header(members, "jm", 1, 0))
	mustPrepare(t, f, members, header(members, "jm", 1, 1))
	card := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits})
	mustPrepare(t, f, card, header(card, "jc", 1, 0))

	mr := func(h nodeapi.Header, recipient string, pos []int, key []byte) nodeapi.MembersRequest {
		return nodeapi.MembersRequest{Header: h, Positions: pos, RecipientKey: key, Recipient: recipient}
	}
	for _, c := range []struct {
		name   string
		cl     *nodeapi.Client
		req    nodeapi.MembersRequest
		status int
		code   string
	}{
		{"another recipient", hrss, mr(header(members, "jm", 1, 0), "mallory", []int{0}, pub), 403, "wrong_recipient"},
		{"no recipient", hrss, mr(header(members, "jm", 1, 0), "", []int{0}, pub), 403, "wrong_recipient"},
		{"not the requesting party", housing, mr(header(members, "jm", 1, 1), "alice", []int{0}, pub), 403, "not_members"},
		{"not a members job", hrss, mr(header(card, "jc", 1, 0), "alice", []int{0}, pub), 403, "not_members"},
		{"position past the end", hrss, mr(header(members, "jm", 1, 0), "alice", []int{30}, pub), 400, "bad_positions"},
		{"negative position", hrss, mr(header(members, "jm", 1, 0), "alice", []int{-1}, pub), 400, "bad_positions"},
		{"repeated position", hrss, mr(header(members, "jm", 1, 0), "alice", []int{3, 3}, pub), 400, "bad_positions"},
		{"bad key", hrss, mr(header(members, "jm", 1, 0), "alice", []int{0}, pub[:5]), 400, "bad_key"},
		{"another spec", hrss, mr(header(card, "jm", 1, 0), "alice", []int{0}, pub), 403, "spec_conflict"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.cl.Members(ctx, &c.req)
			requireRefused(t, err, c.status, c.code)
		})
	}
	require.Empty(t, entries(t, f, "hrss", string(nodeapi.StepMembers)), "a refused delivery was recorded as made")
	_, err = hrss.Members(ctx, &nodeapi.MembersRequest{Header: header(members, "jm", 1, 0), Positions: []int{0, 1}, RecipientKey: pub, Recipient: "alice"})
	require.NoError(t, err)
}

func TestPrepareIdempotent(t *testing.T) {
	f := start(t)
	s := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits, Filter: "district = '天河区'"})
	first, err := prepare(t, f, s, alice, header(s, "j1", 1, 0))
	require.NoError(t, err)
	require.Equal(t, 10, first.Len) // rows 0, 3, …, 27
	require.Zero(t, first.InvalidIDs)
	require.Equal(t, nodeapi.SignedLength{List: 0, Len: 10, Signature: first.Length.Signature}, first.Length)
	own1, err := f.Clients["hrss"].Own(context.Background(), &nodeapi.OwnRequest{Header: header(s, "j1", 1, 0), N: first.Len})
	require.NoError(t, err)

	again, err := prepare(t, f, s, alice, header(s, "j1", 1, 0))
	require.NoError(t, err)
	require.Equal(t, first, again)
	require.Len(t, entries(t, f, "hrss", string(nodeapi.StepPrepare)), 1)

	// The list is the same list, in the same secret order.
	own2, err := f.Clients["hrss"].Own(context.Background(), &nodeapi.OwnRequest{Header: header(s, "j1", 1, 0), N: first.Len})
	require.NoError(t, err)
	require.Equal(t, own1, own2)

	// The same job id with another spec is refused for good (the job id is
	// bound to its first spec), not a silent replacement of the session.
	other := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits})
	_, err = prepare(t, f, other, alice, header(other, "j1", 1, 0))
	requireRefused(t, err, 403, "spec_conflict")

	// A new attempt prepares afresh (same set, so same length and order).
	next, err := prepare(t, f, s, alice, header(s, "j1", 2, 0))
	require.NoError(t, err)
	require.Equal(t, first.Len, next.Len)
	require.Len(t, entries(t, f, "hrss", string(nodeapi.StepPrepare)), 2)
}

// A node learns how a job ended at review, so its own lineage shows whether
// a result from its data was released.
func TestOutcomeFeedsLineage(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	s := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits, Filter: "district = '天河区'"})
	mustPrepare(t, f, s, header(s, "j1", 1, 0))
	hrss := f.Clients["hrss"]
	_, err := hrss.Finish(ctx, &nodeapi.FinishRequest{Header: header(s, "j1", 1, 0), Outcome: "ok"})
	require.NoError(t, err)
	_, err = hrss.Outcome(ctx, &nodeapi.OutcomeRequest{Header: header(s, "j1", 1, 0), Outcome: "released", Purpose: s.Purpose, Datasets: s.Datasets(), Reviewer: "rita"})
	require.NoError(t, err)

	_, err = hrss.Outcome(ctx, &nodeapi.OutcomeRequest{Header: header(s, "j2", 1, 0), Outcome: "released", Datasets: []string{"tax.x"}})
	requireRefused(t, err, 400, "not_ours")
	_, err = hrss.Outcome(ctx, &nodeapi.OutcomeRequest{Header: header(s, "j1", 1, 0), Outcome: "maybe", Datasets: s.Datasets()})
	requireRefused(t, err, 400, "bad_request")

	all, err := f.Audits["hrss"].All(ctx)
	require.NoError(t, err)
	rows := audit.Lineage(all, dsBenefits)
	require.Len(t, rows, 1)
	require.Equal(t, "released", rows[0].Outcome)
	require.Equal(t, "alice", rows[0].Requester)
	require.Equal(t, "id_number,district", rows[0].Columns)
	for _, e := range entries(t, f, "hrss", "job.released") {
		require.Equal(t, []string{dsBenefits}, e.Datasets, "a node names only its own datasets")
	}
}
