package nodeapi

import (
	"context"
	"fmt"

	"github.com/unseen-data/unseen/psi"
)

// Party is a node as one party of a PSI run (psi.Party over HTTP). Prepare
// must have been called for the same job, attempt and party.
//
// The coordinator relays proofs it cannot make: each chunk's signature
// (psi.Chunk.Proof) goes on to the next hop, and every Reblind carries the
// list owner's signed length from Lengths.
type Party struct {
	Client *Client
	Header Header
	N      int // the list length Prepare reported
	// Lengths are the signed lengths Prepare returned, of every party's
	// list, by list index: one slice shared by all the job's parties.
	Lengths []SignedLength
}

var _ psi.Party = (*Party)(nil)

// Len is the prepared list's length.
func (p *Party) Len(ctx context.Context) (int, error) { return p.N, nil }

// Own fetches a chunk of the node's own list and checks every element.
func (p *Party) Own(ctx context.Context, offset, n int) (psi.Chunk, error) {
	r, err := p.Client.Own(ctx, &OwnRequest{Header: p.Header, Offset: offset, N: n})
	if err != nil {
		return psi.Chunk{}, err
	}
	es, err := decodeExactly(r.Elements, n)
	return psi.Chunk{Elements: es, Proof: r.Proof}, err
}

// Reblind sends a chunk of another list through the node, with the
// previous hop's proof and the list owner's signed length.
func (p *Party) Reblind(ctx context.Context, list, offset int, in psi.Chunk) (psi.Chunk, error) {
	if list < 0 || list >= len(p.Lengths) {
		return psi.Chunk{}, fmt.Errorf("%w: no signed length for list %d", psi.ErrInvalidRequest, list)
	}
	r, err := p.Client.Reblind(ctx, &ReblindRequest{Header: p.Header, List: list, Offset: offset, Elements: psi.EncodeElements(in.Elements), Proof: in.Proof, Length: p.Lengths[list]})
	if err != nil {
		return psi.Chunk{}, err
	}
	es, err := decodeExactly(r.Elements, len(in.Elements))
	return psi.Chunk{Elements: es, Proof: r.Proof}, err
}

func decodeExactly(b []byte, n int) ([]psi.Element, error) {
	if len(b) != n*psi.ElementSize {
		return nil, psi.ErrLength
	}
	return psi.DecodeElements(b, n)
}
