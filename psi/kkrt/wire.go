package kkrt

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Wire format. Every message starts with a 10-byte header:
//
//	version (1 byte, = 1) ‖ kind (1 byte) ‖ session tag (8 bytes)
//
// followed by a body whose layout the kind fixes; integers are big-endian
// except where noted. Decoders check the version, the kind, every count
// against its limit and the total length against the counts before they
// allocate, and reject trailing bytes: there is exactly one encoding of
// every message (positions use minimal uvarints).
//
//	Setup      (sender → receiver)    uint64 ReceiverSize ‖ uint64 SenderSize ‖
//	                                  uint32 Partitions, Capacity, Bins, ChunkRows, Chunks ‖
//	                                  128 × 32-byte Ristretto255 points A_j
//	Reply      (receiver → sender)    128 × 32-byte points B_j
//	Seeds      (sender → receiver)    128 × (e0 ‖ e1), each 44 bytes of AES-GCM ‖
//	                                  128 × 64-byte rows u_j of the IKNP step
//	Correction (receiver → sender)    uint32 partition, chunk, attempt, rows ‖
//	                                  512 columns × rows/8 bytes (column-major)
//	Outputs    (receiver → coord.)    uint32 partition, part, parts, count ‖
//	                                  positions ‖ count × 16-byte outputs
//	Values     (sender → coord.)      uint32 partition, part, parts, count ‖
//	                                  positions ‖ count × 3 × 16-byte values
//
// positions: count uvarints; the first is the first position, each next one
// is the gap to the previous position minus one, so positions strictly
// increase.

const (
	wireVersion = 1
	headerSize  = 2 + TagSize

	pointSize  = 32
	sealedSize = 12 + 16 + 16 // simot: AES-GCM nonce ‖ 16-byte seed ‖ tag

	setupSize      = headerSize + 16 + 5*4 + baseOTs*pointSize
	replySize      = headerSize + baseOTs*pointSize
	seedsSize      = headerSize + baseOTs*(2*sealedSize+CodeBytes)
	correctionHead = headerSize + 4*4
	listHead       = headerSize + 4*4
)

// Kind is the type of a message.
type Kind byte

// Message kinds.
const (
	KindSetup      Kind = 1 // sender → receiver: base-OT first flow
	KindReply      Kind = 2 // receiver → sender: base-OT second flow
	KindSeeds      Kind = 3 // sender → receiver: base-OT third flow and IKNP step
	KindCorrection Kind = 4 // receiver → sender: one chunk of the OT-extension matrix
	KindOutputs    Kind = 5 // receiver → coordinator
	KindValues     Kind = 6 // sender → coordinator
)

func (k Kind) String() string {
	switch k {
	case KindSetup:
		return "setup"
	case KindReply:
		return "reply"
	case KindSeeds:
		return "seeds"
	case KindCorrection:
		return "correction"
	case KindOutputs:
		return "outputs"
	case KindValues:
		return "values"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

// Peek returns a message's kind and session tag, so that a relay can route
// it, after checking only the header.
func Peek(msg []byte) (Kind, [TagSize]byte, error) {
	var tag [TagSize]byte
	if len(msg) < headerSize {
		return 0, tag, fmt.Errorf("%w: %d bytes, shorter than a header", ErrMessage, len(msg))
	}
	if msg[0] != wireVersion {
		return 0, tag, fmt.Errorf("%w: version %d, want %d", ErrMessage, msg[0], wireVersion)
	}
	k := Kind(msg[1])
	if k < KindSetup || k > KindValues {
		return 0, tag, fmt.Errorf("%w: unknown kind %d", ErrMessage, msg[1])
	}
	copy(tag[:], msg[2:headerSize])
	return k, tag, nil
}

func putHeader(b []byte, k Kind, tag *[TagSize]byte) {
	b[0] = wireVersion
	b[1] = byte(k)
	copy(b[2:headerSize], tag[:])
}

// checkHeader checks version and kind and returns the tag.
func checkHeader(msg []byte, want Kind) ([TagSize]byte, error) {
	k, tag, err := Peek(msg)
	if err != nil {
		return tag, err
	}
	if k != want {
		return tag, fmt.Errorf("%w: got a %v message, want %v", ErrMessage, k, want)
	}
	return tag, nil
}

// setupMsg is the base-OT first flow, with the parameters the sender uses
// so that the receiver can refuse a mismatch.
type setupMsg struct {
	tag                      [TagSize]byte
	receiverSize, senderSize uint64
	plan                     Plan
	points                   [baseOTs][pointSize]byte
}

func (m *setupMsg) marshal() []byte {
	b := make([]byte, setupSize)
	putHeader(b, KindSetup, &m.tag)
	o := headerSize
	binary.BigEndian.PutUint64(b[o:], m.receiverSize)
	binary.BigEndian.PutUint64(b[o+8:], m.senderSize)
	o += 16
	for _, v := range []int{m.plan.Partitions, m.plan.Capacity, m.plan.Bins, m.plan.ChunkRows, m.plan.Chunks} {
		binary.BigEndian.PutUint32(b[o:], uint32(v))
		o += 4
	}
	for i := range m.points {
		copy(b[o:], m.points[i][:])
		o += pointSize
	}
	return b
}

func decodeSetup(b []byte) (*setupMsg, error) {
	tag, err := checkHeader(b, KindSetup)
	if err != nil {
		return nil, err
	}
	if len(b) != setupSize {
		return nil, fmt.Errorf("%w: setup is %d bytes, want %d", ErrMessage, len(b), setupSize)
	}
	m := &setupMsg{tag: tag}
	o := headerSize
	m.receiverSize = binary.BigEndian.Uint64(b[o:])
	m.senderSize = binary.BigEndian.Uint64(b[o+8:])
	o += 16
	var v [5]int
	for i := range v {
		v[i] = int(binary.BigEndian.Uint32(b[o:]))
		o += 4
	}
	m.plan = Plan{Partitions: v[0], Capacity: v[1], Bins: v[2], ChunkRows: v[3], Chunks: v[4]}
	for i := range m.points {
		copy(m.points[i][:], b[o:])
		o += pointSize
	}
	return m, nil
}

// replyMsg is the base-OT second flow.
type replyMsg struct {
	tag    [TagSize]byte
	points [baseOTs][pointSize]byte
}

func (m *replyMsg) marshal() []byte {
	b := make([]byte, replySize)
	putHeader(b, KindReply, &m.tag)
	for i := range m.points {
		copy(b[headerSize+i*pointSize:], m.points[i][:])
	}
	return b
}

func decodeReply(b []byte) (*replyMsg, error) {
	tag, err := checkHeader(b, KindReply)
	if err != nil {
		return nil, err
	}
	if len(b) != replySize {
		return nil, fmt.Errorf("%w: reply is %d bytes, want %d", ErrMessage, len(b), replySize)
	}
	m := &replyMsg{tag: tag}
	for i := range m.points {
		copy(m.points[i][:], b[headerSize+i*pointSize:])
	}
	return m, nil
}

// seedsMsg is the base-OT third flow: both seeds of every base OT, each
// encrypted under a key only the matching choice can derive, and the IKNP
// matrix u.
type seedsMsg struct {
	tag    [TagSize]byte
	sealed [baseOTs][2][sealedSize]byte
	u      [baseOTs][CodeBytes]byte
}

func (m *seedsMsg) marshal() []byte {
	b := make([]byte, seedsSize)
	putHeader(b, KindSeeds, &m.tag)
	o := headerSize
	for i := range m.sealed {
		for j := range 2 {
			copy(b[o:], m.sealed[i][j][:])
			o += sealedSize
		}
	}
	for i := range m.u {
		copy(b[o:], m.u[i][:])
		o += CodeBytes
	}
	return b
}

func decodeSeeds(b []byte) (*seedsMsg, error) {
	tag, err := checkHeader(b, KindSeeds)
	if err != nil {
		return nil, err
	}
	if len(b) != seedsSize {
		return nil, fmt.Errorf("%w: seeds is %d bytes, want %d", ErrMessage, len(b), seedsSize)
	}
	m := &seedsMsg{tag: tag}
	o := headerSize
	for i := range m.sealed {
		for j := range 2 {
			copy(m.sealed[i][j][:], b[o:])
			o += sealedSize
		}
	}
	for i := range m.u {
		copy(m.u[i][:], b[o:])
		o += CodeBytes
	}
	return m, nil
}

// correctionMsg is one chunk of the receiver's correction matrix
// u^i = G(k_i^0) ⊕ G(k_i^1) ⊕ c^i, restricted to rows [chunk·ChunkRows,
// chunk·ChunkRows + rows) of a partition. u holds CodeBits columns of
// rows/8 bytes each.
type correctionMsg struct {
	tag                       [TagSize]byte
	partition, chunk, attempt int
	rows                      int
	u                         []byte
}

// correctionSize returns the encoded size of a chunk of rows rows.
func correctionSize(rows int) int { return correctionHead + rows*CodeBytes }

// newCorrection allocates a message of rows rows and returns it with the
// slice its u must be written to.
func newCorrection(tag *[TagSize]byte, partition, chunk, attempt, rows int) (msg, u []byte) {
	b := make([]byte, correctionSize(rows))
	putHeader(b, KindCorrection, tag)
	o := headerSize
	for _, v := range []int{partition, chunk, attempt, rows} {
		binary.BigEndian.PutUint32(b[o:], uint32(v))
		o += 4
	}
	return b, b[correctionHead:]
}

func (m *correctionMsg) marshal() []byte {
	b, u := newCorrection(&m.tag, m.partition, m.chunk, m.attempt, m.rows)
	copy(u, m.u)
	return b
}

// decodeCorrection decodes a chunk; its u aliases b.
func decodeCorrection(b []byte) (*correctionMsg, error) {
	tag, err := checkHeader(b, KindCorrection)
	if err != nil {
		return nil, err
	}
	if len(b) < correctionHead {
		return nil, fmt.Errorf("%w: correction of %d bytes", ErrMessage, len(b))
	}
	m := &correctionMsg{tag: tag}
	o := headerSize
	var v [4]uint32
	for i := range v {
		v[i] = binary.BigEndian.Uint32(b[o:])
		o += 4
	}
	switch {
	case v[0] >= MaxPartitions:
		return nil, fmt.Errorf("%w: partition %d", ErrMessage, v[0])
	case v[2] >= MaxAttempts:
		return nil, fmt.Errorf("%w: cuckoo attempt %d", ErrMessage, v[2])
	case v[3] == 0 || v[3] > MaxChunkRows || v[3]%rowAlign != 0:
		return nil, fmt.Errorf("%w: %d rows", ErrMessage, v[3])
	case v[1] > (MaxSetSize*2)/rowAlign:
		return nil, fmt.Errorf("%w: chunk %d", ErrMessage, v[1])
	}
	m.partition, m.chunk, m.attempt, m.rows = int(v[0]), int(v[1]), int(v[2]), int(v[3])
	if len(b) != correctionSize(m.rows) {
		return nil, fmt.Errorf("%w: correction of %d rows is %d bytes, want %d", ErrMessage, m.rows, len(b), correctionSize(m.rows))
	}
	m.u = b[correctionHead:]
	return m, nil
}

// ReceiverOutputs is a message from the receiver to the coordinator: the
// OPRF outputs of (some of) one partition's items, each with the position
// the receiver's caller gave it. Positions strictly increase.
type ReceiverOutputs struct {
	Tag       [TagSize]byte
	Partition int
	// Part and Parts number this message among the partition's messages.
	Part, Parts int
	Positions   []uint64
	Values      [][ValueSize]byte
}

// SenderValues is a message from the sender to the coordinator: for each
// of (some of) one partition's items, its position and its OPRF values
// under the three candidate bins, sorted so that their order says nothing
// about which hash function produced which.
type SenderValues struct {
	Tag         [TagSize]byte
	Partition   int
	Part, Parts int
	Positions   []uint64
	Values      [][3][ValueSize]byte
}

// MarshalBinary encodes m; it refuses what DecodeReceiverOutputs would.
func (m *ReceiverOutputs) MarshalBinary() ([]byte, error) {
	if len(m.Values) != len(m.Positions) {
		return nil, fmt.Errorf("%w: %d positions, %d values", ErrMessage, len(m.Positions), len(m.Values))
	}
	b, err := marshalList(KindOutputs, &m.Tag, m.Partition, m.Part, m.Parts, m.Positions, ValueSize)
	if err != nil {
		return nil, err
	}
	for i := range m.Values {
		b = append(b, m.Values[i][:]...)
	}
	return b, nil
}

// MarshalBinary encodes m; it refuses what DecodeSenderValues would.
func (m *SenderValues) MarshalBinary() ([]byte, error) {
	if len(m.Values) != len(m.Positions) {
		return nil, fmt.Errorf("%w: %d positions, %d values", ErrMessage, len(m.Positions), len(m.Values))
	}
	for i := range m.Values {
		if !sortedTriple(&m.Values[i]) {
			return nil, fmt.Errorf("%w: values of item %d not in increasing order", ErrMessage, i)
		}
	}
	b, err := marshalList(KindValues, &m.Tag, m.Partition, m.Part, m.Parts, m.Positions, 3*ValueSize)
	if err != nil {
		return nil, err
	}
	for i := range m.Values {
		for j := range 3 {
			b = append(b, m.Values[i][j][:]...)
		}
	}
	return b, nil
}

func checkListHead(partition, part, parts, count int) error {
	switch {
	case partition < 0 || partition >= MaxPartitions:
		return fmt.Errorf("%w: partition %d", ErrMessage, partition)
	case parts < 1 || parts > MaxSetSize/MaxPerMessage+1 || part < 0 || part >= parts:
		return fmt.Errorf("%w: part %d of %d", ErrMessage, part, parts)
	case count < 0 || count > MaxPerMessage:
		return fmt.Errorf("%w: %d items in one message (at most %d)", ErrMessage, count, MaxPerMessage)
	}
	return nil
}

// marshalList writes the header, the list head and the positions, with
// capacity for the values that follow.
func marshalList(k Kind, tag *[TagSize]byte, partition, part, parts int, pos []uint64, valueSize int) ([]byte, error) {
	if err := checkListHead(partition, part, parts, len(pos)); err != nil {
		return nil, err
	}
	b := make([]byte, listHead, listHead+len(pos)*(3+valueSize))
	putHeader(b, k, tag)
	o := headerSize
	for _, v := range []int{partition, part, parts, len(pos)} {
		binary.BigEndian.PutUint32(b[o:], uint32(v))
		o += 4
	}
	for i, p := range pos {
		if p > MaxPosition {
			return nil, fmt.Errorf("%w: position %d above %d", ErrMessage, p, uint64(MaxPosition))
		}
		d := p
		if i > 0 {
			if p <= pos[i-1] {
				return nil, fmt.Errorf("%w: positions not increasing at %d", ErrMessage, i)
			}
			d = p - pos[i-1] - 1
		}
		b = binary.AppendUvarint(b, d)
	}
	return b, nil
}

// decodeList decodes the list head and positions and returns the values
// region, which must hold exactly count·valueSize bytes.
func decodeList(b []byte, k Kind, valueSize int) (tag [TagSize]byte, partition, part, parts int, pos []uint64, values []byte, err error) {
	if tag, err = checkHeader(b, k); err != nil {
		return
	}
	if len(b) < listHead {
		err = fmt.Errorf("%w: %v message of %d bytes", ErrMessage, k, len(b))
		return
	}
	var v [4]uint32
	for i := range v {
		v[i] = binary.BigEndian.Uint32(b[headerSize+4*i:])
	}
	// Compare as uint64 so that no count wraps around on 32-bit platforms.
	if uint64(v[0]) >= MaxPartitions || uint64(v[3]) > MaxPerMessage {
		err = fmt.Errorf("%w: partition %d, %d items", ErrMessage, v[0], v[3])
		return
	}
	partition, part, parts = int(v[0]), int(v[1]), int(v[2])
	count := int(v[3])
	if uint64(v[2]) > MaxSetSize {
		err = fmt.Errorf("%w: %d parts", ErrMessage, v[2])
		return
	}
	if err = checkListHead(partition, part, parts, count); err != nil {
		return
	}
	body := b[listHead:]
	if len(body) < count*valueSize || len(body)-count*valueSize > count*binary.MaxVarintLen64 {
		err = fmt.Errorf("%w: %v message of %d items is %d bytes", ErrMessage, k, count, len(b))
		return
	}
	posBytes := body[:len(body)-count*valueSize]
	values = body[len(posBytes):]
	pos = make([]uint64, count)
	var prev uint64
	for i := range pos {
		d, n := binary.Uvarint(posBytes)
		if n <= 0 || n != uvarintLen(d) {
			err = fmt.Errorf("%w: bad position %d", ErrMessage, i)
			return
		}
		posBytes = posBytes[n:]
		p := d
		if i > 0 {
			if d > MaxPosition-prev-1 || prev >= MaxPosition {
				err = fmt.Errorf("%w: position %d out of range", ErrMessage, i)
				return
			}
			p = prev + 1 + d
		}
		if p > MaxPosition {
			err = fmt.Errorf("%w: position %d out of range", ErrMessage, i)
			return
		}
		pos[i], prev = p, p
	}
	if len(posBytes) != 0 {
		err = fmt.Errorf("%w: %d stray bytes after the positions", ErrMessage, len(posBytes))
		return
	}
	return
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// DecodeReceiverOutputs decodes and validates a KindOutputs message.
func DecodeReceiverOutputs(b []byte) (*ReceiverOutputs, error) {
	tag, partition, part, parts, pos, values, err := decodeList(b, KindOutputs, ValueSize)
	if err != nil {
		return nil, err
	}
	m := &ReceiverOutputs{Tag: tag, Partition: partition, Part: part, Parts: parts, Positions: pos,
		Values: make([][ValueSize]byte, len(pos))}
	for i := range m.Values {
		copy(m.Values[i][:], values[i*ValueSize:])
	}
	return m, nil
}

// DecodeSenderValues decodes and validates a KindValues message.
func DecodeSenderValues(b []byte) (*SenderValues, error) {
	tag, partition, part, parts, pos, values, err := decodeList(b, KindValues, 3*ValueSize)
	if err != nil {
		return nil, err
	}
	m := &SenderValues{Tag: tag, Partition: partition, Part: part, Parts: parts, Positions: pos,
		Values: make([][3][ValueSize]byte, len(pos))}
	for i := range m.Values {
		for j := range 3 {
			copy(m.Values[i][j][:], values[(3*i+j)*ValueSize:])
		}
		if !sortedTriple(&m.Values[i]) {
			return nil, fmt.Errorf("%w: values of item %d not in increasing order", ErrMessage, i)
		}
	}
	return m, nil
}

// sortedTriple reports whether an item's three values strictly increase,
// the only order the sender uses (it hides which hash function made which).
func sortedTriple(v *[3][ValueSize]byte) bool {
	return bytes.Compare(v[0][:], v[1][:]) < 0 && bytes.Compare(v[1][:], v[2][:]) < 0
}
