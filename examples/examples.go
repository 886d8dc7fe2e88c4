// Package examples holds the example deployment: synthetic department data
// (data/, made by ./gen), node configurations (nodes/), the coordinator's
// configuration and example job specs (jobs/). They are embedded so that
// `unseen demo` runs from any directory.
package examples

import "embed"

// FS holds the node configurations, their data, the example jobs and the
// example signing keys (keys/*.ed25519: published, protecting nothing).
//
//go:embed nodes/*.yaml data/*/*.csv jobs/*.json keys/*.ed25519
var FS embed.FS
