package kkrt

import (
	"math/rand/v2"
	"testing"
)

func bit(b []byte, i int) byte { return b[i/8] >> (i % 8) & 1 }

func TestTranspose64(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var a, orig [64]uint64
	for i := range a {
		a[i] = rng.Uint64()
	}
	orig = a
	transpose64(&a)
	for r := range 64 {
		for c := range 64 {
			if a[r]>>c&1 != orig[c]>>r&1 {
				t.Fatalf("entry (%d,%d) wrong", r, c)
			}
		}
	}
	transpose64(&a)
	if a != orig {
		t.Fatal("transpose is not an involution")
	}
}

func TestColsRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{128, 384, 1024} {
		cols := make([]byte, CodeBits*n/8)
		for i := range cols {
			cols[i] = byte(rng.Uint32())
		}
		rows := make([]byte, n*CodeBytes)
		colsToRows(rows, cols, n)
		for r := range n {
			for c := range CodeBits {
				if bit(rows[r*CodeBytes:], c) != bit(cols[c*n/8:], r) {
					t.Fatalf("n=%d: entry (%d,%d) wrong", n, r, c)
				}
			}
		}
		back := make([]byte, len(cols))
		rowsToCols(back, rows, n)
		if string(back) != string(cols) {
			t.Fatalf("n=%d: rowsToCols∘colsToRows is not the identity", n)
		}
	}
}
