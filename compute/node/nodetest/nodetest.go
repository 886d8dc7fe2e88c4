// Package nodetest starts real department nodes (real HTTP servers on
// loopback, real CSV files) for other packages' tests: each a node.Service
// served by nodehttp, as the binary runs them.
package nodetest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/idnum"
	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/compute/node/nodehttp"
	"github.com/unseen-data/unseen/compute/nodeapi"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
)

// Districts used for rows (row i gets Districts[i % len]).
var Districts = []string{"天河区", "越秀区", "海珠区"}

// Federation is a set of running nodes.
type Federation struct {
	Services map[string]*node.Service   // by department
	Clients  map[string]*nodeapi.Client // by department, as the coordinator holds them
	Audits   map[string]*audit.MemLog
	Catalog  policy.Catalog
	Configs  map[string]*node.Config // by department (KeysPath: its key shares)

	handlers map[string]*swapHandler
	wrap     func(dept string, h http.Handler) http.Handler
}

// Options adjust StartWith.
type Options struct {
	// Customise lets a test change a declaration before the node starts.
	Customise func(*policy.Dataset)
	// Wrap, if set, wraps every node's handler (tests inject faults).
	Wrap func(dept string, h http.Handler) http.Handler
}

// swapHandler serves the current node, so that a restarted node
// keeps its URL.
type swapHandler struct{ h atomic.Pointer[http.Handler] }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

func (s *swapHandler) set(h http.Handler) { s.h.Store(&h) }

// ID returns the i-th synthetic resident ID number (valid check digit).
func ID(i int) string {
	birth := time.Date(1950+i%50, time.Month(1+i%12), 1+i%28, 0, 0, 0, 0, time.UTC)
	id, err := idnum.Make("440106", birth, i/600%1000)
	if err != nil {
		panic(err)
	}
	return id
}

// Dataset returns a declaration for a dataset with columns id_number (key),
// district (filter, group_by) and amount (value, filter). A person (an
// id_number) may have up to 3 rows (max_rows_per_key): the node caps
// them there, so tests whose rows repeat a key more often see fewer.
func Dataset(name string) policy.Dataset {
	return policy.Dataset{
		Name: name, Classification: "important", Sharing: "open", MinCount: 1, MaxRowsPerKey: 3,
		JobTypes: []policy.JobType{policy.PSICardinality, policy.PSIMembers, policy.IntersectionStats, policy.Aggregate},
		Columns: []policy.Column{
			{Name: "id_number", Kind: policy.KindID, PII: true, Uses: []policy.Use{policy.UseKey}},
			{Name: "district", Kind: policy.KindString, Uses: []policy.Use{policy.UseFilter, policy.UseGroupBy}},
			{Name: "amount", Kind: policy.KindInt, Uses: []policy.Use{policy.UseValue, policy.UseFilter}},
		},
	}
}

// Token is the coordinator token every test node accepts.
const Token = "nodetest-coordinator-token"

// Start runs one node per department holding the given datasets
// ("dept.name" → row indexes passed to ID; amount = index). Customise lets a
// test change a declaration before the node starts.
func Start(t testing.TB, rows map[string][]int, customise func(*policy.Dataset)) *Federation {
	t.Helper()
	return StartWith(t, rows, Options{Customise: customise})
}

// StartWith is Start with options. Each node keeps its key shares in its
// own folder (Configs[dept].KeysDir).
func StartWith(t testing.TB, rows map[string][]int, opts Options) *Federation {
	t.Helper()
	cfgs, cat := Configs(t, rows, opts.Customise)
	f := &Federation{Services: map[string]*node.Service{}, Clients: map[string]*nodeapi.Client{}, Audits: map[string]*audit.MemLog{}, Catalog: cat,
		Configs: cfgs, handlers: map[string]*swapHandler{}, wrap: opts.Wrap}
	for dept, cfg := range cfgs {
		log := &audit.MemLog{}
		s, err := node.New(cfg, node.Options{Audit: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Services[dept].Close() })
		sh := &swapHandler{}
		sh.set(f.handler(dept, s))
		ts := httptest.NewServer(sh)
		t.Cleanup(ts.Close)
		f.Services[dept] = s
		f.Audits[dept] = log
		f.handlers[dept] = sh
		f.Clients[dept] = nodeapi.NewClient(dept, ts.URL, Token)
	}
	return f
}

// Configs writes the datasets' CSV files into a test folder and returns one
// validated configuration per department (accepting Token), and the
// catalog of their declarations, without starting anything: a test of the
// node's logic alone passes them to node.New.
func Configs(t testing.TB, rows map[string][]int, customise func(*policy.Dataset)) (map[string]*node.Config, policy.Catalog) {
	t.Helper()
	dir := t.TempDir()
	byDept := map[string][]string{}
	for name := range rows {
		byDept[policy.Department(name)] = append(byDept[policy.Department(name)], name)
	}
	cfgs, cat := map[string]*node.Config{}, policy.Catalog{}
	fed := node.Federation{Coordinator: PublicKey("coordinator"), Nodes: map[string]string{}, Reviewers: map[string]string{Reviewer: PublicKey(Reviewer)}}
	for dept := range byDept {
		fed.Nodes[dept] = PublicKey("node-" + dept)
	}
	for dept, names := range byDept {
		sort.Strings(names)
		cfg := &node.Config{
			Department:             dept,
			Listen:                 "127.0.0.1:0",
			SecretFile:             filepath.Join(dir, dept+".secret"),
			AuditLog:               filepath.Join(dir, dept+".audit"),
			CoordinatorTokenSHA256: sha(Token),
			KeysDir:                filepath.Join(dir, dept+".keys"),
			SigningKey:             writeKey(t, filepath.Join(dir, dept+".signing.ed25519"), "node-"+dept),
			StateDB:                filepath.Join(dir, dept+".db"),
			Federation:             fed,
			Owners:                 map[string]string{Owner(dept): PublicKey(Owner(dept))},
		}
		for _, name := range names {
			file := filepath.Join(dir, name+".csv")
			writeCSV(t, file, rows[name])
			d := Dataset(name)
			if customise != nil {
				customise(&d)
			}
			cfg.Datasets = append(cfg.Datasets, node.DatasetConfig{Dataset: d, File: file})
			dd := d
			cat[name] = &dd
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		cfgs[dept] = cfg
	}
	return cfgs, cat
}

func (f *Federation) handler(dept string, s *node.Service) http.Handler {
	var h http.Handler = nodehttp.New(s, nodehttp.Options{})
	if f.wrap != nil {
		return f.wrap(dept, h)
	}
	return h
}

// Restart replaces a department's node by a new node.Service over the same
// configuration, files and audit log (as after a process restart); the URL
// stays the same. In-memory state (PSI sessions, ceremonies in progress) is
// lost; what the node persisted is reloaded.
func (f *Federation) Restart(t testing.TB, dept string) *node.Service {
	t.Helper()
	if old := f.Services[dept]; old != nil {
		old.Close() // a process that died lets go of its files
	}
	s, err := node.New(f.Configs[dept], node.Options{Audit: f.Audits[dept]})
	if err != nil {
		t.Fatal(err)
	}
	f.Services[dept] = s
	f.handlers[dept].set(f.handler(dept, s))
	return s
}

func writeCSV(t testing.TB, path string, idx []int) {
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := csv.NewWriter(fh)
	_ = w.Write([]string{"id_number", "district", "amount"})
	for _, i := range idx {
		_ = w.Write([]string{ID(i), Districts[i%len(Districts)], fmt.Sprint(i)})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
}

// Reviewer is the reviewer every test node believes (PrivateKey(Reviewer)
// signs as them).
const Reviewer = "rita"

// Owner is the name of department dept's data owner in test configs.
func Owner(dept string) string { return "owner_" + dept }

// PrivateKey is the test signing key of a party ("coordinator",
// "node-<dept>", Reviewer, Owner(dept)): derived from its name, so tests
// can sign as anyone, and never to be used outside tests.
func PrivateKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("unseen/nodetest/key/" + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// PublicKey is the text form of PrivateKey(name)'s public half.
func PublicKey(name string) string {
	return attest.FormatPublicKey(PrivateKey(name).Public().(ed25519.PublicKey))
}

func writeKey(t testing.TB, path, name string) string {
	if err := attest.WritePrivateKeyFile(path, PrivateKey(name)); err != nil {
		t.Fatal(err)
	}
	return path
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Consent is the signed consent of dataset's department's test owner
// (Owner(dept)) to job with spec and requester, valid until until.
func Consent(job string, spec *policy.Spec, req policy.Requester, dataset string, until time.Time) attest.SignedConsent {
	owner := Owner(policy.Department(dataset))
	sc, err := attest.SignConsent(PrivateKey(owner), &attest.Consent{JobRef: attest.Ref(job, spec, req), Dataset: dataset, Approve: true, Until: until, Owner: owner})
	if err != nil {
		panic(err) // only for a malformed key, which PrivateKey never makes
	}
	return *sc
}

// Approve is the test reviewer's signed approval of a result: its exact
// bytes, for job with spec and requester, sealed (psi_members) to the
// analyst key whose SHA-256 is recipient (zero for results in the clear).
func Approve(job string, spec *policy.Spec, req policy.Requester, result []byte, recipient attest.Digest, at time.Time) *attest.SignedApproval {
	sa, err := attest.SignApproval(PrivateKey(Reviewer), &attest.Approval{JobRef: attest.Ref(job, spec, req), Result: sha256.Sum256(result), Recipient: recipient, Reviewer: Reviewer, At: at})
	if err != nil {
		panic(err)
	}
	return sa
}
