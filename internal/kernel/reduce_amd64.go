package kernel

import "github.com/ldm-go/ldm/internal/simd"

// reducePaths lists the implementations this CPU runs, fastest first.
var reducePaths = amd64ReducePaths()

func amd64ReducePaths() []reducePath {
	if simd.HasAVX512() {
		return []reducePath{{"avx512", sum64AVX512Slice, sqdev64AVX512Slice, affine64AVX512Slice}, reduceGoPath}
	}
	return []reducePath{reduceGoPath}
}

// sum64AVX512 returns the sum of x[:n] in the lane order of sum64Go.
//
//go:noescape
func sum64AVX512(x *float32, n int) float64

// sqdev64AVX512 returns the sum of (x[i]-m)^2 over x[:n], in the same order.
//
//go:noescape
func sqdev64AVX512(x *float32, n int, m float64) float64

// affine64AVX512 writes float32(x[i]*scale + shift) for x[:n] to dst.
//
//go:noescape
func affine64AVX512(dst, x *float32, n int, scale, shift float64)

func sum64AVX512Slice(x []float32) float64 {
	if len(x) == 0 {
		return 0
	}
	return sum64AVX512(&x[0], len(x))
}

func sqdev64AVX512Slice(x []float32, m float64) float64 {
	if len(x) == 0 {
		return 0
	}
	return sqdev64AVX512(&x[0], len(x), m)
}

func affine64AVX512Slice(dst, x []float32, scale, shift float64) {
	if len(x) == 0 {
		return
	}
	_ = dst[len(x)-1]
	affine64AVX512(&dst[0], &x[0], len(x), scale, shift)
}
