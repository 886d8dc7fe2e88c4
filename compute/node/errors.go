package node

import "fmt"

// Kind is what sort of refusal an Error is, whatever the transport: the
// transport answers each kind with its own status (Kind.Status).
type Kind int

const (
	// KindInternal: the node failed (a bug, a full disk), not the caller.
	KindInternal Kind = iota
	// KindBadRequest: malformed or out-of-range input.
	KindBadRequest
	// KindUnauthenticated: no valid coordinator credential.
	KindUnauthenticated
	// KindForbidden: the node's policy or the protocol forbids the request.
	KindForbidden
	// KindNotFound: an unknown dataset or ceremony.
	KindNotFound
	// KindConflict: out of step (stale attempt, not prepared, already
	// decrypted, another setup); the coordinator may retry after catching up.
	KindConflict
	// KindTooLarge: a request over its limit.
	KindTooLarge
	// KindBusy: too much in progress; retry later.
	KindBusy
	// KindUnavailable: the node cannot audit (or open its ledger), so it
	// serves nothing.
	KindUnavailable
)

var kindNames = [...]string{"internal", "bad_request", "unauthenticated", "forbidden", "not_found", "conflict", "too_large", "busy", "unavailable"}

func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// Status is the HTTP status the node protocol gives k. It is part of the
// protocol (nodeapi's client retries 409 and 429 and gives up on other
// 4xx), and refusals are audited with it, as they were before the
// transport was split off; nodehttp answers with it.
func (k Kind) Status() int {
	switch k {
	case KindBadRequest:
		return 400
	case KindUnauthenticated:
		return 401
	case KindForbidden:
		return 403
	case KindNotFound:
		return 404
	case KindConflict:
		return 409
	case KindTooLarge:
		return 413
	case KindBusy:
		return 429
	case KindUnavailable:
		return 503
	default:
		return 500
	}
}

// Error is every error the Service returns: a kind, a stable
// machine-readable code (the coordinator branches on it, e.g.
// "stale_attempt") and a message for people.
type Error struct {
	Kind    Kind
	Code    string
	Message string

	// logged marks a refusal that is already in the audit log with its
	// reasons, or that could not be (audit_unavailable): it is not recorded
	// again as a generic refusal.
	logged bool
	cause  error
}

func (e *Error) Error() string { return e.Message }

// Unwrap is the internal failure behind a KindInternal error.
func (e *Error) Unwrap() error { return e.cause }

// Errorf returns a refusal of the given kind and code.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// refuse is Errorf, short for the many refusals below.
func refuse(kind Kind, code, format string, args ...any) *Error {
	return Errorf(kind, code, format, args...)
}

// internal wraps a failure of the node itself.
func internal(err error) *Error {
	return &Error{Kind: KindInternal, Code: "internal", Message: err.Error(), cause: err}
}
