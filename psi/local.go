package psi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"slices"
)

// LocalParty is the node side of the protocol for one job: it holds the
// node's normalised IDs, de-duplicated and in a secret order, and answers
// the coordinator's requests. It is safe for concurrent use.
type LocalParty struct {
	key   *Key
	jobID string
	self  int
	ids   [][]byte // de-duplicated, in secret order (in memory)
	list  *List    // or on disk (NewListParty)
}

var _ Party = (*LocalParty)(nil)

// OwnElements returns H(x)^k for the IDs x at positions [offset, offset+n)
// of the party's secret order.
func (p *LocalParty) OwnElements(ctx context.Context, offset, n int) ([]Element, error) {
	ch, err := p.Own(ctx, offset, n)
	return ch.Elements, err
}

// ReblindElements raises each element of a chunk of party list's list to
// this party's key (Reblind without proofs).
func (p *LocalParty) ReblindElements(ctx context.Context, list int, in []Element) ([]Element, error) {
	ch, err := p.Reblind(ctx, list, 0, Chunk{Elements: in})
	return ch.Elements, err
}

// NewLocalParty prepares party self's list for jobID from its normalised
// IDs (which it copies). Duplicates are dropped, and the rest are ordered
// by HMAC-SHA256(k', id), where k' = HKDF-SHA256(nodeSecret,
// info = "unseen/psi/v1/order" ‖ 0x00 ‖ jobID ‖ 0x00 ‖ specHash): an order only the node
// knows, that depends on the set of IDs but not on the order they were read
// in, so a retried job (or one re-read from the database) gets the same
// positions.
func NewLocalParty(nodeSecret []byte, jobID string, specHash []byte, self int, ids [][]byte) (*LocalParty, error) {
	if self < 0 {
		return nil, fmt.Errorf("%w: party index %d", ErrRange, self)
	}
	key, err := DeriveKey(nodeSecret, jobID, specHash)
	if err != nil {
		return nil, err
	}
	orderKey, err := deriveBytes(nodeSecret, "order", jobID, specHash)
	if err != nil {
		return nil, err
	}

	type entry struct {
		tag [sha256.Size]byte
		id  []byte
	}
	seen := make(map[string]struct{}, len(ids))
	es := make([]entry, 0, len(ids))
	for _, id := range ids {
		if _, dup := seen[string(id)]; dup {
			continue
		}
		seen[string(id)] = struct{}{}
		es = append(es, entry{id: append([]byte{}, id...)})
	}
	parallelRanges(len(es), func(lo, hi int) {
		mac := hmac.New(sha256.New, orderKey)
		for i := lo; i < hi; i++ {
			mac.Reset()
			mac.Write(es[i].id)
			mac.Sum(es[i].tag[:0])
		}
	})
	// Ties between distinct IDs need a SHA-256 collision; the ID breaks them
	// anyway so the order is always a function of the set.
	slices.SortFunc(es, func(a, b entry) int {
		if c := bytes.Compare(a.tag[:], b.tag[:]); c != 0 {
			return c
		}
		return bytes.Compare(a.id, b.id)
	})
	p := &LocalParty{key: key, jobID: jobID, self: self, ids: make([][]byte, len(es))}
	for i := range es {
		p.ids[i] = es[i].id
	}
	return p, nil
}

// parallelRanges runs fn over contiguous ranges of [0, n) on all cores.
func parallelRanges(n int, fn func(lo, hi int)) {
	const per = 1024 // HMACs are cheap: only split large inputs
	blocks := (n + per - 1) / per
	_ = parallel(blocks, func(b int) error {
		fn(b*per, min((b+1)*per, n))
		return nil
	})
}

// Self returns the party's index.
func (p *LocalParty) Self() int { return p.self }

// NewListParty is party self's side of job jobID over a list BuildList
// made (for the same secret, job and spec): the same positions as
// NewLocalParty gives the same IDs, read from disk. The party does not own
// the list: close it when the party is done with.
func NewListParty(nodeSecret []byte, jobID string, specHash []byte, self int, list *List) (*LocalParty, error) {
	if self < 0 {
		return nil, fmt.Errorf("%w: party index %d", ErrRange, self)
	}
	key, err := DeriveKey(nodeSecret, jobID, specHash)
	if err != nil {
		return nil, err
	}
	return &LocalParty{key: key, jobID: jobID, self: self, list: list}, nil
}

func (p *LocalParty) n() int {
	if p.list != nil {
		return p.list.Len()
	}
	return len(p.ids)
}

// Len returns the number of distinct IDs.
func (p *LocalParty) Len(ctx context.Context) (int, error) { return p.n(), ctx.Err() }

// EachID calls fn with every position of the list and its ID, in order
// (from disk, sequentially, for a list party). The ID is valid only
// during the call.
func (p *LocalParty) EachID(ctx context.Context, fn func(pos int, id []byte) error) error {
	if p.list != nil {
		return p.list.Each(ctx, fn)
	}
	for i, id := range p.ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(i, id); err != nil {
			return err
		}
	}
	return nil
}

// idRange returns the IDs at positions [offset, offset+n).
func (p *LocalParty) idRange(offset, n int) ([][]byte, error) {
	if offset < 0 || n < 0 || offset > p.n() || n > p.n()-offset {
		return nil, fmt.Errorf("%w: range [%d, %d+%d) of a list of %d", ErrRange, offset, offset, n, p.n())
	}
	if p.list != nil {
		return p.list.IDs(offset, n)
	}
	return p.ids[offset : offset+n], nil
}

// Own returns H(x)^k for the IDs x at positions [offset, offset+n) of the
// party's secret order.
func (p *LocalParty) Own(ctx context.Context, offset, n int) (Chunk, error) {
	if err := ctx.Err(); err != nil {
		return Chunk{}, err
	}
	ids, err := p.idRange(offset, n)
	if err != nil {
		return Chunk{}, err
	}
	out := make([]Element, n)
	err = parallel(n, func(i int) error {
		out[i] = HashID(p.jobID, ids[i])
		if err := p.key.blindOne(&out[i], &out[i]); err != nil {
			// Only for an ID whose hash is a low-order point: probability ~2^-250.
			return fmt.Errorf("%w (position %d)", err, offset+i)
		}
		return nil
	})
	if err != nil {
		return Chunk{}, err
	}
	return Chunk{Elements: out}, nil
}

// Reblind raises each element of a chunk of party list's list to this
// party's key. It refuses its own list: blinding it again would hand the
// party (or whoever it answers) its own list at a higher degree than the
// protocol allows. Each element is validated as DecodeElements would.
func (p *LocalParty) Reblind(ctx context.Context, list, offset int, in Chunk) (Chunk, error) {
	if err := ctx.Err(); err != nil {
		return Chunk{}, err
	}
	if list == p.self {
		return Chunk{}, ErrOwnList
	}
	if list < 0 || offset < 0 {
		return Chunk{}, fmt.Errorf("%w: list %d at %d", ErrRange, list, offset)
	}
	if err := validateAll(in.Elements); err != nil {
		return Chunk{}, err
	}
	out := make([]Element, len(in.Elements))
	if err := p.key.Blind(out, in.Elements); err != nil {
		return Chunk{}, err
	}
	return Chunk{Elements: out}, nil
}

// IDAt returns (a copy of) the ID at position in the party's secret order,
// or nil if position is out of range (or, for a list on disk, cannot be
// read): how the primary node maps Result positions back to its own IDs.
func (p *LocalParty) IDAt(position int) []byte {
	ids, err := p.idRange(position, 1)
	if err != nil || position >= p.n() {
		return nil
	}
	return append([]byte{}, ids[0]...)
}
