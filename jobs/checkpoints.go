package jobs

import (
	"context"
	"errors"
)

// Checkpoints keep a running job's completed pieces of work (PSI chunks'
// tokens) so that a later attempt — after a reclaim, a hand-back or a
// retry — resumes from them instead of starting over.
//
// Writes are fenced like every other write of a worker: SaveChunk succeeds
// only while the job is running at the caller's attempt, and otherwise
// returns ErrLeaseLost and changes nothing, so a worker that lost its lease
// cannot plant chunks for the next attempt. Reads are not fenced: a new
// attempt reads what earlier attempts saved (and its own).
//
// A job's checkpoints are deleted, atomically with the transition, when it
// enters a state from which it can never run again (Resumable false:
// awaiting_review and the final states), and on DeleteChunks.
//
// Storage: a PSI chunk's tokens are 16 bytes per element, so a job keeps
// up to 16 bytes per element of every list (2 lists of 2^20 elements: 32
// MiB) until it leaves running for good. boltstore keeps each chunk in a
// file beside its database file (the database holds only an index);
// redisstore keeps them in one hash per job, in Redis memory.
type Checkpoints interface {
	// SaveChunk stores data under key for the job, if the job is running
	// at attempt (ErrLeaseLost otherwise; ErrNotFound if there is no such
	// job). A key saved again — by this attempt or a later one — is
	// replaced.
	SaveChunk(ctx context.Context, job string, attempt int, key string, data []byte) error
	// LoadChunks returns every chunk saved for the job, by key (empty if
	// none).
	LoadChunks(ctx context.Context, job string) (map[string][]byte, error)
	// DeleteChunks drops every chunk of the job (no error if none).
	DeleteChunks(ctx context.Context, job string) error
}

// Limits of Checkpoints.
const (
	MaxChunkKey   = 128
	MaxChunkBytes = 16 << 20
)

// ErrChunk is returned for a malformed checkpoint key or an oversized value.
var ErrChunk = errors.New("jobs: invalid checkpoint key or value")

// CheckChunk validates a checkpoint's key and value (both backends apply
// it). Keys are short and of a file-name-safe alphabet: boltstore names
// files by them.
func CheckChunk(key string, data []byte) error {
	if key == "" || len(key) > MaxChunkKey || len(data) > MaxChunkBytes || key[0] == '.' {
		return ErrChunk
	}
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return ErrChunk
		}
	}
	return nil
}

// Resumable reports whether a job in s can still run (again): only then
// are its checkpoints worth keeping. A job awaiting review or in a final
// state never runs again.
func (s State) Resumable() bool { return s != AwaitingReview && !s.Final() }
