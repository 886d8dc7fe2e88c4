package coordinator

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/unseen-data/unseen/coordinator/hefed"
)

// The state key: made on the first start of a store without state (0600,
// beside the state), read back on later starts; the environment wins over
// the file; a malformed key is refused, not used.
func TestStateKey(t *testing.T) {
	t.Setenv(StateKeyEnv, "")
	c := writeConfig(t, "")
	path := c.HEStateKeyPath()
	if path != filepath.Join(c.dir, "state", "coordinator", "he-state.key") {
		t.Fatalf("default key path %s", path)
	}
	k, err := LoadStateKey(c, false, nil)
	if err != nil || k != nil {
		t.Fatalf("no file, no creation: %x %v", k, err)
	}
	k, err = LoadStateKey(c, true, nil)
	if err != nil || len(k) != hefed.StateKeySize {
		t.Fatalf("created: %x %v", k, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v %v", fi, err)
	}
	again, err := LoadStateKey(c, true, nil)
	if err != nil || !bytes.Equal(again, k) {
		t.Fatal("a second start made another key")
	}
	other := bytes.Repeat([]byte{7}, hefed.StateKeySize)
	t.Setenv(StateKeyEnv, base64.StdEncoding.EncodeToString(other))
	if got, err := LoadStateKey(c, false, nil); err != nil || !bytes.Equal(got, other) {
		t.Fatalf("the environment's key: %x %v", got, err)
	}
	t.Setenv(StateKeyEnv, base64.StdEncoding.EncodeToString(other[:16]))
	if _, err := LoadStateKey(c, false, nil); err == nil || !strings.Contains(err.Error(), StateKeyEnv) {
		t.Fatalf("a short key was accepted: %v", err)
	}
	t.Setenv(StateKeyEnv, "")
	if err := os.WriteFile(path, []byte("not base64!"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadStateKey(c, true, nil); err == nil {
		t.Fatal("a malformed key file was accepted")
	}
}

// A coordinator does not start on a store holding the key ceremony's
// state without the state key.
func TestNewRefusesStateWithoutKey(t *testing.T) {
	t.Setenv(StateKeyEnv, "")
	c := writeConfig(t, "")
	s, err := OpenStore(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.PutBlob(t.Context(), hefed.StateBlob, []byte(`{"version":2}`), 0); err != nil {
		t.Fatal(err)
	}
	_, err = New(c, s, nil)
	if !errors.Is(err, hefed.ErrStateKey) {
		t.Fatalf("started without the state key: %v", err)
	}
	if _, statErr := os.Stat(c.HEStateKeyPath()); !errors.Is(statErr, os.ErrNotExist) {
		t.Fatal("a key was made for a store that already holds state")
	}
}
