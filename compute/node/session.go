package node

import (
	"fmt"
	"sync"
	"time"

	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/policy/disclosure"
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
	// list is the party's list on disk (party reads it); its files go
	// when the session does (close).
	list *psi.List
	// invalidIDs is what the prepare scan skipped for an invalid ID.
	invalidIDs int
	used       time.Time
	// length is the node's signed declaration of its list's length.
	length nodeapi.SignedLength
	// overlaps are the differencing overlaps reported (flag mode).
	overlaps []disclosure.Overlap

	mu       sync.Mutex
	reblinds map[int]*reblinds // by list: what this attempt reblinded of it

	ot otSessions // the attempt's PSI protocol and OT sessions (ot.go)
}

// reblinds is what a session has reblinded of one other party's list: each
// position at most once (an identical repeat of a chunk is answered again:
// the same elements give the same answer, so it reveals nothing new).
type reblinds struct {
	len    int         // the owner's signed length
	done   []uint64    // bitmap of the positions reblinded
	chunks map[int]reb // by offset
}

// reb is one reblinded chunk: its size and the digest of its input.
type reb struct {
	n  int
	in attest.Digest
}

// claimReblind records that positions [offset, offset+n) of list (whose
// owner declared length) are reblinded from elements with digest in. It
// refuses a position already reblinded from other elements or in another
// chunk, and positions past the declared length.
func (ss *session) claimReblind(list, length, offset, n int, in attest.Digest) error {
	if offset < 0 || n < 1 || offset > length-n {
		return refuse(KindForbidden, "over_length", "positions [%d, %d+%d) are not in list %d, whose owner declared %d elements", offset, offset, n, list, length)
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.reblinds == nil {
		ss.reblinds = map[int]*reblinds{}
	}
	r := ss.reblinds[list]
	if r == nil {
		r = &reblinds{len: length, done: make([]uint64, (length+63)/64), chunks: map[int]reb{}}
		ss.reblinds[list] = r
	}
	if r.len != length { // one owner signs one length per attempt
		return refuse(KindForbidden, "bad_length", "list %d was declared with %d elements, now %d", list, r.len, length)
	}
	if c, ok := r.chunks[offset]; ok && c.n == n && c.in == in {
		return nil
	}
	if r.any(offset, offset+n) {
		return refuse(KindForbidden, "repeated_position", "positions of [%d, %d+%d) of list %d were reblinded already in attempt %d (each position once per attempt)", offset, offset, n, list, ss.attempt)
	}
	r.set(offset, offset+n)
	r.chunks[offset] = reb{n: n, in: in}
	return nil
}

// any reports whether a position in [lo, hi) is set.
func (r *reblinds) any(lo, hi int) bool {
	for i := lo; i < hi; {
		w, b := i/64, uint(i%64)
		m := ^uint64(0) << b
		if end := hi - (i - int(b)); end < 64 {
			m &= (uint64(1) << uint(end)) - 1
		}
		if r.done[w]&m != 0 {
			return true
		}
		i += 64 - int(b)
	}
	return false
}

// set sets the positions in [lo, hi).
func (r *reblinds) set(lo, hi int) {
	for i := lo; i < hi; {
		w, b := i/64, uint(i%64)
		m := ^uint64(0) << b
		if end := hi - (i - int(b)); end < 64 {
			m &= (uint64(1) << uint(end)) - 1
		}
		r.done[w] |= m
		i += 64 - int(b)
	}
}

// sessionKey names a job's session by job and party (one party per
// department, so a request naming another party finds nothing).
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
			ss.close()
			delete(s.sessions, id)
		}
	}
}

// close removes the session's list from disk. A request still reading it
// fails (its job has finished, expired or moved to a newer attempt).
func (ss *session) close() {
	if ss.list != nil {
		_ = ss.list.Close()
	}
}
