package nodeapi

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/unseen-data/unseen/compute/pki"
)

// UseTLS makes the client speak mutual TLS to its node, presenting the
// coordinator's certificate and accepting the node only if its certificate
// names the client's department. A plain http:// URL is refused rather
// than silently used without TLS.
func (c *Client) UseTLS(f pki.Files) error {
	if !strings.HasPrefix(c.BaseURL, "https://") {
		return fmt.Errorf("nodeapi: node %s: TLS is configured but its URL %s is not https://", c.Department, c.BaseURL)
	}
	cfg, err := pki.CoordinatorClientConfig(f, c.Department)
	if err != nil {
		return err
	}
	c.HTTP = &http.Client{Timeout: c.HTTP.Timeout, Transport: &http.Transport{
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
	}}
	return nil
}
