package kernel

import "github.com/ldm-go/ldm/internal/simd"

// useInterleaveAVX512 selects the AVX-512 interleave of upsampling phases
// for planes 4, 8 or a multiple of 16 pixels wide; tests turn it off to
// compare with the Go loop.
var useInterleaveAVX512 = simd.HasAVX512()

//go:noescape
func interleavePhasesAVX512(dst, p00, p01, p10, p11 *float32, h, w int, bias float32, idx *[32]int32)

// interleaveIdx pairs lane i of one vector with lane i of another: the
// first sixteen indices for lanes 0-7, the next sixteen for lanes 8-15.
var interleaveIdx = func() (idx [32]int32) {
	for i := range 16 {
		idx[2*i], idx[2*i+1] = int32(i), int32(16+i)
	}
	return
}()

// interleavePlaneAVX512 interleaves one plane's four phases (h x w each)
// into d (2h x 2w) when the kernels handle its width, and reports whether
// it did.
func interleavePlaneAVX512(d, p00, p01, p10, p11 []float32, h, w int, bias float32) bool {
	hw := h * w
	fits := w%16 == 0 || (w == 4 || w == 8) && hw%16 == 0
	if !useInterleaveAVX512 || hw == 0 || !fits {
		return false
	}
	_, _, _, _, _ = d[4*hw-1], p00[hw-1], p01[hw-1], p10[hw-1], p11[hw-1]
	interleavePhasesAVX512(&d[0], &p00[0], &p01[0], &p10[0], &p11[0], h, w, bias, &interleaveIdx)
	return true
}
