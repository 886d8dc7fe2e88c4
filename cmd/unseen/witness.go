package main

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/jobs/boltstore"
	"github.com/unseen-data/unseen/policy/attest"
)

// auditCopy is one party's audit log as an auditor holds it: a node's log
// file (with its head file), the coordinator's store file, or an export of
// the coordinator's chain (`unseen audit list --json`).
type auditCopy struct {
	path    string
	name    string // the log's name: a department, or "coordinator"
	entries []audit.Entry
	check   audit.FileCheck // for a log file
	isFile  bool            // a log file with a head file
	signed  *audit.SignedHead
}

// loadAuditCopy reads and checks a copy: the whole chain (and head) of a
// log or store file; the links within an export, which may be a window
// of the newest entries.
func loadAuditCopy(path, name string) (*auditCopy, error) {
	c := &auditCopy{path: path, name: name}
	switch {
	case boltstore.IsStoreFile(path):
		es, err := boltstore.ReadAuditFile(path)
		if err != nil {
			return nil, err
		}
		c.entries = es
		if c.name == "" {
			c.name = audit.CoordinatorLog
		}
	case isJSONExport(path):
		es, err := readExport(path)
		if err != nil {
			return nil, err
		}
		c.entries = es
		if c.name == "" {
			c.name = audit.CoordinatorLog
		}
	default:
		chk, err := audit.ScanFile(path, func(e *audit.Entry) error {
			c.entries = append(c.entries, *e)
			return nil
		})
		if err != nil {
			return nil, err
		}
		c.check, c.isFile, c.signed = chk, true, chk.Signed
		if c.name == "" && chk.Signed != nil {
			c.name = chk.Signed.Log
		}
	}
	return c, nil
}

// isJSONExport reports whether path holds JSON (an export) rather than
// JSON lines.
func isJSONExport(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 512)
	n, _ := io.ReadFull(f, b)
	t := bytes.TrimLeft(b[:n], " \t\r\n")
	return len(t) > 0 && (t[0] == '[' || t[0] == '{' && !bytes.HasPrefix(t, []byte(`{"seq"`)))
}

// readExport reads an export ([entries] or {"entries": [...]}) and checks
// its links: contiguous, each entry's hash right and chained to the one
// before (the first may follow entries left out of the export).
func readExport(path string) ([]audit.Entry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var es []audit.Entry
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		var w struct {
			Entries []audit.Entry `json:"entries"`
		}
		if err := json.Unmarshal(b, &w); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		es = w.Entries
	} else if err := json.Unmarshal(b, &es); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(es) == 0 {
		return nil, nil
	}
	var prev *audit.Entry
	if es[0].Seq > 1 {
		prev = &audit.Entry{Seq: es[0].Seq - 1, Hash: es[0].PrevHash}
	}
	if err := audit.VerifyFrom(prev, es); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return es, nil
}

// parseNamed splits "NAME=VALUE" (a name is optional: "VALUE").
func parseNamed(s string) (name, value string) {
	if i := strings.Index(s, "="); i > 0 && !strings.ContainsAny(s[:i], "/\\:") {
		return s[:i], s[i+1:]
	}
	return "", s
}

// crossCheck checks the heads each of a and b witnessed of the other
// against the other's chain, with the keepers' keys if given; it returns
// a line saying what was checked.
func crossCheck(a, b *auditCopy, aKey, bKey ed25519.PublicKey) (string, error) {
	if a.name == "" || b.name == "" {
		return "", fmt.Errorf("cannot tell whose log %s is (no signed head names it): say --name (or NAME=PATH for a witness)", pick(a.name == "", a.path, b.path))
	}
	ofA, err := audit.WitnessedHeads(b.entries, a.name)
	if err != nil {
		return "", fmt.Errorf("%s: %w", b.path, err)
	}
	ca, err := audit.CheckWitnessed(a.entries, ofA, aKey)
	if err != nil {
		return "", fmt.Errorf("%s against the heads %s witnessed: %w", a.path, b.path, err)
	}
	ofB, err := audit.WitnessedHeads(a.entries, b.name)
	if err != nil {
		return "", fmt.Errorf("%s: %w", a.path, err)
	}
	cb, err := audit.CheckWitnessed(b.entries, ofB, bKey)
	if err != nil {
		return "", fmt.Errorf("%s against the heads %s witnessed: %w", b.path, a.path, err)
	}
	line := fmt.Sprintf("witness %s (%s): %d head(s) of %s it recorded are in %s (newest seq %d); %d head(s) of %s recorded here are in it",
		b.path, b.name, ca.Checked, a.name, a.path, ca.Newest, cb.Checked, b.name)
	if ca.Before+cb.Before > 0 {
		line += fmt.Sprintf("; %d older head(s) fall before a copy's first entry and were not checked", ca.Before+cb.Before)
	}
	if aKey != nil || bKey != nil {
		line += "; signatures checked"
	}
	return line, nil
}

func pick(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}

// parseKey reads an "ed25519:…" public key ("" gives nil).
func parseKey(s string) (ed25519.PublicKey, error) {
	if s == "" {
		return nil, nil
	}
	return attest.ParsePublicKey(s)
}
