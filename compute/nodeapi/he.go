package nodeapi

// Homomorphic part of the protocol: the key ceremony (/v1/node/keys/...) and
// the aggregation steps (/v1/node/he/...). Every homomorphic object travels
// as the bytes of a compute/he/envelope envelope, MAC'd under EnvelopeKey;
// this package moves them and never parses them (it has no lattigo
// dependency).

import (
	"context"
	"crypto/sha256"
	"io"
	"net/http"

	"golang.org/x/crypto/hkdf"

	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/policy/disclosure"
)

// Paths of the node's homomorphic endpoints.
const (
	PathKeysBegin   = "/v1/node/keys/begin"
	PathKeysShares  = "/v1/node/keys/shares"
	PathKeysFinish  = "/v1/node/keys/finish"
	PathKeysStatus  = "/v1/node/keys/status"
	PathHEGroups    = "/v1/node/he/groups"
	PathHEAggregate = "/v1/node/he/aggregate"
	PathHEValues    = "/v1/node/he/values"
	PathHEZeroMask  = "/v1/node/he/zeromask"
	PathHERelease   = "/v1/node/he/release"
)

// Steps of the homomorphic protocol.
const (
	StepKeysBegin   Step = "keys.begin"
	StepKeysShares  Step = "keys.shares"
	StepKeysFinish  Step = "keys.finish"
	StepHEGroups    Step = "he.groups"
	StepHEAggregate Step = "he.aggregate"
	StepHEValues    Step = "he.values"
	StepHEZeroMask  Step = "he.zeromask"
	StepHERelease   Step = "he.release"
)

// MaxHEBodyBytes bounds a request body at the homomorphic endpoints: a
// LogN-14 public key is 1.3 MiB and a ciphertext 1 MiB before base64, and
// keys/finish carries one public-key share and one sealed share per node.
const MaxHEBodyBytes = 64 << 20

// maxHEResponseBytes bounds what the coordinator reads from a homomorphic
// endpoint (a few ciphertexts per he/values or he/zeromask page).
const maxHEResponseBytes = 64 << 20

// Paging limits: a node serves at most this many ciphertexts per request.
const (
	MaxValuesChunks = 4  // he/values: chunks (each up to 3 ciphertexts)
	MaxZeroMasks    = 16 // he/zeromask: masks
)

// envelopeInfo is the HKDF info of EnvelopeKey.
const envelopeInfo = "unseen/he/envelope/v1"

// EnvelopeKey is the MAC key of the homomorphic envelopes exchanged between
// the coordinator and one node: HKDF-SHA256 with the SHA-256 of the
// coordinator's bearer token at that node as input key material (the node
// stores only that hash) and info "unseen/he/envelope/v1". 32 bytes.
// (Mutual TLS will authenticate the channel itself; until then this binds
// every HE object to the coordinator–node pair.)
func EnvelopeKey(coordinatorTokenSHA256 []byte) []byte {
	k := make([]byte, 32)
	// HKDF-SHA256 can produce 255·32 bytes; 32 cannot fail.
	_, _ = io.ReadFull(hkdf.New(sha256.New, coordinatorTokenSHA256, nil, []byte(envelopeInfo)), k)
	return k
}

// EnvelopeKey is the envelope MAC key for this client's node.
func (c *Client) EnvelopeKey() []byte {
	h := sha256.Sum256([]byte(c.Token))
	return EnvelopeKey(h[:])
}

// ---- key ceremony --------------------------------------------------------

// CeremonyHeader is carried by every key-ceremony request. Params names the
// parameter set ("sums" or "squares"); the ceremony runs once per set.
type CeremonyHeader struct {
	Ceremony string `json:"ceremony"`
	Step     Step   `json:"step"`
	Params   string `json:"params"`
}

// KeysBeginRequest opens a ceremony: the roster (department names) and the
// threshold t. The node answers with a fresh HPKE public key, on which the
// others will seal its Shamir shares. A node takes part only if every
// department of the roster is in its own federation.nodes, itself
// included, and 2 ≤ t ≤ N.
type KeysBeginRequest struct {
	CeremonyHeader
	Nodes     []string `json:"nodes"`
	Threshold int      `json:"threshold"`
}

// KeysBeginResponse is the node's HPKE public key for this ceremony and
// its signature over CeremonyKeyStatement{ceremony, params, node, key}, so
// that the other nodes seal their Shamir shares to this node and no one
// else, whatever the coordinator relays.
type KeysBeginResponse struct {
	HPKEPublicKey []byte `json:"hpke_public_key"`
	Signature     []byte `json:"signature"`
}

// KeysSharesRequest fixes the setup (roster, threshold, every node's HPKE
// key with that node's signature, KeysBeginResponse.Signature, by
// department). The node draws its secret-key share and answers with its
// public-key-generation share and its Shamir shares, each sealed (HPKE) to
// its recipient.
type KeysSharesRequest struct {
	CeremonyHeader
	Nodes          []string          `json:"nodes"`
	Threshold      int               `json:"threshold"`
	HPKEPublicKeys map[string][]byte `json:"hpke_public_keys"`
	HPKESignatures map[string][]byte `json:"hpke_signatures"`
}

// KeysSharesResponse: PublicKeyShare is an envelope (he/ckg-share/v1);
// SealedShares maps each recipient to an envelope
// (ceremony/sealed-shamir-share/v1) whose payload only it can open. Empty
// for t = N. Each payload is signed by the sending node
// (CeremonyShareStatement over the SHA-256 of the envelope's payload; To
// empty for the public-key share), so that its recipients know who made
// it.
type KeysSharesResponse struct {
	PublicKeyShare          []byte            `json:"public_key_share"`
	PublicKeyShareSignature []byte            `json:"public_key_share_signature"`
	SealedShares            map[string][]byte `json:"sealed_shares,omitempty"`
	SealedShareSignatures   map[string][]byte `json:"sealed_share_signatures,omitempty"`
}

// KeysFinishRequest delivers every node's public-key share and the sealed
// Shamir shares addressed to this node (by sender), each re-enveloped by the
// coordinator for this node, with their senders' signatures
// (KeysSharesResponse) by sender.
type KeysFinishRequest struct {
	CeremonyHeader
	PublicKeyShares          map[string][]byte `json:"public_key_shares"`
	PublicKeyShareSignatures map[string][]byte `json:"public_key_share_signatures"`
	SealedShares             map[string][]byte `json:"sealed_shares,omitempty"`
	SealedShareSignatures    map[string][]byte `json:"sealed_share_signatures,omitempty"`
}

// KeysFinishResponse is the SHA-256 of the collective public key the node
// derived and persisted (the coordinator checks they all agree).
type KeysFinishResponse struct {
	PublicKeySHA256 []byte `json:"public_key_sha256"`
}

// KeySetStatus describes the keys a node holds for one parameter set.
type KeySetStatus struct {
	Params          string   `json:"params"`
	Ceremony        string   `json:"ceremony"`
	Threshold       int      `json:"threshold"`
	Nodes           []string `json:"nodes"`
	PublicKeySHA256 []byte   `json:"public_key_sha256"`
}

// KeysStatusResponse lists the key sets a node holds (none before any
// ceremony).
type KeysStatusResponse struct {
	Department string         `json:"department"`
	Sets       []KeySetStatus `json:"sets"`
}

// ---- aggregation ---------------------------------------------------------

// HEGroupsRequest asks for the labels of the group-by column present in
// input Input's rows after its filter (aggregate with group_by), so that the
// coordinator can lay out one slot per group across all nodes. This tells
// the coordinator which groups exist at each node (not their sizes).
// Consents are the owners' signed consents (a conditional dataset needs
// one); the node checks the request like every first step of a job (spec
// hash and binding, party, own policy, consent, budgets and rate limits)
// and refuses an input whose filter leaves fewer rows than its k.
type HEGroupsRequest struct {
	Header
	Spec      policy.Spec            `json:"spec"`
	Requester policy.Requester       `json:"requester"`
	Input     int                    `json:"input"`
	Consents  []attest.SignedConsent `json:"consents,omitempty"`
}

// HEGroupsResponse lists the group labels, sorted.
type HEGroupsResponse struct {
	Groups []string `json:"groups"`
}

// HEAggregateRequest asks a node for its encrypted local aggregate of input
// Input. Groups is the slot layout (sorted labels; empty without group_by).
// MaxRows bounds the rows summed over all the job's inputs (at most
// he.MaxJobRows = 2^30): each node refuses more than MaxRows/len(inputs)
// rows of its own and any |x| > 2^40, so that every total is exact
// (compute/he, "Exact Σx and Σx²"). The node checks it as HEGroupsRequest
// says (and refuses an input below k: code input_below_k).
type HEAggregateRequest struct {
	Header
	Spec      policy.Spec            `json:"spec"`
	Requester policy.Requester       `json:"requester"`
	Input     int                    `json:"input"`
	Groups    []string               `json:"groups,omitempty"`
	MaxRows   int64                  `json:"max_rows"`
	Consents  []attest.SignedConsent `json:"consents,omitempty"`
}

// HEAggregateResponse: Sums is an envelope of a ciphertext under the "sums"
// set with slot g the count of group g and, when a value is asked, slot
// G+g its Σx mod T_s, slots 2G+g·B+b its histogram buckets (B of them,
// with the stat histogram) and slot 2G+G·B+g the floor hint
// ⌊Σx/2^39⌋ of the node's own rows; Squares (when variance is asked) is
// under "squares" with slot g the group's Σx² mod T_q and slot G+g the
// hint ⌊Σx²/2^55⌋ (he.AggregateSum, he.AggregateSumSq decode the sums of
// these). Each is signed by the node: SumsSignature over
// ContributionStatement{job, spec hash, attempt, input, "sums", SHA-256 of
// the envelope's payload}, SquaresSignature likewise with "squares". A node
// decrypts an aggregate only as the sum it computes itself of every
// input's signed contribution.
type HEAggregateResponse struct {
	Sums             []byte `json:"sums"`
	SumsSignature    []byte `json:"sums_signature"`
	Squares          []byte `json:"squares,omitempty"`
	SquaresSignature []byte `json:"squares_signature,omitempty"`
	// Overlaps: as PrepareResponse.Overlaps, for the aggregate's input.
	Overlaps []disclosure.Overlap `json:"overlaps,omitempty"`
}

// HEValuesRequest asks the value node of an intersection_stats job (which
// must have prepared its PSI list for this job, attempt and party) for
// chunks [Offset, Offset+Count) of its encrypted rows. Squares asks for x²
// as well.
type HEValuesRequest struct {
	Header
	Offset  int  `json:"offset"`
	Count   int  `json:"count"`
	Squares bool `json:"squares"`
}

// HEValuesChunk is one slot layout and its ciphertexts. Positions[s] is the
// position, in the node's PSI list, of the key whose rows slot s holds, or
// −1 for padding; slots past len(Positions) are padding too (zero, never
// matched). The coordinator needs the map to build the match mask, and so
// learns each position's group. Lanes[l] is the envelope of lane l
// (he.ISLane: the count; Σx mod T_s and mod T_q when a value is asked;
// Σx² mod T_s, mod T_q and its floor hint with Squares), under the lane's
// parameter set (he.ISLane.Params), slot s holding that lane of the key's
// rows; a lane the job does not need is empty. Every chunk belongs to one
// group.
type HEValuesChunk struct {
	Index     int      `json:"index"`
	Group     int      `json:"group"`
	Positions []int    `json:"positions"`
	Lanes     [][]byte `json:"lanes"`
}

// HEValuesResponse carries the requested chunks and the whole layout's
// size: Total chunks, group labels indexed by HEValuesChunk.Group (one
// empty label without group_by). LayoutSignature is the value node's
// signature over LayoutStatement{job, spec hash, attempt, len(Groups),
// Total}: the releasing nodes decrypt at most he.ISLanes·len(Groups)
// results of the job, with smudging sized for Total masked chunks.
type HEValuesResponse struct {
	Total           int             `json:"total"`
	Groups          []string        `json:"groups"`
	Chunks          []HEValuesChunk `json:"chunks"`
	LayoutSignature []byte          `json:"layout_signature"`
}

// HEZeroMaskRequest asks for Count encryptions of random vectors whose slots
// sum to 0 mod T, under parameter set Params.
type HEZeroMaskRequest struct {
	Header
	Params string `json:"params"`
	Count  int    `json:"count"`
}

// HEZeroMaskResponse carries the masks (ciphertext envelopes).
type HEZeroMaskResponse struct {
	Masks [][]byte `json:"masks"`
}

// HEReleaseRequest asks a node for its decryption share of result Output
// of a job towards ReleaseKey (an envelope of the coordinator's release
// public key), by exactly the nodes in Active (t of the ceremony's roster;
// a node that holds no input of the job may be one of them and checks the
// same). The node binds the job id to Spec's hash like any other step and
// decrypts each output of each job at most once, ever.
//
// Outputs: an aggregate has output 0 (the "sums" vector) and, with the
// variance, output 1 ("squares"); for those, Contributions must carry every
// input's signed contribution to that vector and Ciphertext is empty: the
// node sums the contributions itself and decrypts that sum. An
// intersection_stats job has output g·he.ISLanes+l (group g, lane l: the
// count, Σx mod T_s, Σx² mod T_q, Σx mod T_q, Σx² mod T_s, the Σx² floor
// hint, as its stats need) for g below the value node's signed Layout's
// groups; Ciphertext is the coordinator's result (an envelope at Level).
type HEReleaseRequest struct {
	Header
	Spec          policy.Spec      `json:"spec"`
	Requester     policy.Requester `json:"requester"`
	Output        int              `json:"output"`
	Params        string           `json:"params"`
	Active        []string         `json:"active"`
	Level         int              `json:"level"`
	Ciphertext    []byte           `json:"ciphertext,omitempty"`
	ReleaseKey    []byte           `json:"release_key"`
	Contributions []HEContribution `json:"contributions,omitempty"`
	Layout        *HELayout        `json:"layout,omitempty"`
}

// HEContribution is one input's contribution to an aggregate output as it
// travels to a releasing node: the ciphertext (an envelope, at the top
// level, re-enveloped by the coordinator for that node) and the
// contributing node's signature (HEAggregateResponse) over its payload.
type HEContribution struct {
	Input      int    `json:"input"`
	Ciphertext []byte `json:"ciphertext"`
	Signature  []byte `json:"signature"`
}

// HELayout is the value node's signed layout of an intersection_stats job
// (HEValuesResponse: Groups = len(Groups), Chunks = Total).
type HELayout struct {
	Groups    int    `json:"groups"`
	Chunks    int    `json:"chunks"`
	Signature []byte `json:"signature"`
}

// HEReleaseResponse is the decryption share (envelope, release/share/v1).
type HEReleaseResponse struct {
	Share []byte `json:"share"`
}

// ---- client --------------------------------------------------------------

func heCall[T any](ctx context.Context, c *Client, method, path string, in any) (*T, error) {
	var out T
	if err := c.doLimit(ctx, method, path, in, &out, maxHEResponseBytes); err != nil {
		return nil, err
	}
	return &out, nil
}

// KeysBegin opens a ceremony at the node.
func (c *Client) KeysBegin(ctx context.Context, r *KeysBeginRequest) (*KeysBeginResponse, error) {
	r.Step = StepKeysBegin
	return heCall[KeysBeginResponse](ctx, c, http.MethodPost, PathKeysBegin, r)
}

// KeysShares fixes the setup and fetches the node's shares.
func (c *Client) KeysShares(ctx context.Context, r *KeysSharesRequest) (*KeysSharesResponse, error) {
	r.Step = StepKeysShares
	return heCall[KeysSharesResponse](ctx, c, http.MethodPost, PathKeysShares, r)
}

// KeysFinish delivers the shares; the node persists its keys.
func (c *Client) KeysFinish(ctx context.Context, r *KeysFinishRequest) (*KeysFinishResponse, error) {
	r.Step = StepKeysFinish
	return heCall[KeysFinishResponse](ctx, c, http.MethodPost, PathKeysFinish, r)
}

// KeysStatus reports the key sets the node holds.
func (c *Client) KeysStatus(ctx context.Context) (*KeysStatusResponse, error) {
	return heCall[KeysStatusResponse](ctx, c, http.MethodGet, PathKeysStatus, nil)
}

// HEGroups fetches the group labels present at the node.
func (c *Client) HEGroups(ctx context.Context, r *HEGroupsRequest) (*HEGroupsResponse, error) {
	r.Step = StepHEGroups
	return heCall[HEGroupsResponse](ctx, c, http.MethodPost, PathHEGroups, r)
}

// HEAggregate fetches the node's encrypted local aggregate.
func (c *Client) HEAggregate(ctx context.Context, r *HEAggregateRequest) (*HEAggregateResponse, error) {
	r.Step = StepHEAggregate
	return heCall[HEAggregateResponse](ctx, c, http.MethodPost, PathHEAggregate, r)
}

// HEValues fetches chunks of the value node's encrypted rows.
func (c *Client) HEValues(ctx context.Context, r *HEValuesRequest) (*HEValuesResponse, error) {
	r.Step = StepHEValues
	return heCall[HEValuesResponse](ctx, c, http.MethodPost, PathHEValues, r)
}

// HEZeroMask fetches encrypted zero-sum masks.
func (c *Client) HEZeroMask(ctx context.Context, r *HEZeroMaskRequest) (*HEZeroMaskResponse, error) {
	r.Step = StepHEZeroMask
	return heCall[HEZeroMaskResponse](ctx, c, http.MethodPost, PathHEZeroMask, r)
}

// HERelease fetches the node's decryption share of one ciphertext.
func (c *Client) HERelease(ctx context.Context, r *HEReleaseRequest) (*HEReleaseResponse, error) {
	r.Step = StepHERelease
	return heCall[HEReleaseResponse](ctx, c, http.MethodPost, PathHERelease, r)
}
