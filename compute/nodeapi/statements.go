package nodeapi

// Signed statements a node makes about what it produced, so that another
// node can check who produced what it is asked to work on, without trusting
// the coordinator that relays it (every statement is bound to the job, its
// spec hash and the attempt). Each is signed with the producing node's
// Ed25519 key (its `signing_key`; the other nodes know its public half from
// their `federation.nodes`). Encodings are attest.Message: domain-separated
// and length-prefixed.

import (
	"crypto/sha256"

	"github.com/unseen-data/unseen/policy/attest"
)

// DigestOf is the SHA-256 of b.
func DigestOf(b []byte) attest.Digest { return sha256.Sum256(b) }

// JobRef names a job in every statement: id, spec hash, attempt.
type JobRef struct {
	Job      string
	SpecHash attest.Digest
	Attempt  int
}

func (r JobRef) into(m *attest.Message) *attest.Message {
	return m.Str(r.Job).Bytes(r.SpecHash[:]).Int(int64(r.Attempt))
}

// ChunkStatement: node Signer produced Elements (their digest) as hop Hop
// of positions [Offset, Offset+N) of list List. Hop 0 is the list owner's
// own blinding; hop h is the h-th party on the list's route.
type ChunkStatement struct {
	JobRef
	List, Hop, Offset, N int
	Elements             attest.Digest
}

// Message is the byte string the producing node signs.
func (s *ChunkStatement) Message() *attest.Message {
	return s.into(attest.NewMessage("unseen/node/psi-chunk/v1")).
		Int(int64(s.List)).Int(int64(s.Hop)).Int(int64(s.Offset)).Int(int64(s.N)).Bytes(s.Elements[:])
}

// LengthStatement: list List of the job has Len elements, declared by its
// owner. Other nodes reblind no position at or past Len.
type LengthStatement struct {
	JobRef
	List, Len int
}

// Message is the byte string the list's owner signs.
func (s *LengthStatement) Message() *attest.Message {
	return s.into(attest.NewMessage("unseen/node/psi-length/v1")).Int(int64(s.List)).Int(int64(s.Len))
}

// SignedLength is a list owner's declaration as it travels.
type SignedLength struct {
	List      int    `json:"list"`
	Len       int    `json:"len"`
	Signature []byte `json:"signature"`
}

// ContributionStatement: the node that holds input Input of the job
// encrypted Payload (the ciphertext's bytes) under parameter set Params as
// its contribution to an aggregate, or (Input = -1 - chunk) a chunk of the
// value column of an intersection_stats job.
type ContributionStatement struct {
	JobRef
	Input   int
	Params  string
	Payload attest.Digest
}

// Message is the byte string the contributing node signs.
func (s *ContributionStatement) Message() *attest.Message {
	return s.into(attest.NewMessage("unseen/node/he-contribution/v1")).Int(int64(s.Input)).Str(s.Params).Bytes(s.Payload[:])
}

// LayoutStatement: the value node of an intersection_stats job laid its
// rows out in Chunks chunks over Groups groups, so the job has at most
// he.ISLanes·Groups results (per group: the count, Σx mod T_s and mod T_q,
// Σx² mod T_s and mod T_q and its floor hint; compute/he, "Exact Σx and
// Σx²"), each the sum of at most Chunks masked ciphertexts. (v2: v1
// layouts meant 3 results per group.)
type LayoutStatement struct {
	JobRef
	Groups, Chunks int
}

// Message is the byte string the value node signs.
func (s *LayoutStatement) Message() *attest.Message {
	return s.into(attest.NewMessage("unseen/node/he-layout/v2")).Int(int64(s.Groups)).Int(int64(s.Chunks))
}

// CeremonyKeyStatement: node Node's HPKE public key for one key ceremony and
// parameter set (Shamir shares are sealed to it).
type CeremonyKeyStatement struct {
	Ceremony, Params, Node string
	Key                    []byte
}

// Message is the byte string the node signs.
func (s *CeremonyKeyStatement) Message() *attest.Message {
	return attest.NewMessage("unseen/node/ceremony-key/v1").Str(s.Ceremony).Str(s.Params).Str(s.Node).Bytes(s.Key)
}

// CeremonyShareStatement: node From made Payload for node To in a key
// ceremony (To empty: its public-key-generation share, for everyone).
type CeremonyShareStatement struct {
	Ceremony, Params, From, To string
	Payload                    attest.Digest
}

// Message is the byte string the sending node signs.
func (s *CeremonyShareStatement) Message() *attest.Message {
	return attest.NewMessage("unseen/node/ceremony-share/v1").Str(s.Ceremony).Str(s.Params).Str(s.From).Str(s.To).Bytes(s.Payload[:])
}
