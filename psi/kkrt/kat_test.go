package kkrt

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"testing"

	"github.com/unseen-data/unseen/psi/cuckoo"
)

var updateVectors = flag.Bool("update", false, "rewrite testdata/vectors.json")

const vectorsFile = "testdata/vectors.json"

// Known-answer vectors: a fixed session key, fixed base-OT outcome (seeds
// and choice bits from a SHA-256 counter stream), fixed items. Any change
// to the key schedule, the code, the cuckoo or partition hashing, the PRG,
// the transposes, H or the wire format changes them.
type katVectors struct {
	Comment   string         `json:"comment"`
	Key       string         `json:"session_key"`
	Tag       string         `json:"tag"`
	Params    Params         `json:"params"`
	Plan      Plan           `json:"plan"`
	Code      []katCode      `json:"code"`
	Partition []katPartition `json:"partitions"`
}

type katCode struct {
	Item       string    `json:"item"`
	Code       string    `json:"code"`
	Partition  int       `json:"partition"`
	Candidates [3]uint32 `json:"candidates_p0_a0"`
}

type katPartition struct {
	Attempt     int      `json:"attempt"`
	ChunkSHA256 []string `json:"correction_chunks_sha256"`
	Outputs     []string `json:"receiver_outputs_messages"`
	Values      []string `json:"sender_values_messages"`
	Matches     []Match  `json:"matches"`
}

// shaStream is SHA-256(label ‖ uint64 counter) blocks, concatenated.
type shaStream struct {
	label string
	ctr   uint64
	buf   []byte
}

func (s *shaStream) Read(p []byte) (int, error) {
	for n := 0; n < len(p); {
		if len(s.buf) == 0 {
			var c [8]byte
			binary.BigEndian.PutUint64(c[:], s.ctr)
			s.ctr++
			d := sha256.Sum256(append([]byte(s.label), c[:]...))
			s.buf = d[:]
		}
		k := copy(p[n:], s.buf)
		s.buf, n = s.buf[k:], n+k
	}
	return len(p), nil
}

func katItem(label string, i int) Item {
	d := sha256.Sum256([]byte(label + string(rune('0'+i/10)) + string(rune('0'+i%10))))
	return Item(d[:16])
}

func computeVectors(t *testing.T) *katVectors {
	key := make([]byte, SessionKeySize)
	for i := range key {
		key[i] = byte(0x40 + i)
	}
	params := Params{ReceiverSize: 24, SenderSize: 20, PartitionSize: 16, ChunkRows: 128}
	r, _ := NewReceiver(params, key)
	s, _ := NewSender(params, key)
	if err := fakeBaseOTs(r, s, &shaStream{label: "unseen/kkrt/kat base OTs"}); err != nil {
		t.Fatal(err)
	}
	var receiver, sender []Item
	for i := range 24 {
		receiver = append(receiver, katItem("r", i))
	}
	sender = append(sender, receiver[:10]...)
	for i := 10; i < 20; i++ {
		sender = append(sender, katItem("s", i))
	}
	v := &katVectors{
		Comment: "psi/kkrt known-answer vectors; regenerate with go test -run TestVectors -update only for a deliberate change of the construction",
		Key:     hex.EncodeToString(key), Params: params, Plan: r.Plan(),
	}
	tag := r.Tag()
	v.Tag = hex.EncodeToString(tag[:])
	k, _ := deriveKeys(key)
	cd := newCoder(k)
	pt := newPartitioner(k, r.Plan().Partitions)
	for i := range 3 {
		x := receiver[i]
		var c [CodeBytes]byte
		cd.code(c[:], &x)
		p, _ := pt.of(&x)
		ck, _ := k.cuckooKey(0, 0)
		h, _ := cuckoo.NewHasher(ck, r.Plan().Bins)
		v.Code = append(v.Code, katCode{Item: hex.EncodeToString(x[:]), Code: hex.EncodeToString(c[:]), Partition: p, Candidates: h.Candidates(&x)})
	}
	rItems, rPos := partitionOf(t, params, key, receiver)
	sItems, sPos := partitionOf(t, params, key, sender)
	for p := range r.Plan().Partitions {
		rp, err := r.Partition(p, rItems[p], rPos[p])
		if err != nil {
			t.Fatal(err)
		}
		sp, _ := s.Partition(p)
		kp := katPartition{Attempt: rp.Attempt()}
		for c := range rp.Chunks() {
			m, err := rp.Chunk(c)
			if err != nil {
				t.Fatal(err)
			}
			d := sha256.Sum256(m)
			kp.ChunkSHA256 = append(kp.ChunkSHA256, hex.EncodeToString(d[:]))
			if err := sp.Apply(m); err != nil {
				t.Fatal(err)
			}
		}
		outs, _ := rp.Outputs()
		vals, err := sp.Values(sItems[p], sPos[p])
		if err != nil {
			t.Fatal(err)
		}
		var ros []*ReceiverOutputs
		var svs []*SenderValues
		for _, m := range outs {
			kp.Outputs = append(kp.Outputs, hex.EncodeToString(m))
			ro, _ := DecodeReceiverOutputs(m)
			ros = append(ros, ro)
		}
		for _, m := range vals {
			kp.Values = append(kp.Values, hex.EncodeToString(m))
			sv, _ := DecodeSenderValues(m)
			svs = append(svs, sv)
		}
		if kp.Matches, err = Join(ros, svs); err != nil {
			t.Fatal(err)
		}
		v.Partition = append(v.Partition, kp)
	}
	return v
}

func TestVectors(t *testing.T) {
	got := computeVectors(t)
	var matches int
	for _, p := range got.Partition {
		matches += len(p.Matches)
		for _, m := range p.Matches {
			if m.Receiver != m.Sender || m.Receiver >= 10 {
				t.Fatalf("vector session matches %v; only items 0…9 are common", m)
			}
		}
	}
	if matches != 10 {
		t.Fatalf("vector session finds %d matches, want 10", matches)
	}
	if *updateVectors {
		b, _ := json.MarshalIndent(got, "", "  ")
		if err := os.WriteFile(vectorsFile, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var want katVectors
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, &want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		t.Fatalf("known-answer vectors changed; got\n%s", g[:min(len(g), 3000)])
	}
}
