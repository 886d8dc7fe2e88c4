package attest

import (
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/unseen-data/unseen/policy"
)

func testSpec(filter string) *policy.Spec {
	return &policy.Spec{Type: policy.PSICardinality, Purpose: "audit", Inputs: []policy.Input{
		{Dataset: "hrss.benefits", Key: "id", Filter: filter}, {Dataset: "housing.owners", Key: "id"}}}
}

var alice = policy.Requester{User: "alice", Department: "hrss"}

func consent(t *testing.T, priv ed25519.PrivateKey) *SignedConsent {
	t.Helper()
	sc, err := SignConsent(priv, &Consent{JobRef: Ref("j_1", testSpec(""), alice), Dataset: "housing.owners",
		Approve: true, Until: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Owner: "cora"})
	require.NoError(t, err)
	return sc
}

func TestConsentVerifies(t *testing.T) {
	pub, priv, err := GenerateKey()
	require.NoError(t, err)
	ring := Keyring{"cora": pub}
	sc := consent(t, priv)
	require.NoError(t, ring.VerifyConsent(sc))
	require.NoError(t, sc.Statement.Check("j_1", testSpec(""), alice))

	// It travels as JSON and still verifies.
	b, err := json.Marshal(sc)
	require.NoError(t, err)
	var back SignedConsent
	require.NoError(t, json.Unmarshal(b, &back))
	require.NoError(t, ring.VerifyConsent(&back))
}

// A coordinator that alters any field of a signed consent — the job, the
// spec (a narrower filter), the requester, the dataset, the answer, the
// deadline, the signer — holds a statement nobody signed.
func TestConsentTamperingRefused(t *testing.T) {
	pub, priv, _ := GenerateKey()
	ring := Keyring{"cora": pub}
	alter := map[string]func(c *Consent){
		"job":       func(c *Consent) { c.Job = "j_2" },
		"spec":      func(c *Consent) { c.SpecHash = testSpec("x != 5").Hash() },
		"requester": func(c *Consent) { c.Requester.User = "mallory" },
		"dept":      func(c *Consent) { c.Requester.Department = "civil" },
		"dataset":   func(c *Consent) { c.Dataset = "housing.other" },
		"answer":    func(c *Consent) { c.Approve = false },
		"reason":    func(c *Consent) { c.Reason = "x" },
		"until":     func(c *Consent) { c.Until = c.Until.Add(time.Hour) },
	}
	for name, f := range alter {
		sc := consent(t, priv)
		f(sc.Statement)
		require.ErrorIs(t, ring.VerifyConsent(sc), ErrSignature, name)
	}
	// Claiming another signer: unknown, or known with another key.
	sc := consent(t, priv)
	sc.Statement.Owner = "hou"
	require.ErrorIs(t, ring.VerifyConsent(sc), ErrUnknownSigner)
	other, _, _ := GenerateKey()
	ring["hou"] = other
	require.ErrorIs(t, ring.VerifyConsent(sc), ErrSignature)
	// A forged signature with the right signer name.
	_, mallory, _ := GenerateKey()
	forged := consent(t, mallory)
	require.ErrorIs(t, ring.VerifyConsent(forged), ErrSignature)
	// Truncated or empty signatures.
	sc = consent(t, priv)
	sc.Signature = sc.Signature[:10]
	require.ErrorIs(t, ring.VerifyConsent(sc), ErrSignature)
	require.Error(t, ring.VerifyConsent(nil))
}

// A signature made for one kind of statement is worth nothing as another:
// the domains differ even where the fields would line up.
func TestDomainSeparation(t *testing.T) {
	pub, priv, _ := GenerateKey()
	ring := Keyring{"rita": pub}
	sa, err := SignApproval(priv, &Approval{JobRef: Ref("j_1", testSpec(""), alice), Reviewer: "rita", At: time.Now()})
	require.NoError(t, err)
	require.NoError(t, ring.VerifyApproval(sa))
	c := &Consent{JobRef: sa.Statement.JobRef, Owner: "rita", Until: sa.Statement.At}
	require.ErrorIs(t, ring.VerifyConsent(&SignedConsent{Statement: c, Signature: sa.Signature}), ErrSignature)
	require.NotEqual(t, c.Message()[:30], sa.Statement.Message()[:30])
}

func TestApprovalBindsResult(t *testing.T) {
	pub, priv, _ := GenerateKey()
	ring := Keyring{"rita": pub}
	sa, err := SignApproval(priv, &Approval{JobRef: Ref("j_1", testSpec(""), alice), Result: Digest{1}, Recipient: Digest{2}, Reviewer: "rita", At: time.Now()})
	require.NoError(t, err)
	require.NoError(t, ring.VerifyApproval(sa))
	for name, f := range map[string]func(a *Approval){
		"result":    func(a *Approval) { a.Result[0] ^= 1 },
		"recipient": func(a *Approval) { a.Recipient[31] ^= 1 },
		"spec":      func(a *Approval) { a.SpecHash[5] ^= 1 },
		"at":        func(a *Approval) { a.At = a.At.Add(time.Second) },
	} {
		b, _ := json.Marshal(sa)
		var cp SignedApproval
		require.NoError(t, json.Unmarshal(b, &cp))
		f(cp.Statement)
		require.ErrorIs(t, ring.VerifyApproval(&cp), ErrSignature, name)
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "node.key")
	priv, err := LoadOrCreatePrivateKeyFile(path)
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	again, err := LoadOrCreatePrivateKeyFile(path)
	require.NoError(t, err)
	require.Equal(t, priv, again)
	require.Error(t, WritePrivateKeyFile(path, priv), "never overwrites a key")

	pub := priv.Public().(ed25519.PublicKey)
	txt := FormatPublicKey(pub)
	back, err := ParsePublicKey(txt)
	require.NoError(t, err)
	require.Equal(t, pub, back)
	for _, bad := range []string{"", "ed25519:", "ed25519:AAAA", "rsa:" + txt[8:], txt + "AA"} {
		_, err := ParsePublicKey(bad)
		require.Error(t, err, bad)
	}
	_, err = ParsePrivateKey([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	require.Error(t, err)
	require.Len(t, Fingerprint(pub), 16)
}

func TestDigestText(t *testing.T) {
	var d Digest
	require.Error(t, d.UnmarshalText([]byte("abc")))
	require.Error(t, d.UnmarshalText([]byte("zz"+string(make([]byte, 62)))))
	in := Digest{0xab, 0xcd}
	b, _ := in.MarshalText()
	require.NoError(t, d.UnmarshalText(b))
	require.Equal(t, in, d)
}

func FuzzSignedConsentJSON(f *testing.F) {
	_, priv, _ := GenerateKey()
	sc, _ := SignConsent(priv, &Consent{JobRef: Ref("j_1", testSpec(""), alice), Dataset: "a.b", Until: time.Unix(1e9, 0), Owner: "o"})
	b, _ := json.Marshal(sc)
	f.Add(b)
	f.Add([]byte(`{"statement":null,"signature":""}`))
	pub := priv.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		var sc SignedConsent
		if json.Unmarshal(b, &sc) != nil {
			return
		}
		_ = Keyring{"o": pub}.VerifyConsent(&sc) // must not panic
	})
}
