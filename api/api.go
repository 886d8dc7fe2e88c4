// Package api is the coordinator's HTTP API (design section 10), on gin.
// It authenticates people by bearer token, enforces roles and separation of
// duties, checks jobs against policy at submission, and reads and changes
// jobs only through the job store (Store), whose transitions are compare-and-set and
// audited. It never sees records: results arrive already aggregated (or, for
// psi_members, sealed to the analyst).
//
// A token says who is calling; it is not a person's word. A data owner's
// consent and a reviewer's approval are statements signed with the
// person's own key (policy/attest), checked here against the key
// registered for them (User.SigningKey) and stored with the job, so that
// the nodes — which hold their own copies of those keys — can check them
// again and act on nothing the coordinator merely asserts.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/policy"
)

// CatalogSource gives the current catalog (the coordinator's mirror of what
// nodes declare).
type CatalogSource interface {
	Catalog(ctx context.Context) (policy.Catalog, error)
}

// StaticCatalog is a fixed catalog.
type StaticCatalog policy.Catalog

// Catalog returns the catalog.
func (s StaticCatalog) Catalog(context.Context) (policy.Catalog, error) {
	return policy.Catalog(s), nil
}

// Keys is the homomorphic key ceremony, as the admin endpoints drive it.
type Keys interface {
	Init(ctx context.Context, threshold int) (any, error)
	Status(ctx context.Context) (any, error)
}

// Store is what the API needs of the job store: the jobs, the counters
// behind privacy budgets and rate limits, the audit chain and a health
// check (not the queue: workers run jobs, the API never does).
type Store interface {
	jobs.Jobs
	jobs.Counters
	jobs.Audited
	jobs.Pinger
}

// Config holds the API's dependencies.
type Config struct {
	Store   Store
	Users   []User
	Catalog CatalogSource
	Clock   jobs.Clock
	Logger  *slog.Logger
	// MaxBodyBytes bounds request bodies (413 beyond); default 1 MiB.
	MaxBodyBytes int64
	// Ready reports extra readiness conditions (nodes reachable).
	Ready func(ctx context.Context) error
	// HEMaxRowsPerInput, if positive, is the operator's limit on the rows
	// one input adds to a homomorphic result (he_max_rows_per_node): a job
	// over a dataset that declares more (max_rows) is refused at
	// submission, like one past the arithmetic's own limits (policy.Decide).
	HEMaxRowsPerInput int64
	// ConsentTTL is how long owners have to consent (default 7 days).
	ConsentTTL time.Duration
	// OnDecision, if set, is told of every release or rejection after it
	// is recorded (the coordinator tells the nodes, for their lineage).
	OnDecision func(j *jobs.Job)
	// Keys runs the federation's key ceremony (nil: the endpoints answer 501).
	Keys Keys
	// Metrics is the registry /metrics serves; a new one if nil.
	Metrics *prometheus.Registry
	// Deliverer fetches a released psi_members job's sealed member list
	// from the requesting node (nil: such results cannot be read unless
	// the result carries the list itself).
	Deliverer Deliverer
}

// API is the coordinator's HTTP API.
type API struct {
	cfg     Config
	users   *users
	engine  *gin.Engine
	log     *slog.Logger
	metrics *metrics
	sealed  *sealedCache // psi_members lists delivered by nodes
}

// New builds the API.
func New(cfg Config) (*API, error) {
	if cfg.Store == nil || cfg.Catalog == nil {
		return nil, errors.New("api: a store and a catalog are required")
	}
	if cfg.Clock == nil {
		cfg.Clock = jobs.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ConsentTTL <= 0 {
		cfg.ConsentTTL = 7 * 24 * time.Hour
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	u, err := newUsers(cfg.Users)
	if err != nil {
		return nil, err
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	a := &API{cfg: cfg, users: u, log: cfg.Logger, metrics: newMetrics(cfg.Metrics), sealed: &sealedCache{max: 64}}
	a.engine = a.routes()
	return a, nil
}

// Handler is the API as an http.Handler.
func (a *API) Handler() http.Handler { return a.engine }

// Server returns an http.Server with explicit timeouts: a slow client cannot
// hold a connection open by trickling headers or bodies.
func (a *API) Server(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           a.engine,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
	}
}

func init() { gin.SetMode(gin.ReleaseMode) }

func (a *API) routes() *gin.Engine {
	r := gin.New()
	// Trust no forwarding headers: the client address is the TCP peer.
	_ = r.SetTrustedProxies(nil)
	r.ForwardedByClientIP = false
	r.HandleMethodNotAllowed = true
	r.Use(a.recover, a.logRequests, securityHeaders)
	r.NoRoute(func(c *gin.Context) { abort(c, errf(404, "not_found", "no such endpoint")) })
	r.NoMethod(func(c *gin.Context) { abort(c, errf(405, "method_not_allowed", "method not allowed")) })

	r.GET("/healthz", func(c *gin.Context) { c.JSON(200, gin.H{"status": "ok"}) })
	r.GET("/readyz", a.readyz)
	r.GET("/metrics", a.metrics.handler())
	a.consoleRoutes(r)

	v1 := r.Group("/v1", a.authenticate)
	v1.GET("/me", a.me)
	v1.POST("/jobs", allow(RoleAnalyst), a.submit)
	v1.GET("/jobs", a.list)
	v1.GET("/jobs/:id", a.get)
	v1.POST("/jobs/:id/cancel", allow(RoleAnalyst), a.cancel)
	v1.POST("/jobs/:id/consent", allow(RoleDataOwner), a.consent)
	v1.POST("/jobs/:id/retry", allow(RoleAdmin), a.retry)
	v1.GET("/jobs/:id/review", allow(RoleReviewer), a.review)
	v1.POST("/jobs/:id/approve", allow(RoleReviewer), a.approve)
	v1.POST("/jobs/:id/reject", allow(RoleReviewer), a.reject)
	v1.GET("/jobs/:id/result", allow(RoleAnalyst), a.result)
	v1.GET("/datasets", a.datasets)
	v1.POST("/keys/init", allow(RoleAdmin), a.keysInit)
	v1.GET("/keys", allow(RoleAdmin, RoleAuditor), a.keysStatus)
	v1.GET("/audit", allow(RoleAuditor), a.auditEntries)
	v1.GET("/audit/verify", allow(RoleAuditor), a.auditVerify)
	v1.GET("/lineage", allow(RoleDataOwner, RoleAuditor), a.lineage)
	return r
}

type httpError struct {
	status int
	body   wire.ErrorBody
}

func (e *httpError) Error() string { return e.body.Message }

func errf(status int, code, format string, args ...any) *httpError {
	return &httpError{status, wire.ErrorBody{Code: code, Message: fmt.Sprintf(format, args...)}}
}

func abort(c *gin.Context, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = storeError(err)
	}
	c.AbortWithStatusJSON(he.status, wire.Error{Error: he.body})
}

// storeError maps store errors to HTTP.
func storeError(err error) *httpError {
	switch {
	case errors.Is(err, jobs.ErrNotFound):
		return errf(404, "not_found", "no such job")
	case errors.Is(err, jobs.ErrConflict), errors.Is(err, jobs.ErrIllegal):
		return errf(409, "conflict", "%v", err)
	case errors.Is(err, jobs.ErrIdempotency):
		return errf(422, "idempotency_key_reused", "%v", err)
	case errors.Is(err, jobs.ErrUnavailable):
		return errf(503, "unavailable", "the job store is unavailable; try again shortly")
	default:
		return errf(503, "unavailable", "the change could not be made and audited: %v", err)
	}
}

func (a *API) recover(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			a.log.Error("panic in handler", "path", c.FullPath(), "panic", fmt.Sprint(v))
			abort(c, errf(500, "internal", "internal error"))
		}
	}()
	c.Next()
}

func (a *API) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	a.metrics.observe(c, start)
	u := currentUser(c)
	name := ""
	if u != nil {
		name = u.Name
	}
	a.log.Debug("http", "method", c.Request.Method, "path", c.FullPath(), "status", c.Writer.Status(), "user", name, "dur", time.Since(start))
}

// readBody reads the whole body under the limit: anything past it, even
// after a complete JSON document, is 413.
func (a *API) readBody(c *gin.Context) ([]byte, error) {
	r := http.MaxBytesReader(c.Writer, c.Request.Body, a.cfg.MaxBodyBytes)
	b, err := io.ReadAll(r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errf(413, "too_large", "request body larger than %d bytes", a.cfg.MaxBodyBytes)
		}
		return nil, errf(400, "bad_request", "reading body: %v", err)
	}
	return b, nil
}

// decodeStrict decodes one JSON object: unknown fields and trailing data are 400.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytesReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errf(400, "bad_request", "malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errf(400, "bad_request", "trailing data after the JSON object")
	}
	return nil
}

func (a *API) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{}
	status := 200
	if err := a.cfg.Store.Ping(ctx); err != nil {
		checks["store"] = err.Error()
		status = 503
	} else {
		checks["store"] = "ok"
	}
	if a.cfg.Ready != nil {
		if err := a.cfg.Ready(ctx); err != nil {
			checks["nodes"] = err.Error()
			status = 503
		} else {
			checks["nodes"] = "ok"
		}
	}
	c.JSON(status, wire.Ready{Ready: status == 200, Checks: checks})
}

func (a *API) datasets(c *gin.Context) {
	cat, err := a.cfg.Catalog.Catalog(c.Request.Context())
	if err != nil {
		abort(c, errf(503, "catalog_unavailable", "the dataset catalog is unavailable: %v", err))
		return
	}
	out := make([]policy.Dataset, 0, len(cat))
	for _, n := range cat.Names() {
		out = append(out, *cat[n])
	}
	c.JSON(200, wire.Datasets{Datasets: out})
}

// record writes an audit entry for a read that must be accounted for; if it
// cannot be written the read is refused (fail closed).
func (a *API) record(c *gin.Context, action string, j *jobs.Job, detail map[string]string) error {
	u := currentUser(c)
	e := audit.Entry{Time: a.cfg.Clock.Now(), Actor: u.Name, Role: string(u.Role), Action: action, Detail: detail}
	if j != nil {
		e.Job = j.ID
		e.Datasets = j.Spec.Datasets()
		if e.Detail == nil {
			e.Detail = map[string]string{}
		}
		e.Detail["purpose"] = j.Spec.Purpose
	}
	if _, err := a.cfg.Store.Audit().Append(c.Request.Context(), e); err != nil {
		a.log.Error("audit append failed", "action", action, "err", err)
		return errf(503, "audit_unavailable", "the audit log cannot be written, so this request is refused")
	}
	return nil
}

func queryInt(c *gin.Context, name string, def, max int) (int, error) {
	s := c.Query(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > max {
		return 0, errf(400, "bad_request", "%s must be an integer from 1 to %d", name, max)
	}
	return n, nil
}
