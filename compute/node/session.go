package node

import (
	"fmt"
	"time"

	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/psi"
)

// SessionTTL is how long a prepared job's state is kept without requests.
const SessionTTL = time.Hour

// MaxParties bounds the parties of one job.
const MaxParties = 8

// session is the node's state of one job as one of its parties, from
// psi/prepare to job/finish: the spec and requester it checked, the attempt
// it serves and its prepared list. Every later step of the job (PSI and
// he/values) is checked against it, so a check that binds the steps of a
// job together (one spec, one attempt, …) belongs here.
type session struct {
	attempt   int
	input     int
	self      int
	dataset   string
	spec      policy.Spec
	requester policy.Requester
	party     *psi.LocalParty
	used      time.Time
}

// sessionKey: one node may hold two of a job's inputs, each its own party.
func sessionKey(h nodeapi.Header) string { return fmt.Sprintf("%s/%d", h.Job, h.Party) }

// checkHeader checks a job-bound request's header: the step it was made
// for (bound into every message) and a job id and attempt.
func checkHeader(h nodeapi.Header, step nodeapi.Step) error {
	if h.Step != step {
		return refuse(KindBadRequest, "wrong_step", "message for step %q sent to %q", h.Step, step)
	}
	if h.Job == "" || len(h.Job) > 64 || h.Attempt < 1 {
		return refuse(KindBadRequest, "bad_request", "job id and a positive attempt are required")
	}
	return nil
}

// lookup finds the session of a job and checks the attempt: a request from
// an older attempt is a stale or replayed worker and is refused.
func (s *Service) lookup(h nodeapi.Header) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	ss, ok := s.sessions[sessionKey(h)]
	if !ok {
		return nil, refuse(KindConflict, "not_prepared", "job %s is not prepared at this node", h.Job)
	}
	if h.Attempt != ss.attempt {
		return nil, refuse(KindConflict, "stale_attempt", "job %s is at attempt %d here, not %d", h.Job, ss.attempt, h.Attempt)
	}
	ss.used = s.clock()
	return ss, nil
}

func (s *Service) expireLocked() {
	now := s.clock()
	for id, ss := range s.sessions {
		if now.Sub(ss.used) > SessionTTL {
			delete(s.sessions, id)
		}
	}
}
