package node

// The release steps: he/zeromask (encryptions of random vectors whose slots
// sum to zero, which the coordinator adds so that only totals survive) and
// he/release (a decryption share, once per ciphertext ever).

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/he/ceremony"
	"github.com/unseen-data/unseen/compute/he/ledger"
	"github.com/unseen-data/unseen/compute/he/release"
	"github.com/unseen-data/unseen/compute/nodeapi"
)

// HEZeroMask encrypts Count random zero-sum vectors under the collective
// key of a parameter set.
func (s *Service) HEZeroMask(ctx context.Context, c Caller, req *nodeapi.HEZeroMaskRequest) (*nodeapi.HEZeroMaskResponse, error) {
	out, err := s.heZeroMask(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathHEZeroMask, err)
}

func (s *Service) heZeroMask(ctx context.Context, c Caller, req *nodeapi.HEZeroMaskRequest) (*nodeapi.HEZeroMaskResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepHEZeroMask); err != nil {
		return nil, err
	}
	detail := map[string]string{"params": req.Params, "count": fmt.Sprint(req.Count), "attempt": fmt.Sprint(req.Attempt)}
	fail := func(err error) (*nodeapi.HEZeroMaskResponse, error) {
		return nil, s.refusedStep(ctx, c, nodeapi.StepHEZeroMask, req.Job, nil, detail, err)
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
	if err := s.record(ctx, c, string(nodeapi.StepHEZeroMask), req.Job, nil, detail); err != nil {
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

// HERelease computes the node's decryption share of one ciphertext towards
// the coordinator's release key, by exactly the nodes of the active set.
// The ciphertext goes into the ledger before the share exists, and a
// ciphertext in the ledger is never decrypted again.
func (s *Service) HERelease(ctx context.Context, c Caller, req *nodeapi.HEReleaseRequest) (*nodeapi.HEReleaseResponse, error) {
	out, err := s.heRelease(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathHERelease, err)
}

func (s *Service) heRelease(ctx context.Context, c Caller, req *nodeapi.HEReleaseRequest) (*nodeapi.HEReleaseResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepHERelease); err != nil {
		return nil, err
	}
	detail := map[string]string{"params": req.Params, "active": strings.Join(req.Active, ","), "level": fmt.Sprint(req.Level), "attempt": fmt.Sprint(req.Attempt)}
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
	p, err := s.he.open(ps, cer, he.LabelCiphertext, req.Level, req.Ciphertext, "ciphertext")
	if err != nil {
		return fail(err)
	}
	ct, err := ps.UnmarshalCiphertext(p, req.Level)
	if err != nil {
		return fail(refuse(KindBadRequest, "bad_payload", "ciphertext: %v", err))
	}
	if p, err = s.he.open(ps, cer, he.LabelPublicKey, ps.MaxLevel(), req.ReleaseKey, "release key"); err != nil {
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
	detail["ciphertext_sha256"] = hex.EncodeToString(id[:])
	detail["noise_terms"] = fmt.Sprint(ct.Noise().Terms)
	detail["noise_masked"] = fmt.Sprint(ct.Noise().Masked)
	l, err := s.he.openLedger()
	if err != nil {
		s.log.Error("decryption ledger unavailable; refusing to release", "err", err)
		return fail(refuse(KindUnavailable, "ledger_unavailable", "the node cannot open its decryption ledger, so it decrypts nothing"))
	}
	alreadyDecrypted := func() *Error {
		return refuse(KindConflict, "already_decrypted", "this node has already helped decrypt ciphertext %s once and never does so twice; re-run the job to compute from fresh encryptions", hex.EncodeToString(id[:8]))
	}
	if done, err := l.Contains(id); err != nil || done {
		return fail(alreadyDecrypted())
	}
	// Audited before the share exists (fail closed); the ledger records the
	// ciphertext before the share is computed (release.Node.Share).
	if err := s.record(ctx, c, string(nodeapi.StepHERelease), req.Job, nil, detail); err != nil {
		return nil, err
	}
	rn, err := release.NewNode(keys, l)
	if err != nil {
		return nil, err
	}
	sh, err := rn.Share(active, ct, target)
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
	msg, err := s.he.seal(ps, cer, release.LabelShare, req.Level, b)
	if err != nil {
		return nil, err
	}
	return &nodeapi.HEReleaseResponse{Share: msg}, nil
}
