package redisstore

import (
	"context"
	"errors"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/unseen-data/unseen/jobs"
)

// putBlobScript stores a blob if its version is the expected one.
//
//	KEYS[1]  the blob (a hash: v = value, ver = version)
//	ARGV[1]  expected version (0: absent)   ARGV[2] value
//	returns  the new version, or -1 if the version differs
var putBlobScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'ver') or '0')
if cur ~= tonumber(ARGV[1]) then
  return -1
end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'ver', cur + 1)
return cur + 1
`)

func (k keys) blob(key string) string { return k.prefix + ":blob:" + key }

// Blob implements jobs.Blobs.
func (s *Store) Blob(ctx context.Context, key string, known int64) ([]byte, int64, error) {
	if err := jobs.CheckBlob(key, nil, 0); err != nil {
		return nil, 0, err
	}
	if err := s.usable(ctx); err != nil {
		return nil, 0, err
	}
	if known > 0 {
		// The version alone first: a cached copy is usually current, and
		// the value can be megabytes.
		vs, err := s.c.HGet(ctx, s.k.blob(key), "ver").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, 0, mapErr(ctx, "read blob version", err)
		}
		if vs == strconv.FormatInt(known, 10) {
			return nil, known, nil
		}
	}
	r, err := s.c.HMGet(ctx, s.k.blob(key), "v", "ver").Result()
	if err != nil {
		return nil, 0, mapErr(ctx, "read blob", err)
	}
	v, ok1 := r[0].(string)
	vs, ok2 := r[1].(string)
	if !ok1 || !ok2 {
		return nil, 0, jobs.ErrNoBlob
	}
	ver, err := strconv.ParseInt(vs, 10, 64)
	if err != nil || ver < 1 {
		return nil, 0, errors.New("redisstore: a blob's version is not a positive number")
	}
	return []byte(v), ver, nil
}

// PutBlob implements jobs.Blobs.
func (s *Store) PutBlob(ctx context.Context, key string, value []byte, ifVersion int64) (int64, error) {
	if err := jobs.CheckBlob(key, value, ifVersion); err != nil {
		return 0, err
	}
	if err := s.usable(ctx); err != nil {
		return 0, err
	}
	ver, err := putBlobScript.Run(ctx, s.c, []string{s.k.blob(key)}, ifVersion, value).Int64()
	if err != nil {
		return 0, mapErr(ctx, "write blob", err)
	}
	if ver < 0 {
		return 0, jobs.ErrBlobVersion
	}
	if s.waitAOF {
		// Durable like a submission: WAITAOF numlocal=1 numreplicas=0.
		if err := s.c.Do(ctx, "WAITAOF", 1, 0, 5000).Err(); err != nil {
			return 0, mapErr(ctx, "wait for the AOF", err)
		}
	}
	return ver, nil
}
