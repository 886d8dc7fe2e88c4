package node

// The OT protocol's steps (nodeapi/ot.go; policy.PSIProtocolOT): after the
// same Prepare as the ECDH protocol, this node runs the KKRT oblivious PRF
// (psi/kkrt) with one peer node at a time, through the coordinator, over a
// channel encrypted and authenticated end to end (psi/otlink), and hands
// the coordinator its half of the join: the receiver its OPRF outputs, the
// sender its OPRF values, each with positions of its own list.
//
// What the node checks itself, whatever the coordinator says:
//   - the protocol: the spec's psi_protocol, or with none the automatic
//     rule (policy.ChoosePSIProtocol) on the lengths the parties signed; and
//     one protocol per attempt: once an OT session is opened, the ECDH steps
//     (Own, Reblind) are refused, and the other way round;
//   - the sizes: every party's length signed by its owner for this job,
//     spec and attempt; the kkrt parameters are built from them, and the
//     peer signs the same sizes into its hello;
//   - the pair: the two nodes form an edge of the star around the shortest
//     list (nodeapi.OTCentre), whose node is the receiver; one session per
//     peer and attempt;
//   - the peer: its hello is signed by the peer's key in this node's own
//     federation.nodes, for this job, spec, attempt, pair, roles and sizes,
//     so a coordinator that puts its own ephemeral key in the middle is
//     refused; the session's keys derive from both signed hellos;
//   - every frame: sealed by the peer under the session's key, with the
//     next sequence number; a tampered, replayed, reordered or dropped
//     frame is refused and ends the session at this node (the job fails).
//
// Who learns what: the peer node learns this list's length (public, signed)
// and nothing else (kkrt's semi-honest security); the coordinator learns
// the lengths, the OPRF outputs and values (pseudo-random but for their
// equalities, i.e. which positions match) and the frames' sizes.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/psi/kkrt"
	"github.com/unseen-data/unseen/psi/otlink"
)

// otSessions is a session's protocol choice and OT pairs.
type otSessions struct {
	mu    sync.Mutex
	proto string          // the protocol this attempt runs here ("" until a step decides)
	pairs map[int]*otPair // by peer
}

// claimProtocol records that this attempt runs proto here, refusing one the
// spec does not allow or that another step already ruled out.
func (ss *session) claimProtocol(proto string) error {
	ss.ot.mu.Lock()
	defer ss.ot.mu.Unlock()
	if p := ss.spec.PSIProtocol; p != "" && p != proto {
		return refuse(KindForbidden, "wrong_protocol", "this job's spec runs PSI protocol %q, not %q", p, proto)
	}
	if ss.ot.proto != "" && ss.ot.proto != proto {
		return refuse(KindForbidden, "wrong_protocol", "attempt %d of this job runs PSI protocol %q at this node already: one protocol per attempt", ss.attempt, ss.ot.proto)
	}
	ss.ot.proto = proto
	return nil
}

// claimECDH is claimProtocol for the ECDH steps (Own, Reblind).
func (ss *session) claimECDH() error { return ss.claimProtocol(policy.PSIProtocolECDH) }

type otStage int

const (
	otOpened   otStage = iota // hello sent
	otAccepted                // keys derived; the sender has sent Setup
	otReplied                 // receiver: Reply sent, Seeds awaited
	otReady                   // base OTs done: correction chunks flow
	otDone                    // every chunk built (receiver) or applied (sender)
)

// otPair is this node's OT session with one peer.
type otPair struct {
	mu     sync.Mutex
	peer   int
	role   otlink.Role
	params kkrt.Params
	plan   kkrt.Plan
	hello  nodeapi.OTHello // this node's
	eph    *otlink.Ephemeral
	link   *otlink.Link
	recv   *kkrt.Receiver
	send   *kkrt.Sender
	parts  *otParts
	stage  otStage
	next   int // receiver: chunks built; sender: chunks applied
	rp     *kkrt.ReceiverPartition
	sp     *kkrt.SenderPartition
	failed error // once set, the pair refuses everything
}

// fail ends the pair at this node for good.
func (p *otPair) fail(err error) {
	if p.failed == nil {
		p.failed = err
	}
	p.parts.Close()
	p.parts, p.rp, p.sp, p.recv, p.send, p.eph = nil, nil, nil, nil, nil, nil
}

func otRoleName(r otlink.Role) string {
	if r == otlink.Receiver {
		return nodeapi.OTReceiver
	}
	return nodeapi.OTSender
}

// otDetail is what every OT step's audit entry records.
func otDetail(ss *session, h nodeapi.Header, peer int) map[string]string {
	return map[string]string{"attempt": fmt.Sprint(h.Attempt), "purpose": ss.spec.Purpose, "protocol": policy.PSIProtocolOT,
		"peer": partyDept(&ss.spec, peer)}
}

// OTOpen opens this node's OT session with a peer: it checks the protocol,
// the signed lengths and the star, and answers with its signed ephemeral
// key (nodeapi.OTHello). Repeated, it answers the same hello.
func (s *Service) OTOpen(ctx context.Context, c Caller, req *nodeapi.OTOpenRequest) (*nodeapi.OTOpenResponse, error) {
	out, err := s.otOpen(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathOTOpen, err)
}

func (s *Service) otOpen(ctx context.Context, c Caller, req *nodeapi.OTOpenRequest) (*nodeapi.OTOpenResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepOTOpen); err != nil {
		return nil, err
	}
	ss, err := s.jobSession(req.Header)
	if err != nil {
		return nil, err
	}
	parties := len(ss.spec.Inputs)
	if req.Peer < 0 || req.Peer >= parties || req.Peer == ss.self {
		return nil, refuse(KindBadRequest, "bad_peer", "party %d is not another party of the job's %d", req.Peer, parties)
	}
	detail := otDetail(ss, req.Header, req.Peer)
	fail := func(err error) (*nodeapi.OTOpenResponse, error) {
		return nil, s.refusedStep(ctx, c, nodeapi.StepOTOpen, req.Job, []string{ss.dataset}, detail, err)
	}
	// Every list's length, as its owner signed it for this attempt.
	if len(req.Lengths) != parties {
		return fail(refuse(KindBadRequest, "bad_length", "%d signed lengths for a job of %d parties", len(req.Lengths), parties))
	}
	lens := make([]int, parties)
	ref := req.Header.Ref()
	for i, sl := range req.Lengths {
		ls := nodeapi.LengthStatement{JobRef: ref, List: i, Len: sl.Len}
		if sl.List != i || sl.Len < 0 || s.keys.Nodes.Verify(partyDept(&ss.spec, i), ls.Message(), sl.Signature) != nil {
			return fail(refuse(KindForbidden, "bad_length", "list %d's length is not declared by its owner, node %s, for job %s attempt %d", i, partyDept(&ss.spec, i), req.Job, req.Attempt))
		}
		lens[i] = sl.Len
	}
	if lens[ss.self] != ss.length.Len {
		return fail(refuse(KindForbidden, "bad_length", "this node's list has %d elements, not %d", ss.length.Len, lens[ss.self]))
	}
	proto, err := policy.ChoosePSIProtocol(&ss.spec, lens)
	if err != nil {
		return fail(refuse(KindForbidden, "wrong_protocol", "%v", err))
	}
	if proto != policy.PSIProtocolOT {
		return fail(refuse(KindForbidden, "wrong_protocol", "job %s runs PSI protocol %q on lists of these lengths (spec psi_protocol %q), not OT", req.Job, proto, ss.spec.PSIProtocol))
	}
	centre := nodeapi.OTCentre(lens)
	if ss.self != centre && req.Peer != centre {
		return fail(refuse(KindForbidden, "not_star_edge", "parties %d and %d are not an edge of the OT star around party %d (the shortest list): the coordinator would learn their intersection", ss.self, req.Peer, centre))
	}
	role, recv, send := otlink.Sender, req.Peer, ss.self
	if ss.self == centre {
		role, recv, send = otlink.Receiver, ss.self, req.Peer
	}
	params := nodeapi.OTParams(lens[recv], lens[send])
	plan, err := params.Plan()
	if err != nil {
		return fail(refuse(KindForbidden, "ot_params", "%v", err))
	}
	if err := ss.claimProtocol(policy.PSIProtocolOT); err != nil {
		return fail(err)
	}
	ss.ot.mu.Lock()
	defer ss.ot.mu.Unlock()
	if ss.ot.pairs == nil {
		ss.ot.pairs = map[int]*otPair{}
	}
	if p, ok := ss.ot.pairs[req.Peer]; ok {
		if p.params != params {
			return fail(refuse(KindConflict, "ot_conflict", "the OT session with party %d was opened with other lengths", req.Peer))
		}
		return &nodeapi.OTOpenResponse{Hello: p.hello}, nil
	}
	eph, err := otlink.NewEphemeral(rand.Reader)
	if err != nil {
		return nil, internal(err)
	}
	hello := nodeapi.OTHello{Party: ss.self, Peer: req.Peer, Role: otRoleName(role), ReceiverSize: params.ReceiverSize, SenderSize: params.SenderSize, Ephemeral: eph.Public()}
	hello.Signature = s.sign(hello.Statement(ref).Message())
	detail["role"] = hello.Role
	detail["receiver_size"], detail["sender_size"] = fmt.Sprint(params.ReceiverSize), fmt.Sprint(params.SenderSize)
	if err := s.record(ctx, c, string(nodeapi.StepOTOpen), req.Job, []string{ss.dataset}, detail); err != nil {
		return nil, err
	}
	ss.ot.pairs[req.Peer] = &otPair{peer: req.Peer, role: role, params: params, plan: plan, hello: hello, eph: eph}
	return &nodeapi.OTOpenResponse{Hello: hello}, nil
}

// otPairOf finds the job's session and its pair with peer.
func (s *Service) otPairOf(h nodeapi.Header, peer int) (*session, *otPair, error) {
	ss, err := s.jobSession(h)
	if err != nil {
		return nil, nil, err
	}
	ss.ot.mu.Lock()
	p := ss.ot.pairs[peer]
	ss.ot.mu.Unlock()
	if p == nil {
		return nil, nil, refuse(KindConflict, "ot_not_open", "no OT session with party %d is open for job %s attempt %d", peer, h.Job, h.Attempt)
	}
	return ss, p, nil
}

// OTAccept takes the peer's hello, checks its signature against the peer's
// key in this node's own federation, derives the session's keys and splits
// the node's list into the session's partitions. The sender answers with
// its first frame (kkrt Setup).
func (s *Service) OTAccept(ctx context.Context, c Caller, req *nodeapi.OTAcceptRequest) (*nodeapi.OTAcceptResponse, error) {
	out, err := s.otAccept(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathOTAccept, err)
}

func (s *Service) otAccept(ctx context.Context, c Caller, req *nodeapi.OTAcceptRequest) (*nodeapi.OTAcceptResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepOTAccept); err != nil {
		return nil, err
	}
	ss, p, err := s.otPairOf(req.Header, req.Peer)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	detail := otDetail(ss, req.Header, req.Peer)
	fail := func(err error) (*nodeapi.OTAcceptResponse, error) {
		return nil, s.refusedStep(ctx, c, nodeapi.StepOTAccept, req.Job, []string{ss.dataset}, detail, err)
	}
	if p.failed != nil {
		return fail(refuse(KindForbidden, "ot_failed", "the OT session with party %d ended at this node: %v", req.Peer, p.failed))
	}
	if p.stage != otOpened {
		return fail(refuse(KindConflict, "ot_accepted", "the OT session with party %d has its peer's key already", req.Peer))
	}
	ref := req.Header.Ref()
	h := req.Hello
	peerRole := otlink.Sender
	if p.role == otlink.Sender {
		peerRole = otlink.Receiver
	}
	peerDept := partyDept(&ss.spec, req.Peer)
	if h.Party != req.Peer || h.Peer != ss.self || h.Role != otRoleName(peerRole) || h.ReceiverSize != p.params.ReceiverSize || h.SenderSize != p.params.SenderSize ||
		s.keys.Nodes.Verify(peerDept, h.Statement(ref).Message(), h.Signature) != nil {
		// The hello is not the peer's for this session: a relay's own key
		// (a man in the middle), another job's, attempt's or pair's.
		err := refuse(KindForbidden, "bad_hello", "the OT key offered as node %s's is not signed by it for job %s attempt %d, parties %d and %d, %s, sizes %d and %d: this node exchanges keys only with its peer",
			peerDept, req.Job, req.Attempt, req.Peer, ss.self, otRoleName(peerRole), p.params.ReceiverSize, p.params.SenderSize)
		p.fail(err)
		return fail(err)
	}
	mine, theirs := sha256.Sum256(p.hello.Statement(ref).Message().Encoded()), sha256.Sum256(h.Statement(ref).Message().Encoded())
	transcript := append(mine[:], theirs[:]...)
	if p.role == otlink.Sender {
		transcript = append(theirs[:], mine[:]...)
	}
	link, err := otlink.Establish(p.eph, h.Ephemeral, p.role, transcript)
	if err != nil {
		err := refuse(KindForbidden, "bad_hello", "node %s's OT key: %v", peerDept, err)
		p.fail(err)
		return fail(err)
	}
	p.eph = nil
	if err := s.record(ctx, c, string(nodeapi.StepOTAccept), req.Job, []string{ss.dataset}, detail); err != nil {
		return nil, err
	}
	p.link = link
	parts, err := buildOTParts(ctx, ss, p.params, link.SessionKey(), link.ItemKey(), filepath.Dir(s.cfg.StateDBPath()))
	if err != nil {
		p.fail(err)
		return nil, internal(err)
	}
	p.parts = parts
	out := &nodeapi.OTAcceptResponse{}
	if p.role == otlink.Receiver {
		if p.recv, err = kkrt.NewReceiver(p.params, link.SessionKey()); err != nil {
			p.fail(err)
			return nil, internal(err)
		}
	} else {
		if p.send, err = kkrt.NewSender(p.params, link.SessionKey()); err != nil {
			p.fail(err)
			return nil, internal(err)
		}
		setup, err := p.send.Setup()
		if err != nil {
			p.fail(err)
			return nil, internal(err)
		}
		if out.Frame, err = link.Seal(setup); err != nil {
			p.fail(err)
			return nil, internal(err)
		}
	}
	p.stage = otAccepted
	return out, nil
}

// OTDeliver takes the next frame the peer sealed: for the receiver the
// sender's Setup (it answers with its Reply) and Seeds; for the sender the
// receiver's Reply (it answers with Seeds) and then the correction chunks
// in order, answering each partition's last with the partition's kkrt
// Values. A frame that does not open — tampered, replayed, reordered or
// after a dropped one — ends the session here.
func (s *Service) OTDeliver(ctx context.Context, c Caller, req *nodeapi.OTDeliverRequest) (*nodeapi.OTDeliverResponse, error) {
	out, err := s.otDeliver(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathOTDeliver, err)
}

func (s *Service) otDeliver(ctx context.Context, c Caller, req *nodeapi.OTDeliverRequest) (*nodeapi.OTDeliverResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepOTDeliver); err != nil {
		return nil, err
	}
	ss, p, err := s.otPairOf(req.Header, req.Peer)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	detail := otDetail(ss, req.Header, req.Peer)
	fail := func(err error) (*nodeapi.OTDeliverResponse, error) {
		return nil, s.refusedStep(ctx, c, nodeapi.StepOTDeliver, req.Job, []string{ss.dataset}, detail, err)
	}
	if p.failed != nil {
		return fail(refuse(KindForbidden, "ot_failed", "the OT session with party %d ended at this node: %v", req.Peer, p.failed))
	}
	if p.link == nil {
		return fail(refuse(KindConflict, "ot_not_accepted", "the OT session with party %d has no keys yet", req.Peer))
	}
	if seq, err := otlink.ParseFrame(req.Frame); err == nil {
		detail["seq"] = fmt.Sprint(seq)
	}
	msg, err := p.link.Open(req.Frame)
	if err != nil {
		err := refuse(KindForbidden, "ot_frame_refused", "a frame relayed as node %s's does not open (%v): the relay tampered with, replayed, reordered or dropped the session's frames, and this node takes nothing more of it", partyDept(&ss.spec, req.Peer), err)
		p.fail(err)
		return fail(err)
	}
	kind, _, err := kkrt.Peek(msg)
	if err != nil {
		return fail(p.broken(err))
	}
	detail["kind"] = kind.String()
	if err := s.record(ctx, c, string(nodeapi.StepOTDeliver), req.Job, []string{ss.dataset}, detail); err != nil {
		p.fail(err)
		return nil, err
	}
	out := &nodeapi.OTDeliverResponse{}
	var reply []byte
	switch {
	case p.role == otlink.Receiver && p.stage == otAccepted && kind == kkrt.KindSetup:
		if reply, err = p.recv.Reply(msg); err == nil {
			p.stage = otReplied
		}
	case p.role == otlink.Receiver && p.stage == otReplied && kind == kkrt.KindSeeds:
		if err = p.recv.Finish(msg); err == nil {
			p.stage = otReady
		}
	case p.role == otlink.Sender && p.stage == otAccepted && kind == kkrt.KindReply:
		if reply, err = p.send.Seeds(msg); err == nil {
			p.stage = otReady
		}
	case p.role == otlink.Sender && p.stage == otReady && kind == kkrt.KindCorrection:
		out.Values, err = p.apply(msg)
	default:
		err = fmt.Errorf("%w: a %v message in stage %d of the %s", kkrt.ErrState, kind, p.stage, otRoleName(p.role))
	}
	if err != nil {
		return fail(p.broken(err))
	}
	if reply != nil {
		if out.Frame, err = p.link.Seal(reply); err != nil {
			return fail(p.broken(err))
		}
	}
	return out, nil
}

// broken ends the pair over a message its authenticated peer sent that
// the engine refuses (an honest peer never sends one; a relay cannot forge
// one) and returns the refusal.
func (p *otPair) broken(err error) error {
	e := refuse(KindForbidden, "ot_protocol", "the OT session with party %d is out of step: %v", p.peer, err)
	p.fail(e)
	return e
}

// apply is the sender's step for one correction chunk (chunks arrive in
// order: the frames' sequence numbers fix it). After a partition's last
// chunk it returns the partition's Values.
func (p *otPair) apply(msg []byte) ([][]byte, error) {
	part, c := p.next/p.plan.Chunks, p.next%p.plan.Chunks
	if c == 0 {
		sp, err := p.send.Partition(part)
		if err != nil {
			return nil, err
		}
		p.sp = sp
	}
	if err := p.sp.Apply(msg); err != nil {
		return nil, err
	}
	p.next++
	if c < p.plan.Chunks-1 {
		return nil, nil
	}
	items, pos, err := p.parts.Partition(part)
	if err != nil {
		return nil, err
	}
	vals, err := p.sp.Values(items, pos)
	if err != nil {
		return nil, err
	}
	p.sp = nil
	if p.next == p.plan.Partitions*p.plan.Chunks {
		p.finish()
	}
	return vals, nil
}

// finish releases a completed pair's state.
func (p *otPair) finish() {
	p.stage = otDone
	p.parts.Close()
	p.parts, p.recv, p.send, p.rp, p.sp = nil, nil, nil, nil, nil
}

// OTNext has the receiver build its next correction chunk, sealed for the
// sender, with the partition's kkrt Outputs after its last chunk.
func (s *Service) OTNext(ctx context.Context, c Caller, req *nodeapi.OTNextRequest) (*nodeapi.OTNextResponse, error) {
	out, err := s.otNext(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathOTNext, err)
}

func (s *Service) otNext(ctx context.Context, c Caller, req *nodeapi.OTNextRequest) (*nodeapi.OTNextResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepOTNext); err != nil {
		return nil, err
	}
	ss, p, err := s.otPairOf(req.Header, req.Peer)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	detail := otDetail(ss, req.Header, req.Peer)
	fail := func(err error) (*nodeapi.OTNextResponse, error) {
		return nil, s.refusedStep(ctx, c, nodeapi.StepOTNext, req.Job, []string{ss.dataset}, detail, err)
	}
	switch {
	case p.failed != nil:
		return fail(refuse(KindForbidden, "ot_failed", "the OT session with party %d ended at this node: %v", req.Peer, p.failed))
	case p.role != otlink.Receiver:
		return fail(refuse(KindForbidden, "ot_role", "this node is the sender of the OT session with party %d", req.Peer))
	case p.stage == otDone:
		return fail(refuse(KindConflict, "ot_done", "every chunk of the OT session with party %d has been sent", req.Peer))
	case p.stage != otReady:
		return fail(refuse(KindConflict, "ot_not_ready", "the OT session with party %d has not finished its base OTs", req.Peer))
	}
	part, ci := p.next/p.plan.Chunks, p.next%p.plan.Chunks
	detail["partition"], detail["chunk"] = fmt.Sprint(part), fmt.Sprint(ci)
	if err := s.record(ctx, c, string(nodeapi.StepOTNext), req.Job, []string{ss.dataset}, detail); err != nil {
		return nil, err
	}
	if ci == 0 {
		items, pos, err := p.parts.Partition(part)
		if err == nil {
			p.rp, err = p.recv.Partition(part, items, pos)
		}
		if err != nil {
			if errors.Is(err, kkrt.ErrPartitionOverflow) || errors.Is(err, kkrt.ErrCuckoo) {
				// Probability ≤ 2^-40: a new attempt brings a new key.
				e := refuse(KindConflict, "ot_restart", "%v: the job must run again with a new session key", err)
				p.fail(e)
				return fail(e)
			}
			return fail(p.broken(err))
		}
	}
	chunk, err := p.rp.Chunk(ci)
	if err != nil {
		return fail(p.broken(err))
	}
	out := &nodeapi.OTNextResponse{Partition: part, Chunk: ci}
	if out.Frame, err = p.link.Seal(chunk); err != nil {
		return fail(p.broken(err))
	}
	if ci == p.plan.Chunks-1 {
		if out.Outputs, err = p.rp.Outputs(); err != nil {
			return fail(p.broken(err))
		}
		p.rp = nil
	}
	p.next++
	if p.next == p.plan.Partitions*p.plan.Chunks {
		p.finish()
	}
	return out, nil
}
