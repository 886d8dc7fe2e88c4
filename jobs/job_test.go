package jobs

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The state machine as written in the package doc, edge by edge.
func TestStateMachine(t *testing.T) {
	want := map[State][]State{
		Submitted:       {AwaitingConsent, Queued, Rejected, Failed, Cancelled, Expired},
		AwaitingConsent: {AwaitingConsent, Queued, Rejected, Failed, Cancelled, Expired},
		Queued:          {Running, Rejected, Failed, Cancelled, Expired},
		Running:         {Running, Queued, AwaitingReview, Rejected, Failed, Cancelled, Expired, Retryable, DeadLetter},
		AwaitingReview:  {Released, Rejected, Failed, Cancelled, Expired},
		Retryable:       {Queued, Rejected, Failed, Cancelled, Expired},
		DeadLetter:      {Queued, Cancelled},
	}
	n := 0
	for _, from := range States {
		for _, to := range States {
			legal := false
			for _, x := range want[from] {
				legal = legal || x == to
			}
			require.Equal(t, legal, CanTransition(from, to), "%s → %s", from, to)
			if legal {
				n++
			}
		}
	}
	require.Equal(t, 38, n)
	for _, s := range []State{Released, Rejected, Failed, Cancelled, Expired} {
		require.True(t, s.Final(), s)
		require.True(t, s.Settled(), s)
	}
	for _, s := range []State{Queued, Running, AwaitingConsent, Retryable} {
		require.False(t, s.Settled(), s)
	}
	require.True(t, AwaitingReview.Settled())
	require.True(t, DeadLetter.Settled())
	require.False(t, DeadLetter.Final())
	require.False(t, State("nope").Valid())
}

func TestChangeCheck(t *testing.T) {
	require.ErrorIs(t, Change{From: Queued, To: Released, Actor: "a"}.Check(), ErrIllegal)
	require.Error(t, Change{From: Queued, To: Running}.Check(), "no actor")
	require.Error(t, Change{From: Running, To: AwaitingReview, Actor: "w", Result: []byte("{}")}.Check(), "results only on release")
	require.NoError(t, Change{From: AwaitingReview, To: Released, Actor: "r", Result: []byte("{}")}.Check())
	at := time.Date(2025, 3, 1, 10, 41, 7, 0, time.UTC)
	require.NoError(t, Change{From: Running, To: Retryable, Actor: "w", RetryAt: at, Waiting: "node b down"}.Check())
	require.Error(t, Change{From: Running, To: Retryable, Actor: "w"}.Check(), "retryable needs a retry time")
	require.Error(t, Change{From: Running, To: Queued, Actor: "w", RetryAt: at}.Check(), "a retry time only on → retryable")
	require.Error(t, Change{From: Running, To: Failed, Actor: "w", Waiting: "x"}.Check(), "waiting only on → retryable")
}

func TestIDs(t *testing.T) {
	id := NewID()
	require.True(t, ValidID(id), id)
	require.NotEqual(t, id, NewID())
	for _, bad := range []string{"", "j_", "x_aaaaaaaaaaaaaaaaaaaaaaaaaa", "j_AAAAAAAAAAAAAAAAAAAAAAAAAA", "j_aaaaaaaaaaaaaaaaaaaaaaaaa1", "j_../../../etc/passwdaaaaaaa"} {
		require.False(t, ValidID(bad), bad)
	}
}
