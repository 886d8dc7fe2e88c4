package jobstest

// Checkpoints: a running job's completed chunks, fenced by attempt, kept
// across reclaims and restarts, dropped when the job can no longer run.

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/unseen-data/unseen/jobs"
)

func chunkData(t interface{ Fatal(...any) }, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *env) wantChunks(what, job string, want map[string][]byte) {
	e.t.Helper()
	got, err := e.s.LoadChunks(e.ctx, job)
	if err != nil {
		e.t.Fatalf("%s: LoadChunks: %v", what, err)
	}
	if len(got) != len(want) {
		e.t.Fatalf("%s: %d chunks, want %d", what, len(got), len(want))
	}
	for k, w := range want {
		if !bytes.Equal(got[k], w) {
			e.t.Fatalf("%s: chunk %q is %d bytes, want the %d saved", what, k, len(got[k]), len(w))
		}
	}
}

// testCheckpointsFenced: only the lease holder of the current attempt of a
// running job saves; a stale attempt's save (after a reclaim) is refused
// with the fencing error and changes nothing; the next attempt reads what
// the earlier one saved and adds to it; large chunks round-trip.
func testCheckpointsFenced(e *env) {
	t := e.t
	e.create("alice", jobs.Queued)
	old := e.claim("w1")
	id := old.Job.ID
	e.wantChunks("before any save", id, map[string][]byte{})

	a := chunkData(t, 256<<10) // 16 KiB elements × 16 bytes
	b := chunkData(t, 64<<10)
	if err := e.s.SaveChunk(e.ctx, id, old.Attempt, "psi.f1.l0.o0", a); err != nil {
		t.Fatalf("SaveChunk by the lease holder: %v", err)
	}
	if err := e.s.SaveChunk(e.ctx, id, old.Attempt, "psi.f1.l1.o0", b); err != nil {
		t.Fatal(err)
	}
	saved := map[string][]byte{"psi.f1.l0.o0": a, "psi.f1.l1.o0": b}
	e.wantChunks("after two saves", id, saved)

	// A forged attempt (ahead of the job) is refused.
	err := e.s.SaveChunk(e.ctx, id, old.Attempt+1, "psi.f1.l0.o1", a)
	wantErr(t, "SaveChunk at an attempt the job is not at", err, jobs.ErrLeaseLost)

	// The lease is taken over: attempt 1 is stale now.
	ls := e.reclaimAll("w2", 1)
	cur := ls[0]
	if cur.Attempt != old.Attempt+1 {
		t.Fatalf("reclaimed at attempt %d, want %d", cur.Attempt, old.Attempt+1)
	}
	err = e.s.SaveChunk(e.ctx, id, old.Attempt, "psi.f1.l0.o0", chunkData(t, 100))
	wantErr(t, "SaveChunk by the stale attempt (replacing a chunk)", err, jobs.ErrLeaseLost)
	err = e.s.SaveChunk(e.ctx, id, old.Attempt, "psi.f1.l0.o9", chunkData(t, 100))
	wantErr(t, "SaveChunk by the stale attempt (a new key)", err, jobs.ErrLeaseLost)
	e.wantChunks("after the stale attempt's refused saves", id, saved)

	// The new attempt reads the earlier one's chunks, replaces one, adds one.
	c := chunkData(t, 4096)
	if err := e.s.SaveChunk(e.ctx, id, cur.Attempt, "psi.f1.l1.o0", c); err != nil {
		t.Fatal(err)
	}
	if err := e.s.SaveChunk(e.ctx, id, cur.Attempt, "psi.f1.l0.o1", b); err != nil {
		t.Fatal(err)
	}
	saved["psi.f1.l1.o0"], saved["psi.f1.l0.o1"] = c, b
	e.wantChunks("after the new attempt's saves", id, saved)

	// Not running: refused whatever the attempt.
	q := e.create("bob", jobs.Queued)
	err = e.s.SaveChunk(e.ctx, q.ID, q.Attempt, "k", []byte("x"))
	wantErr(t, "SaveChunk for a queued job", err, jobs.ErrLeaseLost)
	e.wantChunks("queued job", q.ID, map[string][]byte{})
	err = e.s.SaveChunk(e.ctx, "j_aaaaaaaaaaaaaaaaaaaaaaaaaa", 1, "k", []byte("x"))
	wantErr(t, "SaveChunk for no job", err, jobs.ErrNotFound)

	for _, bad := range []string{"", "UPPER", "a/b", "..", ".hidden", "a b", string(make([]byte, jobs.MaxChunkKey+1))} {
		err := e.s.SaveChunk(e.ctx, id, cur.Attempt, bad, []byte("x"))
		wantErr(t, fmt.Sprintf("SaveChunk with key %q", bad), err, jobs.ErrChunk)
	}
	err = e.s.SaveChunk(e.ctx, id, cur.Attempt, "big", make([]byte, jobs.MaxChunkBytes+1))
	wantErr(t, "SaveChunk over MaxChunkBytes", err, jobs.ErrChunk)
	e.wantChunks("after refused saves", id, saved)
}

// testCheckpointsRace: a stale worker saving while the job is reclaimed
// under it: each of its saves either landed before the reclaim or was
// refused, never after; the new attempt's saves are all there.
func testCheckpointsRace(e *env) {
	t := e.t
	e.create("alice", jobs.Queued)
	old := e.claim("w1")
	id := old.Job.ID
	data := chunkData(t, 1024)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted = map[string]bool{}
		stop     = make(chan struct{})
	)
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			key := fmt.Sprintf("old.%d", i)
			err := e.s.SaveChunk(e.ctx, id, old.Attempt, key, data)
			switch {
			case err == nil:
				mu.Lock()
				accepted[key] = true
				mu.Unlock()
			case !errors.Is(err, jobs.ErrLeaseLost):
				t.Errorf("stale save: %v", err)
				return
			}
		}
	})
	e.reclaimAll("w2", 1)
	// The reclaim is done: every later save of the old attempt is refused.
	close(stop)
	wg.Wait()
	err := e.s.SaveChunk(e.ctx, id, old.Attempt, "old.after", data)
	wantErr(t, "save after the reclaim", err, jobs.ErrLeaseLost)
	got, err := e.s.LoadChunks(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for k := range got {
		if !accepted[k] {
			t.Errorf("chunk %q is stored but its save was refused", k)
		}
	}
	for k := range accepted {
		if got[k] == nil {
			t.Errorf("chunk %q was acknowledged but is gone", k)
		}
	}
}

// testCheckpointsReopened: saved chunks survive closing and reopening the
// store (a coordinator killed mid-job), and the reclaiming attempt reads
// them.
func testCheckpointsReopened(e *env) {
	t := e.t
	e.create("alice", jobs.Queued)
	l := e.claim("w1")
	id := l.Job.ID
	saved := map[string][]byte{}
	for i := range 5 {
		k := fmt.Sprintf("psi.f2.l%d.o%d", i%2, i*16384)
		saved[k] = chunkData(t, 16<<10)
		if err := e.s.SaveChunk(e.ctx, id, l.Attempt, k, saved[k]); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := e.s.LoadChunks(e.ctx, id)
	wantErr(t, "LoadChunks after Close", err, jobs.ErrUnavailable)
	err = e.s.SaveChunk(e.ctx, id, l.Attempt, "x", []byte("x"))
	wantErr(t, "SaveChunk after Close", err, jobs.ErrUnavailable)
	e.s = e.h.Reopen(t, e.s, e.clock)
	e.wantChunks("after reopening", id, saved)
	ls := e.reclaimAll("w2", 1)
	e.wantChunks("for the reclaiming attempt", ls[0].Job.ID, saved)
}

// testCheckpointsDropped: a job's chunks stay through running → running
// (reclaim), → queued (hand-back), → retryable and → dead_letter, and go
// when it enters a state it never runs from again (awaiting review, a final
// state) or on DeleteChunks — and another job's stay.
func testCheckpointsDropped(e *env) {
	t := e.t
	save := func(j *jobs.Job) map[string][]byte {
		t.Helper()
		m := map[string][]byte{"k1": chunkData(t, 512), "k2": chunkData(t, 512)}
		for k, v := range m {
			if err := e.s.SaveChunk(e.ctx, j.ID, j.Attempt, k, v); err != nil {
				t.Fatalf("SaveChunk (%s at %d): %v", j.State, j.Attempt, err)
			}
		}
		return m
	}
	other := e.jobIn(jobs.Running)
	otherChunks := save(other)

	for _, to := range []jobs.State{jobs.AwaitingReview, jobs.Failed, jobs.Cancelled, jobs.Rejected, jobs.Expired} {
		j := e.jobIn(jobs.Running)
		m := save(j)
		j = e.transition(j, jobs.Retryable)
		e.wantChunks("retryable", j.ID, m)
		e.clock.Advance(2 * time.Hour)
		e.promote(j)
		j = e.get(j.ID)
		e.wantChunks("queued again", j.ID, m)
		j = e.transition(j, jobs.Running)
		e.wantChunks("running again", j.ID, m)
		j = e.transition(j, to)
		e.wantChunks("after running → "+string(to), j.ID, map[string][]byte{})
		if to == jobs.AwaitingReview {
			j = e.transition(j, jobs.Released)
			e.wantChunks("released", j.ID, map[string][]byte{})
		}
	}
	dl := e.transition(e.jobIn(jobs.Running), jobs.Running)
	m := save(dl)
	dl = e.transition(dl, jobs.DeadLetter)
	e.wantChunks("dead-lettered (an admin may retry it)", dl.ID, m)
	if err := e.s.DeleteChunks(e.ctx, dl.ID); err != nil {
		t.Fatal(err)
	}
	e.wantChunks("after DeleteChunks", dl.ID, map[string][]byte{})
	if err := e.s.DeleteChunks(e.ctx, dl.ID); err != nil {
		t.Fatalf("DeleteChunks with none: %v", err)
	}
	e.wantChunks("another running job's", other.ID, otherChunks)
	// A dropped job's chunks stay dropped across a restart.
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	e.s = e.h.Reopen(t, e.s, e.clock)
	e.wantChunks("dead-lettered after reopening", dl.ID, map[string][]byte{})
	e.wantChunks("the running job's after reopening", other.ID, otherChunks)
}
