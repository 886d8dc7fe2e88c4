package jobstest

// Blobs: small shared values with compare-and-set versions (the key
// ceremony's state that several coordinators share).

import (
	"bytes"
	"crypto/rand"
	"errors"
	"sync"

	"github.com/unseen-data/unseen/jobs"
)

// testBlobs: absent until written; a write names the version it replaces,
// and a stale one changes nothing; values are binary-safe and large ones
// round-trip; malformed keys and values are refused.
func testBlobs(e *env) {
	t := e.t
	const key = "hefed/state"
	_, _, err := e.s.Blob(e.ctx, key, 0)
	wantErr(t, "Blob of a key never written", err, jobs.ErrNoBlob)

	v1 := []byte{0, 1, 2, 0xff, 0, 'x'}
	ver, err := e.s.PutBlob(e.ctx, key, v1, 0)
	if err != nil || ver != 1 {
		t.Fatalf("first PutBlob: %d %v", ver, err)
	}
	got, ver, err := e.s.Blob(e.ctx, key, 0)
	if err != nil || ver != 1 || !bytes.Equal(got, v1) {
		t.Fatalf("Blob: %x %d %v", got, ver, err)
	}
	// A writer that read nothing (or version 0) cannot overwrite it.
	_, err = e.s.PutBlob(e.ctx, key, []byte("other"), 0)
	wantErr(t, "PutBlob over a newer version", err, jobs.ErrBlobVersion)
	_, err = e.s.PutBlob(e.ctx, key, []byte("other"), 7)
	wantErr(t, "PutBlob naming a version that never was", err, jobs.ErrBlobVersion)
	if got, _, _ := e.s.Blob(e.ctx, key, 0); !bytes.Equal(got, v1) {
		t.Fatal("a refused PutBlob changed the value")
	}
	// A cached copy at the current version: the version, no value.
	if v, ver, err := e.s.Blob(e.ctx, key, 1); err != nil || ver != 1 || v != nil {
		t.Fatalf("Blob with the current version known: %x %d %v", v, ver, err)
	}
	// The returned slice is the caller's.
	got[0] = 9
	if again, _, _ := e.s.Blob(e.ctx, key, 0); again[0] != 0 {
		t.Fatal("Blob returned the store's own bytes")
	}

	big := make([]byte, 6<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if ver, err = e.s.PutBlob(e.ctx, key, big, 1); err != nil || ver != 2 {
		t.Fatalf("PutBlob of 6 MiB: %d %v", ver, err)
	}
	if got, ver, err = e.s.Blob(e.ctx, key, 0); err != nil || ver != 2 || !bytes.Equal(got, big) {
		t.Fatalf("6 MiB blob: %d bytes, version %d, %v", len(got), ver, err)
	}
	// A stale cached version reads the new value.
	if got, ver, err = e.s.Blob(e.ctx, key, 1); err != nil || ver != 2 || !bytes.Equal(got, big) {
		t.Fatalf("Blob with a stale version known: %d bytes, version %d, %v", len(got), ver, err)
	}
	// Other keys are independent.
	if _, _, err := e.s.Blob(e.ctx, "hefed/other", 0); err == nil {
		t.Fatal("another key exists")
	}

	for _, bad := range []string{"", "UPPER", "a b", "semi;colon", string(make([]byte, jobs.MaxBlobKey+1))} {
		_, err := e.s.PutBlob(e.ctx, bad, v1, 0)
		wantErr(t, "PutBlob with key "+bad, err, jobs.ErrBlob)
		_, _, err = e.s.Blob(e.ctx, bad, 0)
		wantErr(t, "Blob with key "+bad, err, jobs.ErrBlob)
	}
	_, err = e.s.PutBlob(e.ctx, "x", make([]byte, jobs.MaxBlobBytes+1), 0)
	wantErr(t, "PutBlob over MaxBlobBytes", err, jobs.ErrBlob)
	_, err = e.s.PutBlob(e.ctx, "x", v1, -1)
	wantErr(t, "PutBlob with a negative version", err, jobs.ErrBlob)
}

// testBlobRace: writers racing from the same version — two coordinators
// finishing a key ceremony at once — exactly one wins; and a blob survives
// a restart.
func testBlobRace(e *env) {
	t := e.t
	const key = "race"
	var wg sync.WaitGroup
	wins := make(chan int, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.s.PutBlob(e.ctx, key, []byte{byte(i)}, 0); err == nil {
				wins <- i
			} else if !errors.Is(err, jobs.ErrBlobVersion) {
				t.Errorf("racing PutBlob: %v", err)
			}
		}()
	}
	wg.Wait()
	close(wins)
	var won []int
	for i := range wins {
		won = append(won, i)
	}
	if len(won) != 1 {
		t.Fatalf("%d writers won the race from version 0, want 1", len(won))
	}
	got, ver, err := e.s.Blob(e.ctx, key, 0)
	if err != nil || ver != 1 || len(got) != 1 || int(got[0]) != won[0] {
		t.Fatalf("after the race: %v %d %v, winner %d", got, ver, err, won[0])
	}
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	_, _, err = e.s.Blob(e.ctx, key, 0)
	wantErr(t, "Blob after Close", err, jobs.ErrUnavailable)
	e.s = e.h.Reopen(t, e.s, e.clock)
	got, ver, err = e.s.Blob(e.ctx, key, 0)
	if err != nil || ver != 1 || int(got[0]) != won[0] {
		t.Fatalf("after a restart: %v %d %v", got, ver, err)
	}
}
