package psi

import (
	"bytes"
	"testing"
)

func FuzzDecodeElements(f *testing.F) {
	good := HashID("job", []byte("seed"))
	f.Add([]byte{}, 0)
	f.Add(good[:], 1)
	f.Add(EncodeElements([]Element{good, good}), 1)
	f.Add(good[:31], 4)
	low := Element{1}
	f.Add(low[:], 1)
	nonCanonical := Element{0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	f.Add(nonCanonical[:], 1)

	f.Fuzz(func(t *testing.T, b []byte, max int) {
		es, err := DecodeElements(b, max)
		if err != nil {
			if es != nil {
				t.Fatal("elements returned with an error")
			}
			return
		}
		if len(es) > max || len(es)*ElementSize != len(b) {
			t.Fatalf("decoded %d elements from %d bytes with max %d", len(es), len(b), max)
		}
		// Accepted encodings are canonical: decoding then encoding is the identity.
		if !bytes.Equal(EncodeElements(es), b) {
			t.Fatal("decode→encode changed the bytes")
		}
		for i := range es {
			if isLowOrder(&es[i]) || !isCanonical(&es[i]) {
				t.Fatalf("accepted a bad element %x", es[i])
			}
		}
	})
}
