// Package nodehttp serves a node's Service (package node) over HTTP: the
// routes of package nodeapi, each a thin handler that authenticates the
// coordinator's bearer token, bounds and strictly decodes the body, calls
// the Service method and encodes its answer or its *node.Error (whose Kind
// gives the status). It holds no protocol logic.
//
// It uses net/http's ServeMux, while the coordinator's people-facing API
// uses gin, because the node is a different kind of server: it serves one
// caller (the coordinator, behind mutual TLS at the listener), a fixed
// protocol of under twenty routes without path parameters, each with its own
// body limit and a decoder that refuses unknown fields and trailing data —
// things a framework's binding would have to be bypassed for, not helped
// with. And a department reviews what runs next to its data: the fewer
// dependencies between the coordinator's bytes and the Service, the less
// to review (gin is also kept to package api by the layering test).
//
// Unauthenticated requests are refused without touching the Service's
// audit log (anyone can send them, and an fsynced entry each would let a
// flood fill the disk — and a node that cannot audit serves nothing):
// they are counted (unseen_node_unauthenticated_requests_total on
// /metrics) and logged at most once per second with the number suppressed.
// /healthz and /metrics need no token; under mutual TLS only the
// coordinator's certificate reaches them.
package nodehttp

import (
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/nodeapi"
)

// PathMetrics is where the node serves its Prometheus metrics.
const PathMetrics = "/metrics"

// Options are a handler's dependencies; zero values get defaults.
type Options struct {
	Logger *slog.Logger
	// Metrics is the registry the handler registers its collectors in and
	// /metrics serves; if nil, a new one with the Go and process collectors.
	Metrics *prometheus.Registry
	// Clock paces the log of refused unauthenticated requests (default
	// time.Now).
	Clock func() time.Time
}

// Handler is a node's HTTP handler.
type Handler struct {
	svc     *node.Service
	mux     *http.ServeMux
	log     *slog.Logger
	metrics *metrics
	unauth  *sampler // paces the log of unauthenticated requests
}

// New returns the HTTP handler of svc.
func New(svc *node.Service, opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	reg := opts.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	h := &Handler{
		svc:     svc,
		mux:     http.NewServeMux(),
		log:     opts.Logger.With("node", svc.Department()),
		metrics: newMetrics(reg),
		unauth:  &sampler{every: time.Second, clock: opts.Clock},
	}
	h.mux.HandleFunc("GET "+nodeapi.PathHealth, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "department": svc.Department()})
	})
	h.mux.Handle("GET "+PathMetrics, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	get(h, nodeapi.PathDatasets, svc.Datasets)
	post(h, nodeapi.PathPrepare, nodeapi.MaxBodyBytes, svc.Prepare)
	routePSI(h, svc) // psi.go: element lists, framed
	post(h, nodeapi.PathMembers, nodeapi.MaxBodyBytes, svc.Members)
	post(h, nodeapi.PathDeliver, nodeapi.MaxBodyBytes, svc.Deliver)
	post(h, nodeapi.PathFinish, nodeapi.MaxBodyBytes, svc.Finish)
	post(h, nodeapi.PathOutcome, nodeapi.MaxBodyBytes, svc.Outcome)
	routeOT(h, svc) // ot.go
	// The homomorphic routes take larger bodies: a Squares public key is
	// over a megabyte.
	post(h, nodeapi.PathKeysBegin, nodeapi.MaxHEBodyBytes, svc.KeysBegin)
	post(h, nodeapi.PathKeysShares, nodeapi.MaxHEBodyBytes, svc.KeysShares)
	post(h, nodeapi.PathKeysFinish, nodeapi.MaxHEBodyBytes, svc.KeysFinish)
	get(h, nodeapi.PathKeysStatus, svc.KeysStatus)
	post(h, nodeapi.PathHEGroups, nodeapi.MaxHEBodyBytes, svc.HEGroups)
	post(h, nodeapi.PathHEAggregate, nodeapi.MaxHEBodyBytes, svc.HEAggregate)
	post(h, nodeapi.PathHEValues, nodeapi.MaxHEBodyBytes, svc.HEValues)
	post(h, nodeapi.PathHEZeroMask, nodeapi.MaxHEBodyBytes, svc.HEZeroMask)
	post(h, nodeapi.PathHERelease, nodeapi.MaxHEBodyBytes, svc.HERelease)
	return h
}

// ServeHTTP serves the node's routes, timing each by its route.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h.mux.ServeHTTP(w, r)
	route := r.Pattern // set by the mux: a bounded label
	if route == "" {
		route = "unmatched"
	}
	h.metrics.seconds.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

// Listener wraps ln so that every byte its connections carry is counted
// (unseen_node_wire_bytes_total): wrap the raw TCP listener, under TLS, to
// count what crosses the network.
func (h *Handler) Listener(ln net.Listener) net.Listener {
	return &countingListener{Listener: ln, m: h.metrics}
}

// Server wraps the handler in an http.Server with explicit timeouts.
func (h *Handler) Server(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
}

// post serves a protocol step: authenticate, decode at most limit bytes
// strictly into a Req, call the Service, answer.
func post[Req, Resp any](h *Handler, path string, limit int64, call func(context.Context, node.Caller, *Req) (*Resp, error)) {
	h.mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
		c, ok := h.authenticate(w, r, path)
		if !ok {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		var req Req
		if err := decode(r.Body, &req); err != nil {
			h.reply(w, path, nil, h.svc.RecordRefusal(r.Context(), c, path, err))
			return
		}
		resp, err := call(r.Context(), c, &req)
		h.reply(w, path, resp, err)
	})
}

// get serves a request without a body.
func get[Resp any](h *Handler, path string, call func(context.Context, node.Caller) (*Resp, error)) {
	h.mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
		c, ok := h.authenticate(w, r, path)
		if !ok {
			return
		}
		resp, err := call(r.Context(), c)
		h.reply(w, path, resp, err)
	})
}

// authenticate checks the bearer token. A refusal is answered here, counted
// and sampled into the log, and never reaches the Service's audit log.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request, path string) (node.Caller, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		tok = "" // never a valid token
	}
	c, err := h.svc.Authenticate(tok, r.RemoteAddr)
	if err == nil {
		return c, true
	}
	h.metrics.unauthenticated.WithLabelValues(path).Inc()
	if ok, suppressed := h.unauth.allow(); ok {
		h.log.Warn("refused an unauthenticated request", "path", path, "remote", r.RemoteAddr, "suppressed_since_last", suppressed)
	}
	h.reply(w, path, nil, err)
	return node.Caller{}, false
}

// reply writes resp, or err as a nodeapi.Error with its kind's status.
// replyBinary answers 200 with a message's binary encoding (the PSI and OT
// frames), or 500 if it cannot be encoded.
func (h *Handler) replyBinary(w http.ResponseWriter, path, contentType string, resp encoding.BinaryMarshaler) {
	out, err := resp.MarshalBinary()
	if err != nil {
		h.reply(w, path, nil, node.Errorf(node.KindInternal, "internal", "encoding the answer: %v", err))
		return
	}
	h.metrics.requests.WithLabelValues(path, strconv.Itoa(http.StatusOK)).Inc()
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

func (h *Handler) reply(w http.ResponseWriter, path string, resp any, err error) {
	status := http.StatusOK
	body := resp
	if err != nil {
		var e *node.Error
		if !errors.As(err, &e) {
			e = &node.Error{Kind: node.KindInternal, Code: "internal", Message: err.Error()}
		}
		var out nodeapi.Error
		out.Error.Code, out.Error.Message = e.Code, e.Message
		status, body = e.Kind.Status(), out
	}
	h.metrics.requests.WithLabelValues(path, strconv.Itoa(status)).Inc()
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads exactly one JSON value into v: unknown fields, trailing data
// and bodies over the reader's limit are refused.
func decode(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if e := tooLarge(err); e != nil {
			return e
		}
		return node.Errorf(node.KindBadRequest, "bad_request", "malformed request: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		if e := tooLarge(err); e != nil { // padding after the message ran past the limit
			return e
		}
		return node.Errorf(node.KindBadRequest, "bad_request", "trailing data after the request")
	}
	return nil
}

func tooLarge(err error) *node.Error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return node.Errorf(node.KindTooLarge, "too_large", "request body larger than %d bytes", mbe.Limit)
	}
	return nil
}
