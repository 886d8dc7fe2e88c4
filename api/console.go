package api

import (
	_ "embed"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/unseen-data/unseen/api/console"
)

// OpenAPI is the API's contract (OpenAPI 3.1), served at /v1/openapi.yaml
// and checked against the routes and real responses by the tests.
//
//go:embed openapi.yaml
var OpenAPI []byte

// ConsoleCSP is the console's Content-Security-Policy: scripts, styles,
// images and requests only from the coordinator itself, no inline script or
// style (so injected markup cannot run), no framing, no form posts.
const ConsoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// securityHeaders go on every response: nothing is sniffed into another
// type, framed or cached (answers carry tokens' owners' data), and a JSON
// answer opened as a page runs nothing.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	if strings.HasPrefix(c.Request.URL.Path, "/console/") {
		h.Set("Content-Security-Policy", ConsoleCSP)
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cache-Control", "no-cache")
	} else {
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Cache-Control", "no-store")
	}
	c.Next()
}

var consoleTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".json": "application/json",
}

// consoleRoutes serves the console's embedded files (no token needed: they
// hold no data; every call they make is authenticated like the CLI's).
func (a *API) consoleRoutes(r *gin.Engine) {
	files := console.FS()
	// (/console itself is redirected to /console/ by gin, as every path
	// without its trailing slash is.)
	r.GET("/", func(c *gin.Context) { c.Redirect(http.StatusFound, "/console/") })
	r.GET("/console/*file", func(c *gin.Context) {
		name := strings.TrimPrefix(path.Clean("/"+c.Param("file")), "/")
		if name == "" {
			name = "index.html"
		}
		ct, ok := consoleTypes[path.Ext(name)]
		b, err := fs.ReadFile(files, name)
		if !ok || err != nil {
			abort(c, errf(404, "not_found", "no such console file"))
			return
		}
		c.Data(http.StatusOK, ct, b)
	})
	r.GET("/v1/openapi.yaml", func(c *gin.Context) {
		c.Data(http.StatusOK, "application/yaml; charset=utf-8", OpenAPI)
	})
}
