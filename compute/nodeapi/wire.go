// Package nodeapi is the protocol between the coordinator and a department's
// node: the wire types both sides use and the coordinator's HTTP client.
//
// Every request names the job, the hash of its spec, the protocol step and
// the worker's attempt; a node refuses a request for an attempt older than
// the newest it has seen for that job (a stale or replayed worker), a step
// for a job it has not prepared, and a job id it knows under another spec.
// Blinded elements travel as raw 32-byte points, framed (psi_wire.go); a node
// never receives an ID, only blinded points.
//
// The coordinator only relays: every list chunk carries the signature of
// the node that produced it (statements.go), every list's length is
// declared, signed, by its owner, and a node checks both with the keys of
// its own configuration before it blinds anything, so a coordinator cannot
// have a node blind a point it chose (a guessed ID), a chunk of another job
// or attempt, or a position past a list's end or twice. Who learns what: a
// node learns every list's length and, as in package psi, blinded points
// only; the coordinator learns lengths, matches and the digest and size of
// a psi_members list sealed to the analyst, never the list: the requesting
// node hands it over only against a reviewer's signed approval (Deliver).
package nodeapi

import (
	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/policy/disclosure"
)

// Paths of the node's endpoints.
const (
	PathHealth   = "/healthz"
	PathDatasets = "/v1/node/datasets"
	PathPrepare  = "/v1/node/psi/prepare"
	PathOwn      = "/v1/node/psi/own"
	PathReblind  = "/v1/node/psi/reblind"
	PathMembers  = "/v1/node/psi/members"
	PathDeliver  = "/v1/node/psi/deliver"
	PathFinish   = "/v1/node/jobs/finish"
	PathOutcome  = "/v1/node/jobs/outcome"
)

// MaxChunk bounds the elements in one request or response; the coordinator's
// chunks must not exceed it.
const MaxChunk = 1 << 14

// MaxBodyBytes bounds a request body at the node: a full chunk in base64 plus
// headroom for the envelope.
const MaxBodyBytes = MaxChunk*32*4/3 + 64<<10

// Step names the protocol step of a request (bound into every message).
type Step string

const (
	StepPrepare Step = "psi.prepare"
	StepOwn     Step = "psi.own"
	StepReblind Step = "psi.reblind"
	StepMembers Step = "psi.members"
	StepDeliver Step = "psi.deliver"
	StepFinish  Step = "job.finish"
	StepOutcome Step = "job.outcome"
)

// Header is carried by every protocol request.
type Header struct {
	Job string `json:"job"`
	// SpecHash is the job's spec hash (policy.Spec.Hash): a node binds every
	// step of a job to it and refuses a step for the same job id under
	// another spec, at any attempt.
	SpecHash attest.Digest `json:"spec_hash"`
	Step     Step          `json:"step"`
	Attempt  int           `json:"attempt"`
	// Party is the node's position among the job's parties: the index of
	// its department's input (one party per department).
	Party int `json:"party"`
}

// Ref is the statement reference of the request's job.
func (h Header) Ref() JobRef { return JobRef{Job: h.Job, SpecHash: h.SpecHash, Attempt: h.Attempt} }

// DatasetsResponse lists a node's declared datasets (metadata only).
type DatasetsResponse struct {
	Department string           `json:"department"`
	Datasets   []policy.Dataset `json:"datasets"`
}

// PrepareRequest asks a node to take part in a PSI job as party
// Header.Party of Parties, with input Input (an index into Spec.Inputs; the
// party is its department's one input, so Party = Input and Parties =
// len(Spec.Inputs)). The node checks the job against its own policy, its
// binding of the job id to the spec, the owner's signed consent (Consents,
// for a conditional dataset) and the owner's budgets before touching any
// data, and refuses a filtered list shorter than its dataset's k.
type PrepareRequest struct {
	Header
	Spec      policy.Spec      `json:"spec"`
	Requester policy.Requester `json:"requester"`
	Input     int              `json:"input"`
	Parties   int              `json:"parties"`
	// Consents are the data owners' signed answers the job has (the node
	// uses those for its own conditional datasets).
	Consents []attest.SignedConsent `json:"consents,omitempty"`
}

// PrepareResponse gives the size of the node's de-duplicated, filtered
// list, declared and signed by the node for the other parties (Length).
type PrepareResponse struct {
	Len        int `json:"len"`
	InvalidIDs int `json:"invalid_ids"` // rows skipped for an invalid ID
	// Length is the node's signed declaration of Len (LengthStatement for
	// its list, this job, spec and attempt): the coordinator hands it to
	// every node that reblinds the list.
	Length SignedLength `json:"length"`
	// Overlaps are earlier jobs whose filtered input of this node's
	// dataset differs from this one's by 1 to k−1 people, reported only
	// by a dataset whose policy says differencing: flag (by default the
	// node refuses such a job instead: code differencing).
	Overlaps []disclosure.Overlap `json:"overlaps,omitempty"`
	// ListDigest names the prepared list's content and order (hex of a
	// digest keyed with the node's secret: equal for the same list, and
	// nothing else). A worker resuming a job keeps its checkpointed chunks
	// only while every list's digest is unchanged.
	ListDigest string `json:"list_digest,omitempty"`
}

// OwnRequest asks for a chunk of the node's own list, blinded once.
type OwnRequest struct {
	Header
	Offset int `json:"offset"`
	N      int `json:"n"`
}

// ElementsResponse carries encoded elements (32 bytes each, concatenated)
// and the producing node's signature over them (a ChunkStatement: hop 0
// for its own list, its hop on the list's route for a reblind).
type ElementsResponse struct {
	Elements []byte `json:"elements"`
	Proof    []byte `json:"proof"`
}

// ReblindRequest asks the node to raise positions [Offset, Offset+n) of
// party List's list to its key (n = len(Elements)/32). Proof is the
// previous hop's signature over exactly these elements, and Length the
// list owner's signed length; the node checks both against its own
// federation keys.
type ReblindRequest struct {
	Header
	List     int          `json:"list"`
	Offset   int          `json:"offset"`
	Elements []byte       `json:"elements"`
	Proof    []byte       `json:"proof"`
	Length   SignedLength `json:"length"`
}

// MembersRequest asks the requesting node to seal the IDs at Positions of its
// own list to the analyst's public key (psi_members), and to keep the
// sealed list until a reviewer approves its release (Deliver).
type MembersRequest struct {
	Header
	Positions    []int  `json:"positions"`
	RecipientKey []byte `json:"recipient_key"`
	Recipient    string `json:"recipient"`
}

// MembersResponse describes the sealed member list the node now keeps: its
// size and SHA-256, which the result under review names. The list itself
// leaves the node only through Deliver.
type MembersResponse struct {
	Count        int           `json:"count"`
	SealedSHA256 attest.Digest `json:"sealed_sha256"`
}

// DeliverRequest asks the requesting node of a psi_members job for the
// member list it sealed to the analyst (Members), once the result has been
// released: Approval is the reviewer's signed approval and Result the exact
// bytes of the released result it approves (its SHA-256 is what the
// reviewer signed, so the bytes travel verbatim, base64 in JSON, not
// re-encoded). The node checks the approval against its own reviewers'
// keys and its binding of the job, that Result names the list it sealed
// (sealed_sha256, count), and that the approval names the key it sealed to,
// before it hands anything over.
type DeliverRequest struct {
	Header
	Approval *attest.SignedApproval `json:"approval"`
	Result   []byte                 `json:"result"`
}

// DeliverResponse is the sealed member list; only the analyst can open it.
type DeliverResponse struct {
	Ciphertext []byte `json:"ciphertext"`
}

// FinishRequest tells a node the job is over so it can drop its state.
// Witness is the coordinator's signed audit head, which the node records
// in its finish entry (detail "witness.coordinator") once it verifies under
// the coordinator key of its own configuration.
type FinishRequest struct {
	Header
	Outcome string            `json:"outcome"`
	Witness *audit.SignedHead `json:"witness,omitempty"`
}

// FinishResponse carries the node's signed audit head, its finish entry
// included, which the coordinator records in the job's next transition
// (detail "witness.<department>"): a tail cut off either log later shows
// against the other's copy.
type FinishResponse struct {
	OK   bool              `json:"ok"`
	Head *audit.SignedHead `json:"head,omitempty"`
}

// OutcomeRequest tells a node how a job it took part in ended at review
// (released or rejected), so its own log can answer "was a result from my
// data released?" (lineage). Purpose and datasets are repeated because the
// node may have dropped the job's state long ago.
type OutcomeRequest struct {
	Header
	Outcome  string            `json:"outcome"` // released | rejected
	Purpose  string            `json:"purpose"`
	Datasets []string          `json:"datasets"`
	Reviewer string            `json:"reviewer"`
	Witness  *audit.SignedHead `json:"witness,omitempty"` // as in FinishRequest
}

// OutcomeResponse carries the node's signed audit head after its outcome
// entry (as FinishResponse).
type OutcomeResponse struct {
	OK   bool              `json:"ok"`
	Head *audit.SignedHead `json:"head,omitempty"`
}

// OKResponse is the answer to a step that returns nothing else.
type OKResponse struct {
	OK bool `json:"ok"`
}

// Error is the body of every non-2xx node response.
type Error struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}
