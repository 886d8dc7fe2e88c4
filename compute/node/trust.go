package node

// What a node checks itself, whatever the coordinator says (the trust
// model: honest nodes, a coordinator that may be malicious):
//
//   - a job is its spec: every job-bound request names the spec hash, and
//     the node binds each job id to one spec hash and requester, for good
//     (state.go);
//   - a job has one party per department, and the node's party index is
//     its department's input;
//   - a conditional dataset is used only with its owner's signed consent to
//     this very job (a key from the node's own `owners`);
//   - the owner's privacy budgets and rate limits, per analyst and in
//     total, are charged in the node's own ledger;
//   - what it blinds, sums or decrypts was produced by the peers it claims
//     (Ed25519 signatures of keys from the node's own `federation`).

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// sign signs a statement with the node's key.
func (s *Service) sign(m *attest.Message) []byte { return attest.Sign(s.priv, m) }

// verifyNode checks a statement signed by department dept's node.
func (s *Service) verifyNode(dept string, m *attest.Message, sig []byte) error {
	if err := s.keys.Nodes.Verify(dept, m, sig); err != nil {
		return refuse(KindForbidden, "bad_signature", "a statement said to be node %s's does not verify against the key this node's federation section holds for it: %v", dept, err)
	}
	return nil
}

// PublicKey is the node's signing key's public half.
func (s *Service) PublicKey() ed25519.PublicKey { return s.priv.Public().(ed25519.PublicKey) }

// partyOf returns the index of dept's input in spec (-1 if none).
func partyOf(spec *policy.Spec, dept string) int {
	for i, in := range spec.Inputs {
		if policy.Department(in.Dataset) == dept {
			return i
		}
	}
	return -1
}

// partyDept returns the department of party i of spec.
func partyDept(spec *policy.Spec, i int) string {
	if i < 0 || i >= len(spec.Inputs) {
		return ""
	}
	return policy.Department(spec.Inputs[i].Dataset)
}

// bindJob checks that a request carrying a job's spec names that spec's hash
// and binds the job id to it (and to the requester) at this node, for good.
func (s *Service) bindJob(h nodeapi.Header, spec *policy.Spec, req policy.Requester) error {
	hash := spec.Hash()
	if h.SpecHash != hash {
		return refuse(KindBadRequest, "spec_hash_mismatch", "the request names spec hash %s but carries a spec hashing to %s", h.SpecHash, attest.Digest(hash))
	}
	if err := spec.Validate(); err != nil {
		return refuse(KindForbidden, "policy_violation", "%v", err)
	}
	err := s.state.bind(h.Job, hash, req, s.clock())
	if errors.Is(err, errSpecConflict) {
		return refuse(KindForbidden, "spec_conflict", "%v", err)
	}
	if err != nil {
		return internal(err)
	}
	return nil
}

// checkSession checks that a later step of a job names the spec its
// session was prepared for.
func checkSpecHash(h nodeapi.Header, spec *policy.Spec) error {
	if h.SpecHash != spec.Hash() {
		return refuse(KindForbidden, "spec_conflict", "job %s was prepared here under spec %.12s…, not %.12s…", h.Job, attest.Digest(spec.Hash()), h.SpecHash)
	}
	return nil
}

// checkParty checks that the request's party index is this node's
// department's input.
func (s *Service) checkParty(h nodeapi.Header, spec *policy.Spec, input int) error {
	mine := partyOf(spec, s.cfg.Department)
	if mine < 0 || input != mine || h.Party != mine {
		return refuse(KindForbidden, "not_my_party", "department %s is party %d of job %s (one party per department), not party %d with input %d", s.cfg.Department, mine, h.Job, h.Party, input)
	}
	return nil
}

// checkConsent requires, for a conditional dataset, a consent signed by
// one of this department's owners, approving this job (id, spec,
// requester) for this dataset, still valid.
func (s *Service) checkConsent(job string, spec *policy.Spec, req policy.Requester, ds *policy.Dataset, consents []attest.SignedConsent) error {
	if ds.Sharing != "conditional" {
		return nil
	}
	var why []string
	for i := range consents {
		sc := &consents[i]
		c := sc.Statement
		if c == nil || c.Dataset != ds.Name {
			continue
		}
		switch err := s.keys.Owners.VerifyConsent(sc); {
		case err != nil:
			why = append(why, err.Error())
		case c.Check(job, spec, req) != nil:
			why = append(why, c.Check(job, spec, req).Error())
		case !c.Approve:
			return refuse(KindForbidden, "consent_refused", "owner %s refused job %s on %s", c.Owner, job, ds.Name)
		case s.clock().After(c.Until):
			why = append(why, fmt.Sprintf("owner %s's consent expired at %s", c.Owner, c.Until.Format("2006-01-02 15:04 MST")))
		default:
			return nil
		}
	}
	msg := fmt.Sprintf("dataset %s is shared only on condition (有条件共享): it needs a consent to job %s signed by one of its owners", ds.Name, job)
	if len(why) > 0 {
		msg += "; none given verifies: " + joinShort(why)
	}
	return refuse(KindForbidden, "consent_required", "%s", msg)
}

// admit charges a job's use of one of the node's datasets to the owner's
// budgets and rate limits, once per job.
func (s *Service) admit(job, dataset string, req policy.Requester) error {
	ds := s.catalog[dataset]
	if ds == nil || ds.DP == nil && ds.RateLimit == nil {
		return nil
	}
	err := s.state.admit(job, dataset, req, ds, s.clock())
	var ar *admissionRefusal
	if errors.As(err, &ar) {
		return refuse(KindForbidden, ar.Rule, "%s (kept by node %s itself)", ar.Msg, s.cfg.Department)
	}
	if err != nil {
		return internal(err)
	}
	return nil
}

// gate is what every step that starts a job's work with one of the
// node's datasets checks, in order: the spec and its hash, the job's
// binding, the party, the node's own policy, the owner's consent, and the
// owner's budgets and rate limits. It returns the dataset declaration.
func (s *Service) gate(ctx context.Context, h nodeapi.Header, spec *policy.Spec, req policy.Requester, input int, consents []attest.SignedConsent) (*policy.Dataset, error) {
	if err := s.bindJob(h, spec, req); err != nil {
		return nil, err
	}
	if err := s.checkParty(h, spec, input); err != nil {
		return nil, err
	}
	in := spec.Inputs[input]
	ds, ok := s.catalog[in.Dataset]
	if !ok {
		return nil, refuse(KindNotFound, "unknown_dataset", "dataset %q is not held by node %s", in.Dataset, s.cfg.Department)
	}
	dec := policy.Decide(s.catalog, spec, req, true)
	if !dec.Allow {
		return nil, refuse(KindForbidden, "policy_violation", "%s", dec.Error())
	}
	if err := s.checkConsent(h.Job, spec, req, ds, consents); err != nil {
		return nil, err
	}
	if err := s.admit(h.Job, ds.Name, req); err != nil {
		return nil, err
	}
	return ds, nil
}

func joinShort(ss []string) string {
	var b bytes.Buffer
	for i, s := range ss {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(ss)-3)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s)
	}
	return b.String()
}
