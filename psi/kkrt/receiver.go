package kkrt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"fmt"
	"sync"
)

// Receiver is the node whose set is cuckoo-hashed: the OPRF receiver, the
// OT-extension receiver and the base-OT receiver. It is driven by
// messages: Reply (to the sender's Setup), Finish (with the sender's
// Seeds), then per partition Partition, Chunk for every chunk, Outputs.
// Methods are safe for concurrent use; Chunk may run concurrently for
// different chunks.
type Receiver struct {
	// Workers is the number of goroutines the receiver's own parallel
	// loops use; 0 means GOMAXPROCS. Set it before the first call.
	Workers int

	params Params
	plan   Plan
	keys   *keys

	mu      sync.Mutex
	stage   int // 0 new, 1 reply sent, 2 ready
	ot      *baseOTReceiver
	prg     [2][CodeBits]cipher.Block // G(k_i^0), G(k_i^1)
	started []bool
}

// NewReceiver returns the receiver of a session. sessionKey (32 bytes) must
// be shared by the two nodes only.
func NewReceiver(params Params, sessionKey []byte) (*Receiver, error) {
	plan, err := params.Plan()
	if err != nil {
		return nil, err
	}
	k, err := deriveKeys(sessionKey)
	if err != nil {
		return nil, err
	}
	return &Receiver{params: params, plan: plan, keys: k, started: make([]bool, plan.Partitions)}, nil
}

// Plan returns the session's plan.
func (r *Receiver) Plan() Plan { return r.plan }

// Tag returns the session tag that every message of the session carries.
func (r *Receiver) Tag() [TagSize]byte { return r.keys.tag }

// Reply takes the sender's Setup and returns the second base-OT message,
// for the sender. It refuses a Setup whose parameters differ from the
// receiver's.
func (r *Receiver) Reply(setup []byte) ([]byte, error) {
	m, err := decodeSetup(setup)
	if err != nil {
		return nil, err
	}
	if m.tag != r.keys.tag {
		return nil, fmt.Errorf("%w: setup of another session", ErrMessage)
	}
	if m.receiverSize != uint64(r.params.ReceiverSize) || m.senderSize != uint64(r.params.SenderSize) || m.plan != r.plan {
		return nil, fmt.Errorf("%w: the sender's parameters (sizes %d, %d; %+v) differ from ours (sizes %d, %d; %+v)",
			ErrParams, m.receiverSize, m.senderSize, m.plan, r.params.ReceiverSize, r.params.SenderSize, r.plan)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stage != 0 {
		return nil, fmt.Errorf("%w: reply already sent", ErrState)
	}
	ot, err := newBaseOTReceiver()
	if err != nil {
		return nil, err
	}
	out := &replyMsg{tag: r.keys.tag}
	if err := ot.second(m, &out.points, r.Workers); err != nil {
		return nil, err
	}
	r.ot, r.stage = ot, 1
	return out.marshal(), nil
}

// Finish takes the sender's Seeds; the receiver is then ready for
// partitions. A Seeds message that does not decrypt changes nothing.
func (r *Receiver) Finish(seeds []byte) error {
	m, err := decodeSeeds(seeds)
	if err != nil {
		return err
	}
	if m.tag != r.keys.tag {
		return fmt.Errorf("%w: seeds of another session", ErrMessage)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stage != 1 {
		return fmt.Errorf("%w: seeds need exactly one reply before them", ErrState)
	}
	pairs, err := r.ot.finish(&r.keys.tag, m, r.Workers)
	if err != nil {
		return err
	}
	if err := r.installSeeds(pairs); err != nil {
		return err
	}
	r.ot = nil
	return nil
}

// installSeeds keys the PRGs with the base-OT seeds (k_i^0, k_i^1).
// Tests call it directly for known-answer vectors.
func (r *Receiver) installSeeds(seeds [][2][16]byte) error {
	for i := range CodeBits {
		for j := range 2 {
			b, err := aes.NewCipher(seeds[i][j][:])
			if err != nil {
				return err
			}
			r.prg[j][i] = b
		}
	}
	r.stage = 2
	return nil
}

// ReceiverPartition is one partition of the receiver's set, cuckoo-hashed
// and ready to produce its correction chunks.
type ReceiverPartition struct {
	r        *Receiver
	p        int
	attempt  int
	items    []Item
	pos      []uint64
	occupant []int32 // bin → item index, or −1
	outputs  [][ValueSize]byte

	mu     sync.Mutex
	built  []bool
	nbuilt int
	done   bool
}

// Partition starts partition p with the receiver's items in it and the
// positions the caller wants the coordinator to report them by (strictly
// increasing; typically indices into the caller's de-duplicated list).
// Every item must belong to partition p (Partitioner) and appear once, and
// there may be at most Plan().Capacity of them. The slices are copied. A
// partition can be started once per session: its OT rows are used once.
// Every partition must be run, an empty one too: the sender's items in it
// need its chunks, and a skipped partition would tell the sender that the
// receiver has no item there.
func (r *Receiver) Partition(p int, items []Item, positions []uint64) (*ReceiverPartition, error) {
	r.mu.Lock()
	ready := r.stage == 2
	r.mu.Unlock()
	if !ready {
		return nil, fmt.Errorf("%w: base OTs not finished", ErrState)
	}
	if p < 0 || p >= r.plan.Partitions {
		return nil, fmt.Errorf("%w: partition %d not in [0, %d)", ErrInput, p, r.plan.Partitions)
	}
	if len(items) > r.plan.Capacity {
		return nil, fmt.Errorf("%w: %d items, capacity %d", ErrPartitionOverflow, len(items), r.plan.Capacity)
	}
	if err := checkItems(r.keys, r.plan.Partitions, p, items, positions, r.Workers); err != nil {
		return nil, err
	}
	attempt, occ, err := place(r.keys, r.plan.Bins, p, items, r.Workers)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started[p] {
		return nil, fmt.Errorf("%w: partition %d already started", ErrState, p)
	}
	r.started[p] = true
	return &ReceiverPartition{
		r: r, p: p, attempt: attempt,
		items: append([]Item(nil), items...), pos: append([]uint64(nil), positions...),
		occupant: occ, outputs: make([][ValueSize]byte, len(items)),
		built: make([]bool, r.plan.Chunks),
	}, nil
}

// Chunks returns the number of correction chunks of the partition.
func (rp *ReceiverPartition) Chunks() int { return len(rp.built) }

// Attempt returns the index of the cuckoo key the partition uses (0 unless
// a re-hash was needed, which happens with probability ≤ 2^-40).
func (rp *ReceiverPartition) Attempt() int { return rp.attempt }

// Chunk returns correction chunk c, for the sender: for the chunk's rows b,
// u = G(k^0) ⊕ G(k^1) ⊕ C(x_b) column by column, where x_b is the item
// cuckoo-hashed to bin b (an all-zero code word for an empty bin). It also
// computes the outputs of the chunk's items. Each chunk can be built once;
// different chunks may be built concurrently.
func (rp *ReceiverPartition) Chunk(c int) ([]byte, error) {
	plan := rp.r.plan
	if c < 0 || c >= len(rp.built) {
		return nil, fmt.Errorf("%w: chunk %d not in [0, %d)", ErrInput, c, len(rp.built))
	}
	rp.mu.Lock()
	if rp.built[c] {
		rp.mu.Unlock()
		return nil, fmt.Errorf("%w: chunk %d of partition %d already built", ErrState, c, rp.p)
	}
	rp.built[c] = true
	rp.mu.Unlock()

	rows, start := plan.chunkRows(c), c*plan.ChunkRows
	k := rp.r.keys
	msg, u := newCorrection(&k.tag, rp.p, c, rp.attempt, rows)
	buf := getScratch(2 * rows * CodeBytes)
	defer putScratch(buf)
	crows, t0 := (*buf)[:rows*CodeBytes], (*buf)[rows*CodeBytes:]

	// Code words, row by row, then as columns into u.
	cd := newCoder(k)
	for b := range rows {
		row := crows[b*CodeBytes : (b+1)*CodeBytes]
		if it := rp.occupant[start+b]; it >= 0 {
			cd.code(row, &rp.items[it])
		} else {
			clear(row)
		}
	}
	rowsToCols(u, crows, rows)

	// t^i = G(k_i^0) and u^i = c^i ⊕ G(k_i^0) ⊕ G(k_i^1) on the chunk's rows.
	colBytes := rows / 8
	idx := uint64(rp.p*plan.Bins+start) / rowAlign
	clear(t0)
	for i := range CodeBits {
		ti, ui := t0[i*colBytes:(i+1)*colBytes], u[i*colBytes:(i+1)*colBytes]
		ctrXOR(rp.r.prg[0][i], idx, ti)
		subtle.XORBytes(ui, ui, ti)
		ctrXOR(rp.r.prg[1][i], idx, ui)
	}

	// Outputs H(p, b, t_b) of the items in the chunk's bins.
	colsToRows(crows, t0, rows)
	h := newOutputHash(&k.tag, rp.p)
	for b := range rows {
		if it := rp.occupant[start+b]; it >= 0 {
			rp.outputs[it] = h.sum(start+b, crows[b*CodeBytes:(b+1)*CodeBytes])
		}
	}

	rp.mu.Lock()
	rp.nbuilt++
	rp.mu.Unlock()
	return msg, nil
}

// Outputs returns the partition's messages for the coordinator: the OPRF
// output of every item, in the order of its positions, in messages of at
// most MaxPerMessage items. It needs every chunk built first, and can be
// called once.
func (rp *ReceiverPartition) Outputs() ([][]byte, error) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.nbuilt != len(rp.built) {
		return nil, fmt.Errorf("%w: %d of %d chunks built", ErrState, rp.nbuilt, len(rp.built))
	}
	if rp.done {
		return nil, fmt.Errorf("%w: outputs of partition %d already taken", ErrState, rp.p)
	}
	rp.done = true
	parts := splitParts(len(rp.items))
	msgs := make([][]byte, parts)
	for part := range parts {
		lo, hi := part*MaxPerMessage, min(len(rp.items), (part+1)*MaxPerMessage)
		m := &ReceiverOutputs{Tag: rp.r.keys.tag, Partition: rp.p, Part: part, Parts: parts,
			Positions: rp.pos[lo:hi], Values: rp.outputs[lo:hi]}
		b, err := m.MarshalBinary()
		if err != nil {
			return nil, err
		}
		msgs[part] = b
	}
	rp.items, rp.outputs, rp.occupant = nil, nil, nil
	return msgs, nil
}

// occupantForTest exposes the cuckoo table to tests (nil after Outputs).
func (rp *ReceiverPartition) occupantForTest() []int32 { return rp.occupant }
