package hpke

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSealOpenRoundTrip(t *testing.T) {
	pub, priv, err := GenerateKey()
	require.NoError(t, err)
	got, err := PublicOf(priv)
	require.NoError(t, err)
	require.Equal(t, pub, got)
	ct, err := Seal(pub, []byte("info"), []byte("aad"), []byte("hello"))
	require.NoError(t, err)
	require.Len(t, ct, EncSize+len("hello")+Overhead)
	pt, err := Open(priv, []byte("info"), []byte("aad"), ct)
	require.NoError(t, err)
	require.Equal(t, []byte("hello"), pt)
}

// Every change an attacker can make — another info or associated data, a
// flipped bit anywhere, a truncation, another recipient — fails to open.
func TestOpenRefusesTampering(t *testing.T) {
	pub, priv, _ := GenerateKey()
	_, other, _ := GenerateKey()
	ct, err := Seal(pub, []byte("info"), []byte("aad"), []byte("secret"))
	require.NoError(t, err)
	_, err = Open(priv, []byte("other"), []byte("aad"), ct)
	require.ErrorIs(t, err, ErrOpen)
	_, err = Open(priv, []byte("info"), []byte("other"), ct)
	require.ErrorIs(t, err, ErrOpen)
	_, err = Open(other, []byte("info"), []byte("aad"), ct)
	require.ErrorIs(t, err, ErrOpen)
	for i := range ct {
		bad := bytes.Clone(ct)
		bad[i] ^= 1
		_, err := Open(priv, []byte("info"), []byte("aad"), bad)
		require.Error(t, err, "bit flip at byte %d", i)
	}
	for n := range len(ct) {
		_, err := Open(priv, []byte("info"), []byte("aad"), ct[:n])
		require.Error(t, err, "truncated to %d", n)
	}
}

func TestBadKeys(t *testing.T) {
	_, err := Seal(make([]byte, 31), nil, nil, nil)
	require.ErrorIs(t, err, ErrKey)
	_, err = Open(make([]byte, 33), nil, nil, make([]byte, 64))
	require.ErrorIs(t, err, ErrKey)
	require.ErrorIs(t, CheckPublicKey(nil), ErrKey)
}
