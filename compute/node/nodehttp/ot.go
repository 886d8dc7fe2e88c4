package nodehttp

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/nodeapi"
)

// routeOT serves the OT protocol's steps: open and accept in JSON like
// every step, next and deliver — a 1 MiB frame each — in the binary
// encoding of nodeapi (ot_wire.go), with errors in JSON as everywhere.
func routeOT(h *Handler, svc *node.Service) {
	post(h, nodeapi.PathOTOpen, nodeapi.MaxBodyBytes, svc.OTOpen)
	post(h, nodeapi.PathOTAccept, nodeapi.MaxBodyBytes, svc.OTAccept)
	postBinary(h, nodeapi.PathOTNext, nodeapi.DecodeOTNextRequest, svc.OTNext)
	postBinary(h, nodeapi.PathOTDeliver, nodeapi.DecodeOTDeliverRequest, svc.OTDeliver)
}

// postBinary serves a step whose request and answer are binary: it
// authenticates, requires nodeapi.OTContentType, reads at most
// nodeapi.MaxOTBodyBytes, decodes strictly, calls the Service and encodes
// its answer.
func postBinary[Req any, Resp interface{ MarshalBinary() ([]byte, error) }](h *Handler, path string, decode func([]byte) (*Req, error), call func(context.Context, node.Caller, *Req) (Resp, error)) {
	h.mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
		c, ok := h.authenticate(w, r, path)
		if !ok {
			return
		}
		refuse := func(err error) { h.reply(w, path, nil, h.svc.RecordRefusal(r.Context(), c, path, err)) }
		if ct := r.Header.Get("Content-Type"); ct != nodeapi.OTContentType {
			refuse(node.Errorf(node.KindBadRequest, "bad_request", "content type %q, want %s", ct, nodeapi.OTContentType))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, nodeapi.MaxOTBodyBytes))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				refuse(node.Errorf(node.KindTooLarge, "too_large", "request body larger than %d bytes", mbe.Limit))
			} else {
				refuse(node.Errorf(node.KindBadRequest, "bad_request", "reading the request: %v", err))
			}
			return
		}
		req, err := decode(body)
		if err != nil {
			refuse(node.Errorf(node.KindBadRequest, "bad_request", "malformed request: %v", err))
			return
		}
		resp, err := call(r.Context(), c, req)
		if err != nil {
			h.reply(w, path, nil, err)
			return
		}
		h.replyBinary(w, path, nodeapi.OTContentType, resp)
	})
}
