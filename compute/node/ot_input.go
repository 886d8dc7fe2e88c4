package node

import "context"

// otInput is the one thing the OT protocol (ot.go) needs of a prepared
// session: its de-duplicated IDs in the node's secret order, each with its
// position, streamed in position order. Positions are those of the ECDH
// protocol's list (Members and he/values map them back), so the two
// protocols share Prepare and everything after the join; this function is
// the only place the OT path reads the prepared list.
func (ss *session) otInput(ctx context.Context, fn func(pos int, id []byte) error) error {
	// Read from disk in order, a buffer at a time; the ID is copied, since
	// fn may keep it.
	return ss.party.EachID(ctx, func(pos int, id []byte) error {
		return fn(pos, append([]byte(nil), id...))
	})
}
