// Package client is the Go client of the coordinator's HTTP API, for
// analysts, reviewers and auditors (the CLI is built on it).
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs"
)

// Client talks to one coordinator as one user.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// New returns a client for the coordinator at baseURL with a bearer token.
func New(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{Timeout: time.Minute}}
}

// TrustCA makes the client accept only servers whose certificate chains to
// one of the PEM certificates in caPEM (the coordinator's API over HTTPS,
// e.g. the federation CA of `unseen pki`), at TLS 1.2 or later. Without it
// the system's roots are used.
func (c *Client) TrustCA(caPEM []byte) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("client: no PEM certificate in the CA file")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c.HTTP.Transport = tr
	return nil
}

// TrustCAFile is TrustCA with the certificates read from path.
func (c *Client) TrustCAFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("client: CA file: %w", err)
	}
	if err := c.TrustCA(b); err != nil {
		return fmt.Errorf("%w (%s)", err, path)
	}
	return nil
}

// Error is an error answered by the coordinator.
type Error struct {
	Status int
	wire.ErrorBody
	raw []byte // the body, for answers that are not errors of the API's shape
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (HTTP %d, %s)", e.Message, e.Status, e.Code)
	return b.String()
}

func (c *Client) do(ctx context.Context, method, path string, header http.Header, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Status: resp.StatusCode, raw: b}
		var we wire.Error
		if json.Unmarshal(b, &we) == nil && we.Error.Code != "" {
			e.ErrorBody = we.Error
		} else {
			e.Code, e.Message = "http_error", strings.TrimSpace(string(b))
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("client: malformed response from %s: %w", path, err)
		}
	}
	return nil
}

// Submit sends a job spec (JSON). A non-empty idempotencyKey makes retries safe.
func (c *Client) Submit(ctx context.Context, spec []byte, idempotencyKey string) (*wire.Submitted, error) {
	h := http.Header{}
	if idempotencyKey != "" {
		h.Set("Idempotency-Key", idempotencyKey)
	}
	var out wire.Submitted
	return &out, c.do(ctx, http.MethodPost, "/v1/jobs", h, spec, &out)
}

// Job returns a job's state.
func (c *Client) Job(ctx context.Context, id string) (*wire.Job, error) {
	var out wire.Job
	return &out, c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id), nil, nil, &out)
}

// Jobs lists the jobs the caller may see (optionally in one state).
func (c *Client) Jobs(ctx context.Context, state jobs.State) ([]wire.Job, error) {
	p := "/v1/jobs"
	if state != "" {
		p += "?state=" + url.QueryEscape(string(state))
	}
	var out wire.Jobs
	return out.Jobs, c.do(ctx, http.MethodGet, p, nil, nil, &out)
}

func (c *Client) post(ctx context.Context, id, verb string, d wire.Decision) (*wire.Job, error) {
	b, _ := json.Marshal(d)
	var out wire.Job
	return &out, c.do(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(id)+"/"+verb, nil, b, &out)
}

// Cancel cancels a job that has not finished.
func (c *Client) Cancel(ctx context.Context, id, reason string) (*wire.Job, error) {
	return c.post(ctx, id, "cancel", wire.Decision{Reason: reason})
}

// Retry requeues a dead-lettered job (admins).
func (c *Client) Retry(ctx context.Context, id, reason string) (*wire.Job, error) {
	return c.post(ctx, id, "retry", wire.Decision{Reason: reason})
}

// KeysInit runs the federation's key ceremony with threshold t (admins);
// the answer is the new status (see compute/hefed.Status).
func (c *Client) KeysInit(ctx context.Context, threshold int) (json.RawMessage, error) {
	b, _ := json.Marshal(map[string]int{"threshold": threshold})
	var out json.RawMessage
	return out, c.do(ctx, http.MethodPost, "/v1/keys/init", nil, b, &out)
}

// KeysStatus shows the key ceremony's epoch, threshold and which nodes
// hold shares (admins, auditors).
func (c *Client) KeysStatus(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	return out, c.do(ctx, http.MethodGet, "/v1/keys", nil, nil, &out)
}

// Review returns a finished job's result and disclosure checks (reviewers).
func (c *Client) Review(ctx context.Context, id string) (*wire.Review, error) {
	var out wire.Review
	return &out, c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id)+"/review", nil, nil, &out)
}

// ReviewRaw is Review's answer as the coordinator sent it, byte for byte
// (what a reviewer's own tools hash).
func (c *Client) ReviewRaw(ctx context.Context, id string) ([]byte, error) {
	var out json.RawMessage
	return out, c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id)+"/review", nil, nil, &out)
}

// Ready asks /readyz whether the job store and every node answer (no token
// needed). A coordinator that is up but not ready answers 503 with the
// checks: that is a *wire.Ready with Ready false, not an error.
func (c *Client) Ready(ctx context.Context) (*wire.Ready, error) {
	var out wire.Ready
	err := c.do(ctx, http.MethodGet, "/readyz", nil, nil, &out)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusServiceUnavailable && e.raw != nil {
		if json.Unmarshal(e.raw, &out) == nil && out.Checks != nil {
			return &out, nil
		}
	}
	return &out, err
}

// Lineage lists the jobs that used a dataset, from the coordinator's
// record (data owners: their department's datasets; auditors).
func (c *Client) Lineage(ctx context.Context, dataset string) (*wire.Lineage, error) {
	var out wire.Lineage
	return &out, c.do(ctx, http.MethodGet, "/v1/lineage?dataset="+url.QueryEscape(dataset), nil, nil, &out)
}

// Reject refuses release, with a reason.
func (c *Client) Reject(ctx context.Context, id, reason string) (*wire.Job, error) {
	return c.post(ctx, id, "reject", wire.Decision{Reason: reason})
}

// Result returns a released result (an *Error with Status 409 otherwise).
func (c *Client) Result(ctx context.Context, id string) (*wire.Result, error) {
	var out wire.Result
	return &out, c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id)+"/result", nil, nil, &out)
}

// Me says whom the client's token names, and the keys registered for them.
func (c *Client) Me(ctx context.Context) (*wire.Me, error) {
	var out wire.Me
	return &out, c.do(ctx, http.MethodGet, "/v1/me", nil, nil, &out)
}

// Datasets returns the catalog.
func (c *Client) Datasets(ctx context.Context) (*wire.Datasets, error) {
	var out wire.Datasets
	return &out, c.do(ctx, http.MethodGet, "/v1/datasets", nil, nil, &out)
}

// Audit returns audit entries matching f (auditors).
func (c *Client) Audit(ctx context.Context, f audit.Filter) ([]audit.Entry, error) {
	q := url.Values{}
	for k, v := range map[string]string{"job": f.Job, "dataset": f.Dataset, "actor": f.Actor, "action": f.Action} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", fmt.Sprint(f.Limit))
	}
	var out struct {
		Entries []audit.Entry `json:"entries"`
	}
	return out.Entries, c.do(ctx, http.MethodGet, "/v1/audit?"+q.Encode(), nil, nil, &out)
}

// AuditVerify asks the coordinator to check its chain.
func (c *Client) AuditVerify(ctx context.Context) (*wire.Verify, error) {
	var out wire.Verify
	return &out, c.do(ctx, http.MethodGet, "/v1/audit/verify", nil, nil, &out)
}

// Wait polls a job until done(state) or ctx ends, calling each (if not nil)
// with every new view.
func (c *Client) Wait(ctx context.Context, id string, every time.Duration, done func(*wire.Job) bool, each func(*wire.Job)) (*wire.Job, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		j, err := c.Job(ctx, id)
		if err != nil {
			return nil, err
		}
		if each != nil {
			each(j)
		}
		if done(j) {
			return j, nil
		}
		select {
		case <-ctx.Done():
			return j, ctx.Err()
		case <-t.C:
		}
	}
}
