package hefed

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/internal/securefile"
)

// legacyState is the version-1 state file an earlier coordinator wrote:
// release keys in the clear.
func legacyState(t *testing.T, ep *epoch) []byte {
	t.Helper()
	sf := stateFile{Version: 1, Epoch: ep.n, Ceremony: ep.ceremony, Threshold: ep.threshold, Nodes: ep.nodes, Created: ep.created, Sets: map[string]setFile{}}
	for name, ks := range ep.sets {
		f := setFile{CeremonyID: ks.setup.CeremonyID(), HPKE: map[string][]byte{}}
		for _, id := range ks.setup.Nodes() {
			f.HPKE[string(id)], _ = ks.setup.HPKEPublicKey(id)
		}
		var err error
		f.PublicKey, err = ks.pk.MarshalBinary()
		require.NoError(t, err)
		f.ReleaseKey, err = ks.rk.MarshalBinary()
		require.NoError(t, err)
		sf.Sets[name] = f
	}
	b, err := json.Marshal(sf)
	require.NoError(t, err)
	return b
}

// The ceremony's state is in the shared store, its release keys sealed
// under the state key; a coordinator without that key (or with another)
// does not start; a legacy he.json moves into the store; two coordinators
// on one store serve the same keys, and a ceremony one of them runs
// reaches the other.
func TestSharedState(t *testing.T) {
	ctx := context.Background()
	fx := start(t, 2, nodetest.Options{})
	ep, err := fx.c.epoch()
	require.NoError(t, err)

	t.Run("sealed at rest", func(t *testing.T) {
		raw, ver, err := fx.store.Blob(ctx, StateBlob, 0)
		require.NoError(t, err)
		require.Equal(t, int64(1), ver)
		t.Logf("the state in the store: %d bytes", len(raw))
		var sf stateFile
		require.NoError(t, json.Unmarshal(raw, &sf))
		require.Equal(t, 2, sf.Version)
		for _, name := range paramSets {
			require.Empty(t, sf.Sets[name].ReleaseKey, "no release key in the clear")
			require.NotEmpty(t, sf.Sets[name].Sealed)
			secret, err := ep.sets[name].rk.MarshalBinary()
			require.NoError(t, err)
			// No 64-byte window of the secret key appears in the store.
			n, err := ep.sets[name].ps.WireSize(he.LabelSecretKey, ep.sets[name].ps.MaxLevel())
			require.NoError(t, err)
			for off := 0; off+64 <= n; off += 4096 {
				require.False(t, bytes.Contains(raw, secret[off:off+64]), "%s secret key bytes at %d in the store", name, off)
			}
		}
		exists, err := StateExists(ctx, fx.store, "")
		require.NoError(t, err)
		require.True(t, exists)

		_, err = Open(ctx, Options{Blobs: fx.store, Nodes: fx.f.Clients})
		require.ErrorIs(t, err, ErrStateKey, "no key: refuse to start")
		_, err = Open(ctx, Options{Blobs: fx.store, Key: testStateKey(t), Nodes: fx.f.Clients})
		require.ErrorIs(t, err, ErrWrongStateKey, "another key: refuse to start")
		_, err = Open(ctx, Options{Blobs: fx.store, Key: []byte("short"), Nodes: fx.f.Clients})
		require.Error(t, err)
		// A sealed key moved to the other parameter set does not open.
		var swapped stateFile
		require.NoError(t, json.Unmarshal(raw, &swapped))
		s, q := swapped.Sets[he.NameSums], swapped.Sets[he.NameSquares]
		s.Sealed, q.Sealed = q.Sealed, s.Sealed
		swapped.Sets[he.NameSums], swapped.Sets[he.NameSquares] = s, q
		b, err := json.Marshal(swapped)
		require.NoError(t, err)
		_, err = decodeState(b, fx.key)
		require.ErrorIs(t, err, ErrWrongStateKey)
	})

	t.Run("legacy file migrated", func(t *testing.T) {
		dir := t.TempDir()
		legacy := filepath.Join(dir, "he.json")
		require.NoError(t, securefile.Write(legacy, legacyState(t, ep)))
		store := testStore(t)
		exists, err := StateExists(ctx, store, legacy)
		require.NoError(t, err)
		require.True(t, exists, "a legacy file is state too: the key is needed")
		_, err = Open(ctx, Options{Blobs: store, Legacy: legacy, Nodes: fx.f.Clients})
		require.ErrorIs(t, err, ErrStateKey)
		_, statErr := os.Stat(legacy)
		require.NoError(t, statErr, "nothing moved without a key")

		key := testStateKey(t)
		c, err := Open(ctx, Options{Blobs: store, Key: key, Legacy: legacy, Nodes: fx.f.Clients})
		require.NoError(t, err)
		_, statErr = os.Stat(legacy)
		require.ErrorIs(t, statErr, os.ErrNotExist, "the clear-text file is gone")
		got, err := c.epoch()
		require.NoError(t, err)
		require.Equal(t, ep.ceremony, got.ceremony)
		for _, name := range paramSets {
			require.True(t, got.sets[name].rk.PublicKey().Equal(ep.sets[name].rk.PublicKey()))
		}
		// The migrated coordinator computes with the nodes' keys.
		st, err := c.Aggregate(ctx, JobRef{ID: "migrated", Attempt: 1, Spec: aggregateSpec([]string{"count", "sum"}, false), Requester: alice})
		require.NoError(t, err)
		requireStats(t, wantAggregate(false, false), st)
		// Reopened: the store is read, a new legacy file is ignored.
		require.NoError(t, securefile.Write(legacy, []byte("{}")))
		_, err = Open(ctx, Options{Blobs: store, Key: key, Legacy: legacy, Nodes: fx.f.Clients})
		require.NoError(t, err)
	})

	t.Run("two coordinators, one store", func(t *testing.T) {
		other, err := Open(ctx, Options{Blobs: fx.store, Key: fx.key, Nodes: fx.f.Clients})
		require.NoError(t, err)
		st, err := fx.c.Init(ctx, 3)
		require.NoError(t, err)
		// The other coordinator serves the new ceremony at its next job.
		got, err := other.Aggregate(ctx, JobRef{ID: "other-1", Attempt: 1, Spec: aggregateSpec([]string{"count", "variance"}, true), Requester: alice})
		require.NoError(t, err)
		requireStats(t, wantAggregate(true, true), got)
		ost, err := other.Status(ctx)
		require.NoError(t, err)
		require.Equal(t, st.Ceremony, ost.Ceremony)
		require.Equal(t, 3, ost.Threshold)

		// A ceremony saved over a version another coordinator has moved
		// past is refused; the newer state stands.
		stale, err := Open(ctx, Options{Blobs: fx.store, Key: fx.key, Nodes: fx.f.Clients})
		require.NoError(t, err)
		_, err = other.Init(ctx, 2)
		require.NoError(t, err)
		sep, _ := stale.epoch()
		err = stale.save(ctx, sep)
		require.ErrorIs(t, err, ErrConcurrentCeremony)
		now, _ := stale.epoch()
		oep, _ := other.epoch()
		require.Equal(t, oep.ceremony, now.ceremony, "the refused coordinator took the newer state")
		_, ver, err := fx.store.Blob(ctx, StateBlob, 0)
		require.NoError(t, err)
		require.Equal(t, int64(3), ver)
	})
}
