package jobs

import (
	"context"
	"errors"
)

// Blobs is a small keyed store of opaque values that every coordinator on
// the same store sees (several coordinators can share one Redis): the key
// ceremony's public state and the release keys, sealed
// (coordinator/hefed). Each value has a version; a write names the version
// it replaces (0: none yet), so two coordinators cannot overwrite each
// other's state unknowingly.
type Blobs interface {
	// Blob returns the value under key and its version (ErrNoBlob if
	// none) — or, when the version is still `known`, only the version and
	// a nil value: a cheap check that a cached copy is current (known 0
	// always reads the value).
	Blob(ctx context.Context, key string, known int64) (value []byte, version int64, err error)
	// PutBlob stores value under key if the key's version is ifVersion
	// (0: absent), and returns the new version; otherwise it returns
	// ErrBlobVersion and changes nothing.
	PutBlob(ctx context.Context, key string, value []byte, ifVersion int64) (version int64, err error)
}

// Limits of Blobs.
const (
	MaxBlobKey   = 128
	MaxBlobBytes = 32 << 20
)

// Errors of Blobs.
var (
	ErrNoBlob      = errors.New("jobs: no such blob")
	ErrBlobVersion = errors.New("jobs: the blob changed since it was read")
	ErrBlob        = errors.New("jobs: invalid blob key or value")
)

// CheckBlob validates a key and value (both backends apply it).
func CheckBlob(key string, value []byte, ifVersion int64) error {
	if key == "" || len(key) > MaxBlobKey || ifVersion < 0 || len(value) > MaxBlobBytes {
		return ErrBlob
	}
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '/' || r == '-' || r == '_' || r == '.') {
			return ErrBlob
		}
	}
	return nil
}
