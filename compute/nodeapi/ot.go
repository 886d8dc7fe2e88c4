package nodeapi

// The OT protocol's steps (policy.PSIProtocolOT): two nodes run the KKRT
// oblivious PRF (psi/kkrt) with each other through the coordinator, over a
// channel encrypted and authenticated end to end between them
// (psi/otlink), and each hands the coordinator its half of the join.
//
// For one pair (receiver R, sender S) of a job's attempt, after both have
// prepared (PathPrepare):
//
//	coordinator → R, S   ot/open    {peer, every party's signed length}
//	                     ← each its OTHello: an ephemeral X25519 key, signed
//	coordinator → R, S   ot/accept  {the peer's OTHello}
//	                     ← S: frame 0 (kkrt Setup); R: nothing
//	coordinator → R      ot/deliver {S's frame}  ← R's frame (Reply)
//	coordinator → S      ot/deliver {R's frame}  ← S's frame (Seeds)
//	coordinator → R      ot/deliver {S's frame}  ← nothing (R is ready)
//	per correction chunk, in order (partition p, chunk c):
//	coordinator → R      ot/next                 ← R's frame, and after
//	                                               p's last chunk R's kkrt
//	                                               Outputs of p (plain)
//	coordinator → S      ot/deliver {R's frame}  ← after p's last chunk,
//	                                               S's kkrt Values of p
//
// The coordinator joins Outputs and Values (kkrt.Joiner) and learns which
// positions of R's list match which of S's, as with ECDH; it can read
// nothing of the frames. A node checks, before it sends anything: that the
// job's spec (or, with no psi_protocol, ChoosePSIProtocol on the signed
// lengths) runs OT; every party's length signed by its owner; that it and
// the peer form an edge of the star around the smallest list (OTCentre),
// the centre being the receiver; and the peer's hello signed by the peer's
// node key of its own federation.nodes, for this job, spec, attempt, pair
// and sizes. One session per peer and attempt. ot/open and ot/accept travel
// in JSON like every step; ot/next and ot/deliver, which carry the 1 MiB
// frames, in a binary encoding (ot_wire.go).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/psi/kkrt"
)

// Paths of the OT steps.
const (
	PathOTOpen    = "/v1/node/psi/ot/open"
	PathOTAccept  = "/v1/node/psi/ot/accept"
	PathOTNext    = "/v1/node/psi/ot/next"
	PathOTDeliver = "/v1/node/psi/ot/deliver"
)

// Steps of the OT protocol.
const (
	StepOTOpen    Step = "psi.ot.open"
	StepOTAccept  Step = "psi.ot.accept"
	StepOTNext    Step = "psi.ot.next"
	StepOTDeliver Step = "psi.ot.deliver"
)

// The OT sessions' public parameters besides the sizes: fixed here, so
// that the two nodes agree without asking the coordinator.
const (
	// OTPartitionSize is kkrt.Params.PartitionSize: memory per partition in
	// flight is O(OTPartitionSize) at each node and at the coordinator.
	OTPartitionSize = kkrt.DefaultPartitionSize
	// OTChunkRows is kkrt.Params.ChunkRows: a correction chunk is
	// OTChunkRows·64 bytes (1 MiB).
	OTChunkRows = kkrt.DefaultChunkRows
)

// MaxOTBodyBytes bounds a binary OT body (ot_wire.go), request at the node
// or response at the coordinator: a 1 MiB correction frame, or a
// partition's kkrt Values (about 1.8 MiB), and their envelope.
const MaxOTBodyBytes = 8 << 20

// OT roles, as OTHello names them.
const (
	OTReceiver = "receiver"
	OTSender   = "sender"
)

// OTParams returns the kkrt parameters of the session between receiver
// list length r and sender list length s.
func OTParams(r, s int) kkrt.Params {
	return kkrt.Params{ReceiverSize: r, SenderSize: s, PartitionSize: OTPartitionSize, ChunkRows: OTChunkRows}
}

// OTCentre is the centre of a job's OT star: the party with the shortest
// list (the lowest index among equals). It is the receiver of every pair:
// the OT extension's rows, and so the traffic between nodes, scale with
// the receiver's list.
func OTCentre(lengths []int) int {
	c := 0
	for i, n := range lengths {
		if n < lengths[c] {
			c = i
		}
	}
	return c
}

// OTHello is one node's half of a pair's key exchange: its ephemeral
// X25519 public key, signed with its node key over OTHelloStatement.
type OTHello struct {
	// Party is the signing node's party index, Peer the other node's.
	Party int `json:"party"`
	Peer  int `json:"peer"`
	// Role is the signer's role: OTReceiver or OTSender.
	Role string `json:"role"`
	// ReceiverSize and SenderSize are the two lists' signed lengths.
	ReceiverSize int    `json:"receiver_size"`
	SenderSize   int    `json:"sender_size"`
	Ephemeral    []byte `json:"ephemeral"`
	Signature    []byte `json:"signature"`
}

// Statement is what the hello's signature covers, for the job ref.
func (h *OTHello) Statement(ref JobRef) *OTHelloStatement {
	return &OTHelloStatement{JobRef: ref, Party: h.Party, Peer: h.Peer, Role: h.Role,
		ReceiverSize: h.ReceiverSize, SenderSize: h.SenderSize, Ephemeral: h.Ephemeral}
}

// OTHelloStatement: for this job, spec and attempt, party Party (in role
// Role) runs one OT session with party Peer, over lists of ReceiverSize and
// SenderSize elements (with the session constants OTPartitionSize and
// OTChunkRows), and its ephemeral key is Ephemeral.
type OTHelloStatement struct {
	JobRef
	Party, Peer              int
	Role                     string
	ReceiverSize, SenderSize int
	Ephemeral                []byte
}

// Message is the byte string the node signs; the session's keys are
// derived over both nodes' messages (the transcript).
func (s *OTHelloStatement) Message() *attest.Message {
	return s.into(attest.NewMessage("unseen/node/psi-ot-hello/v1")).
		Int(int64(s.Party)).Int(int64(s.Peer)).Str(s.Role).
		Int(int64(s.ReceiverSize)).Int(int64(s.SenderSize)).
		Int(OTPartitionSize).Int(OTChunkRows).Bytes(s.Ephemeral)
}

// OTOpenRequest asks a node (Header.Party) to open an OT session with party
// Peer: Lengths are every party's signed list length (PrepareResponse), by
// party index, from which the node checks the protocol, the star and its
// role itself.
type OTOpenRequest struct {
	Header
	Peer    int            `json:"peer"`
	Lengths []SignedLength `json:"lengths"`
}

// OTOpenResponse is the node's signed hello, for the peer.
type OTOpenResponse struct {
	Hello OTHello `json:"hello"`
}

// OTAcceptRequest hands a node its peer's hello.
type OTAcceptRequest struct {
	Header
	Peer  int     `json:"peer"`
	Hello OTHello `json:"hello"`
}

// OTAcceptResponse carries the sender's first frame (kkrt Setup), for the
// receiver; the receiver answers with none.
type OTAcceptResponse struct {
	Frame []byte `json:"frame,omitempty"`
}

// OTDeliverRequest hands a node the next frame its peer sealed.
type OTDeliverRequest struct {
	Header
	Peer  int    `json:"peer"`
	Frame []byte `json:"frame"`
}

// OTDeliverResponse carries the node's frame for its peer, if the protocol
// has one next (Reply, Seeds), and, from the sender once a partition's
// last correction chunk is in, the partition's kkrt Values messages, for
// the coordinator.
type OTDeliverResponse struct {
	Frame  []byte   `json:"frame,omitempty"`
	Values [][]byte `json:"values,omitempty"`
}

// OTNextRequest asks the receiver for its next correction chunk.
type OTNextRequest struct {
	Header
	Peer int `json:"peer"`
}

// OTNextResponse is the receiver's next correction chunk (chunk Chunk of
// partition Partition), sealed for the sender, and after a partition's
// last chunk the partition's kkrt Outputs messages, for the coordinator.
type OTNextResponse struct {
	Partition int      `json:"partition"`
	Chunk     int      `json:"chunk"`
	Frame     []byte   `json:"frame"`
	Outputs   [][]byte `json:"outputs,omitempty"`
}

// OTOpen opens an OT session of the node with party r.Peer.
func (c *Client) OTOpen(ctx context.Context, r *OTOpenRequest) (*OTOpenResponse, error) {
	r.Step = StepOTOpen
	var out OTOpenResponse
	if err := c.do(ctx, http.MethodPost, PathOTOpen, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// OTAccept hands the node its peer's hello.
func (c *Client) OTAccept(ctx context.Context, r *OTAcceptRequest) (*OTAcceptResponse, error) {
	r.Step = StepOTAccept
	var out OTAcceptResponse
	if err := c.do(ctx, http.MethodPost, PathOTAccept, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// OTDeliver hands the node its peer's next frame (binary body, ot_wire.go).
func (c *Client) OTDeliver(ctx context.Context, r *OTDeliverRequest) (*OTDeliverResponse, error) {
	r.Step = StepOTDeliver
	body, err := r.MarshalBinary()
	if err != nil {
		return nil, err
	}
	b, err := c.doOT(ctx, PathOTDeliver, body)
	if err != nil {
		return nil, err
	}
	out, err := DecodeOTDeliverResponse(b)
	if err != nil {
		return nil, fmt.Errorf("node %s: malformed response: %w", c.Department, err)
	}
	return out, nil
}

// OTNext asks the receiver for its next correction chunk (binary body).
func (c *Client) OTNext(ctx context.Context, r *OTNextRequest) (*OTNextResponse, error) {
	r.Step = StepOTNext
	body, err := r.MarshalBinary()
	if err != nil {
		return nil, err
	}
	b, err := c.doOT(ctx, PathOTNext, body)
	if err != nil {
		return nil, err
	}
	out, err := DecodeOTNextResponse(b)
	if err != nil {
		return nil, fmt.Errorf("node %s: malformed response: %w", c.Department, err)
	}
	return out, nil
}

// doOT posts a binary OT body and returns the binary answer, or the node's
// refusal (a JSON Error, as on every route) as a *RemoteError.
func (c *Client) doOT(ctx context.Context, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", OTContentType)
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", c.Department, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxOTBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("node %s: reading response: %w", c.Department, err)
	}
	if len(b) > MaxOTBodyBytes {
		return nil, fmt.Errorf("node %s: response larger than %d bytes", c.Department, MaxOTBodyBytes)
	}
	if resp.StatusCode/100 != 2 {
		re := &RemoteError{Department: c.Department, Status: resp.StatusCode, Code: "http_error", Message: http.StatusText(resp.StatusCode)}
		var e Error
		if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
			re.Code, re.Message = e.Error.Code, e.Error.Message
		}
		return nil, re
	}
	if ct := resp.Header.Get("Content-Type"); ct != OTContentType {
		return nil, fmt.Errorf("node %s: answered %q, not %s", c.Department, ct, OTContentType)
	}
	return b, nil
}
