package node

// he/values: the value node of an intersection_stats job encrypts its
// per-key totals, in the slot layout of he_layout.go, a few ciphertexts per
// request.

import (
	"context"
	"fmt"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/he/ceremony"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
)

// HEValues encrypts chunks of the value node's per-key totals for an
// intersection_stats job whose PSI list it has prepared.
func (s *Service) HEValues(ctx context.Context, c Caller, req *nodeapi.HEValuesRequest) (*nodeapi.HEValuesResponse, error) {
	out, err := s.heValues(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathHEValues, err)
}

func (s *Service) heValues(ctx context.Context, c Caller, req *nodeapi.HEValuesRequest) (*nodeapi.HEValuesResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepHEValues); err != nil {
		return nil, err
	}
	ss, err := s.lookup(req.Header)
	if err != nil {
		return nil, err
	}
	spec := ss.spec
	if err := checkSpecHash(req.Header, &spec); err != nil {
		return nil, err
	}
	detail := map[string]string{"purpose": spec.Purpose, "attempt": fmt.Sprint(req.Attempt), "offset": fmt.Sprint(req.Offset), "count": fmt.Sprint(req.Count), "squares": fmt.Sprint(req.Squares)}
	dsn := []string{ss.dataset}
	fail := func(err error) (*nodeapi.HEValuesResponse, error) {
		return nil, s.refusedStep(ctx, c, nodeapi.StepHEValues, req.Job, dsn, detail, err)
	}
	if spec.Type != policy.IntersectionStats {
		return fail(refuse(KindForbidden, "unsupported", "job %s is not an intersection_stats job", req.Job))
	}
	valueDS := spec.ValueDataset() // count only: rows of the first input
	if ss.dataset != valueDS {
		return fail(refuse(KindForbidden, "not_value_input", "job %s takes its values from %s, not from this node's input %s", req.Job, valueDS, ss.dataset))
	}
	need, err := statNeeds(&spec)
	if err != nil {
		return fail(err)
	}
	if req.Squares && !need.squares {
		return fail(refuse(KindForbidden, "not_asked", "squares are computed only when the job asks for the variance"))
	}
	ds := s.catalog[ss.dataset]
	tbl := s.tables[ss.dataset]
	var valueCol, groupCol string
	if need.value {
		if valueCol, err = heValueColumn(ds, &spec, ss.input); err != nil {
			return fail(err)
		}
	}
	if spec.GroupBy != nil {
		if groupCol, err = heColumn(ds, spec.GroupBy, policy.UseGroupBy); err != nil {
			return fail(err)
		}
	}
	layout, err := s.layout(ss, tbl, ds, valueCol, groupCol, req.Squares)
	if err != nil {
		return fail(err)
	}
	total := len(layout.chunks)
	if req.Offset < 0 || req.Offset > total || req.Count < 0 || req.Count > nodeapi.MaxValuesChunks {
		return fail(refuse(KindBadRequest, "bad_range", "chunks [%d, +%d) outside the %d chunks (at most %d per request)", req.Offset, req.Count, total, nodeapi.MaxValuesChunks))
	}
	end := min(req.Offset+req.Count, total)
	sumsKeys, err := s.he.keysFor(he.NameSums)
	if err != nil {
		return fail(err)
	}
	var sqKeys *ceremony.NodeKeys
	if need.value || req.Squares { // Σx mod T_q is under squares too
		if sqKeys, err = s.he.keysFor(he.NameSquares); err != nil {
			return fail(err)
		}
	}
	detail["total"] = fmt.Sprint(total)
	detail["groups"] = fmt.Sprint(len(layout.groups))
	if err := s.record(ctx, c, string(nodeapi.StepHEValues), req.Job, dsn, detail); err != nil {
		return nil, err
	}
	// The layout, signed: releasing nodes decrypt at most he.ISLanes·G
	// results of this job and size their smudging for `total` masked chunks.
	lst := nodeapi.LayoutStatement{JobRef: req.Header.Ref(), Groups: len(layout.groups), Chunks: total}
	out := &nodeapi.HEValuesResponse{Total: total, Groups: layout.groups, Chunks: []nodeapi.HEValuesChunk{}, LayoutSignature: s.sign(lst.Message())}
	// One vector per chunk and wanted lane, each under its lane's set.
	// Slots past the units are zero padding; the coordinator's mask is 0
	// there too (position −1 is implied by the map's length). Each slot is
	// a residue, a count or a floor hint within (T−1)/2 (he's bounds over
	// at most he.MaxJobRows rows), so Encrypt's own check is |slot| ≤ (T−1)/2.
	keys := map[string]*ceremony.NodeKeys{he.NameSums: sumsKeys, he.NameSquares: sqKeys}
	var vecs [he.ISLanes][][]int64
	for ci := req.Offset; ci < end; ci++ {
		ch := layout.chunks[ci]
		hc := nodeapi.HEValuesChunk{Index: ci, Group: ch.group, Positions: make([]int, len(ch.units)), Lanes: make([][]byte, he.ISLanes)}
		for i, u := range ch.units {
			hc.Positions[i] = u.pos
		}
		lv := laneVectors(ch.units, need.value, req.Squares)
		for l := range he.ISLanes {
			vecs[l] = append(vecs[l], lv[l])
		}
		out.Chunks = append(out.Chunks, hc)
	}
	for l := range he.ISLanes {
		if !l.Wanted(need.value, req.Squares) {
			continue
		}
		cts, err := s.encryptSealed(keys[l.Params()], vecs[l], 1)
		if err != nil {
			return nil, err
		}
		for i := range out.Chunks {
			out.Chunks[i].Lanes[l] = cts[i].env
		}
	}
	return out, nil
}
