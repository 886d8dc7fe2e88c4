package nodeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client is the coordinator's connection to one department's node.
type Client struct {
	Department string
	BaseURL    string
	Token      string // the coordinator's bearer token at this node
	HTTP       *http.Client
}

// NewClient returns a client with sane timeouts.
func NewClient(dept, baseURL, token string) *Client {
	return &Client{
		Department: dept,
		BaseURL:    strings.TrimRight(baseURL, "/"),
		Token:      token,
		HTTP:       &http.Client{Timeout: 2 * time.Minute},
	}
}

// RemoteError is a node's refusal or failure.
type RemoteError struct {
	Department string
	Status     int
	Code       string
	Message    string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("node %s: %s (%d %s)", e.Department, e.Message, e.Status, e.Code)
}

// Permanent reports whether retrying the same request cannot help: the node
// refused it (policy, bad input) rather than failed.
func (e *RemoteError) Permanent() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != http.StatusTooManyRequests && e.Status != http.StatusConflict
}

// IsStale reports whether a node refused a request because a newer attempt
// of the job has since been prepared there: the worker's lease is gone.
func IsStale(err error) bool {
	var re *RemoteError
	return errors.As(err, &re) && re.Code == "stale_attempt"
}

// IsPermanent reports whether err is a permanent refusal by a node.
func IsPermanent(err error) bool {
	var re *RemoteError
	return errors.As(err, &re) && re.Permanent()
}

// maxResponseBytes bounds what the coordinator reads from a node.
const maxResponseBytes = 8 << 20

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return c.doLimit(ctx, method, path, in, out, maxResponseBytes)
}

// doLimit is do reading at most limit response bytes.
func (c *Client) doLimit(ctx context.Context, method, path string, in, out any, limit int64) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = b
	}
	b, _, err := c.roundTrip(ctx, method, path, "application/json", body, "", limit)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("node %s: malformed response: %w", c.Department, err)
	}
	return nil
}

// roundTrip sends body (if not nil, of type contentType) asking for accept
// (if set) and returns a 2xx answer's body and content type, or the node's
// error.
func (c *Client) roundTrip(ctx context.Context, method, path, contentType string, body []byte, accept string, limit int64) ([]byte, string, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return nil, "", err
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("node %s: %w", c.Department, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, "", fmt.Errorf("node %s: reading response: %w", c.Department, err)
	}
	if int64(len(b)) > limit {
		return nil, "", fmt.Errorf("node %s: response larger than %d bytes", c.Department, limit)
	}
	if resp.StatusCode/100 != 2 {
		re := &RemoteError{Department: c.Department, Status: resp.StatusCode, Code: "http_error", Message: http.StatusText(resp.StatusCode)}
		var e Error
		if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
			re.Code, re.Message = e.Error.Code, e.Error.Message
		}
		return nil, "", re
	}
	return b, resp.Header.Get("Content-Type"), nil
}

// elements sends body and decodes the answer, framed (PSIContentType) or,
// from a node that predates the frame, JSON.
func (c *Client) elements(ctx context.Context, path, contentType string, body []byte) (*ElementsResponse, error) {
	b, ct, err := c.roundTrip(ctx, http.MethodPost, path, contentType, body, PSIContentType, maxResponseBytes)
	if err != nil {
		return nil, err
	}
	var out *ElementsResponse
	if ct == PSIContentType {
		out, err = DecodeElementsResponse(b)
	} else {
		out = new(ElementsResponse)
		err = json.Unmarshal(b, out)
	}
	if err != nil {
		return nil, fmt.Errorf("node %s: malformed response: %w", c.Department, err)
	}
	return out, nil
}

// Health checks that the node is up.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, PathHealth, nil, nil)
}

// Datasets fetches the node's dataset declarations.
func (c *Client) Datasets(ctx context.Context) (*DatasetsResponse, error) {
	var out DatasetsResponse
	if err := c.do(ctx, http.MethodGet, PathDatasets, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Prepare asks the node to load and blind its input for a PSI job.
func (c *Client) Prepare(ctx context.Context, r *PrepareRequest) (*PrepareResponse, error) {
	r.Step = StepPrepare
	var out PrepareResponse
	if err := c.do(ctx, http.MethodPost, PathPrepare, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Own fetches a chunk of the node's own list, blinded once, with the
// node's signature over it (asked for framed: psi_wire.go).
func (c *Client) Own(ctx context.Context, r *OwnRequest) (*ElementsResponse, error) {
	r.Step = StepOwn
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return c.elements(ctx, PathOwn, "application/json", b)
}

// Reblind has the node raise a chunk of another list to its key; it
// answers with the node's signature over its output. Both ways are framed
// (psi_wire.go).
func (c *Client) Reblind(ctx context.Context, r *ReblindRequest) (*ElementsResponse, error) {
	r.Step = StepReblind
	if !frameable(r.Elements) {
		// Not whole points: sent as is, for the node to refuse.
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		return c.elements(ctx, PathReblind, "application/json", b)
	}
	b, err := r.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return c.elements(ctx, PathReblind, PSIContentType, b)
}

// Members has the requesting node seal its matching IDs to the analyst
// and keep them; it answers with their count and digest.
func (c *Client) Members(ctx context.Context, r *MembersRequest) (*MembersResponse, error) {
	r.Step = StepMembers
	var out MembersResponse
	if err := c.do(ctx, http.MethodPost, PathMembers, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Deliver fetches the sealed member list of a released psi_members job
// from its requesting node, against the reviewer's signed approval.
func (c *Client) Deliver(ctx context.Context, r *DeliverRequest) ([]byte, error) {
	r.Step = StepDeliver
	var out DeliverResponse
	if err := c.do(ctx, http.MethodPost, PathDeliver, r, &out); err != nil {
		return nil, err
	}
	return out.Ciphertext, nil
}

// Outcome tells the node how a job it took part in ended at review; the
// node answers with its signed audit head.
func (c *Client) Outcome(ctx context.Context, r *OutcomeRequest) (*OutcomeResponse, error) {
	r.Step = StepOutcome
	var out OutcomeResponse
	if err := c.do(ctx, http.MethodPost, PathOutcome, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Finish tells the node the job is over; the node answers with its signed
// audit head.
func (c *Client) Finish(ctx context.Context, r *FinishRequest) (*FinishResponse, error) {
	r.Step = StepFinish
	var out FinishResponse
	if err := c.do(ctx, http.MethodPost, PathFinish, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
