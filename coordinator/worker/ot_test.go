package worker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/coordinator/hefed"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/psi/delivery"
	"github.com/unseen-data/unseen/psi/kkrt"
)

// otRows are the datasets of the protocol tests: per case one dataset at
// department a, one at b (and c), nodetest rows ID(i).
func otRows() map[string][]int {
	return map[string][]int{
		"a.single": {7}, "b.single": {7}, // singleton, all match
		"a.none": rng(0, 100), "b.none": rng(100, 250), // none match
		"a.all": rng(0, 300), "b.all": rng(0, 300), // all match
		"a.dup": append(rng(0, 50), 10, 10, 11), "b.dup": append(rng(40, 90), 45, 45), // rows repeat keys
		// Two kkrt partitions (more than 2^15 keys on the longer side), the
		// shorter list second (the star's centre, the receiver, is party 1).
		"a.big": rng(0, 40000), "b.big": rng(25000, 36000),
		// Three parties: b is the shortest, so the centre, and not the
		// primary list (a, input 0) of psi_members.
		"a.mid": rng(0, 600), "b.mid": rng(300, 500), "c.mid": append(rng(350, 700), rng(1000, 1100)...),
	}
}

// plainCount is the size of the intersection of the datasets' keys.
func plainCount(rows map[string][]int, names ...string) int {
	in := map[int]int{}
	for _, n := range names {
		seen := map[int]bool{}
		for _, i := range rows[n] {
			if !seen[i] {
				seen[i] = true
				in[i]++
			}
		}
	}
	c := 0
	for _, k := range in {
		if k == len(names) {
			c++
		}
	}
	return c
}

func psiSpec(typ policy.JobType, proto string, names ...string) policy.Spec {
	s := policy.Spec{Type: typ, Purpose: "test", PSIProtocol: proto}
	for _, n := range names {
		s.Inputs = append(s.Inputs, policy.Input{Dataset: n, Key: "id_number"})
	}
	return s
}

// actions returns the audit actions a node recorded for a job.
func actions(t *testing.T, log *audit.MemLog, job string) map[string]int {
	t.Helper()
	es, err := log.Entries(context.Background(), audit.Filter{Job: job})
	require.NoError(t, err)
	out := map[string]int{}
	for _, e := range es {
		out[e.Action]++
	}
	return out
}

// Both protocols, end to end through real node servers and the runner,
// give the plaintext intersection and the same released result, over
// singleton, none-match, all-match, repeated-key, multi-partition and
// three-party inputs; each node's log shows which protocol ran.
func TestProtocolsAgreeEndToEnd(t *testing.T) {
	rows := otRows()
	fed := nodetest.Start(t, rows, nil)
	st := &states{ch: map[string]chan jobs.State{}}
	store := openStore(t, nil)
	r := &Runner{Store: store, Nodes: fed.Clients, Catalog: staticCatalog(fed.Catalog), ChunkSize: 1000, OnState: st.on, Worker: "test"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, 2); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	cases := [][]string{
		{"a.single", "b.single"}, {"a.none", "b.none"}, {"a.all", "b.all"}, {"a.dup", "b.dup"},
		{"a.big", "b.big"}, {"a.mid", "b.mid", "c.mid"},
	}
	type pairJobs struct{ ecdh, ot *jobs.Job }
	var js []pairJobs
	for _, names := range cases {
		js = append(js, pairJobs{
			ecdh: submit(t, store, psiSpec(policy.PSICardinality, policy.PSIProtocolECDH, names...)),
			ot:   submit(t, store, psiSpec(policy.PSICardinality, policy.PSIProtocolOT, names...)),
		})
	}
	for i, names := range cases {
		want := plainCount(rows, names...)
		var results [2]json.RawMessage
		for k, j := range []*jobs.Job{js[i].ecdh, js[i].ot} {
			st.wait(t, j.ID, jobs.AwaitingReview)
			rv, res := review(t, store, j.ID)
			if want == 0 { // below k = 1: suppressed, on both protocols
				require.Nil(t, res["count"], "%v over %s", names, j.Spec.PSIProtocol)
			} else {
				require.EqualValues(t, want, res["count"], "%v over %s", names, j.Spec.PSIProtocol)
			}
			results[k] = rv.Result
		}
		require.JSONEq(t, string(results[0]), string(results[1]), "%v: the released results differ", names)
		// Which protocol ran, as the nodes recorded it.
		a := actions(t, fed.Audits["a"], js[i].ot.ID)
		require.Zero(t, a["psi.own"]+a["psi.reblind"], "%v: an OT job ran ECDH steps", names)
		require.Positive(t, a["psi.ot.open"], "%v", names)
		e := actions(t, fed.Audits["a"], js[i].ecdh.ID)
		require.Zero(t, e["psi.ot.open"], "%v: an ECDH job ran OT steps", names)
		require.Positive(t, e["psi.own"], "%v", names)
	}
	// Progress reached its total, per relayed chunk.
	j := mustGet(t, store, js[4].ot.ID)
	require.Equal(t, "psi (ot)", j.Progress.Step)
	require.Equal(t, j.Progress.Total, j.Progress.Done)
	plan, err := nodeapi.OTParams(11000, 40000).Plan()
	require.NoError(t, err)
	require.Equal(t, 2, plan.Partitions)
	require.EqualValues(t, plan.Partitions*plan.Chunks, j.Progress.Total, "one step per correction chunk")
}

// psi_members over OT: the requesting node (input 0, not the star's
// centre) seals its matched IDs — the positions the join gave — and
// delivers them against the reviewer's signed approval, as over ECDH.
func TestMembersOverOT(t *testing.T) {
	rows := otRows()
	r, store, st, priv := setup(t, rows)
	want := map[string][]string{}
	var js []*jobs.Job
	for _, proto := range []string{policy.PSIProtocolECDH, policy.PSIProtocolOT} {
		j := submit(t, store, psiSpec(policy.PSIMembers, proto, "a.mid", "b.mid", "c.mid"))
		js = append(js, j)
		st.wait(t, j.ID, jobs.AwaitingReview)
		ids, err := delivery.Open(priv, j.ID, release(t, r, store, j.ID))
		require.NoError(t, err)
		sort.Strings(ids)
		want[proto] = ids
	}
	var plain []string
	for i := 350; i < 500; i++ {
		plain = append(plain, nodetest.ID(i))
	}
	sort.Strings(plain)
	require.Equal(t, plain, want[policy.PSIProtocolOT])
	require.Equal(t, want[policy.PSIProtocolECDH], want[policy.PSIProtocolOT])

	// The requesting node as the star's centre (equal lengths: the lower
	// index), so the receiver's positions are the ones sealed.
	j := submit(t, store, psiSpec(policy.PSIMembers, policy.PSIProtocolOT, "a.dup", "b.dup"))
	st.wait(t, j.ID, jobs.AwaitingReview)
	ids, err := delivery.Open(priv, j.ID, release(t, r, store, j.ID))
	require.NoError(t, err)
	sort.Strings(ids)
	plain = nil
	for i := 40; i < 50; i++ {
		plain = append(plain, nodetest.ID(i))
	}
	sort.Strings(plain)
	require.Equal(t, plain, ids)
}

// Without psi_protocol the coordinator picks by the rule every node
// checks: ECDH for small or three-party jobs, OT for a two-party job of
// at least AutoOTMinElements keys.
func TestAutomaticProtocol(t *testing.T) {
	rows := otRows()
	fed := nodetest.Start(t, rows, nil)
	st := &states{ch: map[string]chan jobs.State{}}
	store := openStore(t, nil)
	r := &Runner{Store: store, Nodes: fed.Clients, Catalog: staticCatalog(fed.Catalog), ChunkSize: 1000, OnState: st.on, Worker: "test"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, 1); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for _, c := range []struct {
		names []string
		want  string
	}{
		{[]string{"a.all", "b.all"}, policy.PSIProtocolECDH},
		{[]string{"a.mid", "b.mid", "c.mid"}, policy.PSIProtocolECDH},
		{[]string{"a.big", "b.big"}, policy.PSIProtocolOT},
	} {
		j := submit(t, store, psiSpec(policy.PSICardinality, "", c.names...))
		st.wait(t, j.ID, jobs.AwaitingReview)
		_, res := review(t, store, j.ID)
		require.EqualValues(t, plainCount(rows, c.names...), res["count"])
		a := actions(t, fed.Audits["a"], j.ID)
		if c.want == policy.PSIProtocolOT {
			require.Positive(t, a["psi.ot.open"], "%v", c.names)
			require.Zero(t, a["psi.own"], "%v", c.names)
		} else {
			require.Zero(t, a["psi.ot.open"], "%v", c.names)
			require.Positive(t, a["psi.own"], "%v", c.names)
		}
	}
}

// An empty input never reaches either protocol: every node refuses a
// filtered list below its dataset's k (here 1) at prepare.
func TestEmptyInputRefusedOnBothProtocols(t *testing.T) {
	rows := otRows()
	_, store, st, _ := setup(t, rows)
	for _, proto := range []string{policy.PSIProtocolECDH, policy.PSIProtocolOT} {
		spec := psiSpec(policy.PSICardinality, proto, "a.all", "b.all")
		spec.Inputs[1].Filter = "amount < 0"
		j := submit(t, store, spec)
		st.wait(t, j.ID, jobs.Failed)
		require.Contains(t, mustGet(t, store, j.ID).Error, "input_below_k", proto)
	}
}

func TestJoinStar(t *testing.T) {
	// Centre 1 (3 keys); party 0 matches centre positions 0, 2; party 2
	// matches 2 only.
	m := func(r, s uint64) kkrt.Match { return kkrt.Match{Receiver: r, Sender: s} }
	pairs := [][]kkrt.Match{{m(0, 5), m(2, 1)}, nil, {m(2, 9), m(1, 0)}}
	res, err := joinStar([]int{10, 3, 12}, 1, 0, pairs)
	require.NoError(t, err)
	require.Equal(t, 1, res.Count)
	require.Equal(t, []int{1}, res.Positions, "party 0's position of centre position 2")
	res, err = joinStar([]int{10, 3, 12}, 1, 1, pairs)
	require.NoError(t, err)
	require.Equal(t, []int{2}, res.Positions)
	res, err = joinStar([]int{10, 3, 12}, 1, 2, pairs)
	require.NoError(t, err)
	require.Equal(t, []int{9}, res.Positions)
	// A position outside its list is an error, not a result.
	_, err = joinStar([]int{10, 3, 12}, 1, 0, [][]kkrt.Match{{m(3, 0)}, nil, nil})
	require.Error(t, err)
}

// A relay that tampers with one frame on its way to the sender: the
// sender refuses it, and the job fails (not retried) with no result.
func TestTamperingRelayFailsTheJob(t *testing.T) {
	var tampered atomic.Int32
	wrap := func(dept string, h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if dept == "a" && req.URL.Path == nodeapi.PathOTDeliver && tampered.Load() == 0 {
				b, _ := io.ReadAll(req.Body)
				if d, err := nodeapi.DecodeOTDeliverRequest(b); err == nil && len(d.Frame) > 100000 { // a correction chunk (the base OTs' frames are a few KiB)
					d.Frame[len(d.Frame)/3] ^= 0x40
					b, _ = d.MarshalBinary()
					tampered.Add(1)
				}
				req.Body = io.NopCloser(bytes.NewReader(b))
				req.ContentLength = int64(len(b))
			}
			h.ServeHTTP(w, req)
		})
	}
	fed := nodetest.StartWith(t, otRows(), nodetest.Options{Wrap: wrap})
	st := &states{ch: map[string]chan jobs.State{}}
	store := openStore(t, nil)
	r := &Runner{Store: store, Nodes: fed.Clients, Catalog: staticCatalog(fed.Catalog), OnState: st.on, Worker: "test"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, 1); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	j := submit(t, store, psiSpec(policy.PSICardinality, policy.PSIProtocolOT, "a.big", "b.big"))
	st.wait(t, j.ID, jobs.Failed)
	got := mustGet(t, store, j.ID)
	require.EqualValues(t, 1, tampered.Load())
	require.Contains(t, got.Error, "ot_frame_refused")
	require.Equal(t, 1, got.Attempt, "refused for good, not retried")
	require.Empty(t, got.Review)
}

// intersection_stats over OT: the value node's positions come from the
// star's join and the released statistics equal ECDH's.
func TestIntersectionStatsOverOT(t *testing.T) {
	rows := map[string][]int{"a.v": rng(0, 400), "b.k": rng(100, 700), "c.k": rng(150, 380)}
	fed := nodetest.Start(t, rows, nil)
	store := openStore(t, nil)
	key := make([]byte, hefed.StateKeySize)
	_, _ = rand.Read(key)
	hc, err := hefed.Open(context.Background(), hefed.Options{Blobs: store, Key: key, Nodes: fed.Clients})
	require.NoError(t, err)
	_, err = hc.Init(context.Background(), 2)
	require.NoError(t, err)
	st := &states{ch: map[string]chan jobs.State{}}
	r := &Runner{Store: store, Nodes: fed.Clients, Catalog: staticCatalog(fed.Catalog), OnState: st.on, Worker: "test", HE: hc}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, 1); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	var results []json.RawMessage
	for _, proto := range []string{policy.PSIProtocolECDH, policy.PSIProtocolOT} {
		// The value input is second, so that neither the first input nor
		// the star's centre (c.k, the shortest) is the primary list.
		spec := psiSpec(policy.IntersectionStats, proto, "b.k", "a.v", "c.k")
		spec.Value = &policy.ColumnRef{Dataset: "a.v", Column: "amount"}
		spec.GroupBy = &policy.ColumnRef{Dataset: "a.v", Column: "district"}
		spec.Stats = []string{"count", "sum"}
		j := submit(t, store, spec)
		st.wait(t, j.ID, jobs.AwaitingReview)
		rv, res := review(t, store, j.ID)
		require.EqualValues(t, 380-150, res["count"], proto)
		sum := 0
		for i := 150; i < 380; i++ {
			sum += i
		}
		require.EqualValues(t, sum, res["sum"], proto)
		results = append(results, rv.Result)
	}
	require.JSONEq(t, string(results[0]), string(results[1]))
}
