package node

import (
	"bytes"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
)

// FuzzProtocolMessages sends arbitrary bodies to every protocol endpoint of
// a real node: it must never panic or answer 5xx (other than 503 for an
// audit failure, which cannot happen here), and every answer is JSON.
func FuzzProtocolMessages(f *testing.F) {
	paths := []string{nodeapi.PathPrepare, nodeapi.PathOwn, nodeapi.PathReblind, nodeapi.PathMembers, nodeapi.PathFinish, nodeapi.PathOutcome,
		nodeapi.PathKeysBegin, nodeapi.PathKeysShares, nodeapi.PathKeysFinish, nodeapi.PathHEGroups, nodeapi.PathHEAggregate,
		nodeapi.PathHEValues, nodeapi.PathHEZeroMask, nodeapi.PathHERelease}
	seeds := []string{
		`{"job":"j1","step":"psi.prepare","attempt":1,"party":0,"spec":{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"hrss.b","key":"id_number"},{"dataset":"x.y","key":"id_number"}]},"requester":{"user":"a","department":"hrss"},"input":0,"parties":2}`,
		`{"job":"j1","step":"psi.own","attempt":1,"party":0,"offset":0,"n":5}`,
		`{"job":"j1","step":"psi.reblind","attempt":1,"party":0,"list":1,"elements":"AAAA"}`,
		`{"job":"j1","step":"psi.members","attempt":1,"party":0,"positions":[0,1],"recipient":"a","recipient_key":""}`,
		`{"job":"j1","step":"job.finish","attempt":1,"party":0,"outcome":"ok"}`,
		`{"job":"j1","step":"he.release","attempt":1}`,
		`{}`, `[]`, `null`, `{"job":`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	dir := f.TempDir()
	cfg := &Config{Department: "hrss", Listen: "127.0.0.1:0", SecretFile: filepath.Join(dir, "s"), AuditLog: filepath.Join(dir, "a"),
		CoordinatorTokenSHA256: "1f1ff1b7f9a1d4e0e1b0c53c9c7bc8f0a4e93b6f4b7c6e6ee3e7d7a8c1c5e0f2"}
	csv := filepath.Join(dir, "b.csv")
	if err := writeFile(csv, "id_number,district\n440106199001011236,天河区\n"); err != nil {
		f.Fatal(err)
	}
	cfg.Datasets = []DatasetConfig{{Dataset: policy.Dataset{Name: "hrss.b", Classification: "general", Sharing: "open",
		JobTypes: []policy.JobType{policy.PSICardinality, policy.PSIMembers},
		Columns:  []policy.Column{{Name: "id_number", Kind: policy.KindID, Uses: []policy.Use{policy.UseKey}}, {Name: "district", Kind: policy.KindString, Uses: []policy.Use{policy.UseFilter}}}}, File: csv}}
	s, err := New(cfg, Options{Audit: &audit.MemLog{}})
	if err != nil {
		f.Fatal(err)
	}
	s.tokenSum = sum("fuzz")
	h := s.Handler()
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		path := paths[int(which)%len(paths)]
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer fuzz")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s answered %d: %s", path, rec.Code, rec.Body.String())
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s answered content type %q", path, ct)
		}
	})
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

func sum(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}
