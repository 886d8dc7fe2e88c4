// Package attest is how the people of Unseen's governance sign what they
// decide, so that the departments' nodes can check it themselves instead of
// trusting the coordinator's word: a data owner's consent to one job on a
// conditional dataset (有条件共享), and a reviewer's (安全管理方) approval
// to release one job's result.
//
// Each statement is signed with Ed25519 over a domain-separated, length-
// prefixed encoding of every field (Message), so a signature made for one
// kind of statement, one job, one spec or one result is worth nothing for
// any other. A job is named by its id and the hash of its spec
// (policy.Spec.Hash) together with its requester: the same job id with
// another spec or another analyst is another job.
//
// Who learns what: statements carry no records — job ids, spec hashes,
// names, a result's hash. Anyone holding the signer's public key can check
// a statement; only the signer's private key makes one.
package attest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/unseen-data/unseen/policy"
)

var (
	// ErrSignature: the signature does not verify for this statement and
	// signer (forged, altered, or made for something else).
	ErrSignature = errors.New("attest: signature does not verify")
	// ErrUnknownSigner: the signer is not in the keyring.
	ErrUnknownSigner = errors.New("attest: unknown signer")
	// ErrStatement: a statement is malformed or does not fit what it is
	// checked against.
	ErrStatement = errors.New("attest: statement does not fit")
)

// Digest is a SHA-256 value, hex in JSON.
type Digest [32]byte

// MarshalText encodes d in hex.
func (d Digest) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(d[:])), nil }

// UnmarshalText decodes 64 hex characters.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != 2*len(d) {
		return fmt.Errorf("%w: a digest is %d hex characters", ErrStatement, 2*len(d))
	}
	_, err := hex.Decode(d[:], b)
	if err != nil {
		return fmt.Errorf("%w: digest: %v", ErrStatement, err)
	}
	return nil
}

// String is the digest in hex.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// IsZero reports whether d is all zero (unset).
func (d Digest) IsZero() bool { return d == Digest{} }

// JobRef names one job as every party binds it: id, spec hash, requester.
type JobRef struct {
	Job       string           `json:"job"`
	SpecHash  Digest           `json:"spec_hash"`
	Requester policy.Requester `json:"requester"`
}

// Ref returns the reference of a job with this id, spec and requester.
func Ref(job string, spec *policy.Spec, req policy.Requester) JobRef {
	return JobRef{Job: job, SpecHash: spec.Hash(), Requester: req}
}

func (r JobRef) append(m *Message) {
	m.Str(r.Job)
	m.Bytes(r.SpecHash[:])
	m.Str(r.Requester.User)
	m.Str(r.Requester.Department)
}

// Check reports whether r names job with this spec and requester.
func (r JobRef) Check(job string, spec *policy.Spec, req policy.Requester) error {
	if r.Job != job || r.SpecHash != spec.Hash() || r.Requester != req {
		return fmt.Errorf("%w: made for job %s (spec %.12s…, requester %s/%s), not this one", ErrStatement, r.Job, r.SpecHash, r.Requester.User, r.Requester.Department)
	}
	return nil
}

// Message is a domain-separated, length-prefixed encoding of a statement's
// fields: every field is a 4-byte big-endian length and its bytes, the
// first being the domain, so no two different field lists encode alike.
// Other packages' signed statements (nodes' PSI chunks, contributions,
// audit heads) are built with it too.
type Message struct{ b bytes.Buffer }

// NewMessage starts a message for domain (e.g. "unseen/psi/chunk/v1").
func NewMessage(domain string) *Message {
	m := &Message{}
	m.Str(domain)
	return m
}

// Bytes appends a byte-string field.
func (m *Message) Bytes(p []byte) *Message {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(p)))
	m.b.Write(n[:])
	m.b.Write(p)
	return m
}

// Str appends a string field.
func (m *Message) Str(s string) *Message { return m.Bytes([]byte(s)) }

// Int appends an integer field (8 bytes, big-endian two's complement).
func (m *Message) Int(v int64) *Message {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	return m.Bytes(b[:])
}

// Bool appends a boolean field.
func (m *Message) Bool(v bool) *Message {
	if v {
		return m.Bytes([]byte{1})
	}
	return m.Bytes([]byte{0})
}

// Time appends a time field, in whole seconds since 1970.
func (m *Message) Time(t time.Time) *Message { return m.Int(t.Unix()) }

// Encoded returns the encoding so far.
func (m *Message) Encoded() []byte { return m.b.Bytes() }

// Sign signs a message with priv.
func Sign(priv ed25519.PrivateKey, m *Message) []byte { return ed25519.Sign(priv, m.Encoded()) }

// Verify checks sig over m by signer, one of k.
func (k Keyring) Verify(signer string, m *Message, sig []byte) error {
	return k.verify(signer, m.Encoded(), sig)
}

// Consent is a data owner's answer for one conditional dataset of theirs,
// for one job, valid until Until (after which nodes refuse to act on it).
type Consent struct {
	JobRef
	Dataset string    `json:"dataset"`
	Approve bool      `json:"approve"`
	Reason  string    `json:"reason,omitempty"`
	Until   time.Time `json:"until"`
	Owner   string    `json:"owner"` // the signer's name
}

const consentDomain = "unseen/attest/consent/v1"

// Message is the byte string an owner signs.
func (c *Consent) Message() []byte {
	m := NewMessage(consentDomain)
	c.JobRef.append(m)
	m.Str(c.Dataset)
	m.Bool(c.Approve)
	m.Str(c.Reason)
	m.Time(c.Until)
	m.Str(c.Owner)
	return m.Encoded()
}

// Approval is a reviewer's decision to release one job's result: the
// result whose canonical JSON hashes to Result, sealed (psi_members) to the
// analyst key whose SHA-256 is Recipient (zero for results in the clear).
type Approval struct {
	JobRef
	Result    Digest    `json:"result_sha256"`
	Recipient Digest    `json:"recipient_key_sha256,omitzero"`
	Reviewer  string    `json:"reviewer"` // the signer's name
	At        time.Time `json:"at"`
}

const approvalDomain = "unseen/attest/approval/v1"

// Message is the byte string a reviewer signs.
func (a *Approval) Message() []byte {
	m := NewMessage(approvalDomain)
	a.JobRef.append(m)
	m.Bytes(a.Result[:])
	m.Bytes(a.Recipient[:])
	m.Str(a.Reviewer)
	m.Time(a.At)
	return m.Encoded()
}

// Signed is a statement with its signer's signature.
type Signed[T interface{ Message() []byte }] struct {
	Statement T      `json:"statement"`
	Signature []byte `json:"signature"`
}

// SignedConsent and SignedApproval are what travels.
type (
	SignedConsent  = Signed[*Consent]
	SignedApproval = Signed[*Approval]
)

// SignConsent signs c with the owner's key.
func SignConsent(priv ed25519.PrivateKey, c *Consent) (*SignedConsent, error) {
	if err := checkPrivate(priv); err != nil {
		return nil, err
	}
	c.Until = c.Until.UTC().Truncate(time.Second)
	return &SignedConsent{Statement: c, Signature: ed25519.Sign(priv, c.Message())}, nil
}

// SignApproval signs a with the reviewer's key.
func SignApproval(priv ed25519.PrivateKey, a *Approval) (*SignedApproval, error) {
	if err := checkPrivate(priv); err != nil {
		return nil, err
	}
	a.At = a.At.UTC().Truncate(time.Second)
	return &SignedApproval{Statement: a, Signature: ed25519.Sign(priv, a.Message())}, nil
}

func checkPrivate(priv ed25519.PrivateKey) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: not an Ed25519 private key", ErrStatement)
	}
	return nil
}

// Keyring maps signers' names to their public keys.
type Keyring map[string]ed25519.PublicKey

// verify checks sig over msg by signer.
func (k Keyring) verify(signer string, msg, sig []byte) error {
	pub, ok := k[signer]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownSigner, signer)
	}
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("%w (signer %q)", ErrSignature, signer)
	}
	return nil
}

// VerifyConsent checks that s is a valid signature by its owner, one of k.
func (k Keyring) VerifyConsent(s *SignedConsent) error {
	if s == nil || s.Statement == nil {
		return fmt.Errorf("%w: no consent", ErrStatement)
	}
	return k.verify(s.Statement.Owner, s.Statement.Message(), s.Signature)
}

// VerifyApproval checks that s is a valid signature by its reviewer, one of k.
func (k Keyring) VerifyApproval(s *SignedApproval) error {
	if s == nil || s.Statement == nil {
		return fmt.Errorf("%w: no approval", ErrStatement)
	}
	return k.verify(s.Statement.Reviewer, s.Statement.Message(), s.Signature)
}
