package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/unseen-data/unseen/compute/nodeapi"
)

// Retry is how transient failures are retried: exponential backoff from
// BaseDelay, doubling, capped at MaxDelay, for at most Attempts runs.
type Retry struct {
	// Attempts is how many runs may end in a transient failure; the one
	// that reaches it dead-letters the job. Default 12.
	Attempts int
	// BaseDelay is the wait after the first failure; default 2 s.
	BaseDelay time.Duration
	// MaxDelay caps the wait; default 1 min.
	MaxDelay time.Duration
}

// Default retry schedule: waits of about 2, 4, 8, 16, 32 s and then 1 min,
// eleven of them: at least 5 min 16 s (with the jitter at its lowest)
// before a job is dead-lettered, so a node restart of a few minutes is
// ridden out.
const (
	DefaultAttempts  = 12
	DefaultBaseDelay = 2 * time.Second
	DefaultMaxDelay  = time.Minute
)

func (p Retry) withDefaults() Retry {
	if p.Attempts <= 0 {
		p.Attempts = DefaultAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultBaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultMaxDelay
	}
	p.BaseDelay = min(p.BaseDelay, p.MaxDelay)
	return p
}

// Ceiling is the wait after the n-th transient failure before jitter:
// BaseDelay·2^(n-1), capped at MaxDelay.
func (p Retry) Ceiling(n int) time.Duration {
	p = p.withDefaults()
	d := p.BaseDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	return min(d, p.MaxDelay)
}

// Delay is the wait after the n-th transient failure: Ceiling(n) less up
// to a quarter of it at random, so jobs failing together spread out.
func (p Retry) Delay(n int) time.Duration {
	d := p.Ceiling(n)
	return d - time.Duration(rand.Int64N(int64(d/4)+1))
}

// nodePrefix finds the department in a node client's error ("node b: …").
var nodePrefix = regexp.MustCompile(`node ([A-Za-z0-9_]+): `)

// WaitingFor says in a few words what a transient failure waits for, for a
// retryable job's status: "node housing unreachable (connection refused)".
func WaitingFor(err error) string {
	var re *nodeapi.RemoteError
	if errors.As(err, &re) {
		return fmt.Sprintf("node %s answered %d (%s)", re.Department, re.Status, re.Code)
	}
	who := "a node"
	if m := nodePrefix.FindStringSubmatch(err.Error()); m != nil {
		who = "node " + m[1]
	}
	var dns *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return who + " unreachable (connection refused)"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return who + " unreachable (no route to host)"
	case errors.As(err, &dns):
		return who + " unreachable (its name does not resolve)"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return who + " dropped the connection"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return who + " timed out"
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if len(msg) > 200 {
		n := 200
		for !utf8.RuneStart(msg[n]) {
			n--
		}
		msg = msg[:n] + "…"
	}
	return "a transient failure: " + msg
}
