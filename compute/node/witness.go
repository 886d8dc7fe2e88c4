package node

// Witnessing (the audit heads): at the end of a job (finish) and of its
// review (outcome) the coordinator sends its own signed audit head, which
// the node records in its entry for the step, and the node answers with its
// signed head at that entry, which the coordinator records in its log. A
// tail later cut off either log, even with the head re-signed by its own
// keeper, shows against the other party's copy (audit.CheckWitnessed,
// `unseen audit verify --witness`).

import (
	"context"

	"github.com/unseen-data/unseen/audit"
)

// recordWitnessed appends the entry of a witnessed step — with the
// coordinator's head w in its detail if it verifies under the coordinator
// key of the node's own configuration — and returns the node's signed head
// at that entry.
func (s *Service) recordWitnessed(ctx context.Context, c Caller, action, job string, datasets []string, detail map[string]string, w *audit.SignedHead) (*audit.SignedHead, error) {
	if w != nil {
		key := audit.WitnessPrefix + audit.CoordinatorLog
		switch {
		case w.Log != audit.CoordinatorLog:
			detail["witness_refused"] = "the head sent is of log " + w.Log + ", not the coordinator's"
		case s.keys.Coordinator == nil:
			// No key to check it with (federation.coordinator unset): kept
			// for an auditor who has the key.
			detail[key] = w.String()
		case w.Verify(s.keys.Coordinator) != nil:
			detail["witness_refused"] = "the coordinator's head signature does not verify under federation.coordinator"
		default:
			detail[key] = w.String()
		}
	}
	e, err := s.audit.Append(ctx, audit.Entry{Time: s.clock(), Actor: c.Actor, Role: "coordinator", Action: action, Job: job, Datasets: datasets, Detail: detail})
	if err != nil {
		s.log.Error("audit append failed; refusing request", "action", action, "err", err)
		e := refuse(KindUnavailable, "audit_unavailable", "the node cannot write its audit log, so it serves nothing")
		e.logged = true
		return nil, e
	}
	h, err := audit.SignHead(s.priv, s.cfg.Department, audit.Head{Seq: e.Seq, Hash: e.Hash})
	if err != nil {
		return nil, internal(err)
	}
	return &h, nil
}
