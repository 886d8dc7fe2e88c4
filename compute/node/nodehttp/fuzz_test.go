package nodehttp_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodehttp"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
)

// FuzzProtocolMessages sends arbitrary bodies to every protocol endpoint of
// a real node: it must never panic or answer 5xx (other than 503 for an
// audit failure, which cannot happen here), and every answer is JSON.
func FuzzProtocolMessages(f *testing.F) {
	paths := []string{nodeapi.PathPrepare, nodeapi.PathOwn, nodeapi.PathReblind, nodeapi.PathMembers, nodeapi.PathFinish, nodeapi.PathOutcome,
		nodeapi.PathKeysBegin, nodeapi.PathKeysShares, nodeapi.PathKeysFinish, nodeapi.PathHEGroups, nodeapi.PathHEAggregate,
		nodeapi.PathHEValues, nodeapi.PathHEZeroMask, nodeapi.PathHERelease, nodeapi.PathDeliver}
	seeds := []string{
		`{"job":"j1","step":"psi.prepare","attempt":1,"party":0,"spec":{"type":"psi_cardinality","purpose":"p","inputs":[{"dataset":"hrss.b","key":"id_number"},{"dataset":"x.y","key":"id_number"}]},"requester":{"user":"a","department":"hrss"},"input":0,"parties":2}`,
		`{"job":"j1","step":"psi.own","attempt":1,"party":0,"offset":0,"n":5}`,
		`{"job":"j1","step":"psi.reblind","attempt":1,"party":0,"list":1,"elements":"AAAA"}`,
		`{"job":"j1","step":"psi.members","attempt":1,"party":0,"positions":[0,1],"recipient":"a","recipient_key":""}`,
		`{"job":"j1","step":"job.finish","attempt":1,"party":0,"outcome":"ok"}`,
		`{"job":"j1","step":"he.release","attempt":1}`,
		`{}`, `[]`, `null`, `{"job":`,
		`{"job":"j1","spec_hash":"0000000000000000000000000000000000000000000000000000000000000000","step":"psi.reblind","attempt":1,"party":0,"list":1,"offset":0,"elements":"AAAA","proof":"AAAA","length":{"list":1,"len":5,"signature":"AAAA"}}`,
		`{"job":"j1","step":"psi.deliver","attempt":1,"party":0,"approval":{"statement":{"job":"j1","reviewer":"rita"},"signature":"AAAA"},"result":"e30="}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	h := fuzzNode(f)
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

// fuzzNode is a node holding one small dataset, accepting token "fuzz".
func fuzzNode(f *testing.F) http.Handler {
	dir := f.TempDir()
	sum := sha256.Sum256([]byte("fuzz"))
	cfg := &node.Config{Department: "hrss", Listen: "127.0.0.1:0", SecretFile: filepath.Join(dir, "s"), AuditLog: filepath.Join(dir, "a"),
		CoordinatorTokenSHA256: hex.EncodeToString(sum[:]), StateDB: filepath.Join(dir, "node.db"),
		Federation: node.Federation{Nodes: map[string]string{"hrss": nodetest.PublicKey("node-hrss"), "x": nodetest.PublicKey("node-x")}, Reviewers: map[string]string{nodetest.Reviewer: nodetest.PublicKey(nodetest.Reviewer)}}}
	csv := filepath.Join(dir, "b.csv")
	if err := os.WriteFile(csv, []byte("id_number,district\n440106199001011236,天河区\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	cfg.Datasets = []node.DatasetConfig{{Dataset: policy.Dataset{Name: "hrss.b", Classification: "general", Sharing: "open",
		JobTypes: []policy.JobType{policy.PSICardinality, policy.PSIMembers},
		Columns:  []policy.Column{{Name: "id_number", Kind: policy.KindID, Uses: []policy.Use{policy.UseKey}}, {Name: "district", Kind: policy.KindString, Uses: []policy.Use{policy.UseFilter}}}}, File: csv}}
	s, err := node.New(cfg, node.Options{Audit: &audit.MemLog{}, SigningKey: nodetest.PrivateKey("node-hrss")})
	if err != nil {
		f.Fatal(err)
	}
	return nodehttp.New(s, nodehttp.Options{})
}
