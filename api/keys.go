package api

import (
	"context"
	"fmt"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/unseen-data/unseen/audit"
)

// keysInit runs a key ceremony with every node (admins). It is audited
// before it starts: an unauditable ceremony does not run.
func (a *API) keysInit(c *gin.Context) {
	if a.cfg.Keys == nil {
		abort(c, errf(501, "not_configured", "this coordinator has no key ceremony configured"))
		return
	}
	b, err := a.readBody(c)
	if err != nil {
		abort(c, err)
		return
	}
	var req struct {
		Threshold int `json:"threshold"`
	}
	if err := decodeStrict(b, &req); err != nil {
		abort(c, err)
		return
	}
	if req.Threshold < 1 {
		abort(c, errf(400, "bad_request", "threshold must be at least 1 (t of the N nodes needed to decrypt)"))
		return
	}
	if err := a.record(c, "keys.init", nil, map[string]string{"threshold": fmt.Sprint(req.Threshold)}); err != nil {
		abort(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 5*time.Minute)
	defer cancel()
	st, err := a.cfg.Keys.Init(ctx, req.Threshold)
	u := currentUser(c)
	e := audit.Entry{Time: a.cfg.Clock.Now(), Actor: u.Name, Role: string(u.Role), Action: "keys.initialised"}
	if err != nil {
		e.Action, e.Detail = "keys.failed", map[string]string{"error": err.Error()}
	}
	if _, aerr := a.cfg.Store.Audit().Append(c.Request.Context(), e); aerr != nil {
		a.log.Error("audit append failed after a key ceremony", "err", aerr)
	}
	if err != nil {
		abort(c, errf(502, "ceremony_failed", "%v", err))
		return
	}
	c.JSON(200, st)
}

func (a *API) keysStatus(c *gin.Context) {
	if a.cfg.Keys == nil {
		abort(c, errf(501, "not_configured", "this coordinator has no key ceremony configured"))
		return
	}
	st, err := a.cfg.Keys.Status(c.Request.Context())
	if err != nil {
		abort(c, errf(502, "status_failed", "%v", err))
		return
	}
	c.JSON(200, st)
}
