package blas

//go:generate go run gen_avx512.go

import "github.com/ldm-go/ldm/internal/simd"

//go:noescape
func kernelAVX512(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC int)

//go:noescape
func kernelAVX2(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC int)

// fmaPeakAVX512 runs n iterations of 12 independent zmm FMAs (384 flops each).
func fmaPeakAVX512(n int)

// fmaPeakAVX2 runs n iterations of 12 independent ymm FMAs (192 flops each).
func fmaPeakAVX2(n int)

// kernels lists the kernels this CPU can run, fastest first.
var kernels = amd64Kernels()

func amd64Kernels() []*microKernel {
	var ks []*microKernel
	if simd.HasAVX512() {
		ks = append(ks, &microKernel{name: "avx512", mr: 8, nr: 32, kc: 256, nc: 512, fn: goAVX512, packRows: goPackRows32, fnPack: goPackAVX512, fnRows: goRowsAVX512, fnPf: goPfAVX512, fnRowsPf: goRowsPfAVX512, fnHalf: goHalfAVX512, fnHalf16: goHalf16AVX512, fnPackRows: goPackRowsAVX512, packA8: goPackA8, fnDirect: goDirectAVX512, addBias: goAddBiasAVX512, addTile: goAddTileAVX512})
	}
	if simd.HasAVX2FMA() {
		ks = append(ks, &microKernel{name: "avx2", mr: 6, nr: 16, kc: 256, nc: 512, fn: goAVX2, packRows: goPackRows16, fnPack: goPackAVX2})
	}
	return append(ks, goKernel)
}

// The wrappers check the extents the assembly will touch, so a driver bug
// panics in Go instead of corrupting memory.

func goAVX512(kc int, a, b, c []float32, ldc int, alpha, beta float32, loadC bool) {
	_ = a[8*kc-1]
	_ = b[32*kc-1]
	_ = c[7*ldc+31]
	kernelAVX512(kc, &a[0], &b[0], &c[0], ldc, alpha, beta, b2i(loadC))
}

func goAVX2(kc int, a, b, c []float32, ldc int, alpha, beta float32, loadC bool) {
	_ = a[6*kc-1]
	_ = b[16*kc-1]
	_ = c[5*ldc+15]
	kernelAVX2(kc, &a[0], &b[0], &c[0], ldc, alpha, beta, b2i(loadC))
}

//go:noescape
func kernelDirectAVX512(kc int, a, base *float32, tab *int32, c *float32, ldc int, alpha, beta float32, loadC int)

// goDirectAVX512 checks what it can: the lanes base and tab point to are
// the DirectB implementation's promise.
func goDirectAVX512(kc int, a, base []float32, tab []int32, c []float32, ldc int, alpha, beta float32, loadC bool) {
	_ = a[8*kc-1]
	_ = tab[4*kc-1]
	_ = c[7*ldc+31]
	kernelDirectAVX512(kc, &a[0], &base[0], &tab[0], &c[0], ldc, alpha, beta, b2i(loadC))
}

//go:noescape
func addBiasTileAVX512(c *float32, ldc int, bias *float32)

func goAddBiasAVX512(c []float32, ldc int, bias []float32) {
	_ = c[7*ldc+31]
	_ = bias[7]
	addBiasTileAVX512(&c[0], ldc, &bias[0])
}

//go:noescape
func addTileAVX512(c, a *float32, ldc int)

func goAddTileAVX512(c, a []float32, ldc int) {
	_ = c[7*ldc+31]
	_ = a[7*ldc+31]
	addTileAVX512(&c[0], &a[0], ldc)
}

//go:noescape
func packRows32(dst, src *float32, rows, ld, panels, kc int)

//go:noescape
func packRows16(dst, src *float32, rows, ld, panels, kc int)

func goPackRows32(dst, src []float32, ld, rows, panels int) {
	_ = dst[panels*32*rows-1]
	_ = src[(rows-1)*ld+panels*32-1]
	packRows32(&dst[0], &src[0], rows, ld, panels, rows)
}

func goPackRows16(dst, src []float32, ld, rows, panels int) {
	_ = dst[panels*16*rows-1]
	_ = src[(rows-1)*ld+panels*16-1]
	packRows16(&dst[0], &src[0], rows, ld, panels, rows)
}

//go:noescape
func kernelPackAVX512(kc int, a, b *float32, ldb int, bpack, c *float32, ldc int, alpha, beta float32, loadC int)

//go:noescape
func kernelPackAVX2(kc int, a, b *float32, ldb int, bpack, c *float32, ldc int, alpha, beta float32, loadC int)

func goPackAVX512(kc int, a, b []float32, ldb int, bpack, c []float32, ldc int, alpha, beta float32, loadC bool) {
	_ = a[8*kc-1]
	_ = b[(kc-1)*ldb+31]
	_ = bpack[32*kc-1]
	_ = c[7*ldc+31]
	kernelPackAVX512(kc, &a[0], &b[0], ldb, &bpack[0], &c[0], ldc, alpha, beta, b2i(loadC))
}

func goPackAVX2(kc int, a, b []float32, ldb int, bpack, c []float32, ldc int, alpha, beta float32, loadC bool) {
	_ = a[6*kc-1]
	_ = b[(kc-1)*ldb+15]
	_ = bpack[16*kc-1]
	_ = c[5*ldc+15]
	kernelPackAVX2(kc, &a[0], &b[0], ldb, &bpack[0], &c[0], ldc, alpha, beta, b2i(loadC))
}

//go:noescape
func kernelHalfAVX512(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC int)

func goHalfAVX512(kc int, a, b, c []float32, ldc int, alpha, beta float32, loadC bool) {
	_ = a[8*kc-1]
	_ = b[32*(kc-1)+15]
	_ = c[7*ldc+15]
	kernelHalfAVX512(kc, &a[0], &b[0], &c[0], ldc, alpha, beta, b2i(loadC))
}

//go:noescape
func kernelHalf16AVX512(kc int, a0, a1, b, c *float32, ldc int, alpha, beta float32, loadC int)

func goHalf16AVX512(kc int, a0, a1, b, c []float32, ldc int, alpha, beta float32, loadC bool) {
	_ = a0[8*kc-1]
	_ = a1[8*kc-1]
	_ = b[32*(kc-1)+15]
	_ = c[15*ldc+15]
	kernelHalf16AVX512(kc, &a0[0], &a1[0], &b[0], &c[0], ldc, alpha, beta, b2i(loadC))
}

//go:noescape
func kernelPfAVX512(kc int, a, b, c *float32, ldc int, alpha, beta float32, loadC int, next *float32, ldn int)

//go:noescape
func kernelRowsPfAVX512(kc int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32, loadC int, next *float32, ldn int)

// goPfAVX512 and goRowsPfAVX512 check a, b and c only: next is only
// prefetched, which cannot fault.
func goPfAVX512(kc int, a, b, c []float32, ldc int, alpha, beta float32, loadC bool, next *float32, ldn int) {
	_ = a[8*kc-1]
	_ = b[32*kc-1]
	_ = c[7*ldc+31]
	kernelPfAVX512(kc, &a[0], &b[0], &c[0], ldc, alpha, beta, b2i(loadC), next, ldn)
}

func goRowsPfAVX512(kc int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32, loadC bool, next *float32, ldn int) {
	_ = a[7*lda+kc-1]
	_ = b[32*kc-1]
	_ = c[7*ldc+31]
	kernelRowsPfAVX512(kc, &a[0], lda, &b[0], &c[0], ldc, alpha, beta, b2i(loadC), next, ldn)
}

//go:noescape
func kernelRowsAVX512(kc int, a *float32, lda int, b, c *float32, ldc int, alpha, beta float32, loadC int)

//go:noescape
func kernelPackRowsAVX512(kc int, a *float32, lda int, b *float32, ldb int, bpack, c *float32, ldc int, alpha, beta float32, loadC int)

func goRowsAVX512(kc int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32, loadC bool) {
	_ = a[7*lda+kc-1]
	_ = b[32*kc-1]
	_ = c[7*ldc+31]
	kernelRowsAVX512(kc, &a[0], lda, &b[0], &c[0], ldc, alpha, beta, b2i(loadC))
}

func goPackRowsAVX512(kc int, a []float32, lda int, b []float32, ldb int, bpack, c []float32, ldc int, alpha, beta float32, loadC bool) {
	_ = a[7*lda+kc-1]
	_ = b[(kc-1)*ldb+31]
	_ = bpack[32*kc-1]
	_ = c[7*ldc+31]
	kernelPackRowsAVX512(kc, &a[0], lda, &b[0], ldb, &bpack[0], &c[0], ldc, alpha, beta, b2i(loadC))
}

//go:noescape
func packA8AVX(dst, src *float32, ld, blocks int)

func goPackA8(dst, src []float32, ld, kc int) {
	blocks := kc / 8
	if blocks == 0 {
		return
	}
	_ = dst[64*blocks-1]
	_ = src[7*ld+8*blocks-1]
	packA8AVX(&dst[0], &src[0], ld, blocks)
}

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}

// peakLoop is a register-only FMA loop used to measure the CPU's peak.
type peakLoop struct {
	name         string
	flopsPerIter float64
	run          func(n int)
}

// peakLoops lists the FMA loops this CPU can run.
func peakLoops() []peakLoop {
	var ls []peakLoop
	if simd.HasAVX512() {
		ls = append(ls, peakLoop{"avx512", 12 * 16 * 2, fmaPeakAVX512})
	}
	if simd.HasAVX2FMA() {
		ls = append(ls, peakLoop{"avx2", 12 * 8 * 2, fmaPeakAVX2})
	}
	return ls
}
