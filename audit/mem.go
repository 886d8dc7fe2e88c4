package audit

import (
	"context"
	"sync"
)

// MemLog is an in-memory chain, for tests and the demo's throwaway runs.
type MemLog struct {
	mu  sync.Mutex
	all []Entry
	// Fail, when set, makes Append fail: a test's stand-in for a full disk.
	Fail error
}

// Append seals and stores e.
func (l *MemLog) Append(ctx context.Context, e Entry) (Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Fail != nil {
		return Entry{}, l.Fail
	}
	var prev *Entry
	if n := len(l.all); n > 0 {
		prev = &l.all[n-1]
	}
	e.Seal(prev)
	l.all = append(l.all, e)
	return e, nil
}

// Entries returns the entries matching f.
func (l *MemLog) Entries(ctx context.Context, f Filter) ([]Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return filterEntries(l.all, f), nil
}

// Head is the last entry's sequence number and hash.
func (l *MemLog) Head(ctx context.Context) (Head, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return HeadOf(l.all), nil
}

// All returns a copy of the chain.
func (l *MemLog) All(ctx context.Context) ([]Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Entry(nil), l.all...), nil
}
