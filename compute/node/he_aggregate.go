package node

// The aggregate steps: he/groups and he/aggregate (every node its local
// per-group totals, encrypted), and what they share with he/values: the
// input's policy check and encryption.

import (
	"context"
	"fmt"
	"runtime"
	"slices"

	"golang.org/x/sync/errgroup"

	"github.com/unseen-data/unseen/compute/he"
	"github.com/unseen-data/unseen/compute/he/ceremony"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/policy/disclosure"
)

// heInput is a job-bound request's input at this node, checked against
// the node's own policy.
type heInput struct {
	tbl    *rowSet // the input's rows, with the columns the job may need
	in     policy.Input
	ds     *policy.Dataset
	rows   []int             // the input's rows after its filter
	detail map[string]string // what the step's audit entry records
	// overlaps are the differencing overlaps to report (flag mode).
	overlaps []disclosure.Overlap
}

// checkInput checks the first step of an aggregate at this node like every
// step that starts a job's work with one of its datasets (gate: the spec
// and its hash, the job's binding, the party, the node's own policy, the
// owner's signed consent, budgets and rate limits), selects the input's
// rows and refuses an input below its dataset's k. Refusals are audited.
func (s *Service) checkInput(ctx context.Context, c Caller, step nodeapi.Step, h nodeapi.Header, spec *policy.Spec, req policy.Requester, input int, consents []attest.SignedConsent) (*heInput, error) {
	detail := jobDetail(spec, req, h.Attempt)
	detail["input"] = fmt.Sprint(input)
	if input < 0 || input >= len(spec.Inputs) {
		return nil, s.refusedStep(ctx, c, step, h.Job, nil, detail, refuse(KindBadRequest, "bad_request", "input %d is not in the spec", input))
	}
	in := spec.Inputs[input]
	s.inputDetail(detail, spec, in)
	dsn := []string{in.Dataset}
	fail := func(err error) (*heInput, error) {
		return nil, s.refusedStep(ctx, c, step, h.Job, dsn, detail, err)
	}
	if spec.Type != policy.Aggregate {
		return fail(refuse(KindForbidden, "unsupported", "job type %s is not served by %s", spec.Type, step))
	}
	ds, err := s.gate(ctx, h, spec, req, input, consents)
	if err != nil {
		return fail(err)
	}
	tbl, ok := s.tables[ds.Name]
	if !ok {
		return fail(refuse(KindNotFound, "unknown_dataset", "dataset %q is not held by node %s", ds.Name, s.cfg.Department))
	}
	detail["policy_version"] = ds.Version()
	// Only this input's selected rows, and only the columns the job can
	// use (the person, the value, the group): the homomorphic steps index
	// rows, so they are held for the step (O(rows × those columns)).
	rs, err := tbl.rows(ctx, in.Filter, inputColumns(ds, spec, input)...)
	if err != nil {
		return fail(jobError(err))
	}
	rows := rs.all()
	// The coordinator sees every total before a reviewer does, so the node
	// does not take part at all — not merely flag it — when its filter
	// leaves fewer than k rows. The count itself stays here.
	if k := ds.EffectiveMinCount(); len(rows) < k {
		return fail(refuse(KindForbidden, "input_below_k", "the filter on %s leaves fewer than its k = %d rows: node %s does not take part in a result that could single out a person", ds.Name, k, s.cfg.Department))
	}
	// Disclosure control (disclosure.go): at most max_rows_per_key rows per
	// person, k counted in people, and no input that differs from an
	// earlier job's by 1..k−1 people (refused, or reported in flag mode).
	rows, overlaps, err := s.aggregateInput(h.Job, rs, ds, rows, detail)
	if err != nil {
		return fail(err)
	}
	return &heInput{tbl: rs, in: in, ds: ds, rows: rows, detail: detail, overlaps: overlaps}, nil
}

// inputColumns are the declared columns of ds a job's steps on input may
// read: the person key (disclosure control), the input's key, the value
// and the group-by column (each checked against the policy where used).
func inputColumns(ds *policy.Dataset, spec *policy.Spec, input int) []string {
	cand := []string{disclosure.PersonKey(ds), spec.Inputs[input].Key, spec.ValueColumn(input)}
	if spec.GroupBy != nil && (spec.GroupBy.Dataset == "" || spec.GroupBy.Dataset == ds.Name) {
		cand = append(cand, spec.GroupBy.Column)
	}
	var out []string
	for _, c := range cand {
		if _, ok := ds.Column(c); ok && c != "" {
			out = append(out, c)
		}
	}
	return out
}

// sealedCT is an encrypted vector as it leaves the node: the envelope, and
// the SHA-256 of its payload (what the node signs).
type sealedCT struct {
	env    []byte
	digest attest.Digest
}

// encryptSealed encrypts each vector under keys' collective key (each
// goroutine with its own ShallowCopy of the encryptor) and envelopes it;
// nil vectors stay empty. maxTerms is passed to Encrypt's own range check.
func (s *Service) encryptSealed(keys *ceremony.NodeKeys, vecs [][]int64, maxTerms int) ([]sealedCT, error) {
	enc, err := he.NewEncryptor(keys.PublicKey())
	if err != nil {
		return nil, err
	}
	cer := keys.Setup().CeremonyID()
	out := make([]sealedCT, len(vecs))
	g := new(errgroup.Group)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range vecs {
		if vecs[i] == nil {
			continue
		}
		g.Go(func() error {
			ct, err := enc.ShallowCopy().Encrypt(vecs[i], maxTerms)
			if err != nil {
				return err
			}
			b, err := ct.MarshalBinary()
			if err != nil {
				return err
			}
			env, err := s.he.seal(ct.ParamSet(), cer, he.LabelCiphertext, ct.Level(), b)
			out[i] = sealedCT{env: env, digest: nodeapi.DigestOf(b)}
			return err
		})
	}
	return out, g.Wait()
}

// signContribution signs the node's contribution to an aggregate.
func (s *Service) signContribution(h nodeapi.Header, input int, params string, ct sealedCT) []byte {
	st := nodeapi.ContributionStatement{JobRef: h.Ref(), Input: input, Params: params, Payload: ct.digest}
	return s.sign(st.Message())
}

// HEGroups lists the labels of the group-by column present in the input's
// filtered rows (aggregate with group_by), so that the coordinator can lay
// out one slot per group across all nodes.
func (s *Service) HEGroups(ctx context.Context, c Caller, req *nodeapi.HEGroupsRequest) (*nodeapi.HEGroupsResponse, error) {
	out, err := s.heGroups(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathHEGroups, err)
}

func (s *Service) heGroups(ctx context.Context, c Caller, req *nodeapi.HEGroupsRequest) (*nodeapi.HEGroupsResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepHEGroups); err != nil {
		return nil, err
	}
	hi, err := s.checkInput(ctx, c, nodeapi.StepHEGroups, req.Header, &req.Spec, req.Requester, req.Input, req.Consents)
	if err != nil {
		return nil, err
	}
	tbl, ds, detail := hi.tbl, hi.ds, hi.detail
	fail := func(err error) (*nodeapi.HEGroupsResponse, error) {
		return nil, s.refusedStep(ctx, c, nodeapi.StepHEGroups, req.Job, []string{ds.Name}, detail, err)
	}
	if req.Spec.GroupBy == nil {
		return fail(refuse(KindBadRequest, "bad_request", "the job has no group_by"))
	}
	col, err := heColumn(ds, req.Spec.GroupBy, policy.UseGroupBy)
	if err != nil {
		return fail(err)
	}
	labels, err := tbl.Strings(hi.rows, col)
	if err != nil {
		return fail(refuse(KindBadRequest, "bad_input", "%s: %v", ds.Name, err))
	}
	groups := distinctSorted(labels)
	if len(groups) > maxGroups() {
		return fail(refuse(KindBadRequest, "too_many_groups", "column %s of %s has more than %d groups", col, ds.Name, maxGroups()))
	}
	detail["group_by"] = col
	detail["groups"] = fmt.Sprint(len(groups))
	if err := s.record(ctx, c, string(nodeapi.StepHEGroups), req.Job, []string{ds.Name}, detail); err != nil {
		return nil, err
	}
	return &nodeapi.HEGroupsResponse{Groups: groups}, nil
}

// HEAggregate encrypts the node's local aggregate of its input: per group,
// the count, Σx and histogram buckets under the Sums key, and Σx² under the
// Squares key when the variance is asked.
func (s *Service) HEAggregate(ctx context.Context, c Caller, req *nodeapi.HEAggregateRequest) (*nodeapi.HEAggregateResponse, error) {
	out, err := s.heAggregate(ctx, c, req)
	return out, s.settle(ctx, c, nodeapi.PathHEAggregate, err)
}

func (s *Service) heAggregate(ctx context.Context, c Caller, req *nodeapi.HEAggregateRequest) (*nodeapi.HEAggregateResponse, error) {
	if err := checkHeader(req.Header, nodeapi.StepHEAggregate); err != nil {
		return nil, err
	}
	hi, err := s.checkInput(ctx, c, nodeapi.StepHEAggregate, req.Header, &req.Spec, req.Requester, req.Input, req.Consents)
	if err != nil {
		return nil, err
	}
	tbl, ds, detail := hi.tbl, hi.ds, hi.detail
	dsn := []string{ds.Name}
	fail := func(err error) (*nodeapi.HEAggregateResponse, error) {
		return nil, s.refusedStep(ctx, c, nodeapi.StepHEAggregate, req.Job, dsn, detail, err)
	}
	need, err := statNeeds(&req.Spec)
	if err != nil {
		return fail(err)
	}
	// Each node may hold at most its share of the job's row bound, so that
	// every total over all inputs stays exact.
	share, err := rowShare(req.MaxRows, len(req.Spec.Inputs))
	if err != nil {
		return fail(err)
	}
	var valueCol, groupCol string
	if need.value {
		if valueCol, err = heValueColumn(ds, &req.Spec, req.Input); err != nil {
			return fail(err)
		}
	}
	groups := []string{""}
	if req.Spec.GroupBy != nil {
		if groupCol, err = heColumn(ds, req.Spec.GroupBy, policy.UseGroupBy); err != nil {
			return fail(err)
		}
		if len(req.Groups) == 0 || len(req.Groups) > maxGroups() || !slices.IsSorted(req.Groups) || len(slices.Compact(slices.Clone(req.Groups))) != len(req.Groups) {
			return fail(refuse(KindBadRequest, "bad_request", "groups must be 1..%d distinct sorted labels", maxGroups()))
		}
		groups = req.Groups
	} else if len(req.Groups) != 0 {
		return fail(refuse(KindBadRequest, "bad_request", "groups given for a job without group_by"))
	}
	B := 0 // histogram buckets per group, after the counts and sums
	if need.hist {
		B = req.Spec.Buckets()
	}
	if per := aggSlotsPerGroup(need.value, B); len(groups)*per > he.Sums().Slots() {
		return fail(refuse(KindBadRequest, "too_many_groups", "%d groups × %d slots each (count, Σx, its hint, %d histogram buckets) do not fit one ciphertext", len(groups), per, B))
	}
	rows := hi.rows
	if int64(len(rows)) > share {
		return fail(refuse(KindBadRequest, "too_many_rows", "dataset %s has more rows after the filter than %s", ds.Name, describeShare(share, req.MaxRows)))
	}
	gidx := make([]int, len(rows))
	if groupCol != "" {
		labels, err := tbl.Strings(rows, groupCol)
		if err != nil {
			return fail(refuse(KindBadRequest, "bad_input", "%s: %v", ds.Name, err))
		}
		for k, l := range labels {
			g, ok := slices.BinarySearch(groups, l)
			if !ok {
				return fail(refuse(KindBadRequest, "unknown_group", "a row of %s (%s) has a group that is not in the job's group list", ds.Name, tbl.Where(rows[k])))
			}
			gidx[k] = g
		}
	}
	var xs, raw []int64
	if valueCol != "" {
		if xs, err = tbl.Ints(rows, valueCol); err != nil {
			return fail(refuse(KindBadRequest, "bad_input", "%s: %v", ds.Name, err))
		}
		// Disclosure control (disclosure.go): values summed are clamped to
		// the dataset's dp.value_bound; buckets count the raw values.
		raw = xs
		var clamped int
		if xs, clamped = clampValues(ds, xs); clamped > 0 {
			detail["values_clamped"] = fmt.Sprint(clamped)
		}
	}
	G := len(groups)
	contrib := newAggContribution(&req.Spec, G, B, need.value, need.squares)
	for k, g := range gidx {
		var x, r int64
		if xs != nil {
			x, r = xs[k], raw[k]
		}
		if err := contrib.add(g, x, r); err != nil {
			return fail(valueRefusal(err, ds.Name, valueCol, tbl.Where(rows[k])))
		}
	}
	sums, sq := contrib.vectors()
	sumsKeys, err := s.he.keysFor(he.NameSums)
	if err != nil {
		return fail(err)
	}
	var sqKeys *ceremony.NodeKeys
	if need.squares {
		if sqKeys, err = s.he.keysFor(he.NameSquares); err != nil {
			return fail(err)
		}
	}
	detail["rows"] = fmt.Sprint(len(rows))
	detail["groups"] = fmt.Sprint(G)
	detail["max_rows"] = fmt.Sprint(req.MaxRows)
	detail["ceremony"] = sumsKeys.Setup().CeremonyID()
	if err := s.record(ctx, c, string(nodeapi.StepHEAggregate), req.Job, dsn, detail); err != nil {
		return nil, err
	}
	// Each slot is this node's part of a total over len(inputs) nodes: a
	// residue (which may wrap) or a count or floor hint that he's bounds
	// keep within (T−1)/2, so Encrypt's own check is |slot| ≤ (T−1)/2. Each
	// ciphertext is signed: a releasing node decrypts only the sum of every
	// input's signed contribution.
	out := &nodeapi.HEAggregateResponse{Overlaps: hi.overlaps}
	cts, err := s.encryptSealed(sumsKeys, [][]int64{sums}, 1)
	if err != nil {
		return nil, err
	}
	out.Sums, out.SumsSignature = cts[0].env, s.signContribution(req.Header, req.Input, he.NameSums, cts[0])
	if sqKeys != nil {
		if cts, err = s.encryptSealed(sqKeys, [][]int64{sq}, 1); err != nil {
			return nil, err
		}
		out.Squares, out.SquaresSignature = cts[0].env, s.signContribution(req.Header, req.Input, he.NameSquares, cts[0])
	}
	return out, nil
}
