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
// others will seal its Shamir shares.
type KeysBeginRequest struct {
	CeremonyHeader
	Nodes     []string `json:"nodes"`
	Threshold int      `json:"threshold"`
}

// KeysBeginResponse is the node's HPKE public key for this ceremony.
type KeysBeginResponse struct {
	HPKEPublicKey []byte `json:"hpke_public_key"`
}

// KeysSharesRequest fixes the setup (roster, threshold, every node's HPKE
// key). The node draws its secret-key share and answers with its
// public-key-generation share and its Shamir shares, each sealed (HPKE) to
// its recipient.
type KeysSharesRequest struct {
	CeremonyHeader
	Nodes          []string          `json:"nodes"`
	Threshold      int               `json:"threshold"`
	HPKEPublicKeys map[string][]byte `json:"hpke_public_keys"`
}

// KeysSharesResponse: PublicKeyShare is an envelope (he/ckg-share/v1);
// SealedShares maps each recipient to an envelope
// (ceremony/sealed-shamir-share/v1) whose payload only it can open. Empty
// for t = N.
type KeysSharesResponse struct {
	PublicKeyShare []byte            `json:"public_key_share"`
	SealedShares   map[string][]byte `json:"sealed_shares,omitempty"`
}

// KeysFinishRequest delivers every node's public-key share and the sealed
// Shamir shares addressed to this node (by sender), each re-enveloped by the
// coordinator for this node.
type KeysFinishRequest struct {
	CeremonyHeader
	PublicKeyShares map[string][]byte `json:"public_key_shares"`
	SealedShares    map[string][]byte `json:"sealed_shares,omitempty"`
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
type HEGroupsRequest struct {
	Header
	Spec      policy.Spec      `json:"spec"`
	Requester policy.Requester `json:"requester"`
	Input     int              `json:"input"`
}

// HEGroupsResponse lists the group labels, sorted.
type HEGroupsResponse struct {
	Groups []string `json:"groups"`
}

// HEAggregateRequest asks a node for its encrypted local aggregate of input
// Input. Groups is the slot layout (sorted labels; empty without group_by).
// MaxRows bounds the rows summed over all the job's inputs: each node
// refuses more than MaxRows/len(inputs) rows of its own and range-checks its
// values so that no total can wrap modulo T.
type HEAggregateRequest struct {
	Header
	Spec      policy.Spec      `json:"spec"`
	Requester policy.Requester `json:"requester"`
	Input     int              `json:"input"`
	Groups    []string         `json:"groups,omitempty"`
	MaxRows   int64            `json:"max_rows"`
}

// HEAggregateResponse: Sums is an envelope of a ciphertext under the "sums"
// set with slot g the count of group g and, when a value is asked, slot
// G+g its Σx; Squares (when variance is asked) is under "squares" with slot
// g the group's Σx².
type HEAggregateResponse struct {
	Sums    []byte `json:"sums"`
	Squares []byte `json:"squares,omitempty"`
	// BelowK: the node's filter leaves fewer rows than its dataset's k (a
	// flag for the reviewer; the count itself stays hidden).
	BelowK bool `json:"below_k,omitempty"`
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
// learns each position's group. Values (Σx), Counts (rows) are envelopes under "sums";
// Squares (Σx²) under "squares". Every chunk belongs to one group.
type HEValuesChunk struct {
	Index     int    `json:"index"`
	Group     int    `json:"group"`
	Positions []int  `json:"positions"`
	Values    []byte `json:"values,omitempty"`
	Counts    []byte `json:"counts"`
	Squares   []byte `json:"squares,omitempty"`
}

// HEValuesResponse carries the requested chunks and the whole layout's
// size: Total chunks, group labels indexed by HEValuesChunk.Group (one
// empty label without group_by).
type HEValuesResponse struct {
	Total  int             `json:"total"`
	Groups []string        `json:"groups"`
	Chunks []HEValuesChunk `json:"chunks"`
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

// HEReleaseRequest asks a node for its decryption share of Ciphertext (an
// envelope at Level) towards ReleaseKey (an envelope of the coordinator's
// release public key), by exactly the nodes in Active.
type HEReleaseRequest struct {
	Header
	Params     string   `json:"params"`
	Active     []string `json:"active"`
	Level      int      `json:"level"`
	Ciphertext []byte   `json:"ciphertext"`
	ReleaseKey []byte   `json:"release_key"`
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
