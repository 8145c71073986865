package kernel

import "github.com/ldm-go/ldm/internal/simd"

// packMaskedAVX512 stores, for each of rows rows, the 32 floats at
// img+offs[r] to dst+r*ldd: lanes clear in masks[r] are zeros and are not
// read (masked loads do not fault), and only the lanes set in store are
// written.
//
//go:noescape
func packMaskedAVX512(dst, img *float32, offs *int, masks *uint32, rows, ldd int, store uint32)

// hasMaskedPack reports whether packRows can run: masked 32-lane loads and
// stores need AVX-512.
var hasMaskedPack = simd.HasAVX512()

// packRows is packMaskedAVX512 on slices. Every lane set in masks[r] must
// lie inside img, and seg (the lanes set in store) inside each dst row.
func packRows(dst, img []float32, offs []int, masks []uint32, ldd, seg int) {
	rows := len(offs)
	if rows == 0 {
		return
	}
	_ = dst[(rows-1)*ldd+seg-1]
	_ = masks[rows-1]
	packMaskedAVX512(&dst[0], &img[0], &offs[0], &masks[0], rows, ldd, uint32(1)<<seg-1)
}
