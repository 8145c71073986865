package kernel

import "github.com/ldm-go/ldm/internal/blas"

// attnScoresAVX512 writes scores[i*hw+j] = scale * sum over e < d of
// q[e*ld+i] k[e*ld+j], for i, j < hw <= 16.
//
//go:noescape
func attnScoresAVX512(scores, q, k *float32, ld, d, hw int, scale float32)

// attnOutAVX512 writes o[e*ld+i] = sum over j < hw of v[e*ld+j] pt[j*hw+i],
// for e < d and i < hw <= 16.
//
//go:noescape
func attnOutAVX512(o, v, pt *float32, ld, d, hw int)

// attnSmallOK reports whether attnSmall may replace the two GEMMs of an
// (image, head) pair over hw positions: only when the GEMM itself runs the
// AVX-512 kernel, whose bits it reproduces (that kernel exists only where
// the kernels may use AVX-512).
func attnSmallOK(hw int) bool {
	return hw <= attnSmallMax && blas.KernelName() == "avx512"
}

func attnScores(scores, q, k []float32, ld, d, hw int, scale float32) {
	_ = q[(d-1)*ld+hw-1]
	_ = k[(d-1)*ld+hw-1]
	_ = scores[hw*hw-1]
	attnScoresAVX512(&scores[0], &q[0], &k[0], ld, d, hw, scale)
}

func attnOut(o, v, pt []float32, ld, d, hw int) {
	_ = v[(d-1)*ld+hw-1]
	_ = o[(d-1)*ld+hw-1]
	_ = pt[hw*hw-1]
	attnOutAVX512(&o[0], &v[0], &pt[0], ld, d, hw)
}
