package nodehttp

import (
	"context"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/nodeapi"
)

// routePSI serves the ECDH PSI steps that carry element lists: Own (a JSON
// request) and Reblind (framed or JSON), each answering framed to a caller
// that accepts nodeapi.PSIContentType and in JSON otherwise
// (nodeapi/psi_wire.go says why both).
func routePSI(h *Handler, svc *node.Service) {
	postElements(h, nodeapi.PathOwn, nil, svc.Own)
	postElements(h, nodeapi.PathReblind, nodeapi.DecodeReblindRequest, svc.Reblind)
}

// postElements serves a step whose answer is an element list. A framed
// request (Content-Type nodeapi.PSIContentType, for a route with a
// decodeFramed) is read up to nodeapi.MaxPSIBodyBytes and decoded by its
// exact length; any other is strict JSON up to nodeapi.MaxBodyBytes. Every
// refusal of the body is audited (RecordRefusal) and counted like the
// Service's own refusals.
func postElements[Req any](h *Handler, path string, decodeFramed func([]byte) (*Req, error), call func(context.Context, node.Caller, *Req) (*nodeapi.ElementsResponse, error)) {
	h.mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
		c, ok := h.authenticate(w, r, path)
		if !ok {
			return
		}
		refuse := func(err error) { h.reply(w, path, nil, h.svc.RecordRefusal(r.Context(), c, path, err)) }
		var req *Req
		if mediaType(r.Header.Get("Content-Type")) == nodeapi.PSIContentType {
			if decodeFramed == nil {
				refuse(node.Errorf(node.KindBadRequest, "bad_request", "content type %s is not accepted here", nodeapi.PSIContentType))
				return
			}
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, nodeapi.MaxPSIBodyBytes))
			if err != nil {
				if e := tooLarge(err); e != nil {
					refuse(e)
				} else {
					refuse(node.Errorf(node.KindBadRequest, "bad_request", "reading the request: %v", err))
				}
				return
			}
			if req, err = decodeFramed(body); err != nil {
				refuse(node.Errorf(node.KindBadRequest, "bad_request", "malformed request: %v", err))
				return
			}
		} else {
			req = new(Req)
			if err := decode(http.MaxBytesReader(w, r.Body, nodeapi.MaxBodyBytes), req); err != nil {
				refuse(err)
				return
			}
		}
		resp, err := call(r.Context(), c, req)
		if err != nil || !accepts(r, nodeapi.PSIContentType) {
			h.reply(w, path, resp, err)
			return
		}
		h.replyBinary(w, path, nodeapi.PSIContentType, resp)
	})
}

func mediaType(v string) string {
	t, _, err := mime.ParseMediaType(v)
	if err != nil {
		return ""
	}
	return t
}

// accepts reports whether the request's Accept names mediaType.
func accepts(r *http.Request, mediaType string) bool {
	for _, a := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(a, ",") {
			t, _, _ := strings.Cut(part, ";")
			if strings.TrimSpace(t) == mediaType {
				return true
			}
		}
	}
	return false
}
