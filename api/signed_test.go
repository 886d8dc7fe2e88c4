package api

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/boltstore"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// The attacks below are what a thief of a person's bearer token, or the
// coordinator's operator replaying what it stored, would try: answers and
// releases the person never signed. Each is refused and changes nothing.

func TestConsentAttacksRefused(t *testing.T) {
	f, clock := consentFixture(t)
	id := f.submit(alice, specPSI)
	other := f.submit(alice, specPSIFiltered) // another job, another spec
	until := clock.Now().Add(30 * 24 * time.Hour)
	honest := func() *attest.Consent { return f.consentStatement(id, olga, dsBenefits, true, "fits", until) }
	send := func(req wire.ConsentRequest) wire.ConsentRequest {
		req.Dataset, req.Approve, req.Reason, req.Until = dsBenefits, true, "fits", until
		return req
	}
	otherSpec := honest()
	otherSpec.SpecHash = f.job(other).Spec.Hash()
	otherJob := honest()
	otherJob.Job = other
	otherDataset := honest()
	otherDataset.Dataset = dsOwners
	otherOwner := honest()
	otherOwner.Owner = oscar
	otherRequester := honest()
	otherRequester.Requester.User = bob
	refusal := honest()
	refusal.Approve = false
	shorter := honest()
	shorter.Until = until.Add(-time.Hour)
	reason := honest()
	reason.Reason = "something else"

	cases := []struct {
		name   string
		body   string
		status int
		code   string
	}{
		{"signed by someone else", consentBodyOf(t, testKey(oscar), honest(), send(wire.ConsentRequest{})), 403, "bad_signature"},
		{"signed by the reviewer", consentBodyOf(t, testKey(rita), honest(), send(wire.ConsentRequest{})), 403, "bad_signature"},
		{"for another job", consentBodyOf(t, testKey(olga), otherJob, send(wire.ConsentRequest{})), 403, "bad_signature"},
		{"for another spec under this id", consentBodyOf(t, testKey(olga), otherSpec, send(wire.ConsentRequest{})), 403, "bad_signature"},
		{"for another requester", consentBodyOf(t, testKey(olga), otherRequester, send(wire.ConsentRequest{})), 403, "bad_signature"},
		{"for another dataset", consentBodyOf(t, testKey(olga), otherDataset, send(wire.ConsentRequest{})), 403, "bad_signature"},
		{"naming another owner", consentBodyOf(t, testKey(olga), otherOwner, send(wire.ConsentRequest{})), 403, "bad_signature"},
		{"a signed refusal sent as approval", consentBodyOf(t, testKey(olga), refusal, send(wire.ConsentRequest{})), 403, "bad_signature"},
		{"until altered", consentBodyOf(t, testKey(olga), shorter, send(wire.ConsentRequest{})), 403, "bad_signature"},
		{"reason altered", consentBodyOf(t, testKey(olga), reason, send(wire.ConsentRequest{})), 403, "bad_signature"},
		{"signature bits flipped", func() string {
			s, err := attest.SignConsent(testKey(olga), honest())
			require.NoError(t, err)
			s.Signature[7] ^= 1
			req := send(wire.ConsentRequest{Signature: s.Signature})
			b, _ := json.Marshal(req)
			return string(b)
		}(), 403, "bad_signature"},
		{"unsigned approval", mustJSON(t, send(wire.ConsentRequest{})), 400, "signature_required"},
		{"no dataset", mustJSON(t, wire.ConsentRequest{Approve: true, Until: until, Signature: make([]byte, 64)}), 400, "dataset_required"},
		{"dataset of another department", consentBodyOf(t, testKey(olga), otherDataset, wire.ConsentRequest{Dataset: dsOwners, Approve: true, Reason: "fits", Until: until}), 403, "not_owner"},
		{"no until", consentBodyOf(t, testKey(olga), honest(), wire.ConsentRequest{Dataset: dsBenefits, Approve: true, Reason: "fits"}), 400, "until_required"},
		{"until already past", func() string {
			st := honest()
			st.Until = clock.Now().Add(-time.Minute)
			return consentBodyOf(t, testKey(olga), st, wire.ConsentRequest{Dataset: dsBenefits, Approve: true, Reason: "fits", Until: st.Until})
		}(), 400, "bad_until"},
	}
	before := f.snapshot()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := f.do("POST", "/v1/jobs/"+id+"/consent", bearer(olga), c.body)
			requireStatus(t, rec, c.status)
			require.Equal(t, c.code, errBody(t, rec).Code)
			require.Equal(t, before, f.snapshot(), "a refused consent changed something")
			require.Empty(t, f.job(id).Consents)
		})
	}
	// The honest answer goes through.
	rec := f.do("POST", "/v1/jobs/"+id+"/consent", bearer(olga), f.consentBody(id, olga, dsBenefits, true, "fits", until))
	requireStatus(t, rec, 200)
	require.Equal(t, jobs.Queued, decodeJSON[wire.Job](t, rec).State)
}

func TestConsentOwnerWithoutKey(t *testing.T) {
	f, clock := consentFixture(t)
	f.api.users.keys = attest.Keyring{} // olga registered no key
	id := f.submit(alice, specPSI)
	before := f.snapshot()
	rec := f.do("POST", "/v1/jobs/"+id+"/consent", bearer(olga), f.consentBody(id, olga, dsBenefits, true, "fits", clock.Now().Add(time.Hour)))
	requireStatus(t, rec, 403)
	require.Equal(t, "no_signing_key", errBody(t, rec).Code)
	require.Equal(t, before, f.snapshot())
	// An unsigned refusal is still heard: refusing takes no one's data.
	rec = f.do("POST", "/v1/jobs/"+id+"/consent", bearer(olga), `{"refuse":true,"reason":"not now"}`)
	requireStatus(t, rec, 200)
	require.Equal(t, jobs.Rejected, f.job(id).State)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestReviewShowsStatementToSign(t *testing.T) {
	f := newFixture(t, nil, nil)
	id := f.submit(carol, specMembers)
	const result = `{"count":12,"recipient":"carol","sealed_sha256":"` + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" + `"}`
	f.toReview(id, result)
	rec := f.do("GET", "/v1/jobs/"+id+"/review", bearer(rita), "")
	requireStatus(t, rec, 200)
	var raw struct {
		Review struct {
			Result json.RawMessage `json:"result"`
		} `json:"review"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &raw))
	rv := decodeJSON[wire.Review](t, rec)
	want := f.approval(id, rita)
	require.NotNil(t, rv.Approval)
	require.Equal(t, want.JobRef, rv.Approval.JobRef)
	require.Equal(t, want.Recipient, rv.Approval.Recipient)
	require.Equal(t, rita, rv.Approval.Reviewer)
	// The digest is of the result bytes exactly as served.
	require.Equal(t, attest.Digest(sha256.Sum256(raw.Review.Result)), rv.Approval.Result)
	require.Equal(t, want.Result, rv.Approval.Result)
	k, _ := base64.StdEncoding.DecodeString(f.api.users.byName[carol].PublicKey)
	require.Equal(t, attest.Fingerprint(k), rv.RecipientFingerprint)
}

func TestApprovalAttacksRefused(t *testing.T) {
	f := newFixture(t, nil, nil)
	id := f.submit(alice, specPSI)
	f.toReview(id, reviewResult)
	otherID := f.submit(alice, specPSIFiltered)
	honest := func() *attest.Approval { return f.approval(id, rita) }
	sign := signedApproveBody

	otherResult := honest()
	otherResult.Result = sha256.Sum256([]byte(`{"count":41}`))
	otherJob := honest()
	otherJob.Job = otherID
	otherSpec := honest()
	otherSpec.SpecHash = f.job(otherID).Spec.Hash()
	otherRequester := honest()
	otherRequester.Requester.User = bob
	asRay := honest()
	asRay.Reviewer = ray
	withRecipient := honest()
	withRecipient.Recipient = sha256.Sum256([]byte("a key of the coordinator's choosing"))

	cases := []struct {
		name   string
		user   string
		body   string
		status int
		code   string
	}{
		{"no body", rita, "", 400, "approval_required"},
		{"comment only", rita, `{"comment":"fine"}`, 400, "approval_required"},
		{"statement without signature", rita, mustJSON(t, wire.Approve{Approval: &attest.SignedApproval{Statement: honest()}}), 400, "approval_required"},
		{"signed by a data owner's key", rita, sign(t, testKey(olga), honest(), ""), 403, "bad_signature"},
		{"signed by the other reviewer's key", rita, sign(t, testKey(ray), honest(), ""), 403, "bad_signature"},
		{"naming the other reviewer", rita, sign(t, testKey(ray), asRay, ""), 403, "approval_mismatch"},
		{"posted by a non-reviewer", olga, sign(t, testKey(olga), honest(), ""), 403, "forbidden"},
		{"posted by the auditor", audra, sign(t, testKey(rita), honest(), ""), 403, "forbidden"},
		{"for another result digest", rita, sign(t, testKey(rita), otherResult, ""), 403, "approval_mismatch"},
		{"for another job", rita, sign(t, testKey(rita), otherJob, ""), 403, "approval_mismatch"},
		{"for another spec under this id", rita, sign(t, testKey(rita), otherSpec, ""), 403, "approval_mismatch"},
		{"for another requester", rita, sign(t, testKey(rita), otherRequester, ""), 403, "approval_mismatch"},
		{"with a recipient on a count", rita, sign(t, testKey(rita), withRecipient, ""), 403, "approval_mismatch"},
		{"statement altered after signing", rita, func() string {
			s, err := attest.SignApproval(testKey(rita), honest())
			require.NoError(t, err)
			s.Statement.Result = otherResult.Result
			return mustJSON(t, wire.Approve{Approval: s})
		}(), 403, "bad_signature"},
	}
	before := f.snapshot()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := f.do("POST", "/v1/jobs/"+id+"/approve", bearer(c.user), c.body)
			requireStatus(t, rec, c.status)
			require.Equal(t, c.code, errBody(t, rec).Code)
			require.Equal(t, before, f.snapshot(), "a refused approval changed something")
			require.Nil(t, f.job(id).Approval)
		})
	}

	// The honest approval releases the result; the stored approval verifies
	// with the reviewer's public key and names the stored result.
	rec := f.do("POST", "/v1/jobs/"+id+"/approve", bearer(rita), f.approveBody(id, rita, "fine"))
	requireStatus(t, rec, 200)
	j := f.job(id)
	require.Equal(t, jobs.Released, j.State)
	require.NotNil(t, j.Approval)
	require.NoError(t, attest.Keyring{rita: testKey(rita).Public().(ed25519.PublicKey)}.VerifyApproval(j.Approval))
	require.Equal(t, attest.Digest(sha256.Sum256(j.Result)), j.Approval.Statement.Result)
	require.NoError(t, j.Approval.Statement.JobRef.Check(id, &j.Spec, policy.Requester{User: alice, Department: "hrss"}))
	rel := f.entries()[len(f.entries())-1]
	require.Equal(t, "job.released", rel.Action)
	require.Equal(t, j.Approval.Statement.Result.String(), rel.Detail["result_sha256"])
}

func TestApprovalRecipientSubstitutionRefused(t *testing.T) {
	f := newFixture(t, nil, nil)
	id := f.submit(carol, specMembers)
	f.toReview(id, `{"count":12,"recipient":"carol"}`)
	bad := f.approval(id, rita)
	bad.Recipient = sha256.Sum256([]byte("the coordinator's own key"))
	none := f.approval(id, rita)
	none.Recipient = attest.Digest{}
	before := f.snapshot()
	for _, a := range []*attest.Approval{bad, none} {
		rec := f.do("POST", "/v1/jobs/"+id+"/approve", bearer(rita), signedApproveBody(t, testKey(rita), a, ""))
		requireStatus(t, rec, 403)
		require.Equal(t, "approval_mismatch", errBody(t, rec).Code)
	}
	require.Equal(t, before, f.snapshot())
	requireStatus(t, f.do("POST", "/v1/jobs/"+id+"/approve", bearer(rita), f.approveBody(id, rita, "")), 200)
}

func TestApprovalReviewerWithoutKey(t *testing.T) {
	f := newFixture(t, nil, nil)
	delete(f.api.users.keys, rita)
	id := f.submit(alice, specPSI)
	f.toReview(id, reviewResult)
	before := f.snapshot()
	rec := f.do("POST", "/v1/jobs/"+id+"/approve", bearer(rita), f.approveBody(id, rita, ""))
	requireStatus(t, rec, 403)
	require.Equal(t, "no_signing_key", errBody(t, rec).Code)
	require.Equal(t, before, f.snapshot())
}

// stubDeliverer plays the requesting node's delivery for the API's tests
// (the real one is the coordinator's, against a node).
type stubDeliverer struct {
	calls atomic.Int32
	list  []byte
	err   error
	seen  atomic.Pointer[jobs.Job]
}

func (d *stubDeliverer) Deliver(ctx context.Context, j *jobs.Job) ([]byte, error) {
	d.calls.Add(1)
	d.seen.Store(j)
	return d.list, d.err
}

type permanentErr struct{ error }

func (permanentErr) Permanent() bool { return true }

func TestResultDeliversSealedMembers(t *testing.T) {
	sealed := []byte("sealed member list (opaque to the coordinator)")
	sum := sha256.Sum256(sealed)
	resultFor := func(sum [32]byte) string {
		return fmt.Sprintf(`{"count":12,"recipient":"carol","sealed_sha256":"%x"}`, sum)
	}
	released := func(t *testing.T, d Deliverer, result string) (*fixture, string) {
		f := newFixture(t, nil, func(c *Config) {
			if d != nil {
				c.Deliverer = d
			}
		})
		id := f.submit(carol, specMembers)
		f.toReview(id, result)
		requireStatus(t, f.do("POST", "/v1/jobs/"+id+"/approve", bearer(rita), f.approveBody(id, rita, "")), 200)
		return f, id
	}

	t.Run("fetched once with the approval, then kept", func(t *testing.T) {
		d := &stubDeliverer{list: sealed}
		f, id := released(t, d, resultFor(sum))
		for range 2 {
			rec := f.do("GET", "/v1/jobs/"+id+"/result", bearer(carol), "")
			requireStatus(t, rec, 200)
			res := decodeJSON[wire.Result](t, rec)
			require.Equal(t, sealed, res.SealedMembers)
			require.NotNil(t, res.Approval)
		}
		require.Equal(t, int32(1), d.calls.Load())
		got := d.seen.Load()
		require.NotNil(t, got.Approval, "the deliverer must get the signed approval to show the node")
		require.Equal(t, attest.Digest(sha256.Sum256(got.Result)), got.Approval.Statement.Result)
		require.Equal(t, 2, f.countAction("result.read"))
	})
	t.Run("node unreachable", func(t *testing.T) {
		d := &stubDeliverer{err: errors.New("dial tcp 10.0.0.7:7101: connection refused")}
		f, id := released(t, d, resultFor(sum))
		rec := f.do("GET", "/v1/jobs/"+id+"/result", bearer(carol), "")
		requireStatus(t, rec, http.StatusServiceUnavailable)
		e := errBody(t, rec)
		require.Equal(t, "node_unreachable", e.Code)
		require.Contains(t, e.Message, "connection refused")
		require.Zero(t, f.countAction("result.read"))
		// Once the node is back, the list comes.
		d.err, d.list = nil, sealed
		requireStatus(t, f.do("GET", "/v1/jobs/"+id+"/result", bearer(carol), ""), 200)
	})
	t.Run("node refuses", func(t *testing.T) {
		d := &stubDeliverer{err: permanentErr{errors.New("node hrss: approval does not verify (403 bad_signature)")}}
		f, id := released(t, d, resultFor(sum))
		rec := f.do("GET", "/v1/jobs/"+id+"/result", bearer(carol), "")
		requireStatus(t, rec, http.StatusBadGateway)
		require.Equal(t, "delivery_refused", errBody(t, rec).Code)
	})
	t.Run("list does not match the approved result", func(t *testing.T) {
		d := &stubDeliverer{list: []byte("another list")}
		f, id := released(t, d, resultFor(sum))
		rec := f.do("GET", "/v1/jobs/"+id+"/result", bearer(carol), "")
		requireStatus(t, rec, http.StatusBadGateway)
		require.Equal(t, "delivery_mismatch", errBody(t, rec).Code)
	})
	t.Run("no deliverer", func(t *testing.T) {
		f, id := released(t, nil, resultFor(sum))
		rec := f.do("GET", "/v1/jobs/"+id+"/result", bearer(carol), "")
		requireStatus(t, rec, http.StatusServiceUnavailable)
		require.Equal(t, "delivery_unavailable", errBody(t, rec).Code)
	})
	t.Run("list carried in the result", func(t *testing.T) {
		d := &stubDeliverer{list: sealed}
		f, id := released(t, d, `{"count":12,"recipient":"carol","sealed_members":"c2VhbGVk"}`)
		rec := f.do("GET", "/v1/jobs/"+id+"/result", bearer(carol), "")
		requireStatus(t, rec, 200)
		require.Empty(t, decodeJSON[wire.Result](t, rec).SealedMembers)
		require.Zero(t, d.calls.Load())
	})
}

func TestMe(t *testing.T) {
	f := newFixture(t, nil, nil)
	rec := f.do("GET", "/v1/me", bearer(rita), "")
	requireStatus(t, rec, 200)
	me := decodeJSON[wire.Me](t, rec)
	require.Equal(t, rita, me.Name)
	require.Equal(t, RoleReviewer, me.Role)
	pub, err := attest.ParsePublicKey(me.SigningKey)
	require.NoError(t, err)
	require.Equal(t, testKey(rita).Public(), pub)
	requireStatus(t, f.do("GET", "/v1/me", "", ""), 401)
}

func TestNewRejectsBadSigningKeys(t *testing.T) {
	st := openStore(t, boltstore.Options{Clock: fixedClock{}})
	for name, u := range map[string]User{
		"not a key":        {Name: "r", Role: RoleReviewer, TokenSHA256: HashToken("t"), SigningKey: "ed25519:AAAA"},
		"no prefix":        {Name: "r", Role: RoleReviewer, TokenSHA256: HashToken("t"), SigningKey: base64.StdEncoding.EncodeToString(make([]byte, 32))},
		"an analyst's key": {Name: "a", Role: RoleAnalyst, TokenSHA256: HashToken("t"), SigningKey: attest.FormatPublicKey(testKey("a").Public().(ed25519.PublicKey))},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(Config{Store: st, Catalog: testCatalog(), Users: []User{u}})
			require.Error(t, err)
		})
	}
}

// A psi_members job whose analyst has no registered key can still be
// reviewed (and rejected), but not approved: there is nothing to seal to.
func TestReviewWithoutRecipientKey(t *testing.T) {
	f := newFixture(t, nil, nil)
	id := f.submit(carol, specMembers)
	f.toReview(id, `{"count":12,"recipient":"carol"}`)
	body := f.approveBody(id, rita, "")
	f.api.users.byName[carol].PublicKey = ""
	rec := f.do("GET", "/v1/jobs/"+id+"/review", bearer(rita), "")
	requireStatus(t, rec, 200)
	require.Nil(t, decodeJSON[wire.Review](t, rec).Approval)
	before := f.snapshot()
	rec = f.do("POST", "/v1/jobs/"+id+"/approve", bearer(rita), body)
	requireStatus(t, rec, 409)
	require.Equal(t, "no_recipient_key", errBody(t, rec).Code)
	require.Equal(t, before, f.snapshot())
	requireStatus(t, f.do("POST", "/v1/jobs/"+id+"/reject", bearer(rita), `{"reason":"no key to seal to"}`), 200)
}
