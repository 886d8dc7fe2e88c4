package psi

import (
	"errors"
	"fmt"
)

// RunOptions configure RunWith.
//
// Resuming: a chunk's tokens are a function of the chunk's elements and of
// the parties' per-job keys, which derive from each node's secret, the job
// id and the spec's hash (DeriveKey), and each node's list order is a
// function of its set (NewLocalParty). So the tokens one attempt of a job
// computed for (list, offset, n) are the tokens any later attempt would
// compute — as long as every list is the same list in the same order, which
// the caller must check (in Unseen, the nodes' list lengths and digests).
// Tokens are what the coordinator keeps of every run anyway: saving them
// reveals nothing it would not hold.
type RunOptions struct {
	// Primary is the list whose positions the result gives.
	Primary int
	// ChunkSize is the number of elements per chunk.
	ChunkSize int
	// Progress, if not nil, is called (never concurrently) after every
	// chunk hop, with total = Σ ⌈len/ChunkSize⌉·len(parties); a resumed
	// chunk counts as all its hops done, reported once before the first
	// computed hop.
	Progress func(done, total int)
	// Done, if not nil, is asked for each chunk (list, offset, n elements)
	// before the run starts; returning its n tokens and true skips
	// computing it. A reply of another length is ignored (the chunk is
	// computed).
	Done func(list, offset, n int) ([]Token, bool)
	// OnChunk, if not nil, is called once for each chunk the run computes
	// (not for resumed ones), possibly concurrently, with its tokens, which
	// it must not keep or modify after returning. An error stops the run
	// and is what RunWith returns.
	OnChunk func(list, offset int, tokens []Token) error
}

// ErrTokens is returned by DecodeTokens for a malformed encoding.
var ErrTokens = errors.New("psi: malformed tokens")

// EncodeTokens concatenates tokens (TokenSize bytes each): the form a
// checkpointed chunk is stored in.
func EncodeTokens(ts []Token) []byte {
	b := make([]byte, 0, len(ts)*TokenSize)
	for _, t := range ts {
		b = append(b, t[:]...)
	}
	return b
}

// DecodeTokens decodes exactly n tokens.
func DecodeTokens(b []byte, n int) ([]Token, error) {
	if n < 0 || len(b) != n*TokenSize {
		return nil, fmt.Errorf("%w: %d bytes for %d tokens", ErrTokens, len(b), n)
	}
	ts := make([]Token, n)
	for i := range ts {
		ts[i] = Token(b[i*TokenSize:])
	}
	return ts, nil
}
