package node

// The release steps: he/zeromask (encryptions of random vectors whose slots
// sum to zero, which the coordinator adds so that only totals survive) and
// he/release (a decryption share of one output of one job, once ever).
//
// What a node decrypts, whatever the coordinator says:
//
//   - only an output of a job: the request names the job (its spec and
//     requester; the node binds the job id to the spec's hash in node.db as
//     at every step, so a job id is never reused with another spec) and an
//     output index below the count the spec implies — an aggregate has
//     output 0 ("sums") and, with the variance, 1 ("squares"); an
//     intersection_stats job has he.ISLanes·G (for each of the G groups of
//     the value node's signed layout: the count, Σx mod T_s and mod T_q,
//     Σx² mod T_s and mod T_q and its floor hint, as its stats need —
//     compute/he, "Exact Σx and Σx²");
//   - each output once, ever: the ledger records (job, output) — and the
//     ciphertext's hash — before the share exists, so re-randomising a
//     result (ct + Enc(0)) buys nothing;
//   - for an aggregate, only the sum the node computes itself of every
//     input's contribution, each signed by the node of that input's
//     department (keys from this node's own federation.nodes), exactly one
//     per input: never a ciphertext the coordinator computed, so a result
//     that is not the job's sum — one department's contribution alone,
//     another job's ciphertext — cannot be decrypted;
//   - for intersection_stats, the coordinator's result ciphertext: it holds
//     the match mask, and checking that the result is the masked sum of the
//     value node's chunks would need the mask, i.e. the intersection, so
//     the node bounds what it cannot check (he.ISLanes·G outputs of the job, each
//     once, each only as a total) and the README's threat model says what
//     remains;
//   - with smudging sized from its own bound (he.SumNoise of the inputs;
//     he.MaskedSumNoise of the layout's chunks and one zero-sum mask per
//     department), never from the descriptor that came with a ciphertext;
//   - for intersection_stats, only an output's total: the node adds its own
//     fresh zero-sum vector to its share (release.Decryption.ZeroSum), so no
//     slot decrypts alone even if the coordinator leaves out the
//     departments' zero-sum masks.
//
// Who may release: exactly the t nodes of the active set, any t of the
// ceremony's roster. A node that holds no input of the job may be one of
// them: it binds the job like any other step and checks everything above
// (signatures, output count, its own ledger and bound), but not the
// inputs' policies, consents and budgets — the contributing nodes checked
// those before they signed.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/he/ceremony"
	"github.com/unseen-data/unseen/compute/he/ledger"
	"github.com/unseen-data/unseen/compute/he/release"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
)

// HEZeroMask encrypts Count random zero-sum vectors under the collective
// key of a parameter set, for an intersection_stats job this node has
// prepared (same spec, same attempt).
func (s *Service) HEZeroMask(ctx context.Context, c Caller, req *nodeapi.HEZeroMaskRequest) (*nodeapi.HEZeroMaskResponse, error) {
	out, err := s.heZeroMask(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathHEZeroMask, err)
}

func (s *Service) heZeroMask(ctx context.Context, c Caller, req *nodeapi.HEZeroMaskRequest) (*nodeapi.HEZeroMaskResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepHEZeroMask); err != nil {
		return nil, err
	}
	ss, err := s.lookup(req.Header)
	if err != nil {
		return nil, err
	}
	if err := checkSpecHash(req.Header, &ss.spec); err != nil {
		return nil, err
	}
	detail := map[string]string{"purpose": ss.spec.Purpose, "params": req.Params, "count": fmt.Sprint(req.Count), "attempt": fmt.Sprint(req.Attempt)}
	dsn := []string{ss.dataset}
	fail := func(err error) (*nodeapi.HEZeroMaskResponse, error) {
		return nil, s.refusedStep(ctx, c, nodeapi.StepHEZeroMask, req.Job, dsn, detail, err)
	}
	if ss.spec.Type != policy.IntersectionStats {
		return fail(refuse(KindForbidden, "unsupported", "job %s is not an intersection_stats job", req.Job))
	}
	ps, err := he.ParamsByName(req.Params)
	if err != nil {
		return fail(refuse(KindBadRequest, "bad_request", "%v", err))
	}
	if req.Count < 1 || req.Count > nodeapi.MaxZeroMasks {
		return fail(refuse(KindBadRequest, "bad_range", "count %d not in [1, %d]", req.Count, nodeapi.MaxZeroMasks))
	}
	keys, err := s.he.keysFor(ps.Name())
	if err != nil {
		return fail(err)
	}
	if err := s.record(ctx, c, string(nodeapi.StepHEZeroMask), req.Job, dsn, detail); err != nil {
		return nil, err
	}
	enc, err := he.NewEncryptor(keys.PublicKey())
	if err != nil {
		return nil, err
	}
	cer := keys.Setup().CeremonyID()
	out := &nodeapi.HEZeroMaskResponse{Masks: make([][]byte, req.Count)}
	g := new(errgroup.Group)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range req.Count {
		g.Go(func() error {
			ct, err := enc.ShallowCopy().EncryptZeroSumMask(ps.Slots())
			if err != nil {
				return err
			}
			out.Masks[i], err = s.he.sealCiphertext(ct, cer)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// HERelease computes the node's decryption share of one output of a job
// towards the coordinator's release key, by exactly the nodes of the
// active set. The output goes into the ledger before the share exists, and
// an output in the ledger is never decrypted again.
func (s *Service) HERelease(ctx context.Context, c Caller, req *nodeapi.HEReleaseRequest) (*nodeapi.HEReleaseResponse, error) {
	out, err := s.heRelease(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathHERelease, err)
}

// outputParams is the parameter set of output `index` of a job, or an
// error if the job has no such output: aggregate 0 sums, 1 squares (with
// the variance); intersection_stats g·he.ISLanes+l for g < groups and lane
// l (the count; Σx mod T_s and mod T_q when a value is asked; Σx² mod T_s,
// mod T_q and its floor hint with the variance), under the lane's set.
func outputParams(spec *policy.Spec, index, groups int) (string, error) {
	need, err := statNeeds(spec)
	if err != nil {
		return "", err
	}
	none := func(why string) (string, error) {
		return "", refuse(KindForbidden, "not_an_output", "job has no output %d: %s", index, why)
	}
	switch spec.Type {
	case policy.Aggregate:
		switch {
		case index == 0:
			return he.NameSums, nil
		case index == 1 && need.squares:
			return he.NameSquares, nil
		}
		return none("an aggregate has output 0 (sums) and, with the variance, 1 (squares)")
	case policy.IntersectionStats:
		n := int(he.ISLanes)
		if groups < 1 || groups > maxLayoutChunks || index < 0 || index >= n*groups {
			return none(fmt.Sprintf("the value node's layout has %d groups, so the job has outputs below %d (%d per group)", groups, n*groups, n))
		}
		l := he.ISLane(index % n)
		switch {
		case l.Wanted(need.value, need.squares):
			return l.Params(), nil
		case l.Value():
			return none("the job asks for no sum of a value")
		default:
			return none("the job asks for no variance")
		}
	}
	return none(fmt.Sprintf("job type %s is not released homomorphically", spec.Type))
}

// maxLayoutChunks bounds a layout's chunks (a list of MaxChunk-bounded
// requests can never need more; it keeps the noise bound finite).
const maxLayoutChunks = 1 << 24

func (s *Service) heRelease(ctx context.Context, c Caller, req *nodeapi.HEReleaseRequest) (*nodeapi.HEReleaseResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepHERelease); err != nil {
		return nil, err
	}
	detail := jobDetail(&req.Spec, req.Requester, req.Attempt)
	detail["params"], detail["output"], detail["active"], detail["level"] = req.Params, fmt.Sprint(req.Output), strings.Join(req.Active, ","), fmt.Sprint(req.Level)
	fail := func(err error) (*nodeapi.HEReleaseResponse, error) {
		return nil, s.refusedStep(ctx, c, nodeapi.StepHERelease, req.Job, nil, detail, err)
	}
	ps, err := he.ParamsByName(req.Params)
	if err != nil {
		return fail(refuse(KindBadRequest, "bad_request", "%v", err))
	}
	keys, err := s.he.keysFor(ps.Name())
	if err != nil {
		return fail(err)
	}
	setup := keys.Setup()
	cer := setup.CeremonyID()
	detail["ceremony"] = cer
	if len(req.Active) != setup.Threshold() {
		return fail(refuse(KindBadRequest, "bad_active_set", "the active set has %d nodes; this ceremony needs exactly %d", len(req.Active), setup.Threshold()))
	}
	if !slices.Contains(req.Active, s.cfg.Department) {
		return fail(refuse(KindForbidden, "not_active", "node %s is not in the active set", s.cfg.Department))
	}
	active := make([]ceremony.NodeID, len(req.Active))
	for i, id := range req.Active {
		active[i] = ceremony.NodeID(id)
	}
	if _, err := release.NewActiveSet(setup, active); err != nil {
		return fail(refuse(KindBadRequest, "bad_active_set", "%v", err))
	}
	// The job: its spec, bound to its id here for good, and the output.
	if err := s.bindJob(req.Header, &req.Spec, req.Requester); err != nil {
		return fail(err)
	}
	var (
		ct      *he.Ciphertext
		bound   he.Noise
		zeroSum int // intersection_stats: only each output's total may survive
	)
	switch req.Spec.Type {
	case policy.Aggregate:
		want, err := outputParams(&req.Spec, req.Output, 0)
		if err != nil {
			return fail(err)
		}
		if want != ps.Name() {
			return fail(refuse(KindForbidden, "not_an_output", "output %d of an aggregate is under %s, not %s", req.Output, want, ps.Name()))
		}
		if len(req.Ciphertext) != 0 || req.Layout != nil {
			return fail(refuse(KindBadRequest, "bad_request", "an aggregate is released from its signed contributions only: the node sums them itself"))
		}
		if ct, err = s.sumContributions(ps, cer, req); err != nil {
			return fail(err)
		}
		if bound, err = he.SumNoise(len(req.Spec.Inputs)); err != nil {
			return fail(refuse(KindBadRequest, "bad_request", "%v", err))
		}
	case policy.IntersectionStats:
		// The value node must be one of the decrypting nodes: its own ledger
		// then bounds each output to one decryption, ever. Without it, the
		// coordinator could have each of ⌊N/t⌋ disjoint active sets decrypt
		// the same output once (each node keeps only its own ledger).
		if vd := policy.Department(req.Spec.ValueDataset()); !slices.Contains(req.Active, vd) {
			return fail(refuse(KindForbidden, "value_node_not_active", "an intersection_stats result is decrypted only with its value node (%s) in the active set, whose ledger allows each output once", vd))
		}
		l := req.Layout
		if l == nil {
			return fail(refuse(KindForbidden, "bad_layout", "an intersection_stats result is released only with the value node's signed layout"))
		}
		if err := s.checkLayout(req.Header, &req.Spec, l); err != nil {
			return fail(err)
		}
		want, err := outputParams(&req.Spec, req.Output, l.Groups)
		if err != nil {
			return fail(err)
		}
		if want != ps.Name() {
			return fail(refuse(KindForbidden, "not_an_output", "output %d of an intersection_stats job is under %s, not %s", req.Output, want, ps.Name()))
		}
		if len(req.Contributions) != 0 {
			return fail(refuse(KindBadRequest, "bad_request", "contributions are given for aggregates only"))
		}
		p, err := s.he.open(ps, cer, he.LabelCiphertext, req.Level, req.Ciphertext, "ciphertext")
		if err != nil {
			return fail(err)
		}
		if ct, err = ps.UnmarshalCiphertext(p, req.Level); err != nil {
			return fail(refuse(KindBadRequest, "bad_payload", "ciphertext: %v", err))
		}
		// At most every chunk of the layout, each masked once, and one
		// zero-sum mask per department (one party each).
		if bound, err = he.MaskedSumNoise(l.Chunks, len(req.Spec.Inputs)); err != nil {
			return fail(refuse(KindBadRequest, "bad_layout", "%v", err))
		}
		// An intersection_stats output means only its total: the node masks
		// its own share so that no slot (one key's rows) decrypts alone,
		// whether or not the coordinator added the departments' masks.
		zeroSum = ps.Slots()
	default:
		return fail(refuse(KindForbidden, "not_an_output", "job type %s is not released homomorphically", req.Spec.Type))
	}
	p, err := s.he.open(ps, cer, he.LabelPublicKey, ps.MaxLevel(), req.ReleaseKey, "release key")
	if err != nil {
		return fail(err)
	}
	target, err := ps.UnmarshalPublicKey(p)
	if err != nil {
		return fail(refuse(KindBadRequest, "bad_payload", "release key: %v", err))
	}
	id, err := ct.Hash()
	if err != nil {
		return nil, err
	}
	out := ledger.OutputKey(req.Job, req.Output)
	detail["ciphertext_sha256"] = hex.EncodeToString(id[:])
	// The bound this node sized its smudging from (never the descriptor).
	detail["noise_terms"] = fmt.Sprint(bound.Terms)
	detail["noise_masked"] = fmt.Sprint(bound.Masked)
	sm, err := ps.SmudgingFor(bound, ct.Level(), setup.Threshold())
	if err != nil {
		return fail(refuse(KindBadRequest, "cannot_release", "%v", err))
	}
	detail["smudging_log2_sigma"] = fmt.Sprintf("%.2f", math.Log2(sm.Sigma))
	l, err := s.he.openLedger()
	if err != nil {
		s.log.Error("decryption ledger unavailable; refusing to release", "err", err)
		return fail(refuse(KindUnavailable, "ledger_unavailable", "the node cannot open its decryption ledger, so it decrypts nothing"))
	}
	alreadyDecrypted := func() *Error {
		return refuse(KindConflict, "already_decrypted", "this node has already helped decrypt output %d of job %s (or this very ciphertext) once and never does so twice; submit a new job to compute it again", req.Output, req.Job)
	}
	for _, k := range [][32]byte{out, id} {
		if done, err := l.Contains(k); err != nil || done {
			return fail(alreadyDecrypted())
		}
	}
	// Audited before the share exists (fail closed); the ledger records the
	// output and the ciphertext before the share is computed
	// (release.Node.Share).
	if err := s.record(ctx, c, string(nodeapi.StepHERelease), req.Job, nil, detail); err != nil {
		return nil, err
	}
	rn, err := release.NewNode(keys, l)
	if err != nil {
		return nil, err
	}
	sh, err := rn.Share(active, ct, target, release.Decryption{Noise: bound, Output: out, ZeroSum: zeroSum})
	switch {
	case errors.Is(err, ledger.ErrAlreadyDecrypted):
		return fail(alreadyDecrypted())
	case errors.Is(err, release.ErrActiveSet), errors.Is(err, ceremony.ErrActive):
		return fail(refuse(KindForbidden, "not_active", "%v", err))
	case errors.Is(err, he.ErrSmudging):
		return fail(refuse(KindBadRequest, "cannot_release", "%v", err))
	case err != nil:
		return fail(err)
	}
	b, err := sh.MarshalBinary()
	if err != nil {
		return nil, err
	}
	msg, err := s.he.seal(ps, cer, release.LabelShare, ct.Level(), b)
	if err != nil {
		return nil, err
	}
	return &nodeapi.HEReleaseResponse{Share: msg}, nil
}

// sumContributions checks an aggregate output's contributions — exactly
// one per input of the job, each a fresh ciphertext at the top level signed
// by the node of that input's department over (job, spec hash, attempt,
// input, parameter set, payload) — and returns their sum, computed here.
func (s *Service) sumContributions(ps *he.ParamSet, cer string, req *nodeapi.HEReleaseRequest) (*he.Ciphertext, error) {
	n := len(req.Spec.Inputs)
	if len(req.Contributions) != n {
		return nil, refuse(KindForbidden, "bad_contributions", "the job has %d inputs; %d contributions were given (one signed contribution per input, no more, no fewer)", n, len(req.Contributions))
	}
	if req.Level != ps.MaxLevel() {
		return nil, refuse(KindBadRequest, "bad_request", "an aggregate is released at level %d, not %d", ps.MaxLevel(), req.Level)
	}
	cts := make([]*he.Ciphertext, n)
	for _, con := range req.Contributions {
		i := con.Input
		if i < 0 || i >= n {
			return nil, refuse(KindForbidden, "bad_contributions", "a contribution names input %d of a job with %d inputs", i, n)
		}
		if cts[i] != nil {
			return nil, refuse(KindForbidden, "bad_contributions", "input %d contributes twice", i)
		}
		p, err := s.he.open(ps, cer, he.LabelCiphertext, ps.MaxLevel(), con.Ciphertext, fmt.Sprintf("contribution of input %d", i))
		if err != nil {
			return nil, err
		}
		st := nodeapi.ContributionStatement{JobRef: req.Header.Ref(), Input: i, Params: ps.Name(), Payload: nodeapi.DigestOf(p)}
		if err := s.verifyNode(partyDept(&req.Spec, i), st.Message(), con.Signature); err != nil {
			e := err.(*Error)
			e.Code = "bad_contribution"
			e.Message = fmt.Sprintf("contribution of input %d (%s): %s", i, req.Spec.Inputs[i].Dataset, e.Message)
			return nil, e
		}
		if cts[i], err = ps.UnmarshalCiphertext(p, ps.MaxLevel()); err != nil {
			return nil, refuse(KindBadRequest, "bad_payload", "contribution of input %d: %v", i, err)
		}
	}
	sum, err := he.Sum(he.NewEvaluator(ps), cts, 1)
	if err != nil {
		return nil, refuse(KindBadRequest, "bad_contributions", "%v", err)
	}
	return sum, nil
}

// checkLayout verifies the value node's signed layout of an
// intersection_stats job (the value input's department's key).
func (s *Service) checkLayout(h nodeapi.Header, spec *policy.Spec, l *nodeapi.HELayout) error {
	if l.Groups < 1 || l.Chunks < 1 || l.Chunks > maxLayoutChunks {
		return refuse(KindForbidden, "bad_layout", "a layout of %d groups in %d chunks has no result to release", l.Groups, l.Chunks)
	}
	valueDS := spec.ValueDataset()
	st := nodeapi.LayoutStatement{JobRef: h.Ref(), Groups: l.Groups, Chunks: l.Chunks}
	if err := s.verifyNode(policy.Department(valueDS), st.Message(), l.Signature); err != nil {
		e := err.(*Error)
		e.Code = "bad_layout"
		return e
	}
	return nil
}
