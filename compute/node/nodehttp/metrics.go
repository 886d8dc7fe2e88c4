package nodehttp

import (
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's Prometheus collectors.
type metrics struct {
	requests        *prometheus.CounterVec
	unauthenticated *prometheus.CounterVec
	// seconds is the time each route spends serving (read, decode, the
	// Service, encode, write): prepare is reading the source and hashing
	// the IDs to the curve, own and reblind are blinding, so a benchmark
	// reads its time split from their sums.
	seconds *prometheus.HistogramVec
	// wire counts the bytes of the node's connections (Handler.Listener),
	// TLS included.
	wire *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "unseen_node_requests_total", Help: "Requests answered, by route and status (401s are also counted apart).",
		}, []string{"route", "code"}),
		unauthenticated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "unseen_node_unauthenticated_requests_total", Help: "Requests refused for want of a valid coordinator token, by route (not in the audit log).",
		}, []string{"route"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "unseen_node_request_seconds", Help: "Time spent serving requests, by route (prepare: source read and hashing; own, reblind: blinding).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"route"}),
		wire: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "unseen_node_wire_bytes_total", Help: "Bytes read and written on the node's connections, by direction (in, out).",
		}, []string{"direction"}),
	}
	reg.MustRegister(m.requests, m.unauthenticated, m.seconds, m.wire)
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

// countingConn counts a connection's bytes into the wire counters.
type countingConn struct {
	net.Conn
	in, out prometheus.Counter
}

func (c *countingConn) Read(b []byte) (int, error) {
	k, err := c.Conn.Read(b)
	c.in.Add(float64(k))
	return k, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	k, err := c.Conn.Write(b)
	c.out.Add(float64(k))
	return k, err
}

type countingListener struct {
	net.Listener
	m *metrics
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, in: l.m.wire.WithLabelValues("in"), out: l.m.wire.WithLabelValues("out")}, nil
}
