package psi

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"testing"

	"github.com/cloudflare/circl/dh/x25519"
	fp "github.com/cloudflare/circl/math/fp25519"
	"github.com/stretchr/testify/require"
)

// vectorSpec is the spec hash of every keyed vector: SHA-256("spec").
var vectorSpec = func() []byte { h := sha256.Sum256([]byte("spec")); return h[:] }()

var update = flag.Bool("update", false, "rewrite the package's own sections of testdata/vectors.json")

const vectorsFile = "testdata/vectors.json"

type vectors struct {
	Comment string `json:"comment"`
	X25519  []struct {
		Scalar string `json:"scalar"`
		U      string `json:"u"`
		Out    string `json:"out"`
	} `json:"x25519"`
	X25519Iterated []struct {
		Iterations int    `json:"iterations"`
		Out        string `json:"out"`
	} `json:"x25519_iterated"`
	Elligator2 []struct {
		U  string `json:"u"`
		QX string `json:"qx"`
	} `json:"elligator2"`
	HashID      []hashIDVector      `json:"hash_id"`
	DeriveBlind []deriveBlindVector `json:"derive_blind"`
	Order       []orderVector       `json:"order"`
}

type hashIDVector struct {
	Job     string `json:"job"`
	ID      string `json:"id"`
	Element string `json:"element"`
}

// deriveBlindVector: Key = DeriveKey(Secret, Job, Spec), Blinded = H(ID)^Key,
// Blinded2 = Blinded^DeriveKey(Secret2, Job, Spec) (a two-party full blinding).
type deriveBlindVector struct {
	Secret   string `json:"secret"`
	Secret2  string `json:"secret2"`
	Job      string `json:"job"`
	Spec     string `json:"spec_hash"`
	Key      string `json:"key"`
	ID       string `json:"id"`
	Blinded  string `json:"blinded"`
	Blinded2 string `json:"blinded2"`
}

type orderVector struct {
	Secret string   `json:"secret"`
	Job    string   `json:"job"`
	IDs    []string `json:"ids"`   // input, with a duplicate
	Order  []string `json:"order"` // the party's secret order
}

func loadVectors(t *testing.T) *vectors {
	t.Helper()
	b, err := os.ReadFile(vectorsFile)
	require.NoError(t, err)
	var v vectors
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&v))
	return &v
}

func hexOf(e Element) string { return hex.EncodeToString(e[:]) }

func blindHex(t *testing.T, k *Key, e Element) Element {
	t.Helper()
	out := make([]Element, 1)
	require.NoError(t, k.Blind(out, []Element{e}))
	return out[0]
}

// generateOwnVectors computes the package's own sections from fixed inputs.
func generateOwnVectors(t *testing.T, v *vectors) {
	v.HashID = nil
	for _, in := range []struct{ job, id string }{
		{"job-1", "440106199001011234"},
		{"job-1", "44010619900101123X"},
		{"job-2", "440106199001011234"},
		{"a", ""},
		{"2025-06-01/hrss×tax", "张三|440106199001011234"},
	} {
		v.HashID = append(v.HashID, hashIDVector{in.job, in.id, hexOf(HashID(in.job, []byte(in.id)))})
	}
	v.DeriveBlind = nil
	for _, in := range []struct{ secret, secret2, job, id string }{
		{"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f", "job-1", "440106199001011234"},
		{"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f", "job-2", "440106199001011234"},
		{"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff00", "5555555555555555555555555555555555555555555555555555555555555555", "job-1", "110101198001010011"},
	} {
		k, err := DeriveKey(mustHex(t, in.secret), in.job, vectorSpec)
		require.NoError(t, err)
		k2, err := DeriveKey(mustHex(t, in.secret2), in.job, vectorSpec)
		require.NoError(t, err)
		b := blindHex(t, k, HashID(in.job, []byte(in.id)))
		v.DeriveBlind = append(v.DeriveBlind, deriveBlindVector{
			Secret: in.secret, Secret2: in.secret2, Job: in.job, Spec: hex.EncodeToString(vectorSpec), Key: hex.EncodeToString(k.s[:]), ID: in.id,
			Blinded: hexOf(b), Blinded2: hexOf(blindHex(t, k2, b)),
		})
	}
	v.Order = nil
	ids := []string{"a", "b", "c", "d", "e", "f", "g", "h", "c"}
	for _, job := range []string{"job-1", "job-2"} {
		secret := "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
		v.Order = append(v.Order, orderVector{Secret: secret, Job: job, IDs: ids, Order: orderOf(t, secret, job, ids)})
	}
}

func orderOf(t *testing.T, secretHex, job string, ids []string) []string {
	t.Helper()
	var in [][]byte
	for _, id := range ids {
		in = append(in, []byte(id))
	}
	p, err := NewLocalParty(mustHex(t, secretHex), job, vectorSpec, 0, in)
	require.NoError(t, err)
	var out []string
	for i := range len(p.ids) {
		out = append(out, string(p.IDAt(i)))
	}
	return out
}

func TestVectors(t *testing.T) {
	v := loadVectors(t)
	if *update {
		generateOwnVectors(t, v)
		b, err := json.MarshalIndent(v, "", "  ")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(vectorsFile, append(b, '\n'), 0o644))
		t.Log("rewrote", vectorsFile)
	}

	t.Run("RFC7748", func(t *testing.T) {
		require.NotEmpty(t, v.X25519)
		for _, c := range v.X25519 {
			k := &Key{s: [32]byte(mustHex(t, c.Scalar))}
			require.Equal(t, c.Out, hexOf(blindHex(t, k, Element(mustHex(t, c.U)))))
		}
	})
	t.Run("RFC7748Iterated", func(t *testing.T) {
		require.NotEmpty(t, v.X25519Iterated)
		for _, c := range v.X25519Iterated {
			k := Element{9}
			u := Element{9}
			for range c.Iterations {
				out := blindHex(t, &Key{s: x25519.Key(k)}, u)
				u, k = k, out
			}
			require.Equal(t, c.Out, hexOf(k), "%d iterations", c.Iterations)
		}
	})
	t.Run("RFC9380Elligator2", func(t *testing.T) {
		require.NotEmpty(t, v.Elligator2)
		for _, c := range v.Elligator2 {
			u := fp.Elt(leElement(beHex(t, c.U)))
			got := elligator2(&u)
			require.Equal(t, leElement(beHex(t, c.QX)), Element(got), "u = %s", c.U)
		}
	})
	t.Run("HashID", func(t *testing.T) {
		require.NotEmpty(t, v.HashID)
		for _, c := range v.HashID {
			require.Equal(t, c.Element, hexOf(HashID(c.Job, []byte(c.ID))), "%q/%q", c.Job, c.ID)
			require.Equal(t, c.Element, hexOf(refHashID(c.Job, []byte(c.ID))))
		}
	})
	t.Run("DeriveBlind", func(t *testing.T) {
		require.NotEmpty(t, v.DeriveBlind)
		for _, c := range v.DeriveBlind {
			spec := mustHex(t, c.Spec)
			k, err := DeriveKey(mustHex(t, c.Secret), c.Job, spec)
			require.NoError(t, err)
			require.Equal(t, c.Key, hex.EncodeToString(k.s[:]))
			require.Equal(t, c.Key, hex.EncodeToString(manualHKDF(mustHex(t, c.Secret), "unseen/psi/v1/key\x00"+c.Job+"\x00"+string(spec))))
			k2, err := DeriveKey(mustHex(t, c.Secret2), c.Job, spec)
			require.NoError(t, err)
			h := HashID(c.Job, []byte(c.ID))
			b := blindHex(t, k, h)
			require.Equal(t, c.Blinded, hexOf(b))
			require.Equal(t, c.Blinded2, hexOf(blindHex(t, k2, b)))
			// Commutativity: the other order gives the same full blinding.
			require.Equal(t, c.Blinded2, hexOf(blindHex(t, k, blindHex(t, k2, h))))
		}
	})
	t.Run("Order", func(t *testing.T) {
		require.NotEmpty(t, v.Order)
		for _, c := range v.Order {
			require.Equal(t, c.Order, orderOf(t, c.Secret, c.Job, c.IDs))
		}
	})
}

// manualHKDF is RFC 5869 HKDF-SHA256 with an empty salt and 32 bytes of
// output, written out so DeriveKey is checked against something other than
// crypto/hkdf.
func manualHKDF(ikm []byte, info string) []byte {
	ext := hmac.New(sha256.New, make([]byte, sha256.Size))
	ext.Write(ikm)
	prk := ext.Sum(nil)
	exp := hmac.New(sha256.New, prk)
	exp.Write([]byte(info))
	exp.Write([]byte{1})
	return exp.Sum(nil)
}
