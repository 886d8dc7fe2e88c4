package kkrt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/unseen-data/unseen/psi/cuckoo"
)

// Sender is the node that holds the OPRF key: the OPRF sender, the
// OT-extension sender and the base-OT sender. It is driven by messages:
// Setup, then Seeds (from the receiver's Reply), after which it is ready;
// then per partition Partition, Apply for every correction chunk, Values.
// Methods are safe for concurrent use; Apply may run concurrently for
// different chunks.
type Sender struct {
	// Workers is the number of goroutines the sender's own parallel loops
	// use; 0 means GOMAXPROCS. Set it before the first call.
	Workers int

	params Params
	plan   Plan
	keys   *keys

	mu      sync.Mutex
	stage   int // 0 new, 1 setup sent, 2 ready
	ot      *baseOTSender
	s       [CodeBytes]byte        // the OPRF key's choice bits
	prg     [CodeBits]cipher.Block // G(k_i^{s_i})
	started []bool
}

// NewSender returns the sender of a session. sessionKey (32 bytes) must be
// shared by the two nodes only.
func NewSender(params Params, sessionKey []byte) (*Sender, error) {
	plan, err := params.Plan()
	if err != nil {
		return nil, err
	}
	k, err := deriveKeys(sessionKey)
	if err != nil {
		return nil, err
	}
	return &Sender{params: params, plan: plan, keys: k, started: make([]bool, plan.Partitions)}, nil
}

// Plan returns the session's plan.
func (s *Sender) Plan() Plan { return s.plan }

// Tag returns the session tag that every message of the session carries.
func (s *Sender) Tag() [TagSize]byte { return s.keys.tag }

// Setup returns the first base-OT message, for the receiver. It carries
// the Params so that the receiver can check that both sides agree.
func (s *Sender) Setup() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stage != 0 {
		return nil, fmt.Errorf("%w: setup already sent", ErrState)
	}
	ot, err := newBaseOTSender()
	if err != nil {
		return nil, err
	}
	m := &setupMsg{tag: s.keys.tag, receiverSize: uint64(s.params.ReceiverSize),
		senderSize: uint64(s.params.SenderSize), plan: s.plan}
	if err := ot.first(&m.points, s.Workers); err != nil {
		return nil, err
	}
	s.ot, s.stage = ot, 1
	return m.marshal(), nil
}

// Seeds takes the receiver's Reply and returns the last base-OT message,
// for the receiver. The sender is then ready for partitions.
func (s *Sender) Seeds(reply []byte) ([]byte, error) {
	m, err := decodeReply(reply)
	if err != nil {
		return nil, err
	}
	if m.tag != s.keys.tag {
		return nil, fmt.Errorf("%w: reply of another session", ErrMessage)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stage != 1 {
		return nil, fmt.Errorf("%w: seeds need exactly one setup before them", ErrState)
	}
	out := &seedsMsg{tag: s.keys.tag}
	chosen, err := s.ot.third(&s.keys.tag, m, out, s.Workers)
	if err != nil {
		return nil, err
	}
	if err := s.installSeeds(s.ot.s, chosen); err != nil {
		return nil, err
	}
	s.ot = nil
	return out.marshal(), nil
}

// installSeeds keys the PRGs with k_i^{s_i}. Tests call it directly for
// known-answer vectors.
func (s *Sender) installSeeds(choice [CodeBytes]byte, chosen [][16]byte) error {
	for i := range CodeBits {
		b, err := aes.NewCipher(chosen[i][:])
		if err != nil {
			return err
		}
		s.prg[i] = b
	}
	s.s = choice
	s.stage = 2
	return nil
}

// SenderPartition is one partition on the sender's side: the matrix Q of
// its bins, filled in by the receiver's correction chunks.
type SenderPartition struct {
	s *Sender
	p int
	q []byte // Bins rows of CodeBytes: q_b = t_b ⊕ (C(x_b) ∧ s)

	mu       sync.Mutex
	applied  []bool
	napplied int
	attempt  int // −1 until the first chunk
	done     bool
}

// Partition starts partition p on the sender's side. A partition can be
// started once per session.
func (s *Sender) Partition(p int) (*SenderPartition, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stage != 2 {
		return nil, fmt.Errorf("%w: base OTs not finished", ErrState)
	}
	if p < 0 || p >= s.plan.Partitions {
		return nil, fmt.Errorf("%w: partition %d not in [0, %d)", ErrInput, p, s.plan.Partitions)
	}
	if s.started[p] {
		return nil, fmt.Errorf("%w: partition %d already started", ErrState, p)
	}
	s.started[p] = true
	return &SenderPartition{s: s, p: p, q: make([]byte, s.plan.Bins*CodeBytes),
		applied: make([]bool, s.plan.Chunks), attempt: -1}, nil
}

// Apply takes one correction chunk of the partition: for each column i,
// q^i = G(k_i^{s_i}) ⊕ s_i·u^i, stored as rows. Chunks may come in any
// order and concurrently; each is accepted once.
func (sp *SenderPartition) Apply(msg []byte) error {
	m, err := decodeCorrection(msg)
	if err != nil {
		return err
	}
	plan := sp.s.plan
	switch {
	case m.tag != sp.s.keys.tag:
		return fmt.Errorf("%w: correction of another session", ErrMessage)
	case m.partition != sp.p:
		return fmt.Errorf("%w: correction for partition %d applied to partition %d", ErrMessage, m.partition, sp.p)
	case m.chunk >= len(sp.applied):
		return fmt.Errorf("%w: chunk %d of %d", ErrMessage, m.chunk, len(sp.applied))
	case m.rows != plan.chunkRows(m.chunk):
		return fmt.Errorf("%w: chunk %d has %d rows, want %d", ErrMessage, m.chunk, m.rows, plan.chunkRows(m.chunk))
	}
	sp.mu.Lock()
	switch {
	case sp.applied[m.chunk]:
		sp.mu.Unlock()
		return fmt.Errorf("%w: chunk %d of partition %d already applied", ErrState, m.chunk, sp.p)
	case sp.attempt >= 0 && sp.attempt != m.attempt:
		sp.mu.Unlock()
		return fmt.Errorf("%w: chunk %d uses cuckoo attempt %d, earlier chunks %d", ErrMessage, m.chunk, m.attempt, sp.attempt)
	}
	sp.applied[m.chunk], sp.attempt = true, m.attempt
	sp.mu.Unlock()

	rows, start := m.rows, m.chunk*plan.ChunkRows
	colBytes := rows / 8
	idx := uint64(sp.p*plan.Bins+start) / rowAlign
	buf := getScratch(rows * CodeBytes)
	defer putScratch(buf)
	qcols := *buf
	for i := range CodeBits {
		qi := qcols[i*colBytes : (i+1)*colBytes]
		if sp.s.s[i/8]>>(i%8)&1 == 1 {
			copy(qi, m.u[i*colBytes:(i+1)*colBytes])
		} else {
			clear(qi)
		}
		ctrXOR(sp.s.prg[i], idx, qi)
	}
	colsToRows(sp.q[start*CodeBytes:(start+rows)*CodeBytes], qcols, rows)

	sp.mu.Lock()
	sp.napplied++
	sp.mu.Unlock()
	return nil
}

// Values returns the partition's messages for the coordinator: for every
// sender item y (in the partition, distinct, with strictly increasing
// positions), its OPRF values H(p, b, q_b ⊕ (C(y) ∧ s)) at its three
// candidate bins b, sorted. It needs every chunk applied, and can be
// called once.
func (sp *SenderPartition) Values(items []Item, positions []uint64) ([][]byte, error) {
	sp.mu.Lock()
	switch {
	case sp.napplied != len(sp.applied):
		sp.mu.Unlock()
		return nil, fmt.Errorf("%w: %d of %d chunks applied", ErrState, sp.napplied, len(sp.applied))
	case sp.done:
		sp.mu.Unlock()
		return nil, fmt.Errorf("%w: values of partition %d already taken", ErrState, sp.p)
	}
	sp.done = true
	sp.mu.Unlock()

	s, plan := sp.s, sp.s.plan
	if err := checkItems(s.keys, plan.Partitions, sp.p, items, positions, s.Workers); err != nil {
		sp.mu.Lock()
		sp.done = false // nothing was revealed; the caller may retry
		sp.mu.Unlock()
		return nil, err
	}
	cands, err := candidates(s.keys, plan.Bins, sp.p, sp.attempt, items, s.Workers)
	if err != nil {
		return nil, err
	}
	var key [CodeBytes / 8]uint64
	for i := range key {
		key[i] = binary.LittleEndian.Uint64(s.s[8*i:])
	}
	values := make([][3][ValueSize]byte, len(items))
	err = forRanges(len(items), s.Workers, func(lo, hi int) error {
		cd := newCoder(s.keys)
		h := newOutputHash(&s.keys.tag, sp.p)
		// Items go in batches: first every code word, then every row
		// q_b ⊕ (C(y) ∧ s) (random reads of Q, which the CPU can overlap
		// only when nothing else sits between them), then every hash.
		const batch = 32
		var cs [batch][CodeBytes]byte
		var rows [batch][cuckoo.Hashes][CodeBytes]byte
		for b0 := lo; b0 < hi; b0 += batch {
			n := min(batch, hi-b0)
			for i := range n {
				cd.code(cs[i][:], &items[b0+i])
				for w := range key {
					binary.LittleEndian.PutUint64(cs[i][8*w:], binary.LittleEndian.Uint64(cs[i][8*w:])&key[w])
				}
			}
			for i := range n {
				for j, b := range cands[b0+i] {
					subtle.XORBytes(rows[i][j][:], sp.q[int(b)*CodeBytes:(int(b)+1)*CodeBytes], cs[i][:])
				}
			}
			for i := range n {
				v := &values[b0+i]
				for j, b := range cands[b0+i] {
					v[j] = h.sum(int(b), rows[i][j][:])
				}
				sort3(v)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	parts := splitParts(len(items))
	msgs := make([][]byte, parts)
	for part := range parts {
		lo, hi := part*MaxPerMessage, min(len(items), (part+1)*MaxPerMessage)
		m := &SenderValues{Tag: s.keys.tag, Partition: sp.p, Part: part, Parts: parts,
			Positions: positions[lo:hi], Values: values[lo:hi]}
		b, err := m.MarshalBinary()
		if err != nil {
			return nil, err
		}
		msgs[part] = b
	}
	sp.q = nil
	return msgs, nil
}

// sort3 sorts an item's three values, so that their order depends on the
// values only, not on which hash function gave which bin.
func sort3(v *[3][ValueSize]byte) {
	if bytes.Compare(v[0][:], v[1][:]) > 0 {
		v[0], v[1] = v[1], v[0]
	}
	if bytes.Compare(v[1][:], v[2][:]) > 0 {
		v[1], v[2] = v[2], v[1]
	}
	if bytes.Compare(v[0][:], v[1][:]) > 0 {
		v[0], v[1] = v[1], v[0]
	}
}
