package kkrt

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// ErrRepeatedValue reports a value that occurs twice on one side of a
// join. Honest nodes never produce one (probability ≤ 2^-72 for sets up to
// MaxSetSize), so the coordinator stops rather than emit a product of
// matches.
var ErrRepeatedValue = errors.New("kkrt: a value repeats within one side")

// Match is one element of the intersection, as the coordinator learns it:
// the position the receiver's caller gave it and the sender's.
type Match struct {
	Receiver, Sender uint64
}

type entry struct {
	k0, k1 uint64 // the value, big-endian halves (so entry order is byte order)
	pos    uint64
}

func entryOf(v *[ValueSize]byte, pos uint64) entry {
	return entry{binary.BigEndian.Uint64(v[0:8]), binary.BigEndian.Uint64(v[8:16]), pos}
}

func entryLess(a, b entry) bool { return a.k0 < b.k0 || a.k0 == b.k0 && a.k1 < b.k1 }

func entryCmp(a, b entry) int {
	switch {
	case entryLess(a, b):
		return -1
	case entryLess(b, a):
		return 1
	}
	return 0
}

// sortEntries sorts e by value, using tmp (len(e)) as the second buffer.
// It is a least-significant-digit radix sort on the top 32 bits of the
// value, four passes of 8 bits (each a sequential read and 256 sequential
// write streams, so cache-friendly), followed by a pass that sorts each
// run of equal top bits completely. Values are pseudo-random, so such runs
// are rare and short; a misbehaving node that sends many values with equal
// top bits gets pdqsort on them, so the worst case stays O(n log n).
func sortEntries(e, tmp []entry) {
	if len(e) < 2 {
		return
	}
	src, dst := e, tmp
	var counts [256]int
	for shift := 32; shift < 64; shift += 8 {
		counts = [256]int{}
		for i := range src {
			counts[byte(src[i].k0>>shift)]++
		}
		sum := 0
		for d := range counts {
			counts[d], sum = sum, sum+counts[d]
		}
		for i := range src {
			d := byte(src[i].k0 >> shift)
			dst[counts[d]] = src[i]
			counts[d]++
		}
		src, dst = dst, src
	}
	// Four passes: the sorted data is back in e.
	for i := 0; i < len(e); {
		j := i + 1
		for j < len(e) && e[j].k0>>32 == e[i].k0>>32 {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(e[i:j], entryCmp)
		}
		i = j
	}
}

// sortMatches sorts matches by receiver position (then sender position)
// with the same kind of radix sort, on the 48 bits positions have.
func sortMatches(m []Match) {
	if len(m) < 2 {
		return
	}
	src, dst := m, make([]Match, len(m))
	var counts [256]int
	for shift := 0; shift < 48; shift += 8 {
		counts = [256]int{}
		for i := range src {
			counts[byte(src[i].Receiver>>shift)]++
		}
		sum := 0
		for d := range counts {
			counts[d], sum = sum, sum+counts[d]
		}
		for i := range src {
			d := byte(src[i].Receiver >> shift)
			dst[counts[d]] = src[i]
			counts[d]++
		}
		src, dst = dst, src
	}
	// Six passes: the data is back in m. Ties (a receiver position in two
	// matches, which honest inputs never produce) are ordered by sender.
	for i := 0; i < len(m); {
		j := i + 1
		for j < len(m) && m[j].Receiver == m[i].Receiver {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(m[i:j], func(a, b Match) int { return cmp.Compare(a.Sender, b.Sender) })
		}
		i = j
	}
}

// Join is the coordinator's join: it returns every (receiver position,
// sender position) pair whose receiver output equals one of the sender's
// values, sorted by receiver position. It sorts both sides by value and
// merges them, in O(n+m) expected time and 48·(n+3m) bytes for n receiver
// outputs and m sender items; call it per partition (matches never cross
// partitions) to keep memory O(partition). It learns nothing from the
// values but equality. A value repeated within one side is an error.
func Join(recv []*ReceiverOutputs, send []*SenderValues) ([]Match, error) {
	var nr, ns int
	for _, m := range recv {
		nr += len(m.Values)
	}
	for _, m := range send {
		ns += 3 * len(m.Values)
	}
	buf := make([]entry, 2*(nr+ns))
	r, rt := buf[:nr:nr], buf[nr:2*nr:2*nr]
	s, st := buf[2*nr:2*nr+ns:2*nr+ns], buf[2*nr+ns:]
	i := 0
	for _, m := range recv {
		for j := range m.Values {
			r[i] = entryOf(&m.Values[j], m.Positions[j])
			i++
		}
	}
	i = 0
	for _, m := range send {
		for j := range m.Values {
			for k := range 3 {
				s[i] = entryOf(&m.Values[j][k], m.Positions[j])
				i++
			}
		}
	}
	sortEntries(r, rt)
	sortEntries(s, st)
	for _, side := range []struct {
		name string
		e    []entry
	}{{"receiver", r}, {"sender", s}} {
		for i := 1; i < len(side.e); i++ {
			if entryCmp(side.e[i-1], side.e[i]) == 0 {
				return nil, fmt.Errorf("%w: %s positions %d and %d", ErrRepeatedValue, side.name, side.e[i-1].pos, side.e[i].pos)
			}
		}
	}
	var out []Match
	for i, j := 0, 0; i < len(r) && j < len(s); {
		switch entryCmp(r[i], s[j]) {
		case -1:
			i++
		case 1:
			j++
		default:
			out = append(out, Match{Receiver: r[i].pos, Sender: s[j].pos})
			i++
			j++
		}
	}
	sortMatches(out)
	return out, nil
}

// Joiner is the coordinator's streaming join: it takes the Outputs and
// Values messages of a session in any order and, as soon as both sides of
// a partition are complete, joins that partition and forgets it, so its
// memory is that of the partitions in flight. It checks that every message
// carries the session's tag (the first message's) and that parts are
// complete and not repeated. Not safe for concurrent use.
type Joiner struct {
	partitions int
	tag        [TagSize]byte
	tagSet     bool
	pending    map[int]*pendingPartition
	complete   []bool
	ncomplete  int
}

type pendingPartition struct {
	recvParts, sendParts int // 0 until the first message of the side
	recvGot, sendGot     []bool
	nrecv, nsend         int
	recv                 []*ReceiverOutputs
	send                 []*SenderValues
}

// NewJoiner returns a Joiner for a session of the given number of
// partitions (Plan.Partitions).
func NewJoiner(partitions int) (*Joiner, error) {
	if partitions < 1 || partitions > MaxPartitions {
		return nil, fmt.Errorf("%w: %d partitions", ErrParams, partitions)
	}
	return &Joiner{partitions: partitions, pending: map[int]*pendingPartition{}, complete: make([]bool, partitions)}, nil
}

// Done reports whether every partition has been joined.
func (j *Joiner) Done() bool { return j.ncomplete == j.partitions }

// Add takes one message (KindOutputs or KindValues) and returns the
// matches of its partition if that partition is now complete.
func (j *Joiner) Add(msg []byte) ([]Match, error) {
	kind, tag, err := Peek(msg)
	if err != nil {
		return nil, err
	}
	if j.tagSet && tag != j.tag {
		return nil, fmt.Errorf("%w: message of another session", ErrMessage)
	}
	var (
		partition, part, parts int
		ro                     *ReceiverOutputs
		sv                     *SenderValues
	)
	switch kind {
	case KindOutputs:
		if ro, err = DecodeReceiverOutputs(msg); err != nil {
			return nil, err
		}
		partition, part, parts = ro.Partition, ro.Part, ro.Parts
	case KindValues:
		if sv, err = DecodeSenderValues(msg); err != nil {
			return nil, err
		}
		partition, part, parts = sv.Partition, sv.Part, sv.Parts
	default:
		return nil, fmt.Errorf("%w: a %v message is not for the coordinator", ErrMessage, kind)
	}
	if partition >= j.partitions {
		return nil, fmt.Errorf("%w: partition %d of %d", ErrMessage, partition, j.partitions)
	}
	if j.complete[partition] {
		return nil, fmt.Errorf("%w: partition %d already joined", ErrState, partition)
	}
	pp := j.pending[partition]
	if pp == nil {
		pp = &pendingPartition{}
	}
	// Check the part against the side's earlier parts before changing
	// anything.
	sideParts, got := &pp.recvParts, &pp.recvGot
	if sv != nil {
		sideParts, got = &pp.sendParts, &pp.sendGot
	}
	if *sideParts != 0 && *sideParts != parts {
		return nil, fmt.Errorf("%w: partition %d announced %d parts, now %d", ErrMessage, partition, *sideParts, parts)
	}
	if *sideParts != 0 && (*got)[part] {
		return nil, fmt.Errorf("%w: part %d of partition %d repeated", ErrState, part, partition)
	}
	if *sideParts == 0 {
		*sideParts, *got = parts, make([]bool, parts)
	}
	(*got)[part] = true
	if sv != nil {
		pp.send = append(pp.send, sv)
		pp.nsend++
	} else {
		pp.recv = append(pp.recv, ro)
		pp.nrecv++
	}
	j.pending[partition] = pp
	if !j.tagSet {
		j.tag, j.tagSet = tag, true
	}
	if pp.nrecv < pp.recvParts || pp.nsend < pp.sendParts || pp.recvParts == 0 || pp.sendParts == 0 {
		return nil, nil
	}
	delete(j.pending, partition)
	j.complete[partition] = true
	j.ncomplete++
	return Join(pp.recv, pp.send)
}
