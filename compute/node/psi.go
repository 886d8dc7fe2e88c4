package node

// The PSI steps (design §5): prepare a filtered, blinded list; hand out
// chunks of it; reblind other parties' chunks; seal the matches to the
// analyst (psi_members); and the job's end (finish, outcome).

import (
	"bytes"
	"context"
	"fmt"

	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/psi"
	"github.com/unseen-data/unseen/psi/delivery"
)

// Prepare checks a PSI job against the node's own policy and, if it may
// run, prepares the node's list for it: the distinct keys of the input's
// filtered rows, blinded under this job's key. It is idempotent per (job,
// party, attempt); a newer attempt replaces the session.
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
	in := req.Spec.Inputs[req.Input]
	detail := jobDetail(&req.Spec, req.Requester, req.Attempt)
	s.inputDetail(detail, &req.Spec, in)
	ds := []string{in.Dataset}
	fail := func(reason string, err error) (*nodeapi.PrepareResponse, error) {
		return nil, s.refused(ctx, c, "psi.refused", req.Job, ds, detail, reason, err)
	}
	tbl, ok := s.tables[in.Dataset]
	if !ok {
		return fail("unknown dataset", refuse(KindNotFound, "unknown_dataset", "dataset %q is not held by node %s", in.Dataset, s.cfg.Department))
	}
	if req.Spec.Type != policy.PSICardinality && req.Spec.Type != policy.PSIMembers && req.Spec.Type != policy.IntersectionStats {
		return fail("job type", refuse(KindForbidden, "unsupported", "job type %s is not served by this node's PSI endpoint", req.Spec.Type))
	}
	// The node's own policy decides, whatever the coordinator checked.
	dec := policy.Decide(s.catalog, &req.Spec, req.Requester, true)
	if !dec.Allow {
		return fail(dec.Error(), refuse(KindForbidden, "policy_violation", "%s", dec.Error()))
	}
	detail["policy_version"] = dec.Versions[in.Dataset]
	answer := func(n int) *nodeapi.PrepareResponse {
		return &nodeapi.PrepareResponse{Len: n, InvalidIDs: tbl.InvalidIDs(), BelowK: n < s.catalog[in.Dataset].EffectiveMinCount()}
	}

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
			return answer(n), nil
		}
	}
	s.mu.Unlock()

	ids, err := tbl.KeyIDs(in.Key, in.Filter)
	if err != nil {
		return fail(err.Error(), refuse(KindBadRequest, "bad_input", "%v", err))
	}
	specHash := req.Spec.Hash()
	party, err := psi.NewLocalParty(s.secret, req.Job, specHash[:], req.Party, ids)
	if err != nil {
		return nil, err
	}
	n, _ := party.Len(ctx)
	detail["list_len"] = fmt.Sprint(n)
	if err := s.record(ctx, c, string(nodeapi.StepPrepare), req.Job, ds, detail); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.sessions[sessionKey(req.Header)] = &session{attempt: req.Attempt, input: req.Input, self: req.Party, dataset: in.Dataset, spec: req.Spec, requester: req.Requester, party: party, used: s.clock()}
	s.mu.Unlock()
	return answer(n), nil
}

// Own hands out a chunk of the node's own prepared list, blinded once.
func (s *Service) Own(ctx context.Context, c Caller, req *nodeapi.OwnRequest) (*nodeapi.ElementsResponse, error) {
	out, err := s.own(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathOwn, err)
}

func (s *Service) own(ctx context.Context, c Caller, req *nodeapi.OwnRequest) (*nodeapi.ElementsResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepOwn); err != nil {
		return nil, err
	}
	ss, err := s.lookup(req.Header)
	if err != nil {
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
	return &nodeapi.ElementsResponse{Elements: psi.EncodeElements(els)}, nil
}

// Reblind raises a chunk of another party's list to this node's key. A
// node never reblinds its own list: it could then compute the intersection.
func (s *Service) Reblind(ctx context.Context, c Caller, req *nodeapi.ReblindRequest) (*nodeapi.ElementsResponse, error) {
	out, err := s.reblind(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathReblind, err)
}

func (s *Service) reblind(ctx context.Context, c Caller, req *nodeapi.ReblindRequest) (*nodeapi.ElementsResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepReblind); err != nil {
		return nil, err
	}
	ss, err := s.lookup(req.Header)
	if err != nil {
		return nil, err
	}
	if req.List == ss.self {
		return nil, refuse(KindForbidden, "own_list", "a node never reblinds its own list: it could then compute the intersection")
	}
	els, err := psi.DecodeElements(req.Elements, nodeapi.MaxChunk)
	if err != nil {
		return nil, refuse(KindBadRequest, "invalid_elements", "%v", err)
	}
	if err := s.record(ctx, c, string(nodeapi.StepReblind), req.Job, []string{ss.dataset}, map[string]string{"list": fmt.Sprint(req.List), "n": fmt.Sprint(len(els)), "attempt": fmt.Sprint(req.Attempt), "purpose": ss.spec.Purpose}); err != nil {
		return nil, err
	}
	out, err := ss.party.ReblindElements(ctx, req.List, els)
	if err != nil {
		return nil, refuse(KindBadRequest, "invalid_elements", "%v", err)
	}
	return &nodeapi.ElementsResponse{Elements: psi.EncodeElements(out)}, nil
}

// Members seals the IDs at the given positions of the node's list to the
// submitting analyst (psi_members, the requesting node only).
func (s *Service) Members(ctx context.Context, c Caller, req *nodeapi.MembersRequest) (*nodeapi.MembersResponse, error) {
	out, err := s.members(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathMembers, err)
}

func (s *Service) members(ctx context.Context, c Caller, req *nodeapi.MembersRequest) (*nodeapi.MembersResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepMembers); err != nil {
		return nil, err
	}
	ss, err := s.lookup(req.Header)
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
	ct, err := delivery.Seal(req.RecipientKey, req.Job, ids)
	if err != nil {
		return nil, refuse(KindBadRequest, "bad_key", "%v", err)
	}
	if err := s.record(ctx, c, string(nodeapi.StepMembers), req.Job, []string{ss.dataset}, map[string]string{"count": fmt.Sprint(len(ids)), "recipient": req.Recipient, "attempt": fmt.Sprint(req.Attempt), "purpose": ss.spec.Purpose}); err != nil {
		return nil, err
	}
	return &nodeapi.MembersResponse{Ciphertext: ct, Count: len(ids)}, nil
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
