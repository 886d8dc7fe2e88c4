package nodeapi

// The binary encoding of the ECDH PSI path's element lists (Content-Type
// PSIContentType): the Own answer and the Reblind request and answer. In
// JSON a 32-byte point is 44 bytes of base64 plus a pass of CPU at each
// end; framed, it is its 32 bytes.
//
//	version (1 byte, = 1) ‖ uint32 n ‖ uint32 hlen ‖
//	hlen bytes: the message's other fields, JSON ‖ n × 32 bytes: the points
//
// Integers are big-endian. A decoder checks, from the 9-byte prefix alone
// and before it decodes or allocates anything, that n ≤ MaxChunk, that
// hlen ≤ maxPSIHead and that the body is exactly 9 + hlen + 32·n bytes:
// a truncated body, trailing bytes, or a count that does not match the
// points are refused whole. The JSON head is then decoded strictly (no
// unknown fields, nothing after it), and a head that carries elements
// itself is refused, so a message has one encoding. Points are checked
// by the node's service as they always were (psi.DecodeElements).
//
// Signatures are unchanged: a chunk's proof is over the same
// ChunkStatement, whose Elements is DigestOf the 32·n bytes of points —
// exactly the bytes the frame carries — so no trust check depends on the
// encoding.
//
// The node still accepts the JSON forms (ReblindRequest in JSON, and a
// JSON Own or Reblind answer to a caller that does not ask for
// PSIContentType in Accept): departments upgrade their nodes on their own
// schedule, so a node must keep serving a coordinator that predates the
// frame; the two forms are checked by the same service code, and JSON
// bodies keep their own, larger limit (MaxBodyBytes). The client frames
// every list of whole points of at most MaxChunk and sends anything else
// in JSON, so that it is the node that refuses a malformed list, as before.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// PSIContentType is the media type of the framed PSI element bodies.
const PSIContentType = "application/vnd.unseen.psi"

const (
	psiWireVersion = 1
	psiPrefix      = 1 + 4 + 4
	// maxPSIHead bounds the JSON head (a header, a proof and a signed
	// length: a few hundred bytes).
	maxPSIHead = 16 << 10
)

// MaxPSIBodyBytes bounds a framed body: a full chunk and the largest head.
const MaxPSIBodyBytes = psiPrefix + maxPSIHead + MaxChunk*32

// ErrPSIWire reports a malformed framed PSI body.
var ErrPSIWire = errors.New("nodeapi: malformed PSI body")

func psiWireErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrPSIWire, fmt.Sprintf(format, args...))
}

// EncodeFrame frames head (any JSON value) and elements (n × 32 bytes).
func EncodeFrame(head any, elements []byte) ([]byte, error) {
	if len(elements)%32 != 0 || len(elements)/32 > MaxChunk {
		return nil, psiWireErr("%d bytes of elements are not up to %d whole points", len(elements), MaxChunk)
	}
	h, err := json.Marshal(head)
	if err != nil {
		return nil, err
	}
	if len(h) > maxPSIHead {
		return nil, psiWireErr("%d-byte head", len(h))
	}
	b := make([]byte, 0, psiPrefix+len(h)+len(elements))
	b = append(b, psiWireVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(elements)/32))
	b = binary.BigEndian.AppendUint32(b, uint32(len(h)))
	b = append(b, h...)
	return append(b, elements...), nil
}

// DecodeFrame checks b's length against its prefix, then decodes the head
// strictly into head and returns the points (a slice of b, n × 32 bytes, not copied).
func DecodeFrame(b []byte, head any) (elements []byte, err error) {
	if len(b) < psiPrefix {
		return nil, psiWireErr("%d-byte body, shorter than the %d-byte prefix", len(b), psiPrefix)
	}
	if b[0] != psiWireVersion {
		return nil, psiWireErr("version %d, want %d", b[0], psiWireVersion)
	}
	n := uint64(binary.BigEndian.Uint32(b[1:5]))
	hlen := uint64(binary.BigEndian.Uint32(b[5:9]))
	if n > MaxChunk {
		return nil, psiWireErr("%d points, more than %d", n, MaxChunk)
	}
	if hlen > maxPSIHead {
		return nil, psiWireErr("%d-byte head, more than %d", hlen, maxPSIHead)
	}
	if want := psiPrefix + hlen + 32*n; uint64(len(b)) != want {
		return nil, psiWireErr("%d-byte body, the frame of %d points declares %d", len(b), n, want)
	}
	dec := json.NewDecoder(bytes.NewReader(b[psiPrefix : psiPrefix+hlen]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(head); err != nil {
		return nil, psiWireErr("head: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, psiWireErr("trailing data after the head")
	}
	return b[psiPrefix+hlen:], nil
}

// elementsHead is an ElementsResponse's head.
type elementsHead struct {
	Proof []byte `json:"proof"`
}

// MarshalBinary frames the response.
func (r *ElementsResponse) MarshalBinary() ([]byte, error) {
	return EncodeFrame(elementsHead{Proof: r.Proof}, r.Elements)
}

// DecodeElementsResponse decodes a framed ElementsResponse.
func DecodeElementsResponse(b []byte) (*ElementsResponse, error) {
	var h elementsHead
	els, err := DecodeFrame(b, &h)
	if err != nil {
		return nil, err
	}
	return &ElementsResponse{Elements: els, Proof: h.Proof}, nil
}

// reblindHead is a ReblindRequest's head: every field but the elements.
type reblindHead struct {
	Header
	List   int          `json:"list"`
	Offset int          `json:"offset"`
	Proof  []byte       `json:"proof"`
	Length SignedLength `json:"length"`
}

// MarshalBinary frames the request.
func (r *ReblindRequest) MarshalBinary() ([]byte, error) {
	return EncodeFrame(reblindHead{Header: r.Header, List: r.List, Offset: r.Offset, Proof: r.Proof, Length: r.Length}, r.Elements)
}

// DecodeReblindRequest decodes a framed ReblindRequest.
func DecodeReblindRequest(b []byte) (*ReblindRequest, error) {
	var h reblindHead
	els, err := DecodeFrame(b, &h)
	if err != nil {
		return nil, err
	}
	return &ReblindRequest{Header: h.Header, List: h.List, Offset: h.Offset, Elements: els, Proof: h.Proof, Length: h.Length}, nil
}

// frameable reports whether elements can travel framed: whole points, at
// most MaxChunk of them.
func frameable(elements []byte) bool {
	return len(elements)%32 == 0 && len(elements)/32 <= MaxChunk
}
