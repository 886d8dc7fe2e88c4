package node_test

// The OT protocol's node side, attacked as a malicious coordinator would:
// it relays every frame between the two nodes, so it can tamper with,
// replay, reorder, drop or reflect frames, offer its own ephemeral key, and
// ask for sessions, protocols and sizes the job does not allow. Every test
// drives real node servers (nodetest) over HTTP, step by step.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/psi/kkrt"
	"github.com/unseen-data/unseen/psi/otlink"
)

// otFed: a holds 40000 keys, b 11000 (the star's centre: the receiver),
// c 300; two kkrt partitions of one chunk each between a and b.
func otFed(t *testing.T) *nodetest.Federation {
	t.Helper()
	return nodetest.Start(t, map[string][]int{"a.x": rng(0, 40000), "b.y": rng(25000, 36000), "c.z": rng(30000, 30300), "a.s": rng(0, 50), "b.s": rng(25, 80)}, nil)
}

// otJob is one job's attempt as the (malicious) coordinator drives it.
type otJob struct {
	t       *testing.T
	f       *nodetest.Federation
	spec    policy.Spec
	id      string
	attempt int
	depts   []string
	lengths []nodeapi.SignedLength
}

func otSpec(proto string, names ...string) policy.Spec {
	s := policy.Spec{Type: policy.PSICardinality, Purpose: "test", PSIProtocol: proto}
	for _, n := range names {
		s.Inputs = append(s.Inputs, policy.Input{Dataset: n, Key: "id_number"})
	}
	return s
}

// prepare prepares every input of the job at its node.
func prepare(t *testing.T, f *nodetest.Federation, id string, attempt int, spec policy.Spec) *otJob {
	t.Helper()
	j := &otJob{t: t, f: f, spec: spec, id: id, attempt: attempt, lengths: make([]nodeapi.SignedLength, len(spec.Inputs))}
	for i, in := range spec.Inputs {
		d := policy.Department(in.Dataset)
		j.depts = append(j.depts, d)
		resp, err := f.Clients[d].Prepare(context.Background(), &nodeapi.PrepareRequest{Header: j.header(i), Spec: spec, Requester: alice, Input: i, Parties: len(spec.Inputs)})
		require.NoError(t, err)
		j.lengths[i] = resp.Length
	}
	return j
}

func (j *otJob) header(i int) nodeapi.Header {
	return nodeapi.Header{Job: j.id, SpecHash: j.spec.Hash(), Attempt: j.attempt, Party: i}
}

func (j *otJob) cl(i int) *nodeapi.Client { return j.f.Clients[j.depts[i]] }

func (j *otJob) open(i, peer int) (*nodeapi.OTHello, error) {
	r, err := j.cl(i).OTOpen(context.Background(), &nodeapi.OTOpenRequest{Header: j.header(i), Peer: peer, Lengths: j.lengths})
	if err != nil {
		return nil, err
	}
	return &r.Hello, nil
}

func (j *otJob) accept(i, peer int, h *nodeapi.OTHello) ([]byte, error) {
	r, err := j.cl(i).OTAccept(context.Background(), &nodeapi.OTAcceptRequest{Header: j.header(i), Peer: peer, Hello: *h})
	if err != nil {
		return nil, err
	}
	return r.Frame, nil
}

func (j *otJob) deliver(i, peer int, frame []byte) (*nodeapi.OTDeliverResponse, error) {
	return j.cl(i).OTDeliver(context.Background(), &nodeapi.OTDeliverRequest{Header: j.header(i), Peer: peer, Frame: frame})
}

func (j *otJob) next(i, peer int) (*nodeapi.OTNextResponse, error) {
	return j.cl(i).OTNext(context.Background(), &nodeapi.OTNextRequest{Header: j.header(i), Peer: peer})
}

// handshake runs the key exchange and base OTs between receiver r and
// sender s honestly.
func (j *otJob) handshake(r, s int) {
	t := j.t
	t.Helper()
	hr, err := j.open(r, s)
	require.NoError(t, err)
	hs, err := j.open(s, r)
	require.NoError(t, err)
	_, err = j.accept(r, s, hs)
	require.NoError(t, err)
	setup, err := j.accept(s, r, hr)
	require.NoError(t, err)
	reply, err := j.deliver(r, s, setup)
	require.NoError(t, err)
	seeds, err := j.deliver(s, r, reply.Frame)
	require.NoError(t, err)
	_, err = j.deliver(r, s, seeds.Frame)
	require.NoError(t, err)
}

// requireRefused checks a node's refusal: status, code, and that the
// node's log records it (action "<step>.refused" for the job).
func requireRefused(t *testing.T, err error, status int, code string) {
	t.Helper()
	var re *nodeapi.RemoteError
	require.True(t, errors.As(err, &re), "want a refusal, got %v", err)
	require.Equal(t, status, re.Status, re.Message)
	require.Equal(t, code, re.Code, re.Message)
}

func refusals(t *testing.T, f *nodetest.Federation, dept, action, job string) []audit.Entry {
	t.Helper()
	es, err := f.Audits[dept].Entries(context.Background(), audit.Filter{Action: action, Job: job})
	require.NoError(t, err)
	return es
}

// An honest session, step by step, as the runner drives it: every chunk
// arrives, the sender answers each partition's last with its values, and
// the join of both halves is the intersection.
// Run twice: with the items in memory and spilled to disk.
func TestOTSessionByHand(t *testing.T) {
	f := otFed(t)
	for _, spill := range []bool{false, true} {
		t.Run(fmt.Sprint("spill=", spill), func(t *testing.T) {
			if spill {
				defer node.SetOTSpillAbove(1000)()
			}
			honestSession(t, f, fmt.Sprint("honest-", spill))
		})
	}
}

func honestSession(t *testing.T, f *nodetest.Federation, id string) {
	j := prepare(t, f, id, 1, otSpec(policy.PSIProtocolOT, "a.x", "b.y"))
	j.handshake(1, 0)
	plan, err := nodeapi.OTParams(11000, 40000).Plan()
	require.NoError(t, err)
	joiner, err := kkrt.NewJoiner(plan.Partitions)
	require.NoError(t, err)
	var matches []kkrt.Match
	add := func(msgs [][]byte) {
		for _, m := range msgs {
			ms, err := joiner.Add(m)
			require.NoError(t, err)
			matches = append(matches, ms...)
		}
	}
	for k := range plan.Partitions * plan.Chunks {
		nx, err := j.next(1, 0)
		require.NoError(t, err)
		add(nx.Outputs)
		d, err := j.deliver(0, 1, nx.Frame)
		require.NoError(t, err)
		require.Equal(t, k%plan.Chunks == plan.Chunks-1, d.Values != nil, "values come with a partition's last chunk")
		add(d.Values)
	}
	require.True(t, joiner.Done())
	require.Len(t, matches, 11000)
	// Done: a further chunk is refused.
	_, err = j.next(1, 0)
	requireRefused(t, err, 409, "ot_done")
}

// The relay's attacks on frames: each is refused by the node it reaches,
// recorded in its log, and ends the session there (the genuine frame is
// refused afterwards too).
func TestOTRelayAttacksOnFrames(t *testing.T) {
	f := otFed(t)
	type frames struct{ c0, c1 []byte } // the receiver's two correction chunks
	cases := []struct {
		name   string
		attack func(j *otJob, fr frames) error // returns the sender's refusal
		reason string
	}{
		{"tamper", func(j *otJob, fr frames) error {
			bad := bytes.Clone(fr.c0)
			bad[len(bad)/2] ^= 0x01
			_, err := j.deliver(0, 1, bad)
			return err
		}, "does not authenticate"},
		{"replay", func(j *otJob, fr frames) error {
			if _, err := j.deliver(0, 1, fr.c0); err != nil {
				return fmt.Errorf("genuine frame refused: %w", err)
			}
			_, err := j.deliver(0, 1, fr.c0)
			return err
		}, "replayed"},
		{"reorder", func(j *otJob, fr frames) error {
			_, err := j.deliver(0, 1, fr.c1)
			return err
		}, "out of order"},
		{"drop", func(j *otJob, fr frames) error {
			// c0 is dropped: c1 arrives where c0 was due (the same refusal as a
			// reorder; a dropped last frame leaves its partition without values,
			// so the job never completes).
			_, err := j.deliver(0, 1, fr.c1)
			return err
		}, "was due"},
		{"renumber", func(j *otJob, fr frames) error {
			// c1 presented as the frame due: the number is authenticated.
			bad := bytes.Clone(fr.c1)
			seq, _ := otlink.ParseFrame(fr.c0)
			bad[8] = byte(seq)
			_, err := j.deliver(0, 1, bad)
			return err
		}, "does not authenticate"},
		{"reflect", func(j *otJob, fr frames) error {
			// The receiver's frame handed back to the receiver.
			_, err := j.deliver(1, 0, fr.c0)
			if err == nil {
				return errors.New("reflected frame accepted")
			}
			_, err = j.deliver(0, 1, fr.c0) // the receiver refused; the sender is unharmed
			if err != nil {
				return fmt.Errorf("sender refused the genuine frame: %w", err)
			}
			return errors.New("reflection refused") // marker for the check below
		}, ""},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := prepare(t, f, fmt.Sprintf("frames-%d", i), 1, otSpec(policy.PSIProtocolOT, "a.x", "b.y"))
			j.t = t
			j.handshake(1, 0)
			n0, err := j.next(1, 0)
			require.NoError(t, err)
			n1, err := j.next(1, 0)
			require.NoError(t, err)
			err = c.attack(j, frames{n0.Frame, n1.Frame})
			if c.name == "reflect" {
				require.EqualError(t, err, "reflection refused")
				require.NotEmpty(t, refusals(t, f, "b", string(nodeapi.StepOTDeliver)+".refused", j.id))
				return
			}
			requireRefused(t, err, 403, "ot_frame_refused")
			require.Contains(t, err.Error(), c.reason)
			es := refusals(t, f, "a", string(nodeapi.StepOTDeliver)+".refused", j.id)
			require.Len(t, es, 1)
			require.Contains(t, es[0].Detail["reason"], "does not open")
			require.NotEmpty(t, es[0].Detail["remote"], "the refusal names the caller's address")
			// The session is over at the sender: even the genuine next frame.
			_, err = j.deliver(0, 1, n1.Frame)
			requireRefused(t, err, 403, "ot_failed")
		})
	}
}

// A frame of one session does not open in another: another job's, or
// another attempt's of the same job (fresh ephemeral keys each time).
func TestOTFrameOfAnotherSessionRefused(t *testing.T) {
	f := otFed(t)
	j1 := prepare(t, f, "one", 1, otSpec(policy.PSIProtocolOT, "a.x", "b.y"))
	j1.handshake(1, 0)
	n1, err := j1.next(1, 0)
	require.NoError(t, err)
	j2 := prepare(t, f, "two", 1, otSpec(policy.PSIProtocolOT, "a.x", "b.y"))
	j2.handshake(1, 0)
	_, err = j2.deliver(0, 1, n1.Frame)
	requireRefused(t, err, 403, "ot_frame_refused")
}

// A man in the middle: the relay offers each node a key of its own instead
// of the peer's. However it signs it, the node refuses the hello (its
// federation.nodes key for the peer does not verify it), and the session
// ends there.
func TestOTManInTheMiddleRefused(t *testing.T) {
	f := otFed(t)
	mine, err := otlink.NewEphemeral(rand.Reader)
	require.NoError(t, err)
	forge := func(j *otJob, genuine *nodeapi.OTHello, signer string, mutate func(h *nodeapi.OTHello)) *nodeapi.OTHello {
		h := *genuine
		h.Ephemeral = mine.Public()
		if mutate != nil {
			mutate(&h)
		}
		ref := nodeapi.JobRef{Job: j.id, SpecHash: j.spec.Hash(), Attempt: j.attempt}
		h.Signature = attest.Sign(nodetest.PrivateKey(signer), h.Statement(ref).Message())
		return &h
	}
	// A genuine hello of the sender from another attempt of the same job.
	old := prepare(t, f, "mitm-old", 1, otSpec(policy.PSIProtocolOT, "a.x", "b.y"))
	oldHello, err := old.open(0, 1)
	require.NoError(t, err)

	cases := []struct {
		name  string
		hello func(j *otJob, genuine *nodeapi.OTHello) *nodeapi.OTHello
	}{
		{"own key signed by the coordinator", func(j *otJob, g *nodeapi.OTHello) *nodeapi.OTHello {
			return forge(j, g, "coordinator", nil)
		}},
		{"own key under the peer's signature", func(j *otJob, g *nodeapi.OTHello) *nodeapi.OTHello {
			h := *g
			h.Ephemeral = mine.Public()
			return &h
		}},
		{"own key signed by a third node", func(j *otJob, g *nodeapi.OTHello) *nodeapi.OTHello {
			return forge(j, g, "node-c", nil)
		}},
		{"the peer's hello of another attempt", func(j *otJob, g *nodeapi.OTHello) *nodeapi.OTHello {
			return oldHello
		}},
		{"the peer's hello with other sizes", func(j *otJob, g *nodeapi.OTHello) *nodeapi.OTHello {
			h := *g
			h.SenderSize--
			return &h
		}},
		{"the receiver's own hello reflected", func(j *otJob, g *nodeapi.OTHello) *nodeapi.OTHello {
			h, err := j.open(1, 0)
			require.NoError(t, err)
			return h
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := prepare(t, f, fmt.Sprintf("mitm-%d", i), 2, otSpec(policy.PSIProtocolOT, "a.x", "b.y"))
			j.t = t
			_, err := j.open(1, 0)
			require.NoError(t, err)
			genuine, err := j.open(0, 1)
			require.NoError(t, err)
			_, err = j.accept(1, 0, c.hello(j, genuine))
			requireRefused(t, err, 403, "bad_hello")
			require.Len(t, refusals(t, f, "b", string(nodeapi.StepOTAccept)+".refused", j.id), 1)
			// No key was derived: the session is over at the receiver.
			_, err = j.accept(1, 0, genuine)
			requireRefused(t, err, 403, "ot_failed")
			_, err = j.next(1, 0)
			requireRefused(t, err, 403, "ot_failed")
		})
	}
}

// The relay cannot choose the session's shape: the protocol the spec (or
// the automatic rule on the signed lengths) fixes, one protocol per
// attempt, sizes as their owners signed them, and only the star's edges.
func TestOTSessionShapeRefused(t *testing.T) {
	f := otFed(t)
	ctx := context.Background()

	t.Run("spec says ecdh", func(t *testing.T) {
		j := prepare(t, f, "shape-ecdh", 1, otSpec(policy.PSIProtocolECDH, "a.x", "b.y"))
		_, err := j.open(1, 0)
		requireRefused(t, err, 403, "wrong_protocol")
	})
	t.Run("spec says ot", func(t *testing.T) {
		j := prepare(t, f, "shape-ot", 1, otSpec(policy.PSIProtocolOT, "a.x", "b.y"))
		_, err := j.cl(0).Own(ctx, &nodeapi.OwnRequest{Header: j.header(0), Offset: 0, N: 10})
		requireRefused(t, err, 403, "wrong_protocol")
	})
	t.Run("automatic rule picks ecdh", func(t *testing.T) {
		j := prepare(t, f, "shape-auto-small", 1, otSpec("", "a.s", "b.s"))
		_, err := j.open(1, 0)
		requireRefused(t, err, 403, "wrong_protocol")
	})
	t.Run("one protocol per attempt", func(t *testing.T) {
		j := prepare(t, f, "shape-auto-big", 1, otSpec("", "a.x", "b.y"))
		_, err := j.open(1, 0)
		require.NoError(t, err, "the automatic rule runs OT on these lengths")
		_, err = j.cl(1).Own(ctx, &nodeapi.OwnRequest{Header: j.header(1), Offset: 0, N: 10})
		requireRefused(t, err, 403, "wrong_protocol")
		// And the other way round at the other node.
		_, err = j.cl(0).Own(ctx, &nodeapi.OwnRequest{Header: j.header(0), Offset: 0, N: 10})
		require.NoError(t, err)
		_, err = j.open(0, 1)
		requireRefused(t, err, 403, "wrong_protocol")
	})
	t.Run("forged length", func(t *testing.T) {
		j := prepare(t, f, "shape-len", 1, otSpec(policy.PSIProtocolOT, "a.x", "b.y"))
		j.lengths[0].Len = 100 // a's signature covers 40000
		_, err := j.open(1, 0)
		requireRefused(t, err, 403, "bad_length")
		// A length signed for another attempt.
		old := prepare(t, f, "shape-len", 2, otSpec(policy.PSIProtocolOT, "a.x", "b.y"))
		_, err = old.open(1, 0)
		require.NoError(t, err, "attempt 2's own lengths are fine")
		j3 := prepare(t, f, "shape-len", 3, otSpec(policy.PSIProtocolOT, "a.x", "b.y"))
		j3.lengths = old.lengths // attempt 2's signatures, in attempt 3
		_, err = j3.open(1, 0)
		requireRefused(t, err, 403, "bad_length")
	})
	t.Run("not an edge of the star", func(t *testing.T) {
		// c (300 keys) is the centre: a and b must not run a session, which
		// would show the coordinator their intersection.
		j := prepare(t, f, "shape-star", 1, otSpec(policy.PSIProtocolOT, "a.x", "b.y", "c.z"))
		_, err := j.open(0, 1)
		requireRefused(t, err, 403, "not_star_edge")
		_, err = j.open(1, 0)
		requireRefused(t, err, 403, "not_star_edge")
		_, err = j.open(0, 2)
		require.NoError(t, err)
	})
	t.Run("roles", func(t *testing.T) {
		j := prepare(t, f, "shape-role", 1, otSpec(policy.PSIProtocolOT, "a.x", "b.y"))
		j.handshake(1, 0)
		_, err := j.next(0, 1) // a is the sender: it builds no chunks
		requireRefused(t, err, 403, "ot_role")
		// Base-OT frames out of place: the sender's Setup again is a replay.
		_, err = j.deliver(1, 0, nil)
		requireRefused(t, err, 403, "ot_frame_refused")
	})
}
