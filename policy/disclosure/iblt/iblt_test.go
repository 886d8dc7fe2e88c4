package iblt

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

func rng(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x5eed)) }

// trial sketches A = common ∪ onlyA and B = common ∪ onlyB into a and b
// (reset first) and returns the two private parts.
func trial(r *rand.Rand, a, b *Sketch, common, nA, nB int) (onlyA, onlyB []uint64) {
	*a, *b = Sketch{}, Sketch{}
	for range common {
		k := r.Uint64()
		a.Insert(k)
		b.Insert(k)
	}
	for range nA {
		k := r.Uint64()
		a.Insert(k)
		onlyA = append(onlyA, k)
	}
	for range nB {
		k := r.Uint64()
		b.Insert(k)
		onlyB = append(onlyB, k)
	}
	return onlyA, onlyB
}

func sorted(v []uint64) []uint64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v
}

// 10,000 random trials per k in {5, 10, 50, 100}, half of them at the worst
// case |A Δ B| = k−1, the rest anywhere in [1, k−1], split at random
// between the two sides: every one decodes, to exactly the right elements.
func TestSmallDifferencesAlwaysDecode(t *testing.T) {
	var a, b Sketch
	for _, k := range []int{5, 10, 50, 100} {
		r := rng(uint64(k))
		for i := range 10000 {
			d := k - 1
			if i%2 == 1 {
				d = 1 + r.IntN(k-1)
			}
			nA := r.IntN(d + 1)
			wantA, wantB := trial(r, &a, &b, r.IntN(300), nA, d-nA)
			gotD, small := SmallDifference(&a, &b, k)
			require.True(t, small, "k=%d trial %d: |Δ|=%d not decoded (got %d)", k, i, d, gotD)
			require.Equal(t, d, gotD)
			onlyA, onlyB, ok := a.Subtract(&b).Decode()
			require.True(t, ok)
			require.Equal(t, sorted(wantA), sorted(onlyA))
			require.Equal(t, sorted(wantB), sorted(onlyB))
		}
	}
}

// A difference far larger than the sketch is never reported as small, and
// whenever a large difference does decode, its size is exact.
func TestLargeDifferencesAreNotSmall(t *testing.T) {
	var a, b Sketch
	r := rng(7)
	for _, d := range []int{100, 150, 300, 450, 600, 721, 1000, 5000, 50000} {
		trials := 200
		if d >= 5000 {
			trials = 20
		}
		decoded := 0
		for range trials {
			nA := r.IntN(d + 1)
			trial(r, &a, &b, 50, nA, d-nA)
			got, small := SmallDifference(&a, &b, 100)
			require.False(t, small, "|Δ|=%d reported small (%d)", d, got)
			if got >= 0 {
				decoded++
				require.Equal(t, d, got, "a decoded difference is exact")
			}
		}
		if d > Cells {
			require.Zero(t, decoded, "more elements than cells can never peel")
		}
		if d <= 300 {
			require.Equal(t, trials, decoded, "|Δ|=%d is well within capacity", d)
		}
	}
}

func TestIdenticalAndEmpty(t *testing.T) {
	var a, b Sketch
	r := rng(3)
	trial(r, &a, &b, 1000, 0, 0)
	d, small := SmallDifference(&a, &b, 10)
	require.Equal(t, 0, d)
	require.False(t, small, "the same input twice says nothing new")
	d, small = SmallDifference(New(), New(), 10)
	require.Equal(t, 0, d)
	require.False(t, small)
	// One person removed is found, whichever sketch comes first.
	a.Insert(42)
	d, small = SmallDifference(&a, &b, 10)
	require.True(t, small)
	require.Equal(t, 1, d)
	d, small = SmallDifference(&b, &a, 10)
	require.True(t, small)
	require.Equal(t, 1, d)
	a.Remove(42)
	require.Equal(t, a, b)
}

// A key inserted twice is not a set element: the sketch does not decode
// rather than decode wrongly.
func TestMultisetDoesNotDecode(t *testing.T) {
	var a Sketch
	a.Insert(1)
	a.Insert(1)
	_, _, ok := a.Subtract(New()).Decode()
	require.False(t, ok)
}

func TestSize(t *testing.T) {
	require.LessOrEqual(t, int(unsafe.Sizeof(Sketch{})), 16<<10)
	b, err := New().MarshalBinary()
	require.NoError(t, err)
	require.Len(t, b, EncodedSize)
	require.LessOrEqual(t, EncodedSize, 16<<10)
}

func TestRoundTrip(t *testing.T) {
	var a, b Sketch
	trial(rng(11), &a, &b, 500, 7, 3)
	enc, err := a.MarshalBinary()
	require.NoError(t, err)
	var c Sketch
	require.NoError(t, c.UnmarshalBinary(enc))
	require.Equal(t, a, c)
	d, small := SmallDifference(&c, &b, 100)
	require.True(t, small)
	require.Equal(t, 10, d)
	enc2, _ := c.MarshalBinary()
	require.Equal(t, enc, enc2, "the encoding is canonical")
}

func TestUnmarshalRejects(t *testing.T) {
	var a Sketch
	a.Insert(5)
	good, _ := a.MarshalBinary()
	before := a
	for name, b := range map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-1],
		"long":      append(slices.Clone(good), 0),
		"version":   append([]byte{2}, good[1:]...),
		"hashes":    append([]byte{1, 4}, good[2:]...),
		"cells":     append([]byte{1, Hashes, 0, 1}, good[4:]...),
	} {
		require.Error(t, a.UnmarshalBinary(b), name)
		require.Equal(t, before, a, "%s: a failed decode changes nothing", name)
	}
}

func TestHasher(t *testing.T) {
	_, err := NewHasher(make([]byte, 31))
	require.Error(t, err)
	k1 := bytes.Repeat([]byte{1}, 32)
	k2 := bytes.Repeat([]byte{2}, 32)
	h1, err := NewHasher(k1)
	require.NoError(t, err)
	h2, _ := NewHasher(k2)
	id := []byte("440106199001011234")
	require.Equal(t, h1.Sum64(id), h1.Sum64(id), "deterministic")
	require.NotEqual(t, h1.Sum64(id), h2.Sum64(id), "keyed")
	require.NotEqual(t, h1.Sum64(id), h1.Sum64([]byte("440106199001011242")))
}

// FuzzUnmarshal: any input either is rejected or round-trips byte for byte,
// and decoding whatever it holds terminates without panicking.
func FuzzUnmarshal(f *testing.F) {
	var a, b Sketch
	trial(rng(1), &a, &b, 20, 3, 2)
	for _, s := range []*Sketch{New(), &a, a.Subtract(&b)} {
		enc, _ := s.MarshalBinary()
		f.Add(enc)
	}
	f.Add([]byte{1, Hashes, 2, 208})
	f.Fuzz(func(t *testing.T, in []byte) {
		var s Sketch
		if err := s.UnmarshalBinary(in); err != nil {
			return
		}
		out, err := s.MarshalBinary()
		require.NoError(t, err)
		require.Equal(t, in, out)
		s.Decode()
		SmallDifference(&s, New(), 100)
	})
}

func BenchmarkInsert(b *testing.B) {
	var s Sketch
	for i := range b.N {
		s.Insert(uint64(i) * 0x9e3779b97f4a7c15)
	}
}

// BenchmarkHasherVsSHA256 reports the keyed hash's cost as a ratio to one
// plain SHA-256 of the same ID, measured in the same run.
func BenchmarkHasherVsSHA256(b *testing.B) {
	id := []byte("440106199001011234")
	h, _ := NewHasher(make([]byte, 32))
	var sink uint64
	b.Run("hmac", func(b *testing.B) {
		for range b.N {
			sink ^= h.Sum64(id)
		}
	})
	b.Run("sha256", func(b *testing.B) {
		for range b.N {
			s := sha256Sum(id)
			sink ^= uint64(s[0])
		}
	})
	_ = sink
}

func BenchmarkSmallDifference(b *testing.B) {
	var x, y Sketch
	trial(rng(5), &x, &y, 100000, 50, 49)
	for range b.N {
		SmallDifference(&x, &y, 100)
	}
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
