package nodehttp

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's Prometheus collectors.
type metrics struct {
	requests        *prometheus.CounterVec
	unauthenticated *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "unseen_node_requests_total", Help: "Requests answered, by route and status (401s are also counted apart).",
		}, []string{"route", "code"}),
		unauthenticated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "unseen_node_unauthenticated_requests_total", Help: "Requests refused for want of a valid coordinator token, by route (not in the audit log).",
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.unauthenticated)
	return m
}

// sampler lets one event through per interval and counts the others, so
// that a flood costs one log line a second.
type sampler struct {
	every time.Duration
	clock func() time.Time

	mu      sync.Mutex
	next    time.Time
	dropped int64
}

// allow reports whether this event may be logged and, if so, how many were
// suppressed since the last one that was.
func (s *sampler) allow() (bool, int64) {
	now := s.clock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Before(s.next) {
		s.dropped++
		return false, 0
	}
	n := s.dropped
	s.dropped, s.next = 0, now.Add(s.every)
	return true, n
}
