// Package node is a department's compute endpoint. It holds the
// department's datasets and secret, answers the coordinator's protocol steps
// and nothing else, checks every job against its own copy of its own policy
// (it never trusts the coordinator's check), and writes every request it
// serves — and every one it refuses — to its own hash-chained audit log.
//
// Who learns what: the node learns the job spec and the sizes of the other
// parties' filtered lists (it reblinds them), never another party's IDs; the
// coordinator learns the size of the node's filtered list and blinded points.
package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/hkdf"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/filter"
	"github.com/unseen-data/unseen/psi"
	"github.com/unseen-data/unseen/psi/delivery"
)

// SessionTTL is how long a prepared job's state is kept without requests.
const SessionTTL = time.Hour

// MaxParties bounds the parties of one job.
const MaxParties = 8

// Server is a running node.
type Server struct {
	cfg      *Config
	catalog  policy.Catalog
	tables   map[string]*Table
	secret   []byte
	audit    audit.Log
	sealer   *audit.Sealer
	tokenSum []byte
	clock    func() time.Time
	log      *slog.Logger

	he *heState // homomorphic keys and ledger (he.go)

	mu       sync.Mutex
	sessions map[string]*session
}

type session struct {
	attempt   int
	input     int
	self      int
	dataset   string
	spec      policy.Spec
	requester policy.Requester
	party     *psi.LocalParty
	used      time.Time
}

// Options are a node's dependencies; zero values get defaults.
type Options struct {
	Audit  audit.Log        // default: the file in the config
	Clock  func() time.Time // default: time.Now
	Logger *slog.Logger
	// FS, if set, is where dataset files are read from (the demo's embedded
	// examples); otherwise the operating system's files.
	FS fs.FS
}

// New loads the node's datasets and secret and returns a server.
func New(cfg *Config, opts Options) (*Server, error) {
	s := &Server{cfg: cfg, catalog: policy.Catalog{}, tables: map[string]*Table{}, sessions: map[string]*session{}, clock: opts.Clock, log: opts.Logger, audit: opts.Audit}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("node", cfg.Department)
	var err error
	if s.secret, err = LoadOrCreateSecret(cfg.Path(cfg.SecretFile)); err != nil {
		return nil, err
	}
	s.tokenSum, _ = hex.DecodeString(cfg.CoordinatorTokenSHA256)
	if s.he, err = newHEState(cfg, s.tokenSum, s.log); err != nil {
		return nil, err
	}
	sealKey := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, s.secret, nil, []byte("unseen/node/audit-hmac/v1")), sealKey); err != nil {
		return nil, err
	}
	if s.sealer, err = audit.NewSealer(sealKey); err != nil {
		return nil, err
	}
	if s.audit == nil {
		// Like the secret's folder (and the coordinator's audit folder), the
		// log's folder is created if missing.
		if err := os.MkdirAll(filepath.Dir(cfg.Path(cfg.AuditLog)), 0o700); err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
		fl, err := audit.OpenFile(cfg.Path(cfg.AuditLog))
		if err != nil {
			return nil, err
		}
		s.audit = fl
	}
	for i := range cfg.Datasets {
		dc := &cfg.Datasets[i]
		path := cfg.Path(dc.File)
		if opts.FS != nil {
			path = cfg.FSPath(dc.File)
		}
		t, err := LoadTable(dc, path, opts.FS)
		if err != nil {
			return nil, err
		}
		s.tables[dc.Name] = t
		d := dc.Dataset
		s.catalog[d.Name] = &d
		s.log.Info("dataset loaded", "dataset", d.Name, "rows", t.Len(), "invalid_ids", t.InvalidIDs())
	}
	return s, nil
}

// Department is the node's department.
func (s *Server) Department() string { return s.cfg.Department }

// Audit is the node's audit log.
func (s *Server) Audit() audit.Log { return s.audit }

// Handler returns the node's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+nodeapi.PathHealth, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "department": s.cfg.Department})
	})
	mux.HandleFunc("GET "+nodeapi.PathDatasets, s.auth(s.datasets))
	mux.HandleFunc("POST "+nodeapi.PathPrepare, s.auth(s.prepare))
	mux.HandleFunc("POST "+nodeapi.PathOwn, s.auth(s.own))
	mux.HandleFunc("POST "+nodeapi.PathReblind, s.auth(s.reblind))
	mux.HandleFunc("POST "+nodeapi.PathMembers, s.auth(s.members))
	mux.HandleFunc("POST "+nodeapi.PathFinish, s.auth(s.finish))
	mux.HandleFunc("POST "+nodeapi.PathOutcome, s.auth(s.outcome))
	mux.HandleFunc("POST "+nodeapi.PathKeysBegin, s.heAuth(s.keysBegin))
	mux.HandleFunc("POST "+nodeapi.PathKeysShares, s.heAuth(s.keysShares))
	mux.HandleFunc("POST "+nodeapi.PathKeysFinish, s.heAuth(s.keysFinish))
	mux.HandleFunc("GET "+nodeapi.PathKeysStatus, s.heAuth(s.keysStatus))
	mux.HandleFunc("POST "+nodeapi.PathHEGroups, s.heAuth(s.heGroups))
	mux.HandleFunc("POST "+nodeapi.PathHEAggregate, s.heAuth(s.heAggregate))
	mux.HandleFunc("POST "+nodeapi.PathHEValues, s.heAuth(s.heValues))
	mux.HandleFunc("POST "+nodeapi.PathHEZeroMask, s.heAuth(s.heZeroMask))
	mux.HandleFunc("POST "+nodeapi.PathHERelease, s.heAuth(s.heRelease))
	return mux
}

// HTTPServer wraps the handler with explicit timeouts.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Addr:              s.cfg.Listen,
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
}

// apiError is a refusal with an HTTP status and a stable code. noted
// marks a refusal already written to the audit log with its reasons; every
// other refusal is logged generically by the handler wrapper.
type apiError struct {
	status int
	code   string
	msg    string
	noted  bool
}

func (e *apiError) audited() *apiError { e.noted = true; return e }

func (e *apiError) Error() string { return e.msg }

func refuse(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{status: http.StatusInternalServerError, code: "internal", msg: err.Error()}
	}
	var e nodeapi.Error
	e.Error.Code, e.Error.Message = ae.code, ae.msg
	writeJSON(w, ae.status, e)
}

// auth guards the PSI routes.
func (s *Server) auth(h func(r *http.Request) (any, error)) http.HandlerFunc {
	return s.guard(nodeapi.MaxBodyBytes, h)
}

// guard checks the coordinator's token, bounds the body to limit, runs h
// and audits every refusal that h did not already record with its reasons.
func (s *Server) guard(limit int64, h func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(sum[:], s.tokenSum) != 1 {
			_, aerr := s.record(r.Context(), "auth.refused", "", nil, map[string]string{"path": r.URL.Path})
			if aerr != nil {
				writeError(w, aerr)
				return
			}
			writeError(w, refuse(http.StatusUnauthorized, "unauthenticated", "a valid coordinator token is required"))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		out, err := h(r)
		if err != nil {
			// Every refused request is in the log, not only policy refusals:
			// a stale attempt or a forged element is what an auditor looks for.
			var ae *apiError
			var noted heNoted
			isAPI := errors.As(err, &ae)
			if !errors.As(err, &noted) && (!isAPI || !ae.noted && ae.code != "audit_unavailable") {
				d := map[string]string{"path": r.URL.Path, "error": err.Error()}
				if isAPI {
					d["code"], d["status"] = ae.code, fmt.Sprint(ae.status)
				}
				if _, aerr := s.record(r.Context(), "request.refused", "", nil, d); aerr != nil {
					err = aerr
				}
			}
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// record appends an audit entry; failure means the request is not served.
func (s *Server) record(ctx context.Context, action, job string, datasets []string, detail map[string]string) (audit.Entry, error) {
	e, err := s.audit.Append(ctx, audit.Entry{Time: s.clock(), Actor: "coordinator", Role: "coordinator", Action: action, Job: job, Datasets: datasets, Detail: detail})
	if err != nil {
		s.log.Error("audit append failed; refusing request", "action", action, "err", err)
		return e, refuse(http.StatusServiceUnavailable, "audit_unavailable", "the node cannot write its audit log, so it serves nothing")
	}
	return e, nil
}

func decode(r *http.Request, v any, step nodeapi.Step, h *nodeapi.Header) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return refuse(http.StatusRequestEntityTooLarge, "too_large", "request body larger than %d bytes", mbe.Limit)
		}
		return refuse(http.StatusBadRequest, "bad_request", "malformed request: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) { // padding after the message ran past the limit
			return refuse(http.StatusRequestEntityTooLarge, "too_large", "request body larger than %d bytes", mbe.Limit)
		}
		return refuse(http.StatusBadRequest, "bad_request", "trailing data after the request")
	}
	if h.Step != step {
		return refuse(http.StatusBadRequest, "wrong_step", "message for step %q sent to %q", h.Step, step)
	}
	if h.Job == "" || len(h.Job) > 64 || h.Attempt < 1 {
		return refuse(http.StatusBadRequest, "bad_request", "job id and a positive attempt are required")
	}
	return nil
}

func (s *Server) datasets(r *http.Request) (any, error) {
	out := nodeapi.DatasetsResponse{Department: s.cfg.Department}
	for _, n := range s.catalog.Names() {
		out.Datasets = append(out.Datasets, *s.catalog[n])
	}
	return out, nil
}

// lookup finds the session of a job and checks the attempt: a request from
// an older attempt is a stale or replayed worker and is refused.
func (s *Server) lookup(h nodeapi.Header) (*session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	ss, ok := s.sessions[sessionKey(h)]
	if !ok {
		return nil, refuse(http.StatusConflict, "not_prepared", "job %s is not prepared at this node", h.Job)
	}
	if h.Attempt != ss.attempt {
		return nil, refuse(http.StatusConflict, "stale_attempt", "job %s is at attempt %d here, not %d", h.Job, ss.attempt, h.Attempt)
	}
	ss.used = s.clock()
	return ss, nil
}

func (s *Server) expireLocked() {
	now := s.clock()
	for id, ss := range s.sessions {
		if now.Sub(ss.used) > SessionTTL {
			delete(s.sessions, id)
		}
	}
}

func (s *Server) prepare(r *http.Request) (any, error) {
	var req nodeapi.PrepareRequest
	if err := decode(r, &req, nodeapi.StepPrepare, &req.Header); err != nil {
		return nil, err
	}
	if req.Parties < 2 || req.Parties > MaxParties || req.Party < 0 || req.Party >= req.Parties {
		return nil, refuse(http.StatusBadRequest, "bad_request", "party %d of %d is out of range", req.Party, req.Parties)
	}
	if req.Input < 0 || req.Input >= len(req.Spec.Inputs) {
		return nil, refuse(http.StatusBadRequest, "bad_request", "input %d is not in the spec", req.Input)
	}
	in := req.Spec.Inputs[req.Input]
	detail := s.jobDetail(&req.Spec, req.Requester, req.Attempt)
	s.inputDetail(detail, &req.Spec, in)
	ds := []string{in.Dataset}
	tbl, ok := s.tables[in.Dataset]
	if !ok {
		if _, err := s.record(r.Context(), "psi.refused", req.Job, ds, withReason(detail, "unknown dataset")); err != nil {
			return nil, err
		}
		return nil, refuse(http.StatusNotFound, "unknown_dataset", "dataset %q is not held by node %s", in.Dataset, s.cfg.Department).audited()
	}
	if req.Spec.Type != policy.PSICardinality && req.Spec.Type != policy.PSIMembers && req.Spec.Type != policy.IntersectionStats {
		if _, err := s.record(r.Context(), "psi.refused", req.Job, ds, withReason(detail, "job type")); err != nil {
			return nil, err
		}
		return nil, refuse(http.StatusForbidden, "unsupported", "job type %s is not served by this node's PSI endpoint", req.Spec.Type).audited()
	}
	// The node's own policy decides, whatever the coordinator checked.
	dec := policy.Decide(s.catalog, &req.Spec, req.Requester, true)
	if !dec.Allow {
		if _, err := s.record(r.Context(), "psi.refused", req.Job, ds, withReason(detail, dec.Error())); err != nil {
			return nil, err
		}
		return nil, refuse(http.StatusForbidden, "policy_violation", "%s", dec.Error()).audited()
	}
	detail["policy_version"] = dec.Versions[in.Dataset]

	s.mu.Lock()
	if ss, ok := s.sessions[sessionKey(req.Header)]; ok {
		if req.Attempt < ss.attempt {
			s.mu.Unlock()
			return nil, refuse(http.StatusConflict, "stale_attempt", "job %s is at attempt %d here, not %d", req.Job, ss.attempt, req.Attempt)
		}
		if req.Attempt == ss.attempt {
			if ss.input != req.Input || !bytes.Equal(ss.spec.Encode(), req.Spec.Encode()) || ss.requester != req.Requester {
				s.mu.Unlock()
				return nil, refuse(http.StatusConflict, "conflicting_prepare", "job %s attempt %d was prepared here with another spec or input", req.Job, req.Attempt)
			}
			// Idempotent per (job, step, attempt): the same list again.
			n, _ := ss.party.Len(r.Context())
			s.mu.Unlock()
			return nodeapi.PrepareResponse{Len: n, InvalidIDs: tbl.InvalidIDs(), BelowK: n < s.catalog[in.Dataset].EffectiveMinCount()}, nil
		}
	}
	s.mu.Unlock()

	ids, err := tbl.KeyIDs(in.Key, in.Filter)
	if err != nil {
		if _, aerr := s.record(r.Context(), "psi.refused", req.Job, ds, withReason(detail, err.Error())); aerr != nil {
			return nil, aerr
		}
		return nil, refuse(http.StatusBadRequest, "bad_input", "%v", err).audited()
	}
	specHash := req.Spec.Hash()
	party, err := psi.NewLocalParty(s.secret, req.Job, specHash[:], req.Party, ids)
	if err != nil {
		return nil, err
	}
	n, _ := party.Len(r.Context())
	detail["list_len"] = fmt.Sprint(n)
	if _, err := s.record(r.Context(), string(nodeapi.StepPrepare), req.Job, ds, detail); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.sessions[sessionKey(req.Header)] = &session{attempt: req.Attempt, input: req.Input, self: req.Party, dataset: in.Dataset, spec: req.Spec, requester: req.Requester, party: party, used: s.clock()}
	s.mu.Unlock()
	return nodeapi.PrepareResponse{Len: n, InvalidIDs: tbl.InvalidIDs(), BelowK: n < s.catalog[in.Dataset].EffectiveMinCount()}, nil
}

func sessionKey(h nodeapi.Header) string { return fmt.Sprintf("%s/%d", h.Job, h.Party) }

// jobDetail is what every audit entry of a job's step records: its purpose
// (purpose limitation), type, requester and attempt.
func (s *Server) jobDetail(spec *policy.Spec, req policy.Requester, attempt int) map[string]string {
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
func (s *Server) inputDetail(detail map[string]string, spec *policy.Spec, in policy.Input) {
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

func withReason(d map[string]string, reason string) map[string]string {
	out := make(map[string]string, len(d)+1)
	for k, v := range d {
		out[k] = v
	}
	out["reason"] = reason
	return out
}

func (s *Server) own(r *http.Request) (any, error) {
	var req nodeapi.OwnRequest
	if err := decode(r, &req, nodeapi.StepOwn, &req.Header); err != nil {
		return nil, err
	}
	ss, err := s.lookup(req.Header)
	if err != nil {
		return nil, err
	}
	n, _ := ss.party.Len(r.Context())
	if req.N < 1 || req.N > nodeapi.MaxChunk || req.Offset < 0 || req.Offset > n-req.N {
		return nil, refuse(http.StatusBadRequest, "bad_range", "chunk [%d, %d+%d) outside list of %d (max chunk %d)", req.Offset, req.Offset, req.N, n, nodeapi.MaxChunk)
	}
	if _, err := s.record(r.Context(), string(nodeapi.StepOwn), req.Job, []string{ss.dataset}, map[string]string{"offset": fmt.Sprint(req.Offset), "n": fmt.Sprint(req.N), "attempt": fmt.Sprint(req.Attempt), "purpose": ss.spec.Purpose}); err != nil {
		return nil, err
	}
	els, err := ss.party.OwnElements(r.Context(), req.Offset, req.N)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "bad_range", "%v", err)
	}
	return nodeapi.ElementsResponse{Elements: psi.EncodeElements(els)}, nil
}

func (s *Server) reblind(r *http.Request) (any, error) {
	var req nodeapi.ReblindRequest
	if err := decode(r, &req, nodeapi.StepReblind, &req.Header); err != nil {
		return nil, err
	}
	ss, err := s.lookup(req.Header)
	if err != nil {
		return nil, err
	}
	if req.List == ss.self {
		return nil, refuse(http.StatusForbidden, "own_list", "a node never reblinds its own list: it could then compute the intersection")
	}
	els, err := psi.DecodeElements(req.Elements, nodeapi.MaxChunk)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "invalid_elements", "%v", err)
	}
	if _, err := s.record(r.Context(), string(nodeapi.StepReblind), req.Job, []string{ss.dataset}, map[string]string{"list": fmt.Sprint(req.List), "n": fmt.Sprint(len(els)), "attempt": fmt.Sprint(req.Attempt), "purpose": ss.spec.Purpose}); err != nil {
		return nil, err
	}
	out, err := ss.party.ReblindElements(r.Context(), req.List, els)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "invalid_elements", "%v", err)
	}
	return nodeapi.ElementsResponse{Elements: psi.EncodeElements(out)}, nil
}

func (s *Server) members(r *http.Request) (any, error) {
	var req nodeapi.MembersRequest
	if err := decode(r, &req, nodeapi.StepMembers, &req.Header); err != nil {
		return nil, err
	}
	ss, err := s.lookup(req.Header)
	if err != nil {
		return nil, err
	}
	if ss.spec.Type != policy.PSIMembers || ss.input != 0 {
		return nil, refuse(http.StatusForbidden, "not_members", "job %s is not a psi_members job whose keys belong to this node", req.Job)
	}
	if req.Recipient != ss.requester.User {
		return nil, refuse(http.StatusForbidden, "wrong_recipient", "members are sealed only to the submitting analyst %q", ss.requester.User)
	}
	n, _ := ss.party.Len(r.Context())
	seen := make(map[int]bool, len(req.Positions))
	ids := make([]string, 0, len(req.Positions))
	for _, p := range req.Positions {
		if p < 0 || p >= n || seen[p] {
			return nil, refuse(http.StatusBadRequest, "bad_positions", "position %d is out of range or repeated", p)
		}
		seen[p] = true
		ids = append(ids, string(ss.party.IDAt(p)))
	}
	ct, err := delivery.Seal(req.RecipientKey, req.Job, ids)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "bad_key", "%v", err)
	}
	if _, err := s.record(r.Context(), string(nodeapi.StepMembers), req.Job, []string{ss.dataset}, map[string]string{"count": fmt.Sprint(len(ids)), "recipient": req.Recipient, "attempt": fmt.Sprint(req.Attempt), "purpose": ss.spec.Purpose}); err != nil {
		return nil, err
	}
	return nodeapi.MembersResponse{Ciphertext: ct, Count: len(ids)}, nil
}

// outcome records how a job ended at review, for lineage. Only the node's
// own datasets are named in its log.
func (s *Server) outcome(r *http.Request) (any, error) {
	var req nodeapi.OutcomeRequest
	if err := decode(r, &req, nodeapi.StepOutcome, &req.Header); err != nil {
		return nil, err
	}
	if req.Outcome != "released" && req.Outcome != "rejected" {
		return nil, refuse(http.StatusBadRequest, "bad_request", "outcome must be released or rejected")
	}
	var mine []string
	for _, d := range req.Datasets {
		if _, ok := s.catalog[d]; ok {
			mine = append(mine, d)
		}
	}
	if len(mine) == 0 {
		return nil, refuse(http.StatusBadRequest, "not_ours", "job %s used none of this node's datasets", req.Job)
	}
	if _, err := s.record(r.Context(), "job."+req.Outcome, req.Job, mine, map[string]string{"purpose": req.Purpose, "reviewer": req.Reviewer}); err != nil {
		return nil, err
	}
	return map[string]bool{"ok": true}, nil
}

func (s *Server) finish(r *http.Request) (any, error) {
	var req nodeapi.FinishRequest
	if err := decode(r, &req, nodeapi.StepFinish, &req.Header); err != nil {
		return nil, err
	}
	s.mu.Lock()
	ss, ok := s.sessions[sessionKey(req.Header)]
	if ok && req.Attempt >= ss.attempt {
		delete(s.sessions, sessionKey(req.Header))
	}
	s.mu.Unlock()
	var ds []string
	d := map[string]string{"outcome": req.Outcome, "attempt": fmt.Sprint(req.Attempt)}
	if ok {
		ds = []string{ss.dataset}
		d["purpose"] = ss.spec.Purpose
	}
	if _, err := s.record(r.Context(), string(nodeapi.StepFinish), req.Job, ds, d); err != nil {
		return nil, err
	}
	return map[string]bool{"ok": true}, nil
}
