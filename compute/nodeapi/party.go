package nodeapi

import (
	"context"

	"github.com/unseen-data/unseen/psi"
)

// Party is a node as one party of a PSI run (psi.Party over HTTP). Prepare
// must have been called for the same job, attempt and party.
type Party struct {
	Client *Client
	Header Header
	N      int // the list length Prepare reported
}

var _ psi.Party = (*Party)(nil)

// Len is the prepared list's length.
func (p *Party) Len(ctx context.Context) (int, error) { return p.N, nil }

// Own fetches a chunk of the node's own list and checks every element.
func (p *Party) Own(ctx context.Context, offset, n int) (psi.Chunk, error) {
	b, err := p.Client.Own(ctx, &OwnRequest{Header: p.Header, Offset: offset, N: n})
	if err != nil {
		return psi.Chunk{}, err
	}
	es, err := decodeExactly(b, n)
	return psi.Chunk{Elements: es}, err
}

// Reblind sends a chunk of another list through the node.
func (p *Party) Reblind(ctx context.Context, list, offset int, in psi.Chunk) (psi.Chunk, error) {
	b, err := p.Client.Reblind(ctx, &ReblindRequest{Header: p.Header, List: list, Elements: psi.EncodeElements(in.Elements)})
	if err != nil {
		return psi.Chunk{}, err
	}
	es, err := decodeExactly(b, len(in.Elements))
	return psi.Chunk{Elements: es}, err
}

func decodeExactly(b []byte, n int) ([]psi.Element, error) {
	if len(b) != n*psi.ElementSize {
		return nil, psi.ErrLength
	}
	return psi.DecodeElements(b, n)
}
