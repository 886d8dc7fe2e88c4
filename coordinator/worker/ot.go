package worker

// The coordinator's side of the OT protocol (policy.PSIProtocolOT,
// nodeapi/ot.go): after Prepare, a star of two-party KKRT sessions around
// the shortest list, each relayed frame by frame between the two nodes,
// and the join of their OPRF outputs and values.
//
// Who learns what: the coordinator relays frames sealed end to end between
// the two nodes, and learns their number and sizes (fixed by the signed
// lengths); it joins the receiver's outputs with the sender's values and
// learns which positions of the centre's list match which of each other
// list. With two parties that is exactly what the ECDH protocol shows it;
// with more, it learns each list's matches with the centre's list (so the
// intersection of all, and each pairwise intersection with the centre),
// where ECDH shows it the membership of every element of every list in
// every other.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/psi"
	"github.com/unseen-data/unseen/psi/kkrt"
)

// otPipeline is the number of correction chunks fetched from the receiver
// ahead of the sender: the receiver builds the next while the sender
// applies the last.
const otPipeline = 2

// runOT runs the OT protocol for a job's attempt whose parties have
// prepared (lengths are their signed lengths) and returns, as psi.Run does,
// the intersection's size and the positions of list primary in it.
func (r *Runner) runOT(ctx context.Context, l *jobs.Lease, primary int, parties []psi.Party, lengths []nodeapi.SignedLength) (*psi.Result, error) {
	n := len(parties)
	lens := make([]int, n)
	for i, sl := range lengths {
		lens[i] = sl.Len
	}
	centre := nodeapi.OTCentre(lens)
	total := 0
	for j := range n {
		if j == centre {
			continue
		}
		plan, err := nodeapi.OTParams(lens[centre], lens[j]).Plan()
		if err != nil {
			return nil, permanent("OT session between parties %d and %d: %v", centre, j, err)
		}
		total += plan.Partitions * plan.Chunks
	}
	prog := r.progress(ctx, l, "psi (ot)", total)
	// pairs[j] are the matches (centre position, party j position).
	pairs := make([][]kkrt.Match, n)
	for j := range n {
		if j == centre {
			continue
		}
		ms, err := r.runOTPair(ctx, parties[centre].(*nodeapi.Party), parties[j].(*nodeapi.Party), lengths, prog.step)
		if err != nil {
			return nil, err
		}
		pairs[j] = ms
	}
	if err := prog.err(); err != nil {
		return nil, err
	}
	return joinStar(lens, centre, primary, pairs)
}

// joinStar combines a star's pairwise matches into the intersection of all
// lists, as positions of list primary.
func joinStar(lens []int, centre, primary int, pairs [][]kkrt.Match) (*psi.Result, error) {
	n := len(lens)
	hits := make([]int32, lens[centre])
	for j, ms := range pairs {
		if j == centre {
			continue
		}
		for _, m := range ms {
			if m.Receiver >= uint64(lens[centre]) || m.Sender >= uint64(lens[j]) {
				return nil, fmt.Errorf("worker: OT match (%d, %d) outside lists of %d and %d", m.Receiver, m.Sender, lens[centre], lens[j])
			}
			hits[m.Receiver]++
		}
	}
	res := &psi.Result{Positions: []int{}}
	for _, h := range hits {
		if int(h) == n-1 {
			res.Count++
		}
	}
	if primary == centre {
		for p, h := range hits {
			if int(h) == n-1 {
				res.Positions = append(res.Positions, p)
			}
		}
		return res, nil
	}
	for _, m := range pairs[primary] {
		if int(hits[m.Receiver]) == n-1 {
			res.Positions = append(res.Positions, int(m.Sender))
		}
	}
	slices.Sort(res.Positions)
	return res, nil
}

// runOTPair relays one KKRT session between receiver rc (the centre) and
// sender sc and joins its halves. step is called after every chunk.
func (r *Runner) runOTPair(ctx context.Context, rc, sc *nodeapi.Party, lengths []nodeapi.SignedLength, step func()) ([]kkrt.Match, error) {
	ri, si := rc.Header.Party, sc.Header.Party
	// The signed key exchange: each node checks the other's hello itself.
	// Both nodes work at once (accepting, each splits its list into the
	// session's partitions).
	var ro, so *nodeapi.OTOpenResponse
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		ro, err = rc.Client.OTOpen(gctx, &nodeapi.OTOpenRequest{Header: rc.Header, Peer: si, Lengths: lengths})
		return err
	})
	g.Go(func() (err error) {
		so, err = sc.Client.OTOpen(gctx, &nodeapi.OTOpenRequest{Header: sc.Header, Peer: ri, Lengths: lengths})
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var sa *nodeapi.OTAcceptResponse
	g, gctx = errgroup.WithContext(ctx)
	g.Go(func() error {
		_, err := rc.Client.OTAccept(gctx, &nodeapi.OTAcceptRequest{Header: rc.Header, Peer: si, Hello: so.Hello})
		return err
	})
	g.Go(func() (err error) {
		sa, err = sc.Client.OTAccept(gctx, &nodeapi.OTAcceptRequest{Header: sc.Header, Peer: ri, Hello: ro.Hello})
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Base OTs: Setup → receiver, Reply → sender, Seeds → receiver.
	toR := func(frame []byte) (*nodeapi.OTDeliverResponse, error) {
		return rc.Client.OTDeliver(ctx, &nodeapi.OTDeliverRequest{Header: rc.Header, Peer: si, Frame: frame})
	}
	reply, err := toR(sa.Frame)
	if err != nil {
		return nil, err
	}
	seeds, err := sc.Client.OTDeliver(ctx, &nodeapi.OTDeliverRequest{Header: sc.Header, Peer: ri, Frame: reply.Frame})
	if err != nil {
		return nil, err
	}
	if _, err := toR(seeds.Frame); err != nil {
		return nil, err
	}

	plan, err := nodeapi.OTParams(ro.Hello.ReceiverSize, ro.Hello.SenderSize).Plan()
	if err != nil {
		return nil, permanent("OT session between parties %d and %d: %v", ri, si, err)
	}
	joiner, err := kkrt.NewJoiner(plan.Partitions)
	if err != nil {
		return nil, err
	}
	var matches []kkrt.Match
	join := func(msgs [][]byte) error {
		for _, m := range msgs {
			ms, err := joiner.Add(m)
			if err != nil {
				return permanent("OT join: %v", err)
			}
			matches = append(matches, ms...)
		}
		return nil
	}
	// Correction chunks, in order: fetched from the receiver a little ahead
	// of the sender, which applies them in their sealed order.
	chunks := plan.Partitions * plan.Chunks
	g, gctx = errgroup.WithContext(ctx)
	pipe := make(chan *nodeapi.OTNextResponse, otPipeline)
	g.Go(func() error {
		defer close(pipe)
		for k := range chunks {
			nx, err := rc.Client.OTNext(gctx, &nodeapi.OTNextRequest{Header: rc.Header, Peer: si})
			if err != nil {
				return err
			}
			if nx.Partition != k/plan.Chunks || nx.Chunk != k%plan.Chunks {
				return fmt.Errorf("worker: receiver sent chunk %d of partition %d where chunk %d of partition %d was due", nx.Chunk, nx.Partition, k%plan.Chunks, k/plan.Chunks)
			}
			select {
			case pipe <- nx:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	g.Go(func() error {
		for nx := range pipe {
			if err := join(nx.Outputs); err != nil {
				return err
			}
			d, err := sc.Client.OTDeliver(gctx, &nodeapi.OTDeliverRequest{Header: sc.Header, Peer: ri, Frame: nx.Frame})
			if err != nil {
				return err
			}
			if err := join(d.Values); err != nil {
				return err
			}
			step()
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if !joiner.Done() {
		return nil, fmt.Errorf("worker: OT session between parties %d and %d ended with partitions unjoined", ri, si)
	}
	return matches, nil
}

// progressReporter reports a phase's progress to the store, at most every
// 200 ms and at the end, and remembers a lost lease.
type progressReporter struct {
	step func()
	err  func() error
}

func (r *Runner) progress(ctx context.Context, l *jobs.Lease, step string, total int) progressReporter {
	var (
		done int
		last time.Time
		lost error
	)
	_ = r.Store.Progress(ctx, l.Job.ID, l.Attempt, jobs.Progress{Total: int64(total), Step: step})
	return progressReporter{
		step: func() {
			done++
			if done != total && time.Since(last) < 200*time.Millisecond {
				return
			}
			last = time.Now()
			if err := r.Store.Progress(ctx, l.Job.ID, l.Attempt, jobs.Progress{Done: int64(done), Total: int64(total), Step: step}); errors.Is(err, jobs.ErrLeaseLost) || errors.Is(err, jobs.ErrConflict) {
				lost = jobs.ErrLeaseLost
			}
		},
		err: func() error { return lost },
	}
}
