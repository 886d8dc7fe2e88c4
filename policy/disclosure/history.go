package disclosure

import (
	"errors"
	"sync"
	"time"

	"github.com/unseen-data/unseen/policy/disclosure/iblt"
)

// History is a node's memory of the inputs of recent jobs, one sketch per
// (dataset, job), for differencing detection: a new job's filtered input
// is compared with each earlier one of the same dataset within the window.
// It is in memory; a node persists entries with iblt's MarshalBinary.
type History struct {
	// Window is how long a job's sketch is kept (default 90 days).
	Window time.Duration
	// PerDataset bounds the sketches kept per dataset (default 256, about
	// 3.6 MB); the oldest go first.
	PerDataset int
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu      sync.Mutex
	entries map[string][]historyEntry
}

type historyEntry struct {
	job    string
	at     time.Time
	sketch *iblt.Sketch
}

// Defaults of History.
const (
	DefaultWindow     = 90 * 24 * time.Hour
	DefaultPerDataset = 256
)

func (h *History) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *History) window() time.Duration {
	if h.Window > 0 {
		return h.Window
	}
	return DefaultWindow
}

// expire drops entries older than the window; h.mu is held.
func (h *History) expire(dataset string, now time.Time) []historyEntry {
	es := h.entries[dataset]
	i := 0
	for i < len(es) && now.Sub(es[i].at) > h.window() {
		i++
	}
	es = es[i:]
	if h.entries != nil {
		h.entries[dataset] = es
	}
	return es
}

// Compare returns the earlier jobs on dataset whose sketched input differs
// from s by fewer than k people (and by at least one).
func (h *History) Compare(dataset string, s *iblt.Sketch, k int) []Overlap {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Overlap
	for _, e := range h.expire(dataset, h.now()) {
		if d, small := iblt.SmallDifference(s, e.sketch, k); small {
			out = append(out, Overlap{Job: e.job, Dataset: dataset, Difference: d})
		}
	}
	return out
}

// Add records job's sketch of its input of dataset, at the clock's time.
func (h *History) Add(dataset, job string, s *iblt.Sketch) error {
	if s == nil || job == "" {
		return errors.New("disclosure: history needs a job and its sketch")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.entries == nil {
		h.entries = map[string][]historyEntry{}
	}
	now := h.now()
	es := append(h.expire(dataset, now), historyEntry{job: job, at: now, sketch: s})
	limit := h.PerDataset
	if limit <= 0 {
		limit = DefaultPerDataset
	}
	if len(es) > limit {
		es = es[len(es)-limit:]
	}
	h.entries[dataset] = es
	return nil
}
