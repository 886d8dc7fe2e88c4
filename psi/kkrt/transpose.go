package kkrt

import "encoding/binary"

// Bit matrices are stored two ways. "Columns": CodeBits rows of n bits each
// (column i of the OT-extension matrix; bit r is bit r%8 of byte r/8).
// "Rows": n rows of CodeBytes bytes (row r; bit i is bit i%8 of byte i/8).
// Both are little-endian in bits, so 64 consecutive bits read as one
// little-endian uint64.

// transpose64 transposes the 64×64 bit matrix a in place (bit c of a[r] is
// entry (r, c)): it swaps the off-diagonal 32×32 blocks, then the 16×16
// blocks inside each quadrant, and so on down to single bits (Hacker's
// Delight §7-3, for least-significant-bit-first rows).
func transpose64(a *[64]uint64) {
	// One loop per level so that shifts and masks are constants; the &63
	// lets the compiler drop bounds checks.
	for k := 0; k < 32; k++ {
		t := (a[k]>>32 ^ a[(k+32)&63]) & 0x00000000ffffffff
		a[k] ^= t << 32
		a[(k+32)&63] ^= t
	}
	for k0 := 0; k0 < 64; k0 += 32 {
		for k := k0; k < k0+16; k++ {
			t := (a[k&63]>>16 ^ a[(k+16)&63]) & 0x0000ffff0000ffff
			a[k&63] ^= t << 16
			a[(k+16)&63] ^= t
		}
	}
	for k0 := 0; k0 < 64; k0 += 16 {
		for k := k0; k < k0+8; k++ {
			t := (a[k&63]>>8 ^ a[(k+8)&63]) & 0x00ff00ff00ff00ff
			a[k&63] ^= t << 8
			a[(k+8)&63] ^= t
		}
	}
	for k0 := 0; k0 < 64; k0 += 8 {
		for k := k0; k < k0+4; k++ {
			t := (a[k&63]>>4 ^ a[(k+4)&63]) & 0x0f0f0f0f0f0f0f0f
			a[k&63] ^= t << 4
			a[(k+4)&63] ^= t
		}
	}
	for k0 := 0; k0 < 64; k0 += 4 {
		for k := k0; k < k0+2; k++ {
			t := (a[k&63]>>2 ^ a[(k+2)&63]) & 0x3333333333333333
			a[k&63] ^= t << 2
			a[(k+2)&63] ^= t
		}
	}
	for k := 0; k < 64; k += 2 {
		t := (a[k&63]>>1 ^ a[(k+1)&63]) & 0x5555555555555555
		a[k&63] ^= t << 1
		a[(k+1)&63] ^= t
	}
}

// colsToRows transposes cols (CodeBits columns of n bits, n a multiple of
// 64, column i at cols[i*n/8:]) into rows (n rows of CodeBytes bytes).
func colsToRows(rows, cols []byte, n int) {
	colBytes := n / 8
	var a [64]uint64
	for rb := 0; rb < n/64; rb++ { // 64-row band
		for cb := 0; cb < CodeBits/64; cb++ { // 64-column band
			base := cb*64*colBytes + rb*8
			for k := range 64 {
				a[k] = binary.LittleEndian.Uint64(cols[base+k*colBytes:])
			}
			transpose64(&a)
			out := rb*64*CodeBytes + cb*8
			for r := range 64 {
				binary.LittleEndian.PutUint64(rows[out+r*CodeBytes:], a[r])
			}
		}
	}
}

// rowsToCols is the inverse of colsToRows.
func rowsToCols(cols, rows []byte, n int) {
	colBytes := n / 8
	var a [64]uint64
	for rb := 0; rb < n/64; rb++ {
		for cb := 0; cb < CodeBits/64; cb++ {
			in := rb*64*CodeBytes + cb*8
			for r := range 64 {
				a[r] = binary.LittleEndian.Uint64(rows[in+r*CodeBytes:])
			}
			transpose64(&a)
			base := cb*64*colBytes + rb*8
			for k := range 64 {
				binary.LittleEndian.PutUint64(cols[base+k*colBytes:], a[k])
			}
		}
	}
}
