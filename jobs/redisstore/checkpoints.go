package redisstore

import (
	"context"
	"fmt"
	"strconv"

	"github.com/unseen-data/unseen/jobs"
)

// Checkpoints are one hash per job, P:{<id>}:chunks, in the job's slot.
// SaveChunk is saveChunkScript (fenced by attempt); the transition script
// deletes the hash when the job can no longer run. A save is not waited
// for on the AOF (unlike a submission): a checkpoint lost in a crash only
// means that chunk is computed again.

var _ jobs.Checkpoints = (*Store)(nil)

// SaveChunk implements jobs.Checkpoints.
func (s *Store) SaveChunk(ctx context.Context, job string, attempt int, key string, data []byte) error {
	if err := jobs.CheckChunk(key, data); err != nil {
		return err
	}
	if err := s.usable(ctx); err != nil {
		return err
	}
	if !jobs.ValidID(job) {
		return fmt.Errorf("%w: %q", jobs.ErrNotFound, job)
	}
	code, err := saveChunkScript.Run(ctx, s.c, []string{s.k.job(job), s.k.chunks(job)}, strconv.Itoa(attempt), key, data).Int64()
	if err != nil {
		return mapErr(ctx, "save checkpoint", err)
	}
	return leaseCode(code, job, attempt)
}

// LoadChunks implements jobs.Checkpoints.
func (s *Store) LoadChunks(ctx context.Context, job string) (map[string][]byte, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	if !jobs.ValidID(job) {
		return out, nil
	}
	m, err := s.c.HGetAll(ctx, s.k.chunks(job)).Result()
	if err != nil {
		return nil, mapErr(ctx, "load checkpoints", err)
	}
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out, nil
}

// DeleteChunks implements jobs.Checkpoints.
func (s *Store) DeleteChunks(ctx context.Context, job string) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	if !jobs.ValidID(job) {
		return nil
	}
	return mapErr(ctx, "delete checkpoints", s.c.Del(ctx, s.k.chunks(job)).Err())
}
