package node

// The PSI steps (design §5): prepare a filtered, blinded list; hand out
// chunks of it; reblind other parties' chunks; seal the matches to the
// analyst and keep them (psi_members) until a reviewer's approval releases
// them (deliver); and the job's end (finish, outcome).

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/compute/source"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/psi"
	"github.com/unseen-data/unseen/psi/delivery"
)

// Prepare checks a PSI job against the node's own policy and, if it may
// run, prepares the node's list for it: the distinct keys of the input's
// filtered rows, blinded under this job's key. It is idempotent per (job,
// party, attempt); a newer attempt replaces the session.
//
// Before touching any data the node passes the job through its gate
// (trust.go): the spec hash, the job's binding to that spec for good, its
// party, its own policy, the owner's signed consent and the owner's budgets
// and rate limits. It then refuses an input whose filtered list has fewer
// than the dataset's k keys (input_below_k): the coordinator sees every
// count before a reviewer does, so such a job must not run at all. Its
// answer is the list's length, signed (nodeapi.SignedLength).
func (s *Service) Prepare(ctx context.Context, c Caller, req *nodeapi.PrepareRequest) (*nodeapi.PrepareResponse, error) {
	out, err := s.prepare(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathPrepare, err)
}

func (s *Service) prepare(ctx context.Context, c Caller, req *nodeapi.PrepareRequest) (*nodeapi.PrepareResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepPrepare); err != nil {
		return nil, err
	}
	if req.Parties < 2 || req.Parties > MaxParties || req.Party < 0 || req.Party >= req.Parties {
		return nil, refuse(KindBadRequest, "bad_request", "party %d of %d is out of range", req.Party, req.Parties)
	}
	if req.Input < 0 || req.Input >= len(req.Spec.Inputs) {
		return nil, refuse(KindBadRequest, "bad_request", "input %d is not in the spec", req.Input)
	}
	if req.Parties != len(req.Spec.Inputs) {
		return nil, refuse(KindBadRequest, "bad_request", "a job with %d inputs has %d parties (one per input), not %d", len(req.Spec.Inputs), len(req.Spec.Inputs), req.Parties)
	}
	in := req.Spec.Inputs[req.Input]
	detail := jobDetail(&req.Spec, req.Requester, req.Attempt)
	s.inputDetail(detail, &req.Spec, in)
	dsn := []string{in.Dataset}
	fail := func(reason string, err error) (*nodeapi.PrepareResponse, error) {
		return nil, s.refused(ctx, c, "psi.refused", req.Job, dsn, detail, reason, err)
	}
	tbl, ok := s.tables[in.Dataset]
	if !ok {
		return fail("unknown dataset", refuse(KindNotFound, "unknown_dataset", "dataset %q is not held by node %s", in.Dataset, s.cfg.Department))
	}
	if req.Spec.Type != policy.PSICardinality && req.Spec.Type != policy.PSIMembers && req.Spec.Type != policy.IntersectionStats {
		return fail("job type", refuse(KindForbidden, "unsupported", "job type %s is not served by this node's PSI endpoint", req.Spec.Type))
	}
	// The node decides, whatever the coordinator checked.
	ds, err := s.gate(ctx, req.Header, &req.Spec, req.Requester, req.Input, req.Consents)
	if err != nil {
		return fail(err.Error(), err)
	}
	detail["policy_version"] = ds.Version()

	s.mu.Lock()
	if ss, ok := s.sessions[sessionKey(req.Header)]; ok {
		if req.Attempt < ss.attempt {
			s.mu.Unlock()
			return nil, refuse(KindConflict, "stale_attempt", "job %s is at attempt %d here, not %d", req.Job, ss.attempt, req.Attempt)
		}
		if req.Attempt == ss.attempt {
			if ss.input != req.Input || !bytes.Equal(ss.spec.Encode(), req.Spec.Encode()) || ss.requester != req.Requester {
				s.mu.Unlock()
				return nil, refuse(KindConflict, "conflicting_prepare", "job %s attempt %d was prepared here with another spec or input", req.Job, req.Attempt)
			}
			// Idempotent per (job, step, attempt): the same list again.
			n, _ := ss.party.Len(ctx)
			s.mu.Unlock()
			return &nodeapi.PrepareResponse{Len: n, InvalidIDs: ss.invalidIDs, Length: ss.length, Overlaps: ss.overlaps, ListDigest: ss.list.Digest()}, nil
		}
	}
	s.mu.Unlock()
	// A new attempt, never one prepared before (the positions reblinded in
	// an older one, or before a restart, are not kept). Checked here, and
	// recorded once the step is audited (prepareAttempt).
	if err := s.state.checkAttempt(req.Job, req.Attempt); err != nil {
		return nil, attemptError(err)
	}

	// The list: the filtered keys streamed from the source into an
	// external sort on disk (psi.BuildList), so that memory does not grow
	// with the dataset. Dropped with the session, or below if refused.
	specHash := req.Spec.Hash()
	var rep *source.Report
	list, err := psi.BuildList(ctx, s.secret, req.Job, specHash[:], psi.ListOptions{Dir: s.cfg.ListDir(), RunSize: s.cfg.ListRunRecords}, func(add func([]byte) error) error {
		var err error
		rep, err = tbl.EachKey(ctx, in.Key, in.Filter, add)
		return err
	})
	if err != nil {
		if je := jobError(err); je.(*Error).Kind == KindBadRequest {
			return fail(err.Error(), je)
		}
		return nil, jobError(err)
	}
	keep := false
	defer func() {
		if !keep {
			list.Close()
		}
	}()
	party, err := psi.NewListParty(s.secret, req.Job, specHash[:], req.Party, list)
	if err != nil {
		return nil, err
	}
	n, _ := party.Len(ctx)
	if k := ds.EffectiveMinCount(); n < k {
		// No count about one person: the refusal says below k, not how far.
		return fail("input below k", refuse(KindForbidden, "input_below_k", "the filter on %s leaves fewer keys than the dataset's k = %d: node %s takes no part in a job whose result could single out a person", in.Dataset, k, s.cfg.Department))
	}
	// Disclosure control (disclosure.go): no input that differs from an
	// earlier job's by 1..k−1 people (refused, or reported in flag mode).
	var listErr error
	overlaps, err := s.differencing(req.Job, ds, func(add func([]byte)) {
		listErr = list.Each(ctx, func(_ int, id []byte) error {
			add(id)
			return nil
		})
	}, detail)
	if listErr != nil {
		return nil, internal(listErr)
	}
	if err != nil {
		return fail("differencing", err)
	}
	detail["list_len"] = fmt.Sprint(n)
	if err := s.record(ctx, c, string(nodeapi.StepPrepare), req.Job, dsn, detail); err != nil {
		return nil, err
	}
	if err := s.state.prepareAttempt(req.Job, req.Attempt); err != nil {
		return nil, attemptError(err)
	}
	ls := nodeapi.LengthStatement{JobRef: req.Header.Ref(), List: req.Party, Len: n}
	length := nodeapi.SignedLength{List: req.Party, Len: n, Signature: s.sign(ls.Message())}
	invalid := int(rep.InvalidIDs)
	s.mu.Lock()
	if old, ok := s.sessions[sessionKey(req.Header)]; ok {
		old.close()
	}
	s.sessions[sessionKey(req.Header)] = &session{attempt: req.Attempt, input: req.Input, self: req.Party, dataset: in.Dataset, spec: req.Spec, requester: req.Requester, party: party, list: list, invalidIDs: invalid, used: s.clock(), length: length, overlaps: overlaps}
	keep = true
	s.mu.Unlock()
	return &nodeapi.PrepareResponse{Len: n, InvalidIDs: invalid, Length: length, Overlaps: overlaps, ListDigest: list.Digest()}, nil
}

// attemptError is the refusal of an attempt prepared before.
func attemptError(err error) error {
	if errors.Is(err, errAttemptUsed) {
		return refuse(KindConflict, "attempt_used", "%v", err)
	}
	return internal(err)
}

// jobSession finds a job's session for a later step and checks that the step
// names the spec the session was prepared under.
func (s *Service) jobSession(h nodeapi.Header) (*session, error) {
	ss, err := s.lookup(h)
	if err != nil {
		return nil, err
	}
	if err := checkSpecHash(h, &ss.spec); err != nil {
		return nil, err
	}
	return ss, nil
}

// signChunk signs a chunk the node produced: hop hop of positions
// [offset, offset+n) of list, whose encoding is enc.
func (s *Service) signChunk(h nodeapi.Header, list, hop, offset, n int, enc []byte) []byte {
	if s.unsignedChunks.Load() {
		return nil
	}
	st := nodeapi.ChunkStatement{JobRef: h.Ref(), List: list, Hop: hop, Offset: offset, N: n, Elements: nodeapi.DigestOf(enc)}
	return s.sign(st.Message())
}

// Own hands out a chunk of the node's own prepared list, blinded once and
// signed (hop 0 of its list).
func (s *Service) Own(ctx context.Context, c Caller, req *nodeapi.OwnRequest) (*nodeapi.ElementsResponse, error) {
	out, err := s.own(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathOwn, err)
}

func (s *Service) own(ctx context.Context, c Caller, req *nodeapi.OwnRequest) (*nodeapi.ElementsResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepOwn); err != nil {
		return nil, err
	}
	ss, err := s.jobSession(req.Header)
	if err != nil {
		return nil, err
	}
	if err := ss.claimECDH(); err != nil {
		return nil, err
	}
	n, _ := ss.party.Len(ctx)
	if req.N < 1 || req.N > nodeapi.MaxChunk || req.Offset < 0 || req.Offset > n-req.N {
		return nil, refuse(KindBadRequest, "bad_range", "chunk [%d, %d+%d) outside list of %d (max chunk %d)", req.Offset, req.Offset, req.N, n, nodeapi.MaxChunk)
	}
	if err := s.record(ctx, c, string(nodeapi.StepOwn), req.Job, []string{ss.dataset}, map[string]string{"offset": fmt.Sprint(req.Offset), "n": fmt.Sprint(req.N), "attempt": fmt.Sprint(req.Attempt), "purpose": ss.spec.Purpose}); err != nil {
		return nil, err
	}
	els, err := ss.party.OwnElements(ctx, req.Offset, req.N)
	if err != nil {
		return nil, refuse(KindBadRequest, "bad_range", "%v", err)
	}
	enc := psi.EncodeElements(els)
	return &nodeapi.ElementsResponse{Elements: enc, Proof: s.signChunk(req.Header, ss.self, 0, req.Offset, req.N, enc)}, nil
}

// Reblind raises a chunk of another party's list to this node's key. A
// node never reblinds its own list: it could then compute the intersection.
//
// It blinds only what its peers produced, as its own federation keys say:
// the list's length must be declared by the list's owner (the department
// of its input), the chunk must lie within it, and the elements must be
// signed by the node of the previous hop on the list's route, for this
// job, spec, attempt, list, hop and offset. So the coordinator cannot have
// it blind a point of its own (a hashed, guessed ID: a membership oracle),
// nor a chunk of another job or attempt. Each position of a list is
// reblinded once per attempt (an identical repeat is answered again). Its
// answer is signed as its own hop.
func (s *Service) Reblind(ctx context.Context, c Caller, req *nodeapi.ReblindRequest) (*nodeapi.ElementsResponse, error) {
	out, err := s.reblind(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathReblind, err)
}

func (s *Service) reblind(ctx context.Context, c Caller, req *nodeapi.ReblindRequest) (*nodeapi.ElementsResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepReblind); err != nil {
		return nil, err
	}
	ss, err := s.jobSession(req.Header)
	if err != nil {
		return nil, err
	}
	if err := ss.claimECDH(); err != nil {
		return nil, err
	}
	parties := len(ss.spec.Inputs)
	if req.List < 0 || req.List >= parties {
		return nil, refuse(KindBadRequest, "bad_list", "list %d is not one of the job's %d", req.List, parties)
	}
	if req.List == ss.self {
		return nil, refuse(KindForbidden, "own_list", "a node never reblinds its own list: it could then compute the intersection")
	}
	els, err := psi.DecodeElements(req.Elements, nodeapi.MaxChunk)
	if err != nil || len(els) == 0 {
		return nil, refuse(KindBadRequest, "invalid_elements", "%v", cmp.Or(err, errors.New("no elements")))
	}
	n := len(els)
	ref := req.Header.Ref()
	if !s.unsignedChunks.Load() {
		// The owner's declaration of the list's length.
		owner := partyDept(&ss.spec, req.List)
		ls := nodeapi.LengthStatement{JobRef: ref, List: req.List, Len: req.Length.Len}
		if req.Length.List != req.List || s.keys.Nodes.Verify(owner, ls.Message(), req.Length.Signature) != nil {
			return nil, refuse(KindForbidden, "bad_length", "list %d's length is not declared by its owner, node %s, for job %s attempt %d", req.List, owner, req.Job, req.Attempt)
		}
	}
	if req.Offset < 0 || req.Offset > req.Length.Len-n {
		return nil, refuse(KindForbidden, "over_length", "positions [%d, %d+%d) are not in list %d, whose owner declared %d elements", req.Offset, req.Offset, n, req.List, req.Length.Len)
	}
	// The previous hop: the owner (hop 0) or the party before this one on
	// the list's route (psi.Route).
	hop := (ss.self - req.List + parties) % parties
	digest := nodeapi.DigestOf(req.Elements)
	if !s.unsignedChunks.Load() {
		prev := partyDept(&ss.spec, (req.List+hop-1)%parties)
		cs := nodeapi.ChunkStatement{JobRef: ref, List: req.List, Hop: hop - 1, Offset: req.Offset, N: n, Elements: digest}
		if s.keys.Nodes.Verify(prev, cs.Message(), req.Proof) != nil {
			return nil, refuse(KindForbidden, "bad_proof", "the elements are not signed by node %s as hop %d of positions [%d, %d+%d) of list %d of job %s attempt %d: this node blinds only what its peers produced", prev, hop-1, req.Offset, req.Offset, n, req.List, req.Job, req.Attempt)
		}
	}
	if err := ss.claimReblind(req.List, req.Length.Len, req.Offset, n, digest); err != nil {
		return nil, err
	}
	if err := s.record(ctx, c, string(nodeapi.StepReblind), req.Job, []string{ss.dataset}, map[string]string{"list": fmt.Sprint(req.List), "offset": fmt.Sprint(req.Offset), "n": fmt.Sprint(n), "attempt": fmt.Sprint(req.Attempt), "purpose": ss.spec.Purpose}); err != nil {
		return nil, err
	}
	out, err := ss.party.ReblindElements(ctx, req.List, els)
	if err != nil {
		return nil, refuse(KindBadRequest, "invalid_elements", "%v", err)
	}
	enc := psi.EncodeElements(out)
	return &nodeapi.ElementsResponse{Elements: enc, Proof: s.signChunk(req.Header, req.List, hop, req.Offset, n, enc)}, nil
}

// Members seals the IDs at the given positions of the node's list to the
// submitting analyst (psi_members, the requesting node only) and keeps the
// sealed list in its ledger; it answers with the list's size and SHA-256
// only. The list leaves the node through Deliver, against a reviewer's
// signed approval. Fewer than the dataset's k members are refused.
func (s *Service) Members(ctx context.Context, c Caller, req *nodeapi.MembersRequest) (*nodeapi.MembersResponse, error) {
	out, err := s.members(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathMembers, err)
}

func (s *Service) members(ctx context.Context, c Caller, req *nodeapi.MembersRequest) (*nodeapi.MembersResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepMembers); err != nil {
		return nil, err
	}
	ss, err := s.jobSession(req.Header)
	if err != nil {
		return nil, err
	}
	if ss.spec.Type != policy.PSIMembers || ss.input != 0 {
		return nil, refuse(KindForbidden, "not_members", "job %s is not a psi_members job whose keys belong to this node", req.Job)
	}
	if req.Recipient != ss.requester.User {
		return nil, refuse(KindForbidden, "wrong_recipient", "members are sealed only to the submitting analyst %q", ss.requester.User)
	}
	n, _ := ss.party.Len(ctx)
	seen := make(map[int]bool, len(req.Positions))
	ids := make([]string, 0, len(req.Positions))
	for _, p := range req.Positions {
		if p < 0 || p >= n || seen[p] {
			return nil, refuse(KindBadRequest, "bad_positions", "position %d is out of range or repeated", p)
		}
		seen[p] = true
		ids = append(ids, string(ss.party.IDAt(p)))
	}
	if k := s.catalog[ss.dataset].EffectiveMinCount(); len(ids) < k {
		return nil, refuse(KindForbidden, "below_k", "a member list of fewer than dataset %s's k = %d keys is not sealed", ss.dataset, k)
	}
	ct, err := delivery.Seal(req.RecipientKey, req.Job, ids)
	if err != nil {
		return nil, refuse(KindBadRequest, "bad_key", "%v", err)
	}
	l := &sealedList{Attempt: req.Attempt, SpecHash: req.SpecHash, Dataset: ss.dataset, Count: len(ids), Recipient: req.Recipient,
		RecipientKey: nodeapi.DigestOf(req.RecipientKey), Sealed: nodeapi.DigestOf(ct), Ciphertext: ct, At: s.clock().UTC()}
	if err := s.record(ctx, c, string(nodeapi.StepMembers), req.Job, []string{ss.dataset}, map[string]string{"count": fmt.Sprint(len(ids)), "recipient": req.Recipient,
		"recipient_key_sha256": l.RecipientKey.String(), "sealed_sha256": l.Sealed.String(), "attempt": fmt.Sprint(req.Attempt), "purpose": ss.spec.Purpose}); err != nil {
		return nil, err
	}
	if err := s.state.putSealed(req.Job, l); err != nil {
		return nil, internal(err)
	}
	return &nodeapi.MembersResponse{Count: l.Count, SealedSHA256: l.Sealed}, nil
}

// Deliver hands over a psi_members job's sealed list once a reviewer the
// node knows (its own federation.reviewers) has approved the release: the
// approval must name this job as the node bound it (id, spec hash,
// requester), the result it approves must be the bytes sent (their
// SHA-256) and name the list the node keeps (sealed_sha256 and count), and
// the analyst key it names must be the one the list is sealed to.
func (s *Service) Deliver(ctx context.Context, c Caller, req *nodeapi.DeliverRequest) (*nodeapi.DeliverResponse, error) {
	out, err := s.deliver(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathDeliver, err)
}

func (s *Service) deliver(ctx context.Context, c Caller, req *nodeapi.DeliverRequest) (*nodeapi.DeliverResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepDeliver); err != nil {
		return nil, err
	}
	b, err := s.state.bound(req.Job)
	if err != nil {
		return nil, internal(err)
	}
	l, err := s.state.sealed(req.Job)
	if err != nil {
		return nil, internal(err)
	}
	if b == nil || l == nil {
		return nil, refuse(KindNotFound, "no_members", "node %s keeps no member list of job %s", s.cfg.Department, req.Job)
	}
	detail := map[string]string{"attempt": fmt.Sprint(req.Attempt), "sealed_sha256": l.Sealed.String(), "recipient": l.Recipient}
	fail := func(err error) (*nodeapi.DeliverResponse, error) {
		return nil, s.refusedStep(ctx, c, nodeapi.StepDeliver, req.Job, []string{l.Dataset}, detail, err)
	}
	if req.SpecHash != b.SpecHash || l.SpecHash != b.SpecHash {
		return fail(refuse(KindForbidden, "spec_conflict", "job %s is bound here to spec %.12s…, not %.12s…", req.Job, b.SpecHash, req.SpecHash))
	}
	if err := s.keys.Reviewers.VerifyApproval(req.Approval); err != nil {
		return fail(refuse(KindForbidden, "approval_invalid", "no release without an approval signed by a reviewer this node knows: %v", err))
	}
	a := req.Approval.Statement
	detail["reviewer"] = a.Reviewer
	if a.JobRef != (attest.JobRef{Job: req.Job, SpecHash: b.SpecHash, Requester: b.Requester}) {
		return fail(refuse(KindForbidden, "approval_mismatch", "the approval is for job %s (spec %.12s…, requester %s/%s), not job %s as bound here", a.Job, a.SpecHash, a.Requester.User, a.Requester.Department, req.Job))
	}
	if nodeapi.DigestOf(req.Result) != a.Result {
		return fail(refuse(KindForbidden, "result_mismatch", "the result sent is not the result the reviewer approved (SHA-256 %.12s…)", a.Result))
	}
	var res struct {
		Count  *int           `json:"count"`
		Sealed *attest.Digest `json:"sealed_sha256"`
	}
	if err := json.Unmarshal(req.Result, &res); err != nil || res.Count == nil || res.Sealed == nil {
		return fail(refuse(KindForbidden, "result_mismatch", "the approved result does not name a sealed member list (count, sealed_sha256)"))
	}
	if *res.Sealed != l.Sealed || *res.Count != l.Count {
		return fail(refuse(KindForbidden, "result_mismatch", "the approved result names a list of %d members with SHA-256 %.12s…, not the list this node sealed", *res.Count, *res.Sealed))
	}
	if a.Recipient != l.RecipientKey {
		return fail(refuse(KindForbidden, "recipient_mismatch", "the approval names analyst key %.12s…, but the list is sealed to key %.12s…", a.Recipient, l.RecipientKey))
	}
	detail["approved_at"] = a.At.UTC().Format("2006-01-02T15:04:05Z")
	detail["count"] = fmt.Sprint(l.Count)
	if err := s.record(ctx, c, string(nodeapi.StepDeliver), req.Job, []string{l.Dataset}, detail); err != nil {
		return nil, err
	}
	return &nodeapi.DeliverResponse{Ciphertext: l.Ciphertext}, nil
}

// Outcome records how a job ended at review, for lineage. Only the node's
// own datasets are named in its log. The coordinator's signed head is
// recorded with it, and the node's own is returned (witness.go).
func (s *Service) Outcome(ctx context.Context, c Caller, req *nodeapi.OutcomeRequest) (*nodeapi.OutcomeResponse, error) {
	out, err := s.outcome(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathOutcome, err)
}

func (s *Service) outcome(ctx context.Context, c Caller, req *nodeapi.OutcomeRequest) (*nodeapi.OutcomeResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepOutcome); err != nil {
		return nil, err
	}
	if req.Outcome != "released" && req.Outcome != "rejected" {
		return nil, refuse(KindBadRequest, "bad_request", "outcome must be released or rejected")
	}
	var mine []string
	for _, d := range req.Datasets {
		if _, ok := s.catalog[d]; ok {
			mine = append(mine, d)
		}
	}
	if len(mine) == 0 {
		return nil, refuse(KindBadRequest, "not_ours", "job %s used none of this node's datasets", req.Job)
	}
	head, err := s.recordWitnessed(ctx, c, "job."+req.Outcome, req.Job, mine, map[string]string{"purpose": req.Purpose, "reviewer": req.Reviewer}, req.Witness)
	if err != nil {
		return nil, err
	}
	return &nodeapi.OutcomeResponse{OK: true, Head: head}, nil
}

// Finish drops the job's state at this node (unless a newer attempt has
// been prepared since). The coordinator's signed head is recorded with it,
// and the node's own is returned (witness.go).
func (s *Service) Finish(ctx context.Context, c Caller, req *nodeapi.FinishRequest) (*nodeapi.FinishResponse, error) {
	out, err := s.finish(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathFinish, err)
}

func (s *Service) finish(ctx context.Context, c Caller, req *nodeapi.FinishRequest) (*nodeapi.FinishResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepFinish); err != nil {
		return nil, err
	}
	s.mu.Lock()
	ss, ok := s.sessions[sessionKey(req.Header)]
	if ok && req.Attempt >= ss.attempt {
		ss.close()
		delete(s.sessions, sessionKey(req.Header))
	}
	s.mu.Unlock()
	var ds []string
	d := map[string]string{"outcome": req.Outcome, "attempt": fmt.Sprint(req.Attempt)}
	if ok {
		ds = []string{ss.dataset}
		d["purpose"] = ss.spec.Purpose
	}
	head, err := s.recordWitnessed(ctx, c, string(nodeapi.StepFinish), req.Job, ds, d, req.Witness)
	if err != nil {
		return nil, err
	}
	return &nodeapi.FinishResponse{OK: true, Head: head}, nil
}
