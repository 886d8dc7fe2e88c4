package nodehttp_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/compute/node/nodehttp"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
)

// postFramed posts a framed body to path and returns the status, the
// answer's content type and body.
func postFramed(t *testing.T, cl *nodeapi.Client, path string, body []byte) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, cl.BaseURL+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", bearer)
	req.Header.Set("Content-Type", nodeapi.PSIContentType)
	req.Header.Set("Accept", nodeapi.PSIContentType)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// A framed reblind whose body is not exactly its frame — truncated,
// extended, re-framed to fewer points, or oversized — is refused whole at
// the node: 400 (413 past the limit), nothing blinded, the refusal
// audited and counted. The genuine frame is then served, framed.
func TestFramedReblindAttacks(t *testing.T) {
	f := start(t)
	hrss := f.Clients["hrss"]
	s := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits})
	ps := prepareBoth(t, f, s, "j1", 1)
	req := ownChunk(t, ps, 1, 0, 4) // housing's list, to hrss
	req.Step = nodeapi.StepReblind
	good, err := req.MarshalBinary()
	require.NoError(t, err)

	refrained := bytes.Clone(good[:len(good)-32]) // a valid frame of the first 3 points under the 4-point proof
	binary.BigEndian.PutUint32(refrained[1:5], 3)
	nMismatch := bytes.Clone(good)
	binary.BigEndian.PutUint32(nMismatch[1:5], 3)
	for _, c := range []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"truncated", good[:len(good)-1], 400, "bad_request"},
		{"truncated by a point", good[:len(good)-32], 400, "bad_request"},
		{"extended by a byte", append(bytes.Clone(good), 0), 400, "bad_request"},
		{"extended by a point", append(bytes.Clone(good), good[len(good)-32:]...), 400, "bad_request"},
		{"n mismatch", nMismatch, 400, "bad_request"},
		{"oversized", append(bytes.Clone(good), make([]byte, nodeapi.MaxPSIBodyBytes)...), 413, "too_large"},
		{"re-framed to fewer points", refrained, 403, "bad_proof"}, // a well-formed frame: the proof check refuses it
	} {
		t.Run(c.name, func(t *testing.T) {
			before := codes(t, f, "hrss")[c.code]
			status, _, body := postFramed(t, hrss, nodeapi.PathReblind, c.body)
			require.Equal(t, c.status, status, "%s", body)
			require.Contains(t, string(body), `"code":"`+c.code+`"`)
			require.Equal(t, before+1, codes(t, f, "hrss")[c.code], "the refusal was not audited")
		})
	}
	require.Empty(t, entries(t, f, "hrss", string(nodeapi.StepReblind)), "a refused frame was reblinded")
	text := scrape(t, hrss)
	require.Equal(t, 5.0, metric(t, text, `unseen_node_requests_total{code="400",route="`+nodeapi.PathReblind+`"}`))
	require.Equal(t, 1.0, metric(t, text, `unseen_node_requests_total{code="413",route="`+nodeapi.PathReblind+`"}`))
	require.Equal(t, 1.0, metric(t, text, `unseen_node_requests_total{code="403",route="`+nodeapi.PathReblind+`"}`))

	// Framed to a route that takes JSON only.
	status, _, _ := postFramed(t, hrss, nodeapi.PathOwn, good)
	require.Equal(t, 400, status)

	status, ct, body := postFramed(t, hrss, nodeapi.PathReblind, good)
	require.Equal(t, 200, status, "%s", body)
	require.Equal(t, nodeapi.PSIContentType, ct)
	out, err := nodeapi.DecodeElementsResponse(body)
	require.NoError(t, err)
	require.Len(t, out.Elements, 4*32)
	require.Len(t, entries(t, f, "hrss", string(nodeapi.StepReblind)), 1)
}

// The JSON forms are still served (a coordinator that predates the frame):
// a JSON reblind answered in JSON gives the same points and proof as the
// framed one.
func TestReblindJSONAndFramedAgree(t *testing.T) {
	f := start(t)
	s := spec(policy.PSICardinality, policy.Input{Dataset: dsBenefits})
	ps := prepareBoth(t, f, s, "j1", 1)
	req := ownChunk(t, ps, 1, 0, 3)
	req.Step = nodeapi.StepReblind
	framed, err := f.Clients["hrss"].Reblind(context.Background(), req)
	require.NoError(t, err)
	// Re-asked in JSON (a retry of the same chunk is served again).
	jb := jsonReblind(t, f.Clients["hrss"], req)
	require.Equal(t, framed.Elements, jb.Elements)
	require.Equal(t, framed.Proof, jb.Proof)
}

// jsonReblind posts req in JSON, accepting JSON only, as a coordinator
// that predates the frame does.
func jsonReblind(t *testing.T, cl *nodeapi.Client, req *nodeapi.ReblindRequest) *nodeapi.ElementsResponse {
	t.Helper()
	b, err := json.Marshal(req)
	require.NoError(t, err)
	hr, err := http.NewRequest(http.MethodPost, cl.BaseURL+nodeapi.PathReblind, bytes.NewReader(b))
	require.NoError(t, err)
	hr.Header.Set("Authorization", bearer)
	hr.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hr)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var out nodeapi.ElementsResponse
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return &out
}

// scrape reads the node's /metrics.
func scrape(t *testing.T, cl *nodeapi.Client) string {
	t.Helper()
	resp, err := http.Get(cl.BaseURL + nodehttp.PathMetrics)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
