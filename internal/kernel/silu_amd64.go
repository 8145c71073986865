package kernel

import "github.com/ldm-go/ldm/internal/simd"

// siluPaths lists the SiLU implementations this CPU runs, fastest first.
var siluPaths = amd64SiLUPaths()

func amd64SiLUPaths() []siluPath {
	if simd.HasAVX512() {
		return []siluPath{{"avx512", siluAVX512Slice}, siluGoPath}
	}
	return []siluPath{siluGoPath}
}

// siluAVX512 writes SiLU of x[:n] to dst[:n].
//
//go:noescape
func siluAVX512(dst, x *float32, n int, consts *float32)

func siluAVX512Slice(dst, x []float32) {
	if len(x) == 0 {
		return
	}
	_ = dst[len(x)-1]
	siluAVX512(&dst[0], &x[0], len(x), &exp32Consts[0])
}
