package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
	"github.com/unseen-data/unseen/audit"
)

// AuditLog is the coordinator's audit chain in Redis: entries in the stream
// P:audit, the last entry's seq and hash in the hash P:audit:head. It
// implements audit.Log; job transitions append to the same chain from inside
// their scripts, through the same head compare-and-set.
type AuditLog struct {
	c            redis.UniversalClient
	stream, head string
}

var _ audit.Log = (*AuditLog)(nil)

// NewAuditLog returns the audit chain kept under prefix (the store's
// Options.Prefix), for readers such as `unseen audit` that need no store.
func NewAuditLog(c redis.UniversalClient, prefix string) *AuditLog {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &AuditLog{c: c, stream: prefix + ":audit", head: prefix + ":audit:head"}
}

// maxSealTries bounds re-sealing when other appenders keep winning. Every
// retry follows someone else's successful append, so the chain always makes
// progress; the bound only stops one caller spinning forever.
const maxSealTries = 1000

var errHeadMoved = errors.New("redisstore: audit head moved")

// seal seals e after the current head and calls run with the audit script
// arguments (prev seq, prev hash, new seq, new hash, entry JSON) until run
// reports something other than errHeadMoved. It returns the sealed entry.
func (a *AuditLog) seal(ctx context.Context, e audit.Entry, run func(args []any) error) (audit.Entry, error) {
	for try := 0; try < maxSealTries; try++ {
		h, err := a.c.HMGet(ctx, a.head, "seq", "hash").Result()
		if err != nil {
			return audit.Entry{}, mapErr(ctx, "read audit head", err)
		}
		var prev *audit.Entry
		prevSeq, prevHash := "0", audit.GenesisHash
		if s, ok := h[0].(string); ok {
			seq, err := strconv.ParseUint(s, 10, 64)
			hash, _ := h[1].(string)
			if err != nil || len(hash) != len(audit.GenesisHash) {
				return audit.Entry{}, fmt.Errorf("redisstore: %w: head %q holds seq %q hash %q", audit.ErrBroken, a.head, s, hash)
			}
			prev = &audit.Entry{Seq: seq, Hash: hash}
			prevSeq, prevHash = s, hash
		}
		s := e
		s.Seal(prev)
		b := s.Encode()
		if len(b) > audit.MaxEntryBytes {
			return audit.Entry{}, fmt.Errorf("redisstore: audit entry larger than %d bytes", audit.MaxEntryBytes)
		}
		err = run([]any{prevSeq, prevHash, strconv.FormatUint(s.Seq, 10), s.Hash, string(b)})
		if !errors.Is(err, errHeadMoved) {
			return s, err
		}
		if err := ctx.Err(); err != nil {
			return audit.Entry{}, err
		}
	}
	return audit.Entry{}, fmt.Errorf("redisstore: audit head moved %d times in a row", maxSealTries)
}

// Append seals e after the chain's last entry and stores it. On any error
// nothing is stored.
func (a *AuditLog) Append(ctx context.Context, e audit.Entry) (audit.Entry, error) {
	return a.seal(ctx, e, func(args []any) error {
		code, err := appendScript.Run(ctx, a.c, []string{a.stream, a.head}, args...).Int64()
		switch {
		case err != nil:
			return mapErr(ctx, "append audit entry", err)
		case code == codeHeadMoved:
			return errHeadMoved
		case code != codeOK:
			return fmt.Errorf("redisstore: append audit entry: unexpected reply %d", code)
		}
		return nil
	})
}

// All returns the whole chain in order.
func (a *AuditLog) All(ctx context.Context) ([]audit.Entry, error) {
	const page = 1000
	var out []audit.Entry
	start := "-"
	for {
		msgs, err := a.c.XRangeN(ctx, a.stream, start, "+", page).Result()
		if err != nil {
			return nil, mapErr(ctx, "read audit chain", err)
		}
		for _, m := range msgs {
			s, _ := m.Values["e"].(string)
			e, err := audit.Decode([]byte(s))
			if err != nil {
				return nil, fmt.Errorf("redisstore: audit entry %s: %w", m.ID, err)
			}
			out = append(out, e)
		}
		if len(msgs) < page {
			return out, nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

// Entries returns the entries matching f, oldest first (the newest f.Limit
// if set).
func (a *AuditLog) Entries(ctx context.Context, f audit.Filter) ([]audit.Entry, error) {
	all, err := a.All(ctx)
	if err != nil {
		return nil, err
	}
	var out []audit.Entry
	for i := range all {
		if f.Match(&all[i]) {
			out = append(out, all[i])
		}
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[len(out)-f.Limit:]
	}
	return out, nil
}
