package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/audit"
	"github.com/unseen-data/unseen/policy/attest"
)

func witnessKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("unseen cmd witness test " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func pubText(k ed25519.PrivateKey) string {
	return attest.FormatPublicKey(k.Public().(ed25519.PublicKey))
}

// witnessedPair writes a node's log (33 entries, heads signed) and an
// export of the coordinator's chain, the two having witnessed each other's
// heads at the end of each of 4 jobs, as Finish does. It returns their
// paths.
func witnessedPair(t *testing.T, dir string) (nodePath, coordPath string) {
	t.Helper()
	ctx := context.Background()
	nodePath = filepath.Join(dir, "hrss.jsonl")
	nk, ck := witnessKey("hrss"), witnessKey("coordinator")
	node, err := audit.Open(nodePath, audit.FileOptions{Signer: nk, Name: "hrss"})
	require.NoError(t, err)
	coord := &audit.MemLog{}
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	tick := func() time.Time { at = at.Add(time.Second); return at }
	for j, steps := range []int{2, 9, 9, 9} {
		id := fmt.Sprintf("j_%d", j)
		_, err := coord.Append(ctx, audit.Entry{Time: tick(), Actor: "worker:w", Action: "job.running", Job: id})
		require.NoError(t, err)
		for range steps {
			_, err := node.Append(ctx, audit.Entry{Time: tick(), Actor: "coordinator", Action: "psi.reblind", Job: id})
			require.NoError(t, err)
		}
		ch, err := coord.Head(ctx)
		require.NoError(t, err)
		csh, err := audit.SignHead(ck, audit.CoordinatorLog, ch)
		require.NoError(t, err)
		_, err = node.Append(ctx, audit.Entry{Time: tick(), Actor: "coordinator", Action: "job.finish", Job: id, Detail: map[string]string{"witness.coordinator": csh.String()}})
		require.NoError(t, err)
		nsh, err := node.SignedHead(ctx)
		require.NoError(t, err)
		_, err = coord.Append(ctx, audit.Entry{Time: tick(), Actor: "worker:w", Action: "job.awaiting_review", Job: id, Detail: map[string]string{"witness.hrss": nsh.String()}})
		require.NoError(t, err)
	}
	require.NoError(t, node.Close())
	es, _ := coord.All(ctx)
	b, err := json.MarshalIndent(es, "", "  ")
	require.NoError(t, err)
	coordPath = filepath.Join(dir, "coordinator.json")
	require.NoError(t, os.WriteFile(coordPath, b, 0o600))
	return nodePath, coordPath
}

// runCLI runs the unseen command line in-process.
func runCLI(t *testing.T, args ...string) (string, int, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	code := 0
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
	}
	return out.String(), code, err
}

func TestAuditVerifyWitnesses(t *testing.T) {
	dir := t.TempDir()
	nodePath, coordPath := witnessedPair(t, dir)
	nodeKey, coordKey := pubText(witnessKey("hrss")), pubText(witnessKey("coordinator"))

	// An honest pair verifies, from either side.
	out, code, err := runCLI(t, "audit", "verify", "--file", nodePath, "--key", nodeKey, "--witness", coordPath, "--witness-key", coordKey)
	require.NoError(t, err, out)
	require.Zero(t, code)
	require.Contains(t, out, "ok: "+nodePath+": 33 entries, chain and head intact")
	require.Contains(t, out, "head signed by")
	require.Contains(t, out, "4 head(s) of hrss it recorded are in "+nodePath+" (newest seq 33)")
	require.Contains(t, out, "4 head(s) of coordinator recorded here are in it")
	out, _, err = runCLI(t, "audit", "verify", "--file", coordPath, "--witness", nodePath, "--key", coordKey, "--witness-key", nodeKey)
	require.NoError(t, err, out)
	require.Contains(t, out, "4 head(s) of coordinator it recorded")

	// The attack: the node's log cut from 33 entries to 5 and its
	// head rewritten — signed with the node's own key, so the file passes
	// every check it can make alone, --key included.
	b, err := os.ReadFile(nodePath)
	require.NoError(t, err)
	lines := strings.SplitAfter(string(b), "\n")
	require.NoError(t, os.WriteFile(nodePath, []byte(strings.Join(lines[:5], "")), 0o600))
	var fifth audit.Entry
	require.NoError(t, json.Unmarshal([]byte(lines[4]), &fifth))
	sh, err := audit.SignHead(witnessKey("hrss"), "hrss", audit.Head{Seq: fifth.Seq, Hash: fifth.Hash})
	require.NoError(t, err)
	hb, _ := json.Marshal(map[string]any{"seq": sh.Seq, "hash": sh.Hash, "log": sh.Log, "sig": sh.Sig})
	require.NoError(t, os.WriteFile(nodePath+".head", hb, 0o600))
	out, code, err = runCLI(t, "audit", "verify", "--file", nodePath, "--key", nodeKey)
	require.NoError(t, err, "alone, the cut log checks out: that is the attack")
	require.Contains(t, out, "5 entries, chain and head intact")
	out, code, err = runCLI(t, "audit", "verify", "--file", nodePath, "--key", nodeKey, "--witness", coordPath)
	require.Error(t, err)
	require.Equal(t, 2, code)
	require.Contains(t, err.Error(), "ends at seq 5")
	require.Contains(t, err.Error(), "seq 33")
	require.Contains(t, err.Error(), "cut off")
	// And from the coordinator's side.
	_, code, err = runCLI(t, "audit", "verify", "--file", coordPath, "--witness", "hrss="+nodePath)
	require.Error(t, err)
	require.Equal(t, 2, code)

	// A head rewritten by someone without the node's key.
	forged, err := audit.SignHead(witnessKey("mallory"), "hrss", audit.Head{Seq: fifth.Seq, Hash: fifth.Hash})
	require.NoError(t, err)
	hb, _ = json.Marshal(map[string]any{"seq": forged.Seq, "hash": forged.Hash, "log": forged.Log, "sig": forged.Sig})
	require.NoError(t, os.WriteFile(nodePath+".head", hb, 0o600))
	_, code, err = runCLI(t, "audit", "verify", "--file", nodePath, "--key", nodeKey)
	require.Error(t, err)
	require.Equal(t, 2, code)
	require.Contains(t, err.Error(), "rewritten without the keeper's key")
	// Unsigned, likewise.
	hb, _ = json.Marshal(map[string]any{"seq": fifth.Seq, "hash": fifth.Hash})
	require.NoError(t, os.WriteFile(nodePath+".head", hb, 0o600))
	_, code, err = runCLI(t, "audit", "verify", "--file", nodePath, "--key", nodeKey)
	require.Error(t, err)
	require.Equal(t, 2, code)
	require.Contains(t, err.Error(), "not signed")
}

// The coordinator's export cut short (or a witness forged into the node's
// log) is caught from the node's copy.
func TestAuditVerifyWitnessCoordinatorCut(t *testing.T) {
	dir := t.TempDir()
	nodePath, coordPath := witnessedPair(t, dir)
	var es []audit.Entry
	b, err := os.ReadFile(coordPath)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &es))
	cut, _ := json.Marshal(es[:5])
	require.NoError(t, os.WriteFile(coordPath, cut, 0o600))
	_, code, err := runCLI(t, "audit", "verify", "--file", nodePath, "--witness", coordPath)
	require.Error(t, err)
	require.Equal(t, 2, code)
	require.Contains(t, err.Error(), "coordinator ends at seq 5")

	// Heads signed by someone else than the coordinator are refused with
	// its key.
	nodePath2, coordPath2 := witnessedPair(t, t.TempDir())
	_, code, err = runCLI(t, "audit", "verify", "--file", nodePath2, "--witness", coordPath2, "--witness-key", pubText(witnessKey("mallory")))
	require.Error(t, err)
	require.Equal(t, 2, code)
	require.ErrorIs(t, err, audit.ErrHeadSignature)
}
