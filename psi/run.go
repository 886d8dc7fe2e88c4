package psi

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
)

// MaxListLen bounds the list length Run accepts from a party, so that a
// wrong Len cannot make the coordinator allocate without limit (tokens cost
// TokenSize bytes per element).
const MaxListLen = 1 << 30

// Chunk is a piece of one list in transit: its elements and the proof the
// party that produced them attached (in Unseen a node's signature over the
// job, spec, attempt, list, hop, offset and elements). Run carries proofs
// from hop to hop without reading them; the next party checks them.
type Chunk struct {
	Elements []Element
	Proof    []byte
}

// Party is one department's node as the coordinator sees it. The transport
// (HTTP, elsewhere) implements it; LocalParty is the in-process node side.
// Calls may be concurrent. Implementations must return fresh slices and
// must not keep the slices passed to them.
type Party interface {
	// Len returns the length of the party's prepared (filtered,
	// de-duplicated) list.
	Len(ctx context.Context) (int, error)
	// Own returns elements [offset, offset+n) of the party's own list,
	// blinded once, by itself.
	Own(ctx context.Context, offset, n int) (Chunk, error)
	// Reblind raises every element of the chunk of party list's list that
	// starts at offset to the party's key, keeping their order. A party
	// refuses its own list.
	Reblind(ctx context.Context, list, offset int, in Chunk) (Chunk, error)
}

// Result is what the coordinator learns from a run.
type Result struct {
	// Count is the size of the intersection of all lists.
	Count int
	// Positions are the positions, ascending, of the primary list's
	// elements that are in every list: positions in its owner's secret
	// order, which only the owner can map back to IDs.
	Positions []int
	// Chunks is how many chunks the lists made; ResumedChunks how many of
	// them an earlier run had completed (RunOptions.Done), so that this
	// run computed only Chunks − ResumedChunks.
	Chunks, ResumedChunks int
}

// Route returns the parties that reblind list, in order: list+1, …,
// list+n−1 (mod n). The owner blinds first (Own), so the last hop, party
// list−1, is the only party to see list fully blinded, and each party is
// the last hop of exactly one list, never its own. It returns nil if n < 2
// or list is not in [0, n).
func Route(n, list int) []int {
	if n < 2 || list < 0 || list >= n {
		return nil
	}
	r := make([]int, n-1)
	for h := range r {
		r[h] = (list + 1 + h) % n
	}
	return r
}

// chunk is one piece of one list.
type chunk struct{ list, offset, n int }

// Run is the coordinator's engine. It streams every party's list, in chunks
// of chunkSize elements, through its Route, keeps only the 16-byte tokens of
// the fully blinded elements, joins them and returns the positions of list
// primary that occur in every list. Up to 2·len(parties) chunks are in
// flight at once, so element memory stays below
// 2·len(parties)·chunkSize·ElementSize bytes besides the tokens. progress,
// if not nil, is called (never concurrently) after every chunk hop, with
// total = Σ ⌈len/chunkSize⌉·len(parties). Every element a party returns is
// validated as DecodeElements would; the first error stops the run.
//
// Run is RunWith without resuming (resume.go).
func Run(ctx context.Context, parties []Party, primary, chunkSize int, progress func(done, total int)) (*Result, error) {
	return RunWith(ctx, parties, RunOptions{Primary: primary, ChunkSize: chunkSize, Progress: progress})
}

// RunWith is Run with options: it can skip chunks an earlier run completed
// (opts.Done) and report each chunk it completes (opts.OnChunk).
func RunWith(ctx context.Context, parties []Party, opts RunOptions) (*Result, error) {
	primary, chunkSize, progress := opts.Primary, opts.ChunkSize, opts.Progress
	n := len(parties)
	switch {
	case n < 2:
		return nil, fmt.Errorf("%w: need at least 2 parties, got %d", ErrInvalidRequest, n)
	case primary < 0 || primary >= n:
		return nil, fmt.Errorf("%w: primary %d not in [0, %d)", ErrInvalidRequest, primary, n)
	case chunkSize <= 0:
		return nil, fmt.Errorf("%w: chunk size %d", ErrInvalidRequest, chunkSize)
	}
	for i, p := range parties {
		if p == nil {
			return nil, fmt.Errorf("%w: party %d is nil", ErrInvalidRequest, i)
		}
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	lens := make([]int, n)
	total := 0
	for i, p := range parties {
		l, err := p.Len(ctx)
		if err != nil {
			return nil, fmt.Errorf("psi: party %d: length: %w", i, err)
		}
		if l < 0 || l > MaxListLen {
			return nil, fmt.Errorf("psi: party %d: %w: list length %d", i, ErrRange, l)
		}
		lens[i] = l
		total += (l/chunkSize + min(l%chunkSize, 1)) * n
	}
	tokens := make([][]Token, n)
	for i, l := range lens {
		tokens[i] = make([]Token, l)
	}

	// The chunks to compute, round-robin over the lists so every party has
	// work from the start; those an earlier run completed are filled in
	// from opts.Done instead.
	var todo []chunk
	resumed := 0
	for off := 0; ; off += chunkSize {
		more := false
		for i, l := range lens {
			if off >= l {
				continue
			}
			more = true
			c := chunk{i, off, min(chunkSize, l-off)}
			if opts.Done != nil {
				if ts, ok := opts.Done(c.list, c.offset, c.n); ok && len(ts) == c.n {
					copy(tokens[i][off:], ts)
					resumed++
					continue
				}
			}
			todo = append(todo, c)
		}
		if !more {
			break
		}
	}

	var mu sync.Mutex
	done := resumed * n
	if progress != nil && resumed > 0 {
		progress(done, total)
	}
	step := func() {
		if progress == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		done++
		progress(done, total)
	}

	// Each worker carries one chunk along its whole route.
	work := make(chan chunk)
	var wg sync.WaitGroup
	for range min(4*n, len(todo)) {
		wg.Go(func() {
			for c := range work {
				dst := tokens[c.list][c.offset : c.offset+c.n]
				err := runChunk(ctx, parties, c, dst, step)
				if err == nil && opts.OnChunk != nil {
					err = opts.OnChunk(c.list, c.offset, dst)
				}
				if err != nil {
					cancel(err)
					return
				}
			}
		})
	}
feed:
	for _, c := range todo {
		select {
		case work <- c:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	pos := join(tokens, primary)
	return &Result{Count: len(pos), Positions: pos, Chunks: resumed + len(todo), ResumedChunks: resumed}, nil
}

// runChunk takes chunk c from its owner through its route and stores the
// tokens of the fully blinded elements in dst (the chunk's tokens).
func runChunk(ctx context.Context, parties []Party, c chunk, dst []Token, step func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ch, err := parties[c.list].Own(ctx, c.offset, c.n)
	if err == nil {
		err = checkReply(ch.Elements, c.n)
	}
	if err != nil {
		return fmt.Errorf("psi: party %d: own list at %d: %w", c.list, c.offset, err)
	}
	step()
	for _, h := range Route(len(parties), c.list) {
		ch, err = parties[h].Reblind(ctx, c.list, c.offset, ch)
		if err == nil {
			err = checkReply(ch.Elements, c.n)
		}
		if err != nil {
			return fmt.Errorf("psi: party %d: reblind list %d at %d: %w", h, c.list, c.offset, err)
		}
		step()
	}
	for i := range ch.Elements {
		dst[i] = ch.Elements[i].Token()
	}
	return nil
}

func checkReply(es []Element, n int) error {
	if len(es) != n {
		return fmt.Errorf("%w: got %d elements, want %d", ErrLength, len(es), n)
	}
	return validateAll(es)
}

func compareTokens(a, b Token) int { return bytes.Compare(a[:], b[:]) }

// join returns the positions of tokens[primary] present in every other
// list. It sorts the other lists in place.
func join(tokens [][]Token, primary int) []int {
	others := make([][]Token, 0, len(tokens)-1)
	for i, t := range tokens {
		if i != primary {
			slices.SortFunc(t, compareTokens)
			others = append(others, t)
		}
	}
	pos := []int{}
next:
	for p, t := range tokens[primary] {
		for _, o := range others {
			if _, ok := slices.BinarySearchFunc(o, t, compareTokens); !ok {
				continue next
			}
		}
		pos = append(pos, p)
	}
	return pos
}
