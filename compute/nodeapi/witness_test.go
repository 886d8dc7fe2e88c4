package nodeapi

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/audit"
)

// The witnessing wire types round-trip through JSON, strictly decoded, and
// the signed heads they carry still verify after the trip.
func TestWitnessTypesRoundTrip(t *testing.T) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	h, err := audit.SignHead(key, audit.CoordinatorLog, audit.Head{Seq: 12, Hash: strings.Repeat("ab", 32)})
	require.NoError(t, err)
	nh, err := audit.SignHead(key, "hrss", audit.Head{Seq: 40, Hash: strings.Repeat("cd", 32)})
	require.NoError(t, err)
	hdr := Header{Job: "j_x", Step: StepFinish, Attempt: 2, Party: 1}
	for _, v := range []any{
		&FinishRequest{Header: hdr, Outcome: "ok", Witness: &h},
		&FinishRequest{Header: hdr, Outcome: "ok"},
		&FinishResponse{OK: true, Head: &nh},
		&OutcomeRequest{Header: hdr, Outcome: "released", Purpose: "p", Datasets: []string{"hrss.b"}, Reviewer: "rita", Witness: &h},
		&OutcomeResponse{OK: true, Head: &nh},
	} {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		back := newLike(v)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(back))
		require.Equal(t, v, back, "%T", v)
	}
	var r FinishResponse
	require.NoError(t, json.Unmarshal(must(json.Marshal(FinishResponse{OK: true, Head: &nh})), &r))
	require.NoError(t, r.Head.Verify(key.Public().(ed25519.PublicKey)))
}

func newLike(v any) any {
	switch v.(type) {
	case *FinishRequest:
		return &FinishRequest{}
	case *FinishResponse:
		return &FinishResponse{}
	case *OutcomeRequest:
		return &OutcomeRequest{}
	case *OutcomeResponse:
		return &OutcomeResponse{}
	}
	panic("unknown type")
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
