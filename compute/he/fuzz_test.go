package he

import "testing"

// FuzzUnmarshalCiphertext: no input makes the decoder panic, hang or
// allocate without bound; whatever it accepts re-encodes to the same bytes.
func FuzzUnmarshalCiphertext(f *testing.F) {
	ps, err := InsecureTestParams(NameInsecureTestParamsSums)
	if err != nil {
		f.Fatal(err)
	}
	k := singleKey(ps)
	enc, _ := NewEncryptor(k.pk)
	ct, _ := enc.Encrypt([]int64{1, 2, 3}, 1)
	good, _ := ct.MarshalBinary()
	f.Add(good, ps.MaxLevel())
	f.Add(good[:100], ps.MaxLevel())
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, p []byte, level int) {
		c, err := ps.UnmarshalCiphertext(p, level)
		if err != nil {
			return
		}
		b, err := c.MarshalBinary()
		if err != nil || string(b) != string(p) {
			t.Fatal("accepted ciphertext does not re-encode identically")
		}
	})
}
