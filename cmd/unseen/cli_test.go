package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/api/client"
	"github.com/unseen-data/unseen/api/wire"
	"github.com/unseen-data/unseen/compute/node/nodetest"
	"github.com/unseen-data/unseen/jobs"
)

// Every command says how to use it: an example, and top-level commands a
// group in `unseen --help`.
func TestEveryCommandHasExample(t *testing.T) {
	root := newRoot()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" || c.HasParent() && c.Parent().Name() == "completion" {
			return
		}
		if c != root {
			require.NotEmpty(t, c.Example, "%s has no Example", c.CommandPath())
		}
		if c.HasParent() && c.Parent() == root {
			require.NotEmpty(t, c.GroupID, "%s is in no group", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// runCLIOut runs the command line in-process with stdout and stderr apart.
func runCLIOut(t *testing.T, args ...string) (stdout, stderr string, code int, err error) {
	t.Helper()
	root := newRoot()
	var o, e bytes.Buffer
	root.SetOut(&o)
	root.SetErr(&e)
	root.SetArgs(args)
	err = root.ExecuteContext(t.Context())
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
	}
	return o.String(), e.String(), code, err
}

// The client commands against a real coordinator and real nodes: --server
// and --token-file instead of the environment, submit printing only the
// id, submit --wait following the job through consent and review to its
// result, tables by default and the API's JSON with -o json.
func TestCLIAgainstFederation(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a federation")
	}
	f := startConsoleFed(t)
	t.Setenv("UNSEEN_TOKEN", "")
	t.Setenv("UNSEEN_URL", "")
	dir := t.TempDir()
	tokenFile := func(name string) string {
		p := filepath.Join(dir, name+".token")
		require.NoError(t, os.WriteFile(p, []byte(f.tokens[name]+"\n"), 0o600))
		return p
	}
	as := func(name string, args ...string) []string {
		return append([]string{"--server", f.base, "--token-file", tokenFile(name)}, args...)
	}
	spec := filepath.Join(dir, "job.json")
	require.NoError(t, os.WriteFile(spec, []byte(`{"type":"psi_cardinality","purpose":"CLI test","inputs":[`+
		`{"dataset":"hrss.benefits","key":"id_number"},{"dataset":"civil.allowance","key":"id_number"}]}`), 0o600))

	// No token anywhere: told how to give one.
	_, _, _, err := runCLIOut(t, "--server", f.base, "list")
	require.ErrorContains(t, err, "--token-file")

	// submit: the id alone on stdout, what next on stderr.
	out, errOut, _, err := runCLIOut(t, as("alice", "submit", spec)...)
	require.NoError(t, err)
	id := strings.TrimSpace(out)
	require.Regexp(t, `^j_[a-z2-7]{26}$`, id)
	require.Contains(t, errOut, "awaiting_consent: waiting for the data owner's consent for civil.allowance")
	out, _, _, err = runCLIOut(t, as("alice", "submit", "-q", spec)...)
	require.NoError(t, err)
	require.Regexp(t, `^j_[a-z2-7]{26}\n$`, out)
	second := strings.TrimSpace(out)

	// status: a table by default, the API's document with -o json.
	out, _, _, err = runCLIOut(t, as("alice", "status", id)...)
	require.NoError(t, err)
	require.Regexp(t, `(?m)^STATE +awaiting_consent$`, out)
	require.Regexp(t, `(?m)^INPUT 2 +civil.allowance, key id_number, filter \(all rows\)$`, out)
	out, _, _, err = runCLIOut(t, as("alice", "status", id, "-o", "json")...)
	require.NoError(t, err)
	var j wire.Job
	require.NoError(t, json.Unmarshal([]byte(out), &j))
	require.Equal(t, id, j.ID)
	_, _, _, err = runCLIOut(t, as("alice", "status", id, "-o", "yaml")...)
	require.ErrorContains(t, err, "table or json")

	// submit --wait follows a third job through the owner's consent and
	// the reviewer's approval (done here by the client, as the people would)
	// and ends with the result table; without a terminal, one line per state.
	done := make(chan struct{})
	var waitOut, waitErr string
	var waitCode int
	go func() {
		defer close(done)
		waitOut, waitErr, waitCode, _ = runCLIOut(t, as("alice", "submit", "--wait", "--timeout", "3m", spec)...)
	}()
	owner := client.New(f.base, f.tokens[f.owner])
	reviewer := client.New(f.base, f.tokens[nodetest.Reviewer])
	var third string
	require.Eventually(t, func() bool {
		js, err := f.analyst.Jobs(context.Background(), jobs.AwaitingConsent)
		require.NoError(t, err)
		for _, x := range js {
			if x.ID != id && x.ID != second {
				third = x.ID
			}
		}
		return third != ""
	}, time.Minute, 50*time.Millisecond)
	_, err = owner.Consent(context.Background(), third, client.ConsentAnswer{Approve: true, Reason: "fine"}, nodetest.PrivateKey(f.owner))
	require.NoError(t, err)
	_, err = f.analyst.Wait(context.Background(), third, 50*time.Millisecond, func(j *wire.Job) bool { return j.State.Settled() }, nil)
	require.NoError(t, err)
	_, err = reviewer.Approve(context.Background(), third, "ok", nodetest.PrivateKey(nodetest.Reviewer))
	require.NoError(t, err)
	<-done
	require.Zero(t, waitCode, waitErr)
	require.Regexp(t, `^`+third+`\n# job `+third+` \(psi_cardinality\), released by rita: ok\nCOUNT +[0-9]+\n$`, waitOut)
	for _, st := range []string{"awaiting_consent", "released"} { // (it may pass the others between two looks)
		require.Contains(t, waitErr, "  "+st+": ", "a line for %s", st)
	}

	// result: a table; -o json the API's document.
	out, _, _, err = runCLIOut(t, as("alice", "result", third)...)
	require.NoError(t, err)
	require.Regexp(t, `(?m)^COUNT +[0-9]+$`, out)
	out, _, _, err = runCLIOut(t, as("alice", "result", third, "-o", "json")...)
	require.NoError(t, err)
	var r wire.Result
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	require.Equal(t, third, r.ID)

	// wait --for a state the job has passed and ended otherwise: exit 4.
	_, err = runCLIOut2(t, as("alice", "cancel", id)...)
	require.NoError(t, err)
	_, _, code, err := runCLIOut(t, as("alice", "wait", id, "--for", "awaiting_review")...)
	require.Error(t, err)
	require.Equal(t, 4, code)

	// whoami, ready, datasets, list: tables.
	out, _, _, err = runCLIOut(t, as(f.owner, "whoami")...)
	require.NoError(t, err)
	require.Regexp(t, `(?m)^ROLE +data_owner$`, out)
	require.Contains(t, out, "fingerprint")
	out, _, _, err = runCLIOut(t, "--server", f.base, "ready")
	require.NoError(t, err)
	require.Regexp(t, `(?m)^nodes +ok$`, out)
	out, _, _, err = runCLIOut(t, as("alice", "datasets")...)
	require.NoError(t, err)
	require.Regexp(t, `(?m)^civil.allowance +core +conditional +10 `, out)
	out, _, _, err = runCLIOut(t, as("aldo", "audit", "list", "--job", third)...)
	require.NoError(t, err)
	require.Contains(t, out, "job.released")
	out, _, _, err = runCLIOut(t, as("aldo", "audit", "verify", "-o", "json")...)
	require.NoError(t, err)
	var v wire.Verify
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	require.True(t, v.OK)
	require.Positive(t, v.Entries)
	out, _, _, err = runCLIOut(t, as(f.owner, "audit", "lineage", "civil.allowance")...)
	require.NoError(t, err)
	require.Contains(t, out, third)
}

func runCLIOut2(t *testing.T, args ...string) (string, error) {
	out, _, _, err := runCLIOut(t, args...)
	return out, err
}
