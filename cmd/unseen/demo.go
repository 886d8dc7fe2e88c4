package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/unseen-data/unseen/api"
	"github.com/unseen-data/unseen/api/client"
	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/compute/idnum"
	"github.com/unseen-data/unseen/compute/node"
	"github.com/unseen-data/unseen/coordinator"
	"github.com/unseen-data/unseen/coordinator/hefed"
	"github.com/unseen-data/unseen/examples"
	"github.com/unseen-data/unseen/jobs"
	"github.com/unseen-data/unseen/jobs/boltstore"
	"github.com/unseen-data/unseen/policy"
	"github.com/unseen-data/unseen/policy/attest"
	"github.com/unseen-data/unseen/psi/delivery"
)

// demoDepartments are the nodes the demo starts.
var demoDepartments = []string{"hrss", "housing", "civil", "market"}

// DemoJob is one job of the demo's JSON report.
type DemoJob struct {
	Type     string `json:"type"`
	ID       string `json:"id"`
	State    string `json:"state"`
	Result   any    `json:"result"`
	Expected any    `json:"expected"`
	Match    bool   `json:"match"`
}

// DemoReport is `unseen demo --json`.
type DemoReport struct {
	Jobs []DemoJob `json:"jobs"`
	// DP is the differentially private job (released noised: not
	// compared exactly with its plaintext, but shown beside it).
	DP *DemoDP `json:"dp_job,omitempty"`
	// Differencing is the near-duplicate pair: flagged and refused.
	Differencing *DemoDifferencing `json:"differencing,omitempty"`
	Refused      []string          `json:"refused,omitempty"`
	Audit        string            `json:"audit"`
	OK           bool              `json:"ok"`
}

func demoCmd() *cobra.Command {
	var asJSON, verbose bool
	var chunk int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a whole federation on loopback: coordinator, four nodes, jobs reviewed and released, checked against plaintext",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			say := func(format string, args ...any) {
				if !asJSON {
					fmt.Fprintf(out, format+"\n", args...)
				}
			}
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelInfo
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			rep, err := runDemo(cmd.Context(), say, log, chunk)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			}
			if !rep.OK {
				return &exitError{1, errors.New("demo: a released result did not match its plaintext check")}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the run as one JSON document")
	cmd.Flags().BoolVar(&verbose, "verbose", false, "log what the coordinator and nodes do")
	cmd.Flags().IntVar(&chunk, "chunk", 1024, "PSI chunk size (elements per request)")
	return cmd
}

func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func runDemo(ctx context.Context, say func(string, ...any), log *slog.Logger, chunk int) (*DemoReport, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tmp, err := os.MkdirTemp("", "unseen-demo-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)

	say("Unseen demo — a federation of %d departments on this machine (loopback only).", len(demoDepartments))
	say("Transport: plain HTTP on 127.0.0.1, for the demo only; a deployment uses mutual TLS between coordinator and nodes.")
	say("")

	// 1. Nodes: each serves its own example dataset, from its own config.
	cfg := &coordinator.Config{Workers: 2}
	var nodeServers []*node.Service
	for _, dept := range demoDepartments {
		nc, err := node.LoadConfigFS(examples.FS, "nodes/"+dept+".yaml")
		if err != nil {
			return nil, err
		}
		tok := randomToken()
		nc.CoordinatorTokenSHA256 = api.HashToken(tok)
		nc.SecretFile = filepath.Join(tmp, dept, "node.secret")
		nc.AuditLog = filepath.Join(tmp, dept, "audit.jsonl")
		if err := os.MkdirAll(filepath.Join(tmp, dept), 0o700); err != nil {
			return nil, err
		}
		nodeKey, err := exampleKey("node-" + dept)
		if err != nil {
			return nil, err
		}
		s, err := node.New(nc, node.Options{FS: examples.FS, Logger: log, SigningKey: nodeKey})
		if err != nil {
			return nil, err
		}
		url, stop, err := serveNode(s, log)
		if err != nil {
			return nil, err
		}
		defer stop()
		nodeServers = append(nodeServers, s)
		cfg.Nodes = append(cfg.Nodes, coordinator.NodeRef{Department: dept, URL: url, Token: tok})
		for _, d := range nc.Datasets {
			say("node %-8s %s  serving %s at %s", dept, nc.Title, d.Name, strings.TrimPrefix(url, "http://"))
		}
	}

	// 2. Coordinator on the embedded backend, with a reviewer and a data
	// owner who sign with the example keys (examples/keys, which the nodes'
	// configurations name), an analyst (with a fresh key pair for
	// psi_members) and an auditor.
	pub, priv, err := delivery.GenerateKey()
	if err != nil {
		return nil, err
	}
	ritaKey, err := exampleKey("rita")
	if err != nil {
		return nil, err
	}
	coraKey, err := exampleKey("cora")
	if err != nil {
		return nil, err
	}
	if cfg.SigningKeyPriv, err = exampleKey("coordinator"); err != nil {
		return nil, err
	}
	tokens := map[string]string{"alice": randomToken(), "rita": randomToken(), "aldo": randomToken(), "cora": randomToken(), "adam": randomToken()}
	cfg.Users = []api.User{
		{Name: "alice", Role: api.RoleAnalyst, Department: "hrss", TokenSHA256: api.HashToken(tokens["alice"]), PublicKey: base64.StdEncoding.EncodeToString(pub)},
		{Name: "rita", Role: api.RoleReviewer, Department: "data_bureau", TokenSHA256: api.HashToken(tokens["rita"]), SigningKey: publicOf(ritaKey)},
		{Name: "aldo", Role: api.RoleAuditor, Department: "data_bureau", TokenSHA256: api.HashToken(tokens["aldo"])},
		{Name: "cora", Role: api.RoleDataOwner, Department: "civil", TokenSHA256: api.HashToken(tokens["cora"]), SigningKey: publicOf(coraKey)},
		{Name: "adam", Role: api.RoleAdmin, Department: "data_bureau", TokenSHA256: api.HashToken(tokens["adam"])},
	}
	cfg.HEState = filepath.Join(tmp, "coordinator-he.json")
	store, err := boltstore.Open(filepath.Join(tmp, "coordinator.db"), boltstore.Options{})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	base, coord, wait, err := serveCoordinator(ctx, cfg, store, log, chunk)
	if err != nil {
		return nil, err
	}
	defer func() { cancel(); wait() }()
	say("coordinator         embedded backend (no Redis), API at %s", base)
	say("")

	analyst := client.New(base, tokens["alice"])
	reviewer := client.New(base, tokens["rita"])
	auditor := client.New(base, tokens["aldo"])
	owner := client.New(base, tokens["cora"])
	admin := client.New(base, tokens["adam"])
	admin.HTTP.Timeout = 10 * time.Minute
	rep := &DemoReport{OK: true}

	// The key ceremony: a collective public key from the departments'
	// secret key shares; decrypting a result needs 2 of the 3 nodes.
	say("adam (admin) runs the key ceremony: unseen keys init --threshold 2")
	raw, err := admin.KeysInit(ctx, 2)
	if err != nil {
		return nil, fmt.Errorf("key ceremony: %w", err)
	}
	var ks hefed.Status
	if err := json.Unmarshal(raw, &ks); err != nil {
		return nil, err
	}
	var kb strings.Builder
	describeKeys(&kb, &ks)
	say("   %s", strings.ReplaceAll(strings.TrimRight(kb.String(), "\n"), "\n", "\n   "))
	say("")

	// 3. A job the coordinator refuses, with its clear error.
	bad, _ := fs.ReadFile(examples.FS, "jobs/invalid_unknown_dataset.json")
	if _, err := analyst.Submit(ctx, bad, ""); err != nil {
		say("alice submits jobs/invalid_unknown_dataset.json → refused, nothing queued:\n    %v", err)
		rep.Refused = append(rep.Refused, err.Error())
	} else {
		return nil, errors.New("demo: the coordinator accepted a job on an unknown dataset")
	}
	say("")

	// 4. The jobs, each through its whole lifecycle.
	type demoSpec struct {
		file   string
		expect func() (any, error)
		got    func(*wire.Result) (any, error)
	}
	gotCount := func(r *wire.Result) (any, error) {
		var v struct {
			Count *int `json:"count"`
		}
		if err := json.Unmarshal(r.Result, &v); err != nil || v.Count == nil {
			return nil, fmt.Errorf("result has no count: %s", r.Result)
		}
		return *v.Count, nil
	}
	specs := []demoSpec{
		{
			file:   "jobs/benefits_property_cardinality.json",
			expect: func() (any, error) { return plaintextIntersection(true) },
			got:    gotCount,
		},
		// The same question on the OT protocol (psi_protocol "ot": KKRT on
		// OT extension, a star around the shortest list): the same release.
		{
			file:   "jobs/benefits_property_cardinality_ot.json",
			expect: func() (any, error) { return plaintextIntersection(true) },
			got:    gotCount,
		},
		{
			file:   "jobs/benefits_allowance_members.json",
			expect: func() (any, error) { return plaintextMembers() },
			got: func(r *wire.Result) (any, error) {
				ct, err := sealedList(r)
				if err != nil {
					return nil, err
				}
				ids, err := delivery.Open(priv, r.ID, ct)
				if err != nil {
					return nil, err
				}
				sort.Strings(ids)
				return ids, nil
			},
		},
	}
	specs = append(specs,
		demoSpec{
			file:   "jobs/allowance_by_district.json",
			expect: func() (any, error) { return plaintextAggregate() },
			got:    gotStats,
		},
		demoSpec{
			file:   "jobs/benefits_to_owners_on_allowance.json",
			expect: func() (any, error) { return plaintextIntersectionStats() },
			got:    gotStats,
		},
	)
	released := map[string]any{} // by job file
	for _, sp := range specs {
		b, err := fs.ReadFile(examples.FS, sp.file)
		if err != nil {
			return nil, err
		}
		spec, err := policy.DecodeSpec(b)
		if err != nil {
			return nil, err
		}
		say("── %s: %s", spec.Type, spec.Purpose)
		say("   inputs: %s", strings.Join(spec.Datasets(), " ∩ "))
		if spec.PSIProtocol != "" {
			say("   psi protocol: %s", spec.PSIProtocol)
		}
		sub, err := analyst.Submit(ctx, b, "demo-"+sp.file)
		if err != nil {
			return nil, fmt.Errorf("submitting %s: %w", sp.file, err)
		}
		say("   alice submits          → job %s is %s", sub.ID, sub.State)
		last := jobs.State("")
		var lastDone int64 = -1
		wctx, wcancel := context.WithTimeout(ctx, 15*time.Minute) // generous: a loaded machine, or -race
		j, err := analyst.Wait(wctx, sub.ID, 50*time.Millisecond, func(j *wire.Job) bool {
			return j.State.Settled()
		}, func(j *wire.Job) {
			if j.State != last {
				last = j.State
				say("   state                  → %s", j.State)
				if j.State == jobs.AwaitingConsent {
					consentStep(ctx, say, owner, coraKey, j)
				}
			}
			if j.State == jobs.Running && j.Progress.Total > 0 && j.Progress.Done != lastDone && (j.Progress.Done == j.Progress.Total || j.Progress.Done-lastDone >= j.Progress.Total/4) {
				lastDone = j.Progress.Done
				say("     progress             %d/%d chunk hops (%s)", j.Progress.Done, j.Progress.Total, j.Progress.Step)
			}
		})
		wcancel()
		if err != nil {
			return nil, fmt.Errorf("waiting for %s: %w", sub.ID, err)
		}
		if j.State != jobs.AwaitingReview {
			return nil, fmt.Errorf("job %s ended %s: %s", j.ID, j.State, j.Error)
		}
		// The analyst cannot read the result before release.
		if _, err := analyst.Result(ctx, j.ID); err == nil {
			return nil, errors.New("demo: a result was readable before release")
		} else {
			say("   alice asks for result  → refused: %v", err)
		}
		rv, err := reviewer.Review(ctx, j.ID)
		if err != nil {
			return nil, err
		}
		say("   rita reviews           → result %s", abbreviate(rv.Review.Result))
		printChecks(say, rv.Review.Checks)
		if _, err := reviewer.Approve(ctx, j.ID, "demo: checks reviewed", ritaKey); err != nil {
			return nil, err
		}
		say("   rita approves, signed with her key (%s) → released", attest.Fingerprint(ritaKey.Public().(ed25519.PublicKey)))
		res, err := analyst.Result(ctx, j.ID)
		if err != nil {
			return nil, err
		}
		got, err := sp.got(res)
		if err != nil {
			return nil, err
		}
		want, err := sp.expect()
		if err != nil {
			return nil, err
		}
		released[sp.file] = got
		match := equalJSON(got, want)
		rep.OK = rep.OK && match
		dj := DemoJob{Type: string(spec.Type), ID: j.ID, State: string(res.State), Result: got, Expected: want, Match: match}
		switch spec.Type {
		case policy.PSIMembers:
			// Member lists are personal data: the report shows their size.
			dj.Result = map[string]int{"count": len(got.([]string))}
			dj.Expected = map[string]int{"count": len(want.([]string))}
		case policy.PSICardinality:
			dj.Result = map[string]any{"count": got}
			dj.Expected = map[string]any{"count": want}
		}
		rep.Jobs = append(rep.Jobs, dj)
		verdict := "MATCH"
		if !match {
			verdict = "MISMATCH"
		}
		if st, ok := got.(*demoStats); ok {
			say("   released to alice      →")
			st.print(say, want.(*demoStats))
			say("   plaintext check        → every number above equals it   [%s]", verdict)
		} else {
			say("   released to alice      → %s", describe(got))
			say("   plaintext check        → %s   [%s]", describe(want), verdict)
		}
		say("")
	}

	// 5. The cardinality job ran on both PSI protocols: one released result.
	ecdh, ot := released["jobs/benefits_property_cardinality.json"], released["jobs/benefits_property_cardinality_ot.json"]
	if !equalJSON(ecdh, ot) {
		rep.OK = false
		return rep, fmt.Errorf("demo: the ECDH and OT protocols released %v and %v", ecdh, ot)
	}
	say("psi_cardinality on ECDH and on OT released the same result: %s", describe(ot))
	say("")

	// 6. Disclosure control: a differentially private job, and a
	// differencing pair flagged by the coordinator and refused by a node.
	people := &demoPeople{analyst: analyst, reviewer: reviewer, owner: owner, ritaKey: ritaKey, coraKey: coraKey}
	if rep.DP, err = runDPJob(ctx, say, people); err != nil {
		return nil, err
	}
	if rep.Differencing, err = runDifferencing(ctx, say, people); err != nil {
		return nil, err
	}
	rep.OK = rep.OK && rep.Differencing.Match

	// 7. The audit chains: the coordinator's and every node's, and the
	// heads each witnessed of the other (as `unseen audit verify --witness`
	// checks them): a tail cut off any one log would show here.
	coord.WaitOutcomes()
	v, err := auditor.AuditVerify(ctx)
	if err != nil {
		return nil, err
	}
	if !v.OK {
		rep.OK = false
		return rep, fmt.Errorf("coordinator audit chain broken: %s", v.Error)
	}
	coordLog, err := auditor.Audit(ctx, audit.Filter{Limit: maxAuditExport})
	if err != nil {
		return nil, err
	}
	coordKey := cfg.SigningKeyPriv.Public().(ed25519.PublicKey)
	parts := []string{fmt.Sprintf("coordinator %d entries ok", v.Entries)}
	for _, s := range nodeServers {
		es, err := s.Audit().All(ctx)
		if err != nil {
			return nil, err
		}
		if err := audit.Verify(es); err != nil {
			rep.OK = false
			return rep, fmt.Errorf("node %s audit chain: %w", s.Department(), err)
		}
		ofNode, err := audit.WitnessedHeads(coordLog, s.Department())
		if err == nil {
			_, err = audit.CheckWitnessed(es, ofNode, s.PublicKey())
		}
		var ofCoord []audit.Witnessed
		if err == nil {
			ofCoord, err = audit.WitnessedHeads(es, audit.CoordinatorLog)
		}
		if err == nil {
			_, err = audit.CheckWitnessed(coordLog, ofCoord, coordKey)
		}
		if err != nil {
			rep.OK = false
			return rep, fmt.Errorf("node %s and the coordinator: witnessed heads: %w", s.Department(), err)
		}
		parts = append(parts, fmt.Sprintf("%s %d ok (%d heads witnessed by the coordinator, %d of its kept)", s.Department(), len(es), len(ofNode), len(ofCoord)))
	}
	rep.Audit = strings.Join(parts, "; ")
	say("audit chains verified: %s", rep.Audit)
	if rep.OK {
		say("all released results equal their plaintext checks.")
	}
	return rep, nil
}

// exampleKey reads an example signing key from the embedded examples.
func exampleKey(name string) (ed25519.PrivateKey, error) {
	b, err := fs.ReadFile(examples.FS, "keys/"+name+".ed25519")
	if err != nil {
		return nil, err
	}
	return attest.ParsePrivateKey(b)
}

func publicOf(priv ed25519.PrivateKey) string {
	return attest.FormatPublicKey(priv.Public().(ed25519.PublicKey))
}

func abbreviate(b []byte) string {
	s := string(b)
	if len(s) > 120 {
		s = s[:100] + "…(" + fmt.Sprint(len(s)) + " bytes)"
	}
	return s
}

func describe(v any) string {
	if ids, ok := v.([]string); ok {
		if len(ids) == 0 {
			return "0 members"
		}
		return fmt.Sprintf("%d members (first: %s…)", len(ids), maskID(ids[0]))
	}
	return fmt.Sprintf("count %v", v)
}

// maskID shows only the region code of an ID number.
func maskID(id string) string {
	if len(id) < 6 {
		return "******"
	}
	return id[:6] + strings.Repeat("*", len(id)-6)
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// The plaintext checks read the example CSVs directly (encoding/csv and
// idnum, none of the node's loading or filtering code), so that they check
// the protocol rather than repeat it.

func readIDs(name string) (map[string]bool, error) {
	rows, err := csvRows(name)
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, r := range rows {
		if id, err := idnum.Normalise(r["id_number"]); err == nil {
			ids[id] = true
		}
	}
	return ids, nil
}

func plaintextIntersection(three bool) (int, error) {
	files := []string{"data/hrss/unemployment_benefits.csv", "data/housing/property_owners.csv"}
	if three {
		files = append(files, "data/civil/minimum_living_allowance.csv")
	}
	var sets []map[string]bool
	for _, f := range files {
		s, err := readIDs(f)
		if err != nil {
			return 0, err
		}
		sets = append(sets, s)
	}
	n := 0
	for id := range sets[0] {
		in := true
		for _, s := range sets[1:] {
			in = in && s[id]
		}
		if in {
			n++
		}
	}
	return n, nil
}

func plaintextMembers() ([]string, error) {
	a, err := readIDs("data/hrss/unemployment_benefits.csv")
	if err != nil {
		return nil, err
	}
	b, err := readIDs("data/civil/minimum_living_allowance.csv")
	if err != nil {
		return nil, err
	}
	out := []string{}
	for id := range a {
		if b[id] {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out, nil
}
