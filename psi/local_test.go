package psi

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

func numberedIDs(n int) [][]byte {
	var ids [][]byte
	for i := range n {
		ids = append(ids, []byte(fmt.Sprintf("4401061990%08d", i)))
	}
	return ids
}

// testSpecHash stands for a job's spec hash in tests.
var testSpecHash = bytes.Repeat([]byte{7}, SpecHashSize)

func TestDeriveKey(t *testing.T) {
	secret := testSecret(0)
	_, err := DeriveKey(secret[:31], "job", testSpecHash)
	require.ErrorIs(t, err, ErrShortSecret)
	_, err = DeriveKey(nil, "job", testSpecHash)
	require.ErrorIs(t, err, ErrShortSecret)
	_, err = DeriveKey(secret, "", testSpecHash)
	require.ErrorIs(t, err, ErrEmptyJobID)
	_, err = DeriveKey(secret, "a\x00b", testSpecHash)
	require.ErrorIs(t, err, ErrEmptyJobID)
	_, err = DeriveKey(secret, "job", testSpecHash[:31])
	require.ErrorIs(t, err, ErrSpecHash)
	_, err = NewLocalParty(secret[:16], "job", testSpecHash, 0, nil)
	require.ErrorIs(t, err, ErrShortSecret)

	a, err := DeriveKey(secret, "job", testSpecHash)
	require.NoError(t, err)
	b, err := DeriveKey(bytes.Clone(secret), "job", testSpecHash)
	require.NoError(t, err)
	require.Equal(t, a.s, b.s, "same secret and job: same key")
	c, err := DeriveKey(secret, "job2", testSpecHash)
	require.NoError(t, err)
	require.NotEqual(t, a.s, c.s, "different job: different key")
	d, err := DeriveKey(testSecret(1), "job", testSpecHash)
	require.NoError(t, err)
	require.NotEqual(t, a.s, d.s, "different secret: different key")
	// The attack the binding stops: a coordinator re-running a known job id
	// with a narrower filter gets an unrelated key, so the two attempts'
	// blinded lists cannot be compared.
	other := bytes.Clone(testSpecHash)
	other[0] ^= 1
	e, err := DeriveKey(secret, "job", other)
	require.NoError(t, err)
	require.NotEqual(t, a.s, e.s, "different spec: different key")

	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		require.Equal(t, "psi.Key(redacted)", fmt.Sprintf(verb, a), verb)
	}
}

func TestBlind(t *testing.T) {
	ka, err := DeriveKey(testSecret(0), "job", testSpecHash)
	require.NoError(t, err)
	kb, err := DeriveKey(testSecret(1), "job", testSpecHash)
	require.NoError(t, err)

	src := make([]Element, 100) // enough to split across workers
	for i := range src {
		src[i] = HashID("job", []byte{byte(i)})
	}
	ab := make([]Element, len(src))
	require.NoError(t, ka.Blind(ab, src))
	for i := range src {
		var one Element
		require.NoError(t, ka.blindOne(&one, &src[i]))
		require.Equal(t, one, ab[i], "parallel Blind must match element-wise")
		require.NotEqual(t, src[i], ab[i])
	}
	require.NoError(t, kb.Blind(ab, ab)) // in place
	ba := make([]Element, len(src))
	require.NoError(t, kb.Blind(ba, src))
	require.NoError(t, ka.Blind(ba, ba))
	require.Equal(t, ab, ba, "blinding commutes")

	require.ErrorIs(t, ka.Blind(make([]Element, 2), src[:3]), ErrLength)
	require.NoError(t, ka.Blind(nil, nil))
}

func TestLocalPartyRefusals(t *testing.T) {
	ctx := context.Background()
	p, err := NewLocalParty(testSecret(0), "job", testSpecHash, 1, numberedIDs(5))
	require.NoError(t, err)
	own, err := p.OwnElements(ctx, 0, 5)
	require.NoError(t, err)

	_, err = p.ReblindElements(ctx, 1, own)
	require.ErrorIs(t, err, ErrOwnList)
	_, err = p.ReblindElements(ctx, -1, own)
	require.ErrorIs(t, err, ErrRange)
	_, err = p.ReblindElements(ctx, 0, []Element{own[0], {1}})
	require.ErrorIs(t, err, ErrInvalidPoint)
	bad := own[0]
	bad[31] |= 0x80
	_, err = p.ReblindElements(ctx, 0, []Element{bad})
	require.ErrorIs(t, err, ErrNonCanonical)
	out, err := p.ReblindElements(ctx, 0, own)
	require.NoError(t, err)
	require.Len(t, out, 5)

	for _, r := range [][2]int{{-1, 1}, {0, -1}, {0, 6}, {5, 1}, {6, 0}, {1, math.MaxInt}, {math.MaxInt, 1}, {math.MinInt, 0}} {
		_, err := p.OwnElements(ctx, r[0], r[1])
		require.ErrorIs(t, err, ErrRange, "offset %d n %d", r[0], r[1])
	}
	got, err := p.OwnElements(ctx, 5, 0)
	require.NoError(t, err)
	require.Empty(t, got)
	got, err = p.OwnElements(ctx, 2, 3)
	require.NoError(t, err)
	require.Equal(t, own[2:], got, "chunks agree with the whole list")

	require.Nil(t, p.IDAt(-1))
	require.Nil(t, p.IDAt(5))

	_, err = NewLocalParty(testSecret(0), "job", testSpecHash, -1, nil)
	require.ErrorIs(t, err, ErrRange)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = p.OwnElements(cancelled, 0, 1)
	require.ErrorIs(t, err, context.Canceled)
	_, err = p.ReblindElements(cancelled, 0, own)
	require.ErrorIs(t, err, context.Canceled)
}

func TestLocalPartyDeterministicOrder(t *testing.T) {
	ctx := context.Background()
	ids := numberedIDs(30)
	shuffled := append([][]byte(nil), ids...)
	shuffled = append(shuffled, ids[3], ids[7], ids[3]) // duplicates
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })

	a, err := NewLocalParty(testSecret(0), "job", testSpecHash, 0, ids)
	require.NoError(t, err)
	b, err := NewLocalParty(testSecret(0), "job", testSpecHash, 0, shuffled)
	require.NoError(t, err)
	la, _ := a.Len(ctx)
	lb, _ := b.Len(ctx)
	require.Equal(t, 30, la)
	require.Equal(t, 30, lb, "duplicates dropped")
	var order []string
	for i := range la {
		require.Equal(t, a.IDAt(i), b.IDAt(i), "same secret and job: same order")
		order = append(order, string(a.IDAt(i)))
	}
	oa, err := a.OwnElements(ctx, 0, la)
	require.NoError(t, err)
	ob, err := b.OwnElements(ctx, 0, lb)
	require.NoError(t, err)
	require.Equal(t, oa, ob, "a retried Own gives the same answer")

	var sorted []string
	for _, id := range ids {
		sorted = append(sorted, string(id))
	}
	require.NotEqual(t, sorted, order, "the order is not the input's")

	orderOf := func(secret []byte, job string) []string {
		p, err := NewLocalParty(secret, job, testSpecHash, 0, ids)
		require.NoError(t, err)
		var o []string
		for i := range 30 {
			o = append(o, string(p.IDAt(i)))
		}
		return o
	}
	require.NotEqual(t, order, orderOf(testSecret(0), "job2"), "different job: different order")
	require.NotEqual(t, order, orderOf(testSecret(1), "job"), "different secret: different order")
	require.ElementsMatch(t, order, orderOf(testSecret(0), "job2"))

	// The party keeps its own copies.
	ids[0][0] = 'X'
	got := a.IDAt(0)
	got[0] = 'Y'
	for i := range la {
		require.NotContains(t, string(a.IDAt(i)), "X")
		require.NotContains(t, string(a.IDAt(i)), "Y")
	}
}
