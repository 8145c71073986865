package kernel

import "github.com/ldm-go/ldm/internal/simd"

// useGNBackVector selects the vector group norm backward loops; tests turn
// it off to compare with the Go loops.
var useGNBackVector = simd.HasAVX512()

//go:noescape
func gnBackSumsAVX2(d, xs *float32, n int, m, r float64, sums *[8]float64)

//go:noescape
func gnBackApplyAVX512(out, d, xs *float32, n int, rw, a, b float64)
