package worker

// Resuming a PSI job from its checkpoints.
//
// As each chunk of a list completes its route, its tokens (16 bytes per
// element) are saved with jobs.Checkpoints, fenced by the attempt: a worker
// that lost its lease saves nothing. A later attempt of the job — after a
// reclaim (the worker died), a hand-back (shutdown) or a retry (a node was
// down) — prepares every input again, loads the chunks, and computes only
// the chunks that are missing.
//
// A chunk's tokens are valid across attempts because each node's key
// derives from its secret, the job id and the spec's hash, and its list's
// order from its set: the same list gives the same tokens at every attempt.
// So checkpoints are keyed by a fingerprint of the run — the spec hash, the
// chunk size and every list's length and digest as the nodes' Prepare
// answered them (nodeapi.PrepareResponse.ListDigest) — and by list and
// offset. When any of these differs at a new attempt (a list changed, the
// chunk size was reconfigured) no key matches: the old chunks are dropped
// and the run starts over.
//
// Residual risk: a node that does not report a ListDigest (an older node)
// is keyed by its list's length alone. Should its list change between
// attempts without changing length (a row's ID replaced in the source, or
// the node's secret rotated), the resumed tokens and the new ones would be
// of different lists and the count would be wrong, silently. Such a node
// is logged at every resume.
//
// What is stored is what the coordinator already holds during every run
// (the fully blinded tokens, which Result is computed from): nothing new
// is revealed to the coordinator's operator under either trust model, and
// nothing at all to the nodes. The checkpoints live in the coordinator's
// job store (the bbolt file's folder, or Redis) until the job leaves
// running for good.
//
// The OT protocol (ot.go) does not resume: its sessions are sealed end to
// end between two nodes, and a new attempt runs them again from the start.

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/psi"
)

// saveQueue bounds the chunks waiting to be saved: past it, the run waits
// for the store (at the default 4096 elements, 64 chunks are 4 MiB).
const saveQueue = 64

// flushTimeout bounds the wait for queued saves when a run stops early
// (handed back, a node down): they are what the next attempt resumes from.
const flushTimeout = 10 * time.Second

// runFingerprint names a PSI run's lists: checkpoints of another
// fingerprint are of other lists (or another chunking) and never reused.
func runFingerprint(specHash [32]byte, chunkSize int, lens []int, digests []string) string {
	h := sha256.New()
	h.Write([]byte("unseen/psi/checkpoint/v1\x00"))
	h.Write(specHash[:])
	var b [8]byte
	write := func(v int) { binary.BigEndian.PutUint64(b[:], uint64(v)); h.Write(b[:]) }
	write(chunkSize)
	write(len(lens))
	for i, l := range lens {
		write(l)
		write(len(digests[i]))
		h.Write([]byte(digests[i]))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func chunkKey(fp string, list, offset int) string {
	return fmt.Sprintf("psi.%s.%d.%d", fp, list, offset)
}

// resumer is one attempt's checkpointing: what it loaded, and the saver.
type resumer struct {
	r       *Runner
	l       *jobs.Lease
	fp      string
	ck      jobs.Checkpoints
	loaded  map[string][]byte
	queue   chan checkpoint
	stop    context.CancelFunc
	done    chan struct{}
	saved   atomic.Int64
	queued  atomic.Int64
	lostErr atomic.Pointer[error] // the fencing error, once a save got it
	once    sync.Once
}

type checkpoint struct {
	key  string
	data []byte
}

func (rs *resumer) enabled() bool { return rs.ck != nil }

// resume loads the job's checkpoints for this run's lists and starts the
// saver. Without a checkpoint store it does nothing; a store that cannot
// be read means starting over, not failing.
func (r *Runner) resume(ctx context.Context, l *jobs.Lease, lens []int, digests []string) *resumer {
	j := l.Job
	rs := &resumer{r: r, l: l, ck: r.Checkpoints}
	if rs.ck == nil {
		return rs
	}
	rs.fp = runFingerprint(j.Spec.Hash(), r.ChunkSize, lens, digests)
	log := r.Logger.With("job", j.ID, "attempt", l.Attempt)
	all, err := rs.ck.LoadChunks(ctx, j.ID)
	if err != nil {
		log.Warn("psi checkpoints unreadable; computing every chunk", "err", err)
		all = nil
	}
	prefix := "psi." + rs.fp + "."
	rs.loaded = map[string][]byte{}
	stale := 0
	for k, v := range all {
		if strings.HasPrefix(k, prefix) {
			rs.loaded[k] = v
		} else {
			stale++
		}
	}
	if stale > 0 {
		// Another run's lists (or chunking): never used, since no key of
		// this run matches them. Dropped now, unless some of this run's
		// are among them (the lists changed and changed back), which the
		// job still needs; either way all go when the job ends.
		log.Info("psi checkpoints of other lists dropped; those chunks start over", "dropped", stale, "kept", len(rs.loaded))
		if len(rs.loaded) == 0 {
			if err := rs.ck.DeleteChunks(ctx, j.ID); err != nil {
				log.Warn("dropping stale psi checkpoints failed", "err", err)
			}
		}
	}
	chunks, resumable := 0, 0
	for i, n := range lens {
		for off := 0; off < n; off += r.ChunkSize {
			chunks++
			if len(rs.loaded[chunkKey(rs.fp, i, off)]) == psi.TokenSize*min(r.ChunkSize, n-off) {
				resumable++
			}
		}
	}
	if resumable > 0 {
		var undigested []int
		for i, d := range digests {
			if d == "" {
				undigested = append(undigested, i)
			}
		}
		log.Info("psi resumed", "resumed_chunks", resumable, "chunks", chunks, "remaining_chunks", chunks-resumable,
			"resumed_elements", resumedElements(lens, r.ChunkSize, rs.loaded, rs.fp), "lists_without_digest", undigested)
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	rs.stop = stop
	rs.queue = make(chan checkpoint, saveQueue)
	rs.done = make(chan struct{})
	go rs.saver(sctx)
	return rs
}

func resumedElements(lens []int, chunkSize int, loaded map[string][]byte, fp string) int {
	n := 0
	for i, l := range lens {
		for off := 0; off < l; off += chunkSize {
			if b := loaded[chunkKey(fp, i, off)]; len(b) == psi.TokenSize*min(chunkSize, l-off) {
				n += min(chunkSize, l-off)
			}
		}
	}
	return n
}

// apply sets opts.Done and opts.OnChunk.
func (rs *resumer) apply(opts *psi.RunOptions) {
	if rs.ck == nil {
		return
	}
	opts.Done = func(list, offset, n int) ([]psi.Token, bool) {
		b, ok := rs.loaded[chunkKey(rs.fp, list, offset)]
		if !ok {
			return nil, false
		}
		ts, err := psi.DecodeTokens(b, n)
		return ts, err == nil
	}
	opts.OnChunk = func(list, offset int, ts []psi.Token) error {
		if p := rs.lostErr.Load(); p != nil {
			return *p
		}
		select {
		case rs.queue <- checkpoint{chunkKey(rs.fp, list, offset), psi.EncodeTokens(ts)}:
			if n := rs.queued.Add(1); rs.r.onChunk != nil {
				rs.r.onChunk(rs.l.Job.ID, int(n))
			}
			return nil
		case <-rs.done: // the saver gave up: run on without checkpoints
			if p := rs.lostErr.Load(); p != nil {
				return *p
			}
			return nil
		}
	}
}

// saver saves queued chunks one by one, fenced by the attempt. A fencing
// refusal stops the run (the lease is lost); any other failure stops
// checkpointing only: the run goes on.
func (rs *resumer) saver(ctx context.Context) {
	defer close(rs.done)
	j := rs.l.Job
	for {
		var c checkpoint
		var ok bool
		select {
		case c, ok = <-rs.queue:
		case <-ctx.Done():
			return
		}
		if !ok {
			return
		}
		err := rs.ck.SaveChunk(ctx, j.ID, rs.l.Attempt, c.key, c.data)
		switch {
		case err == nil:
			rs.saved.Add(1)
		case errors.Is(err, jobs.ErrLeaseLost):
			e := error(jobs.ErrLeaseLost)
			rs.lostErr.Store(&e)
			return
		case ctx.Err() != nil:
			return
		default:
			rs.r.Logger.Warn("saving a psi checkpoint failed; the job runs on without", "job", j.ID, "attempt", rs.l.Attempt, "err", err)
			return
		}
	}
}

// finish ends the saver once the run is over. After a success nothing more
// is worth saving (the job leaves running, which drops its checkpoints);
// after a failure what is queued is saved first, within flushTimeout, for
// the next attempt.
func (rs *resumer) finish(ctx context.Context, runErr error) {
	if rs.ck == nil {
		return
	}
	rs.once.Do(func() {
		close(rs.queue)
		if runErr == nil {
			rs.stop()
			<-rs.done
			return
		}
		t := time.NewTimer(flushTimeout)
		defer t.Stop()
		select {
		case <-rs.done:
		case <-t.C:
			rs.stop()
			<-rs.done
		}
	})
}
