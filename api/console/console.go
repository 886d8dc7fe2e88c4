// Package console is the coordinator's web console: plain HTML, CSS and
// JavaScript modules, embedded in the binary and served by package api at
// /console/ under a strict Content-Security-Policy (no inline script or
// style, no request to any other origin).
//
// The console logs in with the same bearer token as the CLI, kept in the
// tab's sessionStorage and sent as an Authorization header; it sets no
// cookie, so a page of another site cannot make the browser send an
// authenticated request on a user's behalf, and no CSRF token is needed.
//
// Signing happens in the browser (WebCrypto Ed25519): the reviewer's or data
// owner's key file is read locally, the statement is rebuilt from the job's
// spec (Go's canonical JSON, reproduced in canon.js and checked against
// Go-generated vectors in testdata/vectors.json) and the raw result bytes,
// and only the signature is sent. Who learns what: the coordinator serves
// this code, so a malicious coordinator could serve code that signs
// something else or reads the key file; a reviewer who wants the full
// guarantee signs with the CLI on their own machine.
package console

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS is the console's files (index.html at the root).
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil { // the folder is embedded above: cannot fail
		panic(err)
	}
	return sub
}
