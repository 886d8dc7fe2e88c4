package kkrt

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var writeCorpus = flag.Bool("writecorpus", false, "rewrite the seed corpora under testdata/fuzz")

// fuzzSeeds are the seed inputs of a kind's fuzzer: a valid message and
// broken variants of it.
func fuzzSeeds(valid []byte) [][]byte {
	return [][]byte{
		valid,
		valid[:len(valid)-1],
		valid[:headerSize],
		append(bytes.Clone(valid), 0),
		append([]byte{2}, valid[1:]...),
		{},
	}
}

var fuzzKinds = map[string]Kind{
	"FuzzDecodeSetup": KindSetup, "FuzzDecodeReply": KindReply, "FuzzDecodeSeeds": KindSeeds,
	"FuzzDecodeCorrection": KindCorrection, "FuzzDecodeReceiverOutputs": KindOutputs, "FuzzDecodeSenderValues": KindValues,
	"FuzzJoinerAdd": 0, "FuzzSenderInputs": 0,
}

// TestWriteCorpus rewrites testdata/fuzz/<Fuzzer>/ from sampleMessages when
// run with -writecorpus; otherwise it checks that every committed seed
// corpus exists.
func TestWriteCorpus(t *testing.T) {
	if !*writeCorpus {
		for name := range fuzzKinds {
			if ents, err := os.ReadDir(filepath.Join("testdata", "fuzz", name)); err != nil || len(ents) == 0 {
				t.Errorf("no seed corpus for %s (run go test -run TestWriteCorpus -writecorpus)", name)
			}
		}
		return
	}
	msgs := sampleMessages(t)
	write := func(name string, seeds [][]byte) {
		dir := filepath.Join("testdata", "fuzz", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, k := range fuzzKinds {
		if k != 0 {
			write(name, fuzzSeeds(msgs[k]))
		}
	}
	write("FuzzJoinerAdd", [][]byte{msgs[KindOutputs], msgs[KindValues], msgs[KindCorrection], {}})
	dir := filepath.Join("testdata", "fuzz", "FuzzSenderInputs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		b     []byte
		which byte
	}{{msgs[KindSetup], 0}, {msgs[KindSeeds], 1}, {msgs[KindReply], 1}, {msgs[KindCorrection], 2}, {nil, 2}} {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbyte(%q)\n", c.b, c.which)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fuzzDecoder checks a decoder on arbitrary input: it never panics, and
// what it accepts re-encodes to exactly the same bytes.
func fuzzDecoder(f *testing.F, k Kind) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m, enc, err := decodeEncode(k, b)
		if err != nil {
			if m != nil {
				t.Fatal("message returned with an error")
			}
			return
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("%v: accepted bytes that do not re-encode to themselves", k)
		}
	})
}

func FuzzDecodeSetup(f *testing.F)           { fuzzDecoder(f, KindSetup) }
func FuzzDecodeReply(f *testing.F)           { fuzzDecoder(f, KindReply) }
func FuzzDecodeSeeds(f *testing.F)           { fuzzDecoder(f, KindSeeds) }
func FuzzDecodeCorrection(f *testing.F)      { fuzzDecoder(f, KindCorrection) }
func FuzzDecodeReceiverOutputs(f *testing.F) { fuzzDecoder(f, KindOutputs) }
func FuzzDecodeSenderValues(f *testing.F)    { fuzzDecoder(f, KindValues) }

// FuzzJoinerAdd feeds the coordinator's Joiner arbitrary messages, twice
// each: it must refuse or accept, never panic, and never accept the same
// message twice.
func FuzzJoinerAdd(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		j, _ := NewJoiner(3)
		if _, err := j.Add(b); err != nil {
			return
		}
		if _, err := j.Add(b); err == nil {
			t.Fatal("the same message accepted twice")
		}
	})
}

// The nodes' message handlers (base OTs, chunk application) must refuse
// arbitrary bytes without panicking, too.
func FuzzSenderInputs(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, which byte) {
		params := Params{ReceiverSize: 10, SenderSize: 10, ChunkRows: 128}
		r, _ := NewReceiver(params, testKey(1))
		switch which % 3 {
		case 0:
			_, _ = r.Reply(b)
		case 1:
			s, _ := NewSender(params, testKey(1))
			_, _ = s.Seeds(b)
			_ = r.Finish(b)
		default:
			_, s2 := newPair(t, params, testKey(1), 1)
			sp, _ := s2.Partition(0)
			_ = sp.Apply(b)
		}
	})
}
