package kkrt

import (
	"context"
	"crypto/rand"
	"fmt"
	"hash/maphash"
	"io"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
)

// Partitioner maps items to partitions the way both nodes must split their
// sets: a keyed function of the item under the session key, so that the
// coordinator cannot compute it. A node with a large set streams its items
// through Of and keeps (or spills) each partition separately.
type Partitioner struct {
	p *partitioner
}

// NewPartitioner returns the session's Partitioner.
func NewPartitioner(params Params, sessionKey []byte) (*Partitioner, error) {
	plan, err := params.Plan()
	if err != nil {
		return nil, err
	}
	k, err := deriveKeys(sessionKey)
	if err != nil {
		return nil, err
	}
	return &Partitioner{newPartitioner(k, plan.Partitions)}, nil
}

// Of returns the partition of an item. It is not safe for concurrent use
// (create one Partitioner per goroutine).
func (p *Partitioner) Of(x *Item) int {
	part, _ := p.p.of(x)
	return part
}

// Options tunes Run.
type Options struct {
	// SessionKey is the key the two nodes share; nil means a fresh random
	// key.
	SessionKey []byte
	// PartitionSize and ChunkRows are passed on in Params.
	PartitionSize, ChunkRows int
	// Workers bounds the goroutines; 0 means GOMAXPROCS.
	Workers int
	// Progress, if not nil, is called after every correction chunk the
	// sender applies, with done and total chunks (never concurrently).
	Progress func(done, total int)

	// fakeBaseOTs, in tests, replaces the base OTs by seeds drawn from it
	// (everything after the base OTs is unchanged).
	fakeBaseOTs io.Reader
}

// Stats are what Run measured.
type Stats struct {
	Plan Plan
	// NodeBytes is the size of every message between the two nodes (the
	// base OTs and the correction chunks); CoordinatorBytes of every
	// message from a node to the coordinator.
	NodeBytes, CoordinatorBytes int64
	// Messages counts all messages.
	Messages int64
	// Rehashed counts the partitions that needed a second cuckoo key.
	Rehashed int
}

// Result is Run's answer.
type Result struct {
	// Matches pairs indices into the receiver's and the sender's input
	// slices, ascending by receiver index. An item given more than once
	// counts once, by its first index.
	Matches []Match
	Stats   Stats
}

// Run runs a whole session in-process: both nodes and the coordinator,
// every message encoded and decoded as a transport would carry it. It is
// the reference driver for tests and benchmarks. Each set is first
// de-duplicated (first occurrence kept) and renumbered densely, so the
// positions the coordinator sees reveal nothing about repeats.
func Run(ctx context.Context, senderSet, receiverSet []Item, opts *Options) (*Result, error) {
	if opts == nil {
		opts = &Options{}
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	rIdx, sIdx := distinct(receiverSet, workers), distinct(senderSet, workers)
	params := Params{ReceiverSize: len(rIdx), SenderSize: len(sIdx), PartitionSize: opts.PartitionSize, ChunkRows: opts.ChunkRows}
	key := opts.SessionKey
	if key == nil {
		key = make([]byte, SessionKeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	recv, err := NewReceiver(params, key)
	if err != nil {
		return nil, err
	}
	send, err := NewSender(params, key)
	if err != nil {
		return nil, err
	}
	recv.Workers, send.Workers = workers, workers
	plan := recv.Plan()
	st := Stats{Plan: plan}

	var nodeBytes, coordBytes, messages atomic.Int64
	if opts.fakeBaseOTs != nil {
		if err := fakeBaseOTs(recv, send, opts.fakeBaseOTs); err != nil {
			return nil, err
		}
	} else {
		// Base OTs, three flows.
		setup, err := send.Setup()
		if err != nil {
			return nil, err
		}
		reply, err := recv.Reply(setup)
		if err != nil {
			return nil, err
		}
		seeds, err := send.Seeds(reply)
		if err != nil {
			return nil, err
		}
		if err := recv.Finish(seeds); err != nil {
			return nil, err
		}
		nodeBytes.Add(int64(len(setup) + len(reply) + len(seeds)))
		messages.Add(3)
	}

	rParts, err := split(key, params, receiverSet, rIdx, workers)
	if err != nil {
		return nil, err
	}
	sParts, err := split(key, params, senderSet, sIdx, workers)
	if err != nil {
		return nil, err
	}

	var (
		mu       sync.Mutex // guards matches, rehashed, progress
		matches  []Match
		rehashed int
		done     int
		total    = plan.Partitions * plan.Chunks
	)
	// Partitions run concurrently (each also spreads its own loops over
	// the workers), so that one partition's sequential steps overlap
	// another's parallel ones.
	err = forEach(plan.Partitions, min(workers, plan.Partitions), func(p int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ritems, rpos := gather(receiverSet, rIdx, rParts[p])
		sitems, spos := gather(senderSet, sIdx, sParts[p])
		rp, err := recv.Partition(p, ritems, rpos)
		if err != nil {
			return err
		}
		sp, err := send.Partition(p)
		if err != nil {
			return err
		}
		err = forEach(rp.Chunks(), workers, func(c int) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			msg, err := rp.Chunk(c)
			if err != nil {
				return err
			}
			nodeBytes.Add(int64(len(msg)))
			messages.Add(1)
			if err := sp.Apply(msg); err != nil {
				return err
			}
			if opts.Progress != nil {
				mu.Lock()
				done++
				opts.Progress(done, total)
				mu.Unlock()
			}
			return nil
		})
		if err != nil {
			return err
		}
		vmsgs, err := sp.Values(sitems, spos)
		if err != nil {
			return err
		}
		omsgs, err := rp.Outputs()
		if err != nil {
			return err
		}
		// The coordinator's side: decode, then join the partition.
		var outs []*ReceiverOutputs
		var vals []*SenderValues
		for _, b := range omsgs {
			m, err := DecodeReceiverOutputs(b)
			if err != nil {
				return err
			}
			outs = append(outs, m)
			coordBytes.Add(int64(len(b)))
		}
		for _, b := range vmsgs {
			m, err := DecodeSenderValues(b)
			if err != nil {
				return err
			}
			vals = append(vals, m)
			coordBytes.Add(int64(len(b)))
		}
		messages.Add(int64(len(omsgs) + len(vmsgs)))
		ms, err := Join(outs, vals)
		if err != nil {
			return err
		}
		mu.Lock()
		matches = append(matches, ms...)
		if rp.Attempt() > 0 {
			rehashed++
		}
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range matches {
		matches[i] = Match{Receiver: uint64(rIdx[matches[i].Receiver]), Sender: uint64(sIdx[matches[i].Sender])}
	}
	sortMatches(matches)
	st.NodeBytes, st.CoordinatorBytes, st.Messages, st.Rehashed = nodeBytes.Load(), coordBytes.Load(), messages.Load(), rehashed
	return &Result{Matches: matches, Stats: st}, nil
}

// fakeBaseOTs gives r and s the outcome of base OTs with seeds and choice
// bits read from rnd: what the base OTs compute, without running them.
func fakeBaseOTs(r *Receiver, s *Sender, rnd io.Reader) error {
	seeds := make([][2][16]byte, CodeBits)
	chosen := make([][16]byte, CodeBits)
	var choice [CodeBytes]byte
	if _, err := io.ReadFull(rnd, choice[:]); err != nil {
		return err
	}
	for i := range seeds {
		for j := range 2 {
			if _, err := io.ReadFull(rnd, seeds[i][j][:]); err != nil {
				return err
			}
		}
		chosen[i] = seeds[i][choice[i/8]>>(i%8)&1]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.stage != 0 || s.stage != 0 {
		return fmt.Errorf("%w: base OTs already started", ErrState)
	}
	if err := r.installSeeds(seeds); err != nil {
		return err
	}
	return s.installSeeds(choice, chosen)
}

// distinct returns the indices of the first occurrence of every distinct
// item, in order. Hashes are computed first, in parallel; the probing loop
// then does little besides its (cache-missing) table reads, which the CPU
// overlaps.
func distinct(items []Item, workers int) []int32 {
	seed := maphash.MakeSeed()
	hs := make([]uint64, len(items))
	_ = forRanges(len(items), workers, func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			hs[i] = maphash.Bytes(seed, items[i][:])
		}
		return nil
	})
	type slot struct {
		h   uint64
		idx int32 // index + 1, or 0 for an empty slot
	}
	size := 1 << bits.Len(uint(2*len(items)))
	mask := uint64(size - 1)
	slots := make([]slot, size)
	keep := make([]int32, 0, len(items))
	for i, h := range hs {
		for p := h & mask; ; p = (p + 1) & mask {
			sl := &slots[p]
			if sl.idx == 0 {
				*sl = slot{h, int32(i + 1)}
				keep = append(keep, int32(i))
				break
			}
			if sl.h == h && items[sl.idx-1] == items[i] {
				break
			}
		}
	}
	return keep
}

// split returns, per partition, the dense positions (indices into idx) of
// the items in it, ascending.
func split(key []byte, params Params, items []Item, idx []int32, workers int) ([][]uint64, error) {
	pt, err := NewPartitioner(params, key)
	if err != nil {
		return nil, err
	}
	k, parts := pt.p.block, pt.p.parts
	of := make([]int32, len(idx))
	_ = forRanges(len(idx), workers, func(lo, hi int) error {
		p := &partitioner{block: k, parts: parts, buf: make([]byte, 16)}
		for i := lo; i < hi; i++ {
			q, _ := p.of(&items[idx[i]])
			of[i] = int32(q)
		}
		return nil
	})
	counts := make([]int, parts)
	for _, q := range of {
		counts[q]++
	}
	out := make([][]uint64, parts)
	for q := range out {
		out[q] = make([]uint64, 0, counts[q])
	}
	for i, q := range of {
		out[q] = append(out[q], uint64(i))
	}
	if len(idx) > MaxSetSize {
		return nil, fmt.Errorf("%w: %d items", ErrParams, len(idx))
	}
	return out, nil
}

// gather returns the items at the given dense positions.
func gather(items []Item, idx []int32, pos []uint64) ([]Item, []uint64) {
	out := make([]Item, len(pos))
	for i, d := range pos {
		out[i] = items[idx[d]]
	}
	return out, pos
}
