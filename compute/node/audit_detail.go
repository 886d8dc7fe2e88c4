package node

// What the node's audit log records. Every served request is recorded
// before its answer exists (fail closed: if the entry cannot be written the
// request is not served), and every authenticated refusal is recorded too,
// with the caller's address. Unauthenticated requests are not: anyone can
// send them (see Authenticate).

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/filter"
)

// record appends an audit entry; failure means the request is not served.
func (s *Service) record(ctx context.Context, c Caller, action, job string, datasets []string, detail map[string]string) error {
	_, err := s.audit.Append(ctx, audit.Entry{Time: s.clock(), Actor: c.Actor, Role: "coordinator", Action: action, Job: job, Datasets: datasets, Detail: detail})
	if err != nil {
		s.log.Error("audit append failed; refusing request", "action", action, "err", err)
		e := refuse(KindUnavailable, "audit_unavailable", "the node cannot write its audit log, so it serves nothing")
		e.logged = true // there is nowhere to record it
		return e
	}
	return nil
}

// refused records err as a refusal for reason under action (fail closed:
// if that fails, the audit error is returned instead) and returns err as an
// *Error that settle will not record again.
func (s *Service) refused(ctx context.Context, c Caller, action, job string, ds []string, detail map[string]string, reason string, err error) error {
	if aerr := s.record(ctx, c, action, job, ds, refusal(c, detail, reason)); aerr != nil {
		return aerr
	}
	e, ok := err.(*Error)
	if !ok {
		e = internal(err)
	}
	e.logged = true
	return e
}

// refusedStep is refused under "<step>.refused", with the error as reason.
func (s *Service) refusedStep(ctx context.Context, c Caller, step nodeapi.Step, job string, ds []string, detail map[string]string, err error) error {
	return s.refused(ctx, c, string(step)+".refused", job, ds, detail, err.Error(), err)
}

// settle is the last word on every method's error: a refusal that no step
// recorded with its reasons is recorded as "request.refused" — every refused
// request is in the log, not only policy refusals: a stale attempt or a
// forged element is what an auditor looks for. path names the endpoint.
// The error returned is always an *Error.
func (s *Service) settle(ctx context.Context, c Caller, path string, err error) error {
	if err == nil {
		return nil
	}
	e, typed := err.(*Error)
	if typed && e.logged {
		return e
	}
	d := map[string]string{"path": path, "error": err.Error()}
	if typed {
		d["code"], d["status"] = e.Code, fmt.Sprint(e.Kind.Status())
	}
	if c.Remote != "" {
		d["remote"] = c.Remote
	}
	if aerr := s.record(ctx, c, "request.refused", "", nil, d); aerr != nil {
		return aerr
	}
	if !typed {
		e = internal(err)
	}
	e.logged = true
	return e
}

// RecordRefusal records a refusal the transport made for the endpoint at
// path before the Service saw the request (a body it could not decode), as
// the Service records its own, and returns the error to answer with.
func (s *Service) RecordRefusal(ctx context.Context, c Caller, path string, err error) error {
	return s.settle(ctx, c, path, err)
}

// refusal is d with the reason for a refusal and the caller's address.
func refusal(c Caller, d map[string]string, reason string) map[string]string {
	out := make(map[string]string, len(d)+2)
	maps.Copy(out, d)
	out["reason"] = reason
	if c.Remote != "" {
		out["remote"] = c.Remote
	}
	return out
}

// withReason is d with a reason, for a served request's note ("retry").
func withReason(d map[string]string, reason string) map[string]string {
	out := maps.Clone(d)
	if out == nil {
		out = map[string]string{}
	}
	out["reason"] = reason
	return out
}

// jobDetail is what every audit entry of a job's step records: its purpose
// (purpose limitation), type, requester and attempt.
func jobDetail(spec *policy.Spec, req policy.Requester, attempt int) map[string]string {
	return map[string]string{
		"purpose":   spec.Purpose,
		"type":      string(spec.Type),
		"requester": req.User,
		"req_dept":  req.Department,
		"attempt":   fmt.Sprint(attempt),
	}
}

// inputDetail adds which of the input's columns the job uses. A filter can
// name a person (id_number = '…'): the log keeps its columns and a MAC of
// its text, never the text.
func (s *Service) inputDetail(detail map[string]string, spec *policy.Spec, in policy.Input) {
	columnsUsed(detail, spec, in)
	if in.Filter != "" {
		detail["filter_hmac"] = s.sealer.Seal(in.Filter)
		if e, err := filter.Parse(in.Filter); err == nil {
			detail["filter_columns"] = strings.Join(filter.Columns(e), ",")
		}
	}
}

// columnsUsed records, for lineage, which of the input's columns a job
// uses as key, value and group (the filter's are recorded apart).
func columnsUsed(detail map[string]string, spec *policy.Spec, in policy.Input) {
	if in.Key != "" {
		detail["key"] = in.Key
	}
	mine := func(r *policy.ColumnRef) bool { return r != nil && (r.Dataset == "" || r.Dataset == in.Dataset) }
	if mine(spec.Value) {
		detail["value"] = spec.Value.Column
	}
	if mine(spec.GroupBy) {
		detail["group_by"] = spec.GroupBy.Column
	}
}

// ceremonyDetail is what every key-ceremony entry records.
func ceremonyDetail(h nodeapi.CeremonyHeader, nodes []string, threshold int) map[string]string {
	d := map[string]string{"ceremony": h.Ceremony, "params": h.Params}
	if nodes != nil {
		d["nodes"] = strings.Join(nodes, ",")
		d["threshold"] = fmt.Sprint(threshold)
	}
	return d
}
