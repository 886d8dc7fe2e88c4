package delivery

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSealOpenRoundTrip(t *testing.T) {
	pub, priv, err := GenerateKey()
	require.NoError(t, err)
	for _, ids := range [][]string{{}, {"440106199001011234"}, {"a", "b", "c"}} {
		ct, err := Seal(pub, "j_1", ids)
		require.NoError(t, err)
		got, err := Open(priv, "j_1", ct)
		require.NoError(t, err)
		require.Equal(t, ids, got)
	}
}

func TestOpenRefuses(t *testing.T) {
	pub, priv, err := GenerateKey()
	require.NoError(t, err)
	_, other, err := GenerateKey()
	require.NoError(t, err)
	ct, err := Seal(pub, "j_1", []string{"x", "y"})
	require.NoError(t, err)

	_, err = Open(other, "j_1", ct)
	require.ErrorIs(t, err, ErrCiphertext, "wrong key")
	_, err = Open(priv, "j_2", ct)
	require.ErrorIs(t, err, ErrCiphertext, "bound to the job id")
	for i := range ct {
		bad := append([]byte(nil), ct...)
		bad[i] ^= 1
		_, err = Open(priv, "j_1", bad)
		require.Error(t, err, "bit %d flipped", i)
	}
	for n := 0; n < len(ct); n++ {
		_, err = Open(priv, "j_1", ct[:n])
		require.Error(t, err, "truncated to %d", n)
	}
	_, err = Seal([]byte("short"), "j_1", nil)
	require.ErrorIs(t, err, ErrKey)
	_, err = Open([]byte("short"), "j_1", ct)
	require.ErrorIs(t, err, ErrKey)
}
