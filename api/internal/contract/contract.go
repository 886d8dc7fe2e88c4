// Package contract checks real HTTP traffic against the API's OpenAPI
// document (api/openapi.yaml), for the tests of package api and of the Go
// client: every response must be documented for its operation and status
// and match the documented schema (kin-openapi's validator, JSON Schema
// 2020-12); a client's requests must match too. It also records which
// (operation, status) pairs and which documented response fields real
// traffic showed, so a test can require that each was seen at least once.
//
// It is used only by tests: nothing in the binary imports it.
package contract

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"encoding/json"
)

// Contract is a loaded OpenAPI document with what traffic has shown of it.
type Contract struct {
	Doc    *openapi3.T
	router routers.Router

	mu     sync.Mutex
	seen   map[string]bool // "METHOD /path status"
	fields map[string]bool // "Schema.field[.sub]"
}

var registerOnce sync.Once

// Load parses and validates the document.
func Load(spec []byte) (*Contract, error) {
	registerOnce.Do(func() {
		// Non-JSON answers are checked for their media type, and read as
		// plain strings (the document describes the YAML one as a string).
		for _, ct := range []string{"text/html", "text/javascript", "text/css", "image/svg+xml", "application/yaml"} {
			openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
		}
	})
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("contract: loading: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("contract: the document is not valid OpenAPI: %w", err)
	}
	// Match any host: tests serve on random ports.
	doc.Servers = nil
	r, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &Contract{Doc: doc, router: r, seen: map[string]bool{}, fields: map[string]bool{}}, nil
}

// Operations lists every documented operation as "METHOD /path".
func (c *Contract) Operations() []string {
	var out []string
	for p, item := range c.Doc.Paths.Map() {
		for m := range item.Operations() {
			out = append(out, m+" "+p)
		}
	}
	sort.Strings(out)
	return out
}

// Documented lists every documented "METHOD /path status".
func (c *Contract) Documented() []string {
	var out []string
	for p, item := range c.Doc.Paths.Map() {
		for m, op := range item.Operations() {
			for code := range op.Responses.Map() {
				out = append(out, m+" "+p+" "+code)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Seen lists the "METHOD /path status" real traffic has shown.
func (c *Contract) Seen() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]bool{}
	for k := range c.seen {
		out[k] = true
	}
	return out
}

// Fields lists the documented response fields real traffic has shown.
func (c *Contract) Fields() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]bool{}
	for k := range c.fields {
		out[k] = true
	}
	return out
}

// ResponseFields lists every field of every schema a documented response
// can hold (named "Schema.field", nested inline objects "Schema.a.b").
func (c *Contract) ResponseFields() map[string]bool {
	out := map[string]bool{}
	done := map[string]bool{}
	for _, item := range c.Doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, r := range op.Responses.Map() {
				if r.Value == nil {
					continue
				}
				for _, mt := range r.Value.Content {
					schemaFields(mt.Schema, "", out, done)
				}
			}
		}
	}
	return out
}

func schemaFields(sr *openapi3.SchemaRef, where string, out, done map[string]bool) {
	if sr == nil || sr.Value == nil {
		return
	}
	if sr.Ref != "" {
		where = path.Base(sr.Ref)
		if done[where] {
			return
		}
		done[where] = true
	}
	s := sr.Value
	for _, sub := range append(append(append(openapi3.SchemaRefs{}, s.AllOf...), s.OneOf...), s.AnyOf...) {
		schemaFields(sub, where, out, done)
	}
	for name, p := range s.Properties {
		key := name
		if where != "" {
			key = where + "." + name
		}
		out[key] = true
		schemaFields(p, key, out, done)
	}
	schemaFields(s.Items, where, out, done)
	if s.AdditionalProperties.Schema != nil {
		schemaFields(s.AdditionalProperties.Schema, where, out, done)
	}
}

// walk marks the documented fields value v holds, under schema sr.
func (c *Contract) walk(sr *openapi3.SchemaRef, where string, v any) {
	if sr == nil || sr.Value == nil {
		return
	}
	if sr.Ref != "" {
		where = path.Base(sr.Ref)
	}
	s := sr.Value
	for _, sub := range append(append(append(openapi3.SchemaRefs{}, s.AllOf...), s.OneOf...), s.AnyOf...) {
		c.walk(sub, where, v)
	}
	switch x := v.(type) {
	case map[string]any:
		for k, pv := range x {
			if p, ok := s.Properties[k]; ok {
				key := k
				if where != "" {
					key = where + "." + k
				}
				c.fields[key] = true
				c.walk(p, key, pv)
			} else if s.AdditionalProperties.Schema != nil {
				c.walk(s.AdditionalProperties.Schema, where, pv)
			}
		}
	case []any:
		for _, it := range x {
			c.walk(s.Items, where, it)
		}
	}
}

// Error is one way traffic broke the contract.
type Error struct {
	Request string
	Status  int
	Err     error
}

func (e *Error) Error() string {
	return fmt.Sprintf("contract: %s → %d: %v", e.Request, e.Status, e.Err)
}

// CheckRequest checks a request a client sends against the document
// (method, path, parameters, body), before it is served.
func (c *Contract) CheckRequest(req *http.Request, body []byte) error {
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		return &Error{Request: req.Method + " " + req.URL.Path, Err: fmt.Errorf("no documented operation: %w", err)}
	}
	in := &openapi3filter.RequestValidationInput{Request: req.Clone(context.Background()), PathParams: params, Route: route,
		Options: &openapi3filter.Options{MultiError: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	in.Request.Body = io.NopCloser(bytes.NewReader(body))
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		return &Error{Request: req.Method + " " + req.URL.Path, Err: err}
	}
	return nil
}

// CheckResponse checks one served response against the document and
// records what it showed. A request for which no operation is documented
// must be a 404 or 405 in the error shape.
func (c *Contract) CheckResponse(req *http.Request, status int, header http.Header, body []byte) error {
	name := req.Method + " " + req.URL.Path
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return &Error{Request: name, Status: status, Err: fmt.Errorf("undocumented route answered: %w", err)}
		}
		return c.checkErrorShape(name, status, header, body)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if r := route.Operation.Responses.Status(status); status/100 == 3 && r != nil && r.Value != nil && len(r.Value.Content) == 0 {
		// A redirect: only its documented headers matter (Go writes a
		// small HTML note as the body).
		in.Options.ExcludeResponseBody = true
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return &Error{Request: name, Status: status, Err: err}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[fmt.Sprintf("%s %s %d", req.Method, route.Path, status)] = true
	ct, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	if ct == "application/json" {
		if r := route.Operation.Responses.Status(status); r != nil && r.Value != nil {
			if mt := r.Value.Content.Get(ct); mt != nil {
				var v any
				if err := json.Unmarshal(body, &v); err == nil {
					c.walk(mt.Schema, "", v)
				}
			}
		}
	}
	return nil
}

// checkErrorShape: an answer to an undocumented route is the API's error.
func (c *Contract) checkErrorShape(name string, status int, header http.Header, body []byte) error {
	sr := c.Doc.Components.Schemas["Error"]
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return &Error{Request: name, Status: status, Err: fmt.Errorf("not JSON: %q", body)}
	}
	if err := sr.Value.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
		return &Error{Request: name, Status: status, Err: err}
	}
	if !strings.HasPrefix(header.Get("Content-Type"), "application/json") {
		return &Error{Request: name, Status: status, Err: fmt.Errorf("content type %q", header.Get("Content-Type"))}
	}
	return nil
}

// Serve serves req with h and checks the response; the recorder holds it.
func (c *Contract) Serve(h http.Handler, req *http.Request) (*httptest.ResponseRecorder, error) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec, c.CheckResponse(req, rec.Code, rec.Header(), rec.Body.Bytes())
}

// Handler wraps h so that every request is checked against the document
// before it is served, and every response after; broken contracts go to
// fail (a test's Errorf).
func (c *Contract) Handler(h http.Handler, fail func(format string, args ...any)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := c.CheckRequest(r, body); err != nil {
			fail("%v", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if err := c.CheckResponse(r, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
			fail("%v", err)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}
