package coordinator

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/unseen-data/unseen/coordinator/hefed"
	"github.com/unseen-data/unseen/internal/securefile"
)

// StateKeyEnv, if set, holds the state key (base64 of 32 bytes) and takes
// precedence over the configuration's he_state_key file.
const StateKeyEnv = "UNSEEN_HE_STATE_KEY"

// HEStateKeyPath is the resolved state key file: he_state_key, or
// he-state.key beside he_state.
func (c *Config) HEStateKeyPath() string {
	if c.HEStateKey != "" {
		return c.HEStateKey
	}
	if c.HEState != "" {
		return filepath.Join(filepath.Dir(c.HEState), "he-state.key")
	}
	return filepath.Join(c.dir, "state", "coordinator", "he-state.key")
}

// LoadStateKey returns the key that seals the release keys in the shared
// store: from StateKeyEnv, else from the configured file. When neither
// has one and create is set (no state exists yet), it makes a fresh key
// in the file (0600). Otherwise it returns nil: hefed then refuses to
// start if state exists. Coordinators sharing one store must share the
// key (copy the file, or set the variable from a secret store).
func LoadStateKey(cfg *Config, create bool, log *slog.Logger) ([]byte, error) {
	if v := os.Getenv(StateKeyEnv); v != "" {
		k, err := decodeStateKey(v)
		if err != nil {
			return nil, fmt.Errorf("coordinator: %s: %w", StateKeyEnv, err)
		}
		return k, nil
	}
	path := cfg.HEStateKeyPath()
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 && log != nil {
			log.Warn("the state key file is readable by others; it should be mode 0600", "file", path)
		}
		k, err := decodeStateKey(string(b))
		if err != nil {
			return nil, fmt.Errorf("coordinator: state key %s: %w", path, err)
		}
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("coordinator: state key: %w", err)
	case !create:
		return nil, nil
	}
	k := make([]byte, hefed.StateKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := securefile.Write(path, []byte(base64.StdEncoding.EncodeToString(k)+"\n")); err != nil {
		return nil, fmt.Errorf("coordinator: writing a new state key: %w", err)
	}
	if log != nil {
		log.Info("made a new state key for the release keys; other coordinators on the same store need a copy", "file", path)
	}
	return k, nil
}

func decodeStateKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("not base64")
	}
	if len(k) != hefed.StateKeySize {
		return nil, fmt.Errorf("%d bytes, want %d", len(k), hefed.StateKeySize)
	}
	return k, nil
}
