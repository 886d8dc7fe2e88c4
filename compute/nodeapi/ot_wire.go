package nodeapi

// The binary encoding of the OT protocol's bulk steps (ot/next and
// ot/deliver, Content-Type OTContentType): a 1 MiB frame in JSON is base64,
// a third larger on the wire and several passes of CPU at each end. Errors
// stay JSON (Error), as on every route.
//
// Requests:
//
//	version (1 byte, = 1) ‖ uint16 len ‖ job ‖ 32-byte spec hash ‖
//	uint16 len ‖ step ‖ uint32 attempt ‖ uint32 party ‖ uint32 peer ‖
//	uint32 len ‖ frame   (an OTNextRequest has no frame: length 0)
//
// Responses:
//
//	OTNextResponse     version ‖ uint32 partition ‖ uint32 chunk ‖
//	                   uint32 len ‖ frame ‖ messages
//	OTDeliverResponse  version ‖ uint32 len ‖ frame ‖ messages
//	messages           uint32 count ‖ count × (uint32 len ‖ bytes)
//
// Integers are big-endian. Decoders check every length against what is
// left and against MaxOTBodyBytes before they allocate, and refuse
// trailing bytes, so each value has exactly one encoding.

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// OTContentType is the media type of the binary OT bodies.
const OTContentType = "application/vnd.unseen.ot"

// ErrOTWire reports a malformed binary OT body.
var ErrOTWire = errors.New("nodeapi: malformed OT body")

const (
	otWireVersion = 1
	maxOTMessages = 1 << 10 // kkrt messages in one response (a partition has a few)
)

func otWireErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrOTWire, fmt.Sprintf(format, args...))
}

type otWriter struct{ b []byte }

func (w *otWriter) u16(v int)    { w.b = binary.BigEndian.AppendUint16(w.b, uint16(v)) }
func (w *otWriter) u32(v int)    { w.b = binary.BigEndian.AppendUint32(w.b, uint32(v)) }
func (w *otWriter) raw(p []byte) { w.b = append(w.b, p...) }
func (w *otWriter) bytes32(p []byte) {
	w.u32(len(p))
	w.raw(p)
}

func (w *otWriter) messages(ms [][]byte) {
	w.u32(len(ms))
	for _, m := range ms {
		w.bytes32(m)
	}
}

type otReader struct {
	b   []byte
	err error
}

func (r *otReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = otWireErr("%d bytes wanted, %d left", n, len(r.b))
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *otReader) u16() int {
	p := r.take(2)
	if p == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(p))
}

func (r *otReader) u32() int {
	p := r.take(4)
	if p == nil {
		return 0
	}
	return int(binary.BigEndian.Uint32(p))
}

// int32 reads a uint32 that must fit a non-negative int32 (attempts,
// parties, partitions, chunks).
func (r *otReader) int32(what string) int {
	v := r.u32()
	if v > 1<<31-1 && r.err == nil {
		r.err = otWireErr("%s %d out of range", what, v)
	}
	return v
}

func (r *otReader) bytes32() []byte {
	n := r.u32()
	if r.err == nil && n > MaxOTBodyBytes {
		r.err = otWireErr("%d-byte field", n)
		return nil
	}
	p := r.take(n)
	if p == nil || n == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

func (r *otReader) messages() [][]byte {
	n := r.u32()
	if r.err == nil && (n > maxOTMessages || n > len(r.b)/4) {
		r.err = otWireErr("%d messages", n)
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = r.bytes32()
		if r.err == nil && out[i] == nil {
			r.err = otWireErr("empty message %d", i)
		}
	}
	return out
}

func (r *otReader) version() {
	if v := r.take(1); v != nil && v[0] != otWireVersion {
		r.err = otWireErr("version %d, want %d", v[0], otWireVersion)
	}
}

func (r *otReader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = otWireErr("%d trailing bytes", len(r.b))
	}
	return r.err
}

func writeOTHeader(w *otWriter, h *Header, peer int, frame []byte) {
	w.raw([]byte{otWireVersion})
	w.u16(len(h.Job))
	w.raw([]byte(h.Job))
	w.raw(h.SpecHash[:])
	w.u16(len(h.Step))
	w.raw([]byte(h.Step))
	w.u32(h.Attempt)
	w.u32(h.Party)
	w.u32(peer)
	w.bytes32(frame)
}

func readOTHeader(b []byte) (Header, int, []byte, error) {
	if len(b) > MaxOTBodyBytes {
		return Header{}, 0, nil, otWireErr("%d bytes", len(b))
	}
	r := &otReader{b: b}
	var h Header
	r.version()
	h.Job = string(r.take(r.u16()))
	copy(h.SpecHash[:], r.take(len(h.SpecHash)))
	h.Step = Step(r.take(r.u16()))
	h.Attempt = r.int32("attempt")
	h.Party = r.int32("party")
	peer := r.int32("peer")
	frame := r.bytes32()
	return h, peer, frame, r.end()
}

// MarshalBinary encodes the request (step included).
func (q *OTNextRequest) MarshalBinary() ([]byte, error) {
	if q.Attempt < 0 || q.Party < 0 || q.Peer < 0 || len(q.Job) > 1<<16-1 || len(q.Step) > 1<<16-1 {
		return nil, otWireErr("header out of range")
	}
	w := &otWriter{}
	writeOTHeader(w, &q.Header, q.Peer, nil)
	return w.b, nil
}

// DecodeOTNextRequest decodes an OTNextRequest strictly.
func DecodeOTNextRequest(b []byte) (*OTNextRequest, error) {
	h, peer, frame, err := readOTHeader(b)
	if err != nil {
		return nil, err
	}
	if frame != nil {
		return nil, otWireErr("a next request carries no frame")
	}
	return &OTNextRequest{Header: h, Peer: peer}, nil
}

// MarshalBinary encodes the request (step included).
func (q *OTDeliverRequest) MarshalBinary() ([]byte, error) {
	if q.Attempt < 0 || q.Party < 0 || q.Peer < 0 || len(q.Job) > 1<<16-1 || len(q.Step) > 1<<16-1 || len(q.Frame) > MaxOTBodyBytes {
		return nil, otWireErr("header out of range")
	}
	w := &otWriter{b: make([]byte, 0, 64+len(q.Job)+len(q.Frame))}
	writeOTHeader(w, &q.Header, q.Peer, q.Frame)
	return w.b, nil
}

// DecodeOTDeliverRequest decodes an OTDeliverRequest strictly.
func DecodeOTDeliverRequest(b []byte) (*OTDeliverRequest, error) {
	h, peer, frame, err := readOTHeader(b)
	if err != nil {
		return nil, err
	}
	return &OTDeliverRequest{Header: h, Peer: peer, Frame: frame}, nil
}

func msgsSize(ms [][]byte) int {
	n := 4
	for _, m := range ms {
		n += 4 + len(m)
	}
	return n
}

// MarshalBinary encodes the response.
func (p *OTNextResponse) MarshalBinary() ([]byte, error) {
	if p.Partition < 0 || p.Chunk < 0 || len(p.Outputs) > maxOTMessages {
		return nil, otWireErr("response out of range")
	}
	w := &otWriter{b: make([]byte, 0, 13+len(p.Frame)+msgsSize(p.Outputs))}
	w.raw([]byte{otWireVersion})
	w.u32(p.Partition)
	w.u32(p.Chunk)
	w.bytes32(p.Frame)
	w.messages(p.Outputs)
	return w.b, nil
}

// DecodeOTNextResponse decodes an OTNextResponse strictly.
func DecodeOTNextResponse(b []byte) (*OTNextResponse, error) {
	r := &otReader{b: b}
	r.version()
	out := &OTNextResponse{Partition: r.int32("partition"), Chunk: r.int32("chunk")}
	out.Frame = r.bytes32()
	out.Outputs = r.messages()
	return out, r.end()
}

// MarshalBinary encodes the response.
func (p *OTDeliverResponse) MarshalBinary() ([]byte, error) {
	if len(p.Values) > maxOTMessages {
		return nil, otWireErr("response out of range")
	}
	w := &otWriter{b: make([]byte, 0, 5+len(p.Frame)+msgsSize(p.Values))}
	w.raw([]byte{otWireVersion})
	w.bytes32(p.Frame)
	w.messages(p.Values)
	return w.b, nil
}

// DecodeOTDeliverResponse decodes an OTDeliverResponse strictly.
func DecodeOTDeliverResponse(b []byte) (*OTDeliverResponse, error) {
	r := &otReader{b: b}
	r.version()
	out := &OTDeliverResponse{Frame: r.bytes32()}
	out.Values = r.messages()
	return out, r.end()
}
