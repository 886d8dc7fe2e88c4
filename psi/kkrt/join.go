package kkrt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
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

// sortEntries sorts e by value, using tmp (len(e)) as the second buffer,
// and returns the sorted slice (e or tmp). Values are pseudo-random, so one
// counting pass on their top bits leaves buckets of about one entry, which
// insertion sort finishes; a bucket that is large anyway (values chosen by
// a misbehaving node) is sorted by pdqsort, so the worst case stays
// O(n log n).
func sortEntries(e, tmp []entry) []entry {
	n := len(e)
	if n < 2 {
		return e
	}
	b := min(max(bits.Len(uint(n)), 1), 20)
	shift := 64 - b
	counts := make([]int, 1<<b+1)
	for i := range e {
		counts[e[i].k0>>shift+1]++
	}
	for i := 1; i < len(counts); i++ {
		counts[i] += counts[i-1]
	}
	next := slices.Clone(counts[:len(counts)-1])
	for i := range e {
		d := e[i].k0 >> shift
		tmp[next[d]] = e[i]
		next[d]++
	}
	for d := 0; d < 1<<b; d++ {
		bucket := tmp[counts[d]:counts[d+1]]
		if len(bucket) > 16 {
			slices.SortFunc(bucket, entryCmp)
			continue
		}
		for i := 1; i < len(bucket); i++ {
			for j := i; j > 0 && entryLess(bucket[j], bucket[j-1]); j-- {
				bucket[j], bucket[j-1] = bucket[j-1], bucket[j]
			}
		}
	}
	return tmp
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
	r, s = sortEntries(r, rt), sortEntries(s, st)
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
	slices.SortFunc(out, func(a, b Match) int {
		switch {
		case a.Receiver < b.Receiver:
			return -1
		case a.Receiver > b.Receiver:
			return 1
		}
		return 0
	})
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
