package blas

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// BenchmarkPeak measures the single-precision FMA peak with register-only
// loops, on one core and on every core GOMAXPROCS allows.
func BenchmarkPeak(b *testing.B) {
	loops := peakLoops()
	if len(loops) == 0 {
		b.Skip("no assembly FMA loop for this architecture")
	}
	for _, l := range loops {
		for _, procs := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("%s/procs=%d", l.name, procs), func(b *testing.B) {
				var flops float64
				for b.Loop() {
					flops += runPeak(l, procs)
				}
				b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// gemmShape is one multiply the models run, named after where it comes from.
type gemmShape struct {
	name           string
	transA, transB bool
	m, k, n        int
}

// benchShapes are convolutions as GEMMs (M = out channels, K = in channels x
// kernel area, N = batch x height x width) of the MNIST latent UNet and the
// ddpm-cifar10-32 UNet at batch 32, one at batch 1, and an attention score
// product.
var benchShapes = []gemmShape{
	{"mnist/64x576x2048", false, false, 64, 576, 2048},
	{"mnist/128x1152x512", false, false, 128, 1152, 512},
	{"mnist/128x1152x128", false, false, 128, 1152, 128},
	{"mnist/128x2304x128", false, false, 128, 2304, 128},
	{"cifar/128x1152x32768", false, false, 128, 1152, 32768},
	{"cifar/256x2304x8192", false, false, 256, 2304, 8192},
	{"cifar/256x2304x2048", false, false, 256, 2304, 2048},
	{"cifar/256x2304x512", false, false, 256, 2304, 512},
	{"batch1/128x1152x1024", false, false, 128, 1152, 1024},
	{"attention/1024x32x1024tB", false, true, 1024, 32, 1024},
}

// BenchmarkSgemm times the model shapes at GOMAXPROCS 1 and 2 with the
// kernel this CPU selects, reporting GFLOP/s and the share of the peak
// measured just before on the same number of cores.
func BenchmarkSgemm(b *testing.B) {
	for _, s := range benchShapes {
		lda, ldb := s.k, s.n
		if s.transA {
			lda = s.m
		}
		if s.transB {
			ldb = s.k
		}
		var a, bm, c []float32
		for _, procs := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/%s/procs=%d", active.name, s.name, procs), func(b *testing.B) {
				if a == nil {
					rng := rand.New(rand.NewPCG(1, 1))
					a, bm, c = randSlice(rng, s.m*s.k), randSlice(rng, s.k*s.n), make([]float32, s.m*s.n)
				}
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				peak := PeakGFLOPS(procs)
				Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
				for b.Loop() {
					Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bm, ldb, 0, c, s.n)
				}
				reportGFLOPS(b, s, peak)
			})
		}
	}
}

// BenchmarkKernel times each micro-kernel alone on cache-resident panels:
// the ceiling the packing and blocking around it can approach.
func BenchmarkKernel(b *testing.B) {
	for _, name := range kernelNames {
		k := kernelNamed(name)
		if k == nil {
			continue
		}
		b.Run(name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			kc := k.kc
			a, bp := randSlice(rng, k.mr*kc), randSlice(rng, k.nr*kc)
			c := make([]float32, k.mr*k.nr)
			for b.Loop() {
				for range 64 {
					k.fn(kc, a, bp, c, k.nr, 1, 1, true)
				}
			}
			flops := 2 * 64 * float64(k.mr*k.nr*kc) * float64(b.N)
			b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkSgemmPackedA times the untransposed shapes with A packed once
// (NewPackedA), as frozen model weights are: the difference from
// BenchmarkSgemm is the packing of A and its barrier.
func BenchmarkSgemmPackedA(b *testing.B) {
	for _, s := range benchShapes {
		if s.transA || s.transB {
			continue
		}
		rng := rand.New(rand.NewPCG(1, 1))
		a, bm, c := randSlice(rng, s.m*s.k), randSlice(rng, s.k*s.n), make([]float32, s.m*s.n)
		pa := NewPackedA(s.m, s.k, a, s.k)
		for _, procs := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/%s/procs=%d", active.name, s.name, procs), func(b *testing.B) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				peak := PeakGFLOPS(procs)
				for b.Loop() {
					SgemmA(pa, false, s.n, 1, bm, s.n, 0, c, s.n)
				}
				reportGFLOPS(b, s, peak)
			})
		}
	}
}

// reportGFLOPS reports the rate of b's loop over GEMMs of shape s, and its
// share of the measured peak (0 when there is no peak loop).
func reportGFLOPS(b *testing.B, s gemmShape, peak float64) {
	gflops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(b.N) / b.Elapsed().Seconds() / 1e9
	b.ReportMetric(gflops, "GFLOP/s")
	if peak > 0 {
		b.ReportMetric(100*gflops/peak, "%peak")
		b.ReportMetric(peak, "peak-GFLOP/s")
	}
}
