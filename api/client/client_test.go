package client_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/api"
	"github.com/unseen-data/unseen/api/client"
	"github.com/unseen-data/unseen/api/internal/contract"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/boltstore"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/psi/delivery"
)

func key(name string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte("client test " + name))
	return ed25519.NewKeyFromSeed(s[:])
}

func pub(name string) string { return attest.FormatPublicKey(key(name).Public().(ed25519.PublicKey)) }

// env is a real API over the embedded store, reached through a proxy that
// can rewrite what it answers (a lying coordinator).
type env struct {
	store   *boltstore.Store
	url     string
	rewrite func(path string, body []byte) []byte
}

const (
	dsA = "hrss.benefits"
	dsB = "civil.allowance"
)

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "unseen.db"), boltstore.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	hpke, _, err := delivery.GenerateKey()
	require.NoError(t, err)
	cols := []policy.Column{{Name: "id_number", Kind: policy.KindID, PII: true, Uses: []policy.Use{policy.UseKey}}}
	all := []policy.JobType{policy.PSICardinality, policy.PSIMembers}
	cat := api.StaticCatalog{
		dsA: {Name: dsA, Classification: "important", Sharing: "open", JobTypes: all, Columns: cols},
		dsB: {Name: dsB, Classification: "important", Sharing: "conditional", JobTypes: all, Columns: cols},
	}
	users := []api.User{
		{Name: "alice", Role: api.RoleAnalyst, Department: "hrss", TokenSHA256: api.HashToken("tok-alice"), PublicKey: base64.StdEncoding.EncodeToString(hpke)},
		{Name: "rita", Role: api.RoleReviewer, Department: "bureau", TokenSHA256: api.HashToken("tok-rita"), SigningKey: pub("rita")},
		{Name: "cora", Role: api.RoleDataOwner, Department: "civil", TokenSHA256: api.HashToken("tok-cora"), SigningKey: pub("cora")},
		{Name: "aldo", Role: api.RoleAuditor, Department: "bureau", TokenSHA256: api.HashToken("tok-aldo")},
		{Name: "adam", Role: api.RoleAdmin, Department: "bureau", TokenSHA256: api.HashToken("tok-adam")},
	}
	a, err := api.New(api.Config{Store: st, Users: users, Catalog: cat, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Keys: keys{}})
	require.NoError(t, err)
	e := &env{store: st}
	// Every request the client sends, and every answer, is checked against
	// api/openapi.yaml.
	c, err := contract.Load(api.OpenAPI)
	require.NoError(t, err)
	checked := c.Handler(a.Handler(), t.Errorf)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		checked.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if e.rewrite != nil {
			body = e.rewrite(r.URL.Path, body)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

// keys is a key ceremony that has not run yet.
type keys struct{}

func (keys) Init(context.Context, int) (any, error) {
	return map[string]any{"epoch": 1, "threshold": 2, "nodes": []any{}}, nil
}
func (keys) Status(context.Context) (any, error) {
	return map[string]any{"epoch": 0, "nodes": nil}, nil
}

// toReview submits a job as alice and plays the worker up to review.
func (e *env) toReview(t *testing.T, result string) string {
	t.Helper()
	ctx := context.Background()
	sub, err := client.New(e.url, "tok-alice").Submit(ctx, []byte(`{"type":"psi_cardinality","purpose":"check","inputs":[{"dataset":"hrss.benefits","key":"id_number"},{"dataset":"civil.allowance","key":"id_number"}]}`), "")
	require.NoError(t, err)
	require.Equal(t, jobs.AwaitingConsent, sub.State)
	j, err := client.New(e.url, "tok-cora").Consent(ctx, sub.ID, client.ConsentAnswer{Approve: true, Reason: "fits"}, key("cora"))
	require.NoError(t, err)
	require.Equal(t, jobs.Queued, j.State)
	l, err := e.store.Claim(ctx, "w", 0)
	require.NoError(t, err)
	rv, _ := json.Marshal(jobs.Review{Result: json.RawMessage(result)})
	_, err = e.store.Transition(ctx, sub.ID, jobs.Change{From: jobs.Running, Attempt: l.Attempt, To: jobs.AwaitingReview, Actor: "worker:w", Role: "worker", Review: rv})
	require.NoError(t, err)
	return sub.ID
}

// The honest path: the owner's consent and the reviewer's approval, each
// computed and signed by the client, are accepted and stored, and verify.
func TestConsentAndApproveSigned(t *testing.T) {
	e := newEnv(t)
	id := e.toReview(t, `{"count":42}`)
	j, err := e.store.Get(context.Background(), id)
	require.NoError(t, err)
	require.Len(t, j.Consents, 1)
	require.NoError(t, attest.Keyring{"cora": key("cora").Public().(ed25519.PublicKey)}.VerifyConsent(j.Consents[0].Signed))
	require.True(t, j.Consents[0].Signed.Statement.Until.After(time.Now().Add(29*24*time.Hour)), "default until is 30 days on")

	out, err := client.New(e.url, "tok-rita").Approve(context.Background(), id, "fine", key("rita"))
	require.NoError(t, err)
	require.Equal(t, jobs.Released, out.State)
	require.NotNil(t, out.Approval)
	require.Equal(t, attest.Digest(sha256.Sum256([]byte(`{"count":42}`))), out.Approval.Statement.Result)
}

// A key file that is not the registered one is caught before signing.
func TestWrongKeyCaughtBeforeSigning(t *testing.T) {
	e := newEnv(t)
	id := e.toReview(t, `{"count":42}`)
	_, err := client.New(e.url, "tok-rita").Approve(context.Background(), id, "", key("mallory"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "not the one registered")
	j, _ := e.store.Get(context.Background(), id)
	require.Equal(t, jobs.AwaitingReview, j.State)
}

// A lying coordinator that shows the reviewer one thing and asks her to
// sign another gets no signature.
func TestLyingReviewRefused(t *testing.T) {
	for name, rw := range map[string]func(path string, body []byte) []byte{
		"shown result is not the one to sign": func(path string, b []byte) []byte {
			if strings.HasSuffix(path, "/review") {
				return bytes.Replace(b, []byte(`{"count":42}`), []byte(`{"count":4200}`), 1)
			}
			return b
		},
		"shown spec is not the one to sign": func(path string, b []byte) []byte {
			if strings.HasSuffix(path, "/review") {
				return bytes.Replace(b, []byte(`"purpose":"check"`), []byte(`"purpose":"a harmless check"`), -1)
			}
			return b
		},
		"statement for another job": func(path string, b []byte) []byte {
			if strings.HasSuffix(path, "/review") {
				var m map[string]any
				_ = json.Unmarshal(b, &m)
				m["approval"].(map[string]any)["job"] = "j_aaaaaaaaaaaaaaaaaaaaaaaaaa"
				b, _ = json.Marshal(m)
			}
			return b
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			id := e.toReview(t, `{"count":42}`)
			e.rewrite = rw
			_, err := client.New(e.url, "tok-rita").Approve(context.Background(), id, "", key("rita"))
			require.Error(t, err)
			require.Contains(t, err.Error(), "not signing")
			j, _ := e.store.Get(context.Background(), id)
			require.Equal(t, jobs.AwaitingReview, j.State)
		})
	}
}

// A lying coordinator that shows the owner another spec than the job's
// gets a signature over what it showed — which the API (and every node)
// refuses for the real job.
func TestConsentOverShownSpecRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sub, err := client.New(e.url, "tok-alice").Submit(ctx, []byte(`{"type":"psi_cardinality","purpose":"check","inputs":[{"dataset":"hrss.benefits","key":"id_number","filter":""},{"dataset":"civil.allowance","key":"id_number"}]}`), "")
	require.NoError(t, err)
	e.rewrite = func(path string, b []byte) []byte {
		if strings.HasSuffix(path, sub.ID) {
			return bytes.Replace(b, []byte(`"purpose":"check"`), []byte(`"purpose":"an agreed purpose"`), -1)
		}
		return b
	}
	_, err = client.New(e.url, "tok-cora").Consent(ctx, sub.ID, client.ConsentAnswer{Approve: true}, key("cora"))
	require.Error(t, err)
	var ce *client.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "bad_signature", ce.Code)
	j, _ := e.store.Get(ctx, sub.ID)
	require.Equal(t, jobs.AwaitingConsent, j.State)
	require.Empty(t, j.Consents)
}
