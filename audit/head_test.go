package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func testSigner(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("unseen audit test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

func TestSignedHeadRoundTrip(t *testing.T) {
	k := testSigner("hrss")
	h := Head{Seq: 33, Hash: strings.Repeat("ab", 32)}
	s, err := SignHead(k, "hrss", h)
	require.NoError(t, err)
	require.NoError(t, s.Verify(pubOf(k)))
	require.Equal(t, h, s.Head())

	// Text form, as witnessing entries record it.
	back, err := ParseSignedHead(s.String())
	require.NoError(t, err)
	require.Equal(t, s, back)
	require.NoError(t, back.Verify(pubOf(k)))
	// JSON form, as wire types carry it.
	b, err := json.Marshal(s)
	require.NoError(t, err)
	var jb SignedHead
	require.NoError(t, json.Unmarshal(b, &jb))
	require.Equal(t, s, jb)
}

// A forged head — any field changed, or signed by another key, or the
// signature of one log's head presented for another's — does not verify.
func TestSignedHeadForgeryRefused(t *testing.T) {
	k := testSigner("hrss")
	h := Head{Seq: 33, Hash: strings.Repeat("ab", 32)}
	s, err := SignHead(k, "hrss", h)
	require.NoError(t, err)
	forged := map[string]SignedHead{}
	f := s
	f.Seq = 5
	forged["seq"] = f
	f = s
	f.Hash = strings.Repeat("cd", 32)
	forged["hash"] = f
	f = s
	f.Log = "housing"
	forged["log"] = f
	f = s
	f.Sig = append([]byte(nil), s.Sig...)
	f.Sig[0] ^= 1
	forged["signature"] = f
	other, err := SignHead(testSigner("mallory"), "hrss", h)
	require.NoError(t, err)
	forged["another key"] = other
	forged["no signature"] = SignedHead{Log: "hrss", Seq: 33, Hash: h.Hash}
	for name, f := range forged {
		t.Run(name, func(t *testing.T) {
			require.ErrorIs(t, f.Verify(pubOf(k)), ErrHeadSignature)
		})
	}
	_, err = SignHead(k, "a:b", h)
	require.Error(t, err, "a log name must not hold the text form's separator")
	_, err = SignHead(ed25519.PrivateKey{1, 2}, "hrss", h)
	require.Error(t, err)
}

func TestParseSignedHeadRefusesGarbage(t *testing.T) {
	good, err := SignHead(testSigner("x"), "hrss", Head{Seq: 1, Hash: strings.Repeat("0", 64)})
	require.NoError(t, err)
	parts := strings.Split(good.String(), ":")
	for _, v := range []string{
		"", "hrss", "hrss:1:" + parts[2], good.String() + ":x",
		"hrss:-1:" + parts[2] + ":" + parts[3],
		"hrss:1:" + strings.Repeat("G", 64) + ":" + parts[3],
		"hrss:1:" + strings.Repeat("A", 64) + ":" + parts[3], // not lowercase
		"hrss:1:" + parts[2] + ":" + "AAAA",
		"hr ss:1:" + parts[2] + ":" + parts[3],
	} {
		_, err := ParseSignedHead(v)
		require.ErrorIs(t, err, ErrDecode, "%q", v)
	}
}

func FuzzParseSignedHead(f *testing.F) {
	good, _ := SignHead(testSigner("x"), "coordinator", Head{Seq: 812, Hash: strings.Repeat("9f", 32)})
	f.Add(good.String())
	f.Add("hrss:0::")
	f.Add(":::")
	f.Fuzz(func(t *testing.T, v string) {
		h, err := ParseSignedHead(v)
		if err != nil {
			return
		}
		// What parses prints back to itself.
		require.Equal(t, v, h.String())
	})
}

// A FileLog with a signer writes signed heads; ScanFile reports them and
// they verify with the keeper's public key.
func TestFileLogSignsHeads(t *testing.T) {
	k := testSigner("hrss")
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(p, FileOptions{Signer: k, Name: "hrss"})
	require.NoError(t, err)
	var last Entry
	for i := range 3 {
		last, err = l.Append(t.Context(), Entry{Time: time.Unix(int64(i), 0), Actor: "coordinator", Action: "psi.own"})
		require.NoError(t, err)
	}
	sh, err := l.SignedHead(t.Context())
	require.NoError(t, err)
	require.Equal(t, Head{Seq: 3, Hash: last.Hash}, sh.Head())
	require.NoError(t, sh.Verify(pubOf(k)))
	require.NoError(t, l.Close())

	c, err := ScanFile(p, nil)
	require.NoError(t, err)
	require.NotNil(t, c.Signed)
	require.Equal(t, c.Head, c.Signed.Head())
	require.NoError(t, c.Signed.Verify(pubOf(k)))

	// Reopened by its keeper: fine. By a keeper with another key, or under
	// another name: the head file is not theirs.
	l, err = Open(p, FileOptions{Signer: k, Name: "hrss"})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	_, err = Open(p, FileOptions{Signer: testSigner("mallory"), Name: "hrss"})
	require.ErrorIs(t, err, ErrHeadSignature)
	_, err = Open(p, FileOptions{Signer: k, Name: "housing"})
	require.ErrorIs(t, err, ErrHeadSignature)
}

// A log from before heads were signed is opened and its head signed.
func TestFileLogSignsOldHead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	writeLongLog(t, p, 4)
	c, err := ScanFile(p, nil)
	require.NoError(t, err)
	require.Nil(t, c.Signed)
	k := testSigner("hrss")
	l, err := Open(p, FileOptions{Signer: k, Name: "hrss"})
	require.NoError(t, err)
	require.NoError(t, l.Close())
	c, err = ScanFile(p, nil)
	require.NoError(t, err)
	require.NotNil(t, c.Signed)
	require.NoError(t, c.Signed.Verify(pubOf(k)))
	require.Equal(t, uint64(4), c.Signed.Seq)
}

// pair is a node's file log and the coordinator's log, witnessing each
// other's heads at the end of every job, as Finish does.
type pair struct {
	t          *testing.T
	node       *FileLog
	nodePath   string
	coord      *MemLog
	nodeKey    ed25519.PrivateKey
	coordKey   ed25519.PrivateKey
	entries    int
	clockTicks int64
}

func newPair(t *testing.T) *pair {
	p := &pair{t: t, nodePath: filepath.Join(t.TempDir(), "audit.jsonl"), coord: &MemLog{}, nodeKey: testSigner("hrss"), coordKey: testSigner("coordinator")}
	var err error
	p.node, err = Open(p.nodePath, FileOptions{Signer: p.nodeKey, Name: "hrss"})
	require.NoError(t, err)
	t.Cleanup(func() { p.node.Close() })
	return p
}

func (p *pair) now() time.Time {
	p.clockTicks++
	return time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(p.clockTicks) * time.Second)
}

// job runs one job: steps entries at the node, then the finish exchange.
func (p *pair) job(id string, steps int) {
	ctx := context.Background()
	_, err := p.coord.Append(ctx, Entry{Time: p.now(), Actor: "worker:w", Action: "job.running", Job: id})
	require.NoError(p.t, err)
	for range steps {
		_, err := p.node.Append(ctx, Entry{Time: p.now(), Actor: "coordinator", Action: "psi.reblind", Job: id})
		require.NoError(p.t, err)
	}
	// The coordinator sends its signed head with Finish; the node records
	// it in its finish entry and answers with its own signed head, which
	// the coordinator records in the job's next transition.
	ch, err := p.coord.Head(ctx)
	require.NoError(p.t, err)
	csh, err := SignHead(p.coordKey, CoordinatorLog, ch)
	require.NoError(p.t, err)
	_, err = p.node.Append(ctx, Entry{Time: p.now(), Actor: "coordinator", Action: "job.finish", Job: id, Detail: map[string]string{WitnessPrefix + CoordinatorLog: csh.String()}})
	require.NoError(p.t, err)
	nsh, err := p.node.SignedHead(ctx)
	require.NoError(p.t, err)
	_, err = p.coord.Append(ctx, Entry{Time: p.now(), Actor: "worker:w", Action: "job.awaiting_review", Job: id, Detail: map[string]string{WitnessPrefix + "hrss": nsh.String()}})
	require.NoError(p.t, err)
}

// check is what `unseen audit verify --file NODE --witness COORD` does:
// both chains, then each side's witnessed heads against the other.
func (p *pair) check(nodeEntries []Entry) error {
	coord, err := p.coord.All(context.Background())
	require.NoError(p.t, err)
	if err := Verify(coord); err != nil {
		return err
	}
	heads, err := WitnessedHeads(coord, "hrss")
	if err != nil {
		return err
	}
	if _, err := CheckWitnessed(nodeEntries, heads, pubOf(p.nodeKey)); err != nil {
		return fmt.Errorf("node log: %w", err)
	}
	back, err := WitnessedHeads(nodeEntries, CoordinatorLog)
	if err != nil {
		return err
	}
	if _, err := CheckWitnessed(coord, back, pubOf(p.coordKey)); err != nil {
		return fmt.Errorf("coordinator log: %w", err)
	}
	return nil
}

// The attack: a node's log of 33 entries is cut to 5 and its head
// rewritten — here by the keeper itself, re-signing with its own key, so
// the file, its head and the head's signature all check out alone. The
// coordinator's copy of the node's signed heads catches it.
func TestWitnessDetectsCutTail(t *testing.T) {
	p := newPair(t)
	p.job("j_1", 2) // node entries 1–3
	p.job("j_2", 9) // 4–13
	p.job("j_3", 9) // 14–23
	p.job("j_4", 9) // 24–33
	require.NoError(t, p.node.Close())
	all, err := ReadFile(p.nodePath)
	require.NoError(t, err)
	require.Len(t, all, 33)
	require.NoError(t, p.check(all), "an honest pair verifies")

	// Cut to 5 and rewrite the head, signed with the node's own key.
	b, err := os.ReadFile(p.nodePath)
	require.NoError(t, err)
	lines := strings.SplitAfter(string(b), "\n")
	require.NoError(t, os.WriteFile(p.nodePath, []byte(strings.Join(lines[:5], "")), 0o600))
	cut := HeadOf(all[:5])
	sh, err := SignHead(p.nodeKey, "hrss", cut)
	require.NoError(t, err)
	hb, _ := json.Marshal(headFile{Seq: sh.Seq, Hash: sh.Hash, Log: sh.Log, Sig: sh.Sig})
	require.NoError(t, os.WriteFile(p.nodePath+".head", hb, 0o600))

	// Alone, the cut log passes every check it can make on itself…
	c, err := ScanFile(p.nodePath, nil)
	require.NoError(t, err)
	require.Equal(t, 5, c.Entries)
	require.NoError(t, c.Signed.Verify(pubOf(p.nodeKey)))
	// …but not against the coordinator's witnesses.
	cutEntries, err := ReadFile(p.nodePath)
	require.NoError(t, err)
	err = p.check(cutEntries)
	require.ErrorIs(t, err, ErrWitness)
	require.Contains(t, err.Error(), "ends at seq 5")
	require.Contains(t, err.Error(), "seq 33")
}

// A log rewritten from some entry on (same length, other contents) is
// caught by the hash of a witnessed head.
func TestWitnessDetectsRewrittenLog(t *testing.T) {
	p := newPair(t)
	p.job("j_1", 3)
	p.job("j_2", 3)
	require.NoError(t, p.node.Close())
	all, err := ReadFile(p.nodePath)
	require.NoError(t, err)
	forged := append([]Entry(nil), all[:2]...)
	for i := 2; i < len(all); i++ {
		e := all[i]
		e.Detail = map[string]string{"note": "nothing happened"}
		if e.Action == "job.finish" {
			e.Detail = map[string]string{WitnessPrefix + CoordinatorLog: all[i].Detail[WitnessPrefix+CoordinatorLog]}
			e.Job = "j_other"
		}
		e.Seal(&forged[len(forged)-1])
		forged = append(forged, e)
	}
	require.NoError(t, Verify(forged), "the forgery is a valid chain on its own")
	err = p.check(forged)
	require.ErrorIs(t, err, ErrWitness)
	require.Contains(t, err.Error(), "rewritten")
}

// The other direction: the coordinator's log cut short is caught by the
// heads the node kept.
func TestWitnessDetectsCutCoordinatorLog(t *testing.T) {
	p := newPair(t)
	for i := range 5 {
		p.job(fmt.Sprintf("j_%d", i), 1)
	}
	require.NoError(t, p.node.Close())
	nodeEntries, err := ReadFile(p.nodePath)
	require.NoError(t, err)
	coord, _ := p.coord.All(t.Context())
	cut := coord[:4]
	back, err := WitnessedHeads(nodeEntries, CoordinatorLog)
	require.NoError(t, err)
	require.Len(t, back, 5)
	_, err = CheckWitnessed(cut, back, pubOf(p.coordKey))
	require.ErrorIs(t, err, ErrWitness)
}

// A witnessed head whose signature is not the keeper's is refused: a forger
// cannot plant heads in another party's log to frame the keeper.
func TestWitnessForgedHeadRefused(t *testing.T) {
	p := newPair(t)
	p.job("j_1", 2)
	require.NoError(t, p.node.Close())
	nodeEntries, err := ReadFile(p.nodePath)
	require.NoError(t, err)
	coord, _ := p.coord.All(t.Context())
	heads, err := WitnessedHeads(coord, "hrss")
	require.NoError(t, err)
	forged, err := SignHead(testSigner("mallory"), "hrss", heads[0].Head.Head())
	require.NoError(t, err)
	_, err = CheckWitnessed(nodeEntries, []Witnessed{{In: 9, Head: forged}}, pubOf(p.nodeKey))
	require.ErrorIs(t, err, ErrHeadSignature)
	// Without the key, only presence is checked (and it is present).
	_, err = CheckWitnessed(nodeEntries, []Witnessed{{In: 9, Head: forged}}, nil)
	require.NoError(t, err)
}

// A window of a chain (an export of its newest entries) checks the heads
// it holds and counts the older ones as unchecked.
func TestWitnessWindow(t *testing.T) {
	p := newPair(t)
	for i := range 4 {
		p.job(fmt.Sprintf("j_%d", i), 3)
	}
	require.NoError(t, p.node.Close())
	all, err := ReadFile(p.nodePath)
	require.NoError(t, err)
	coord, _ := p.coord.All(t.Context())
	heads, err := WitnessedHeads(coord, "hrss")
	require.NoError(t, err)
	c, err := CheckWitnessed(all[8:], heads, pubOf(p.nodeKey))
	require.NoError(t, err)
	require.Equal(t, 2, c.Before)
	require.Equal(t, 2, c.Checked)
	require.Equal(t, uint64(16), c.Newest)
}
