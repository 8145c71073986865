package kernel

import "github.com/ldm-go/ldm/internal/simd"

// useWinogradAVX512 selects the vector transforms; tests turn it off to
// compare with the Go loops.
var useWinogradAVX512 = simd.HasAVX512()

// wgEvenOdd are VPERMI2PS indexes picking the even and the odd lanes of
// two concatenated vectors; wgInterleave those interleaving the low and
// the high halves of two vectors.
var wgEvenOdd, wgInterleave = func() (eo, il [32]int32) {
	for l := 0; l < 16; l++ {
		eo[l], eo[16+l] = int32(2*l), int32(2*l+1)
	}
	for l := 0; l < 8; l++ {
		il[2*l], il[2*l+1] = int32(l), int32(16+l)
		il[16+2*l], il[16+2*l+1] = int32(8+l), int32(24+l)
	}
	return
}()

//go:noescape
func wgInputAVX512(v *float32, vstride int, rows *[4]*float32, off int, masks *[5]uint16)

//go:noescape
func wgOutputAVX512(m *float32, mstride int, out0, out1 *float32, bias float32, masks *[3]uint16)
