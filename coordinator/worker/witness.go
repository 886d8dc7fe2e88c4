package worker

import (
	"context"

	"github.com/unseen-data/unseen/audit"
)

// ownHead is the coordinator's signed head to send to the nodes (nil if
// the runner has none, or it cannot be had: witnessing is best effort and
// never holds a job up).
func (r *Runner) ownHead(ctx context.Context) *audit.SignedHead {
	if r.SignedHead == nil {
		return nil
	}
	h, err := r.SignedHead(ctx)
	if err != nil {
		r.Logger.Warn("the coordinator's audit head could not be signed; nodes get no witness", "err", err)
		return nil
	}
	return h
}

// witnessed records node dept's signed head h in detail (the audit detail
// of the job's next transition). The head is recorded as sent: it is the
// node's statement, checked against the node's key by whoever verifies
// (unseen audit verify --witness --key).
func (r *Runner) witnessed(detail map[string]string, dept string, h *audit.SignedHead) {
	switch {
	case h == nil:
	case h.Log != dept:
		r.Logger.Warn("a node answered with the head of another log; not recorded", "node", dept, "log", h.Log)
	default:
		detail[audit.WitnessPrefix+dept] = h.String()
	}
}
