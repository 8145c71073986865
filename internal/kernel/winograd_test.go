package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ldm-go/ldm/internal/blas"
)

// TestWinogradMatchesDefinition checks Conv2dWinograd against the
// convolution evaluated in float64: its largest error is compared with the
// direct float32 convolution's on the same data (Winograd's transforms
// add terms of both signs, so some extra rounding is expected, an index
// or sign mistake shows as errors of the order of the outputs), and an
// image's output must not depend on its batch or the chunking of tiles.
func TestWinogradMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	shapes := []ConvShape{
		{N: 1, C: 64, H: 2, W: 2, OutC: 64},
		{N: 3, C: 5, H: 4, W: 6, OutC: 7},
		{N: 3, C: 64, H: 4, W: 6, OutC: 72},
		{N: 2, C: 96, H: 8, W: 8, OutC: 64},
		{N: 5, C: 64, H: 16, W: 16, OutC: 64}, // 320 tiles: two chunks
		{N: 2, C: 64, H: 32, W: 40, OutC: 64}, // rows of 20 tiles, chunks that split a row
		{N: 1, C: 64, H: 6, W: 10, OutC: 64},
	}
	for _, s := range shapes {
		s.KH, s.KW, s.Stride, s.PadT, s.PadL, s.PadB, s.PadR = 3, 3, 1, 1, 1, 1, 1
		t.Run(fmt.Sprintf("%dx%dx%dx%d-%d", s.N, s.C, s.H, s.W, s.OutC), func(t *testing.T) {
			if !IsWinograd(s) {
				t.Fatal("not a Winograd shape")
			}
			x := randNormal(r, s.N*s.C*s.H*s.W)
			w := randNormal(r, s.OutC*s.C*9)
			b := randNormal(r, s.OutC)
			exact := naiveConv64(x, w, b, s)
			direct := make([]float32, len(exact))
			Conv2d(direct, x, w, nil, b, s, make([]float32, ConvWork(s)))
			got := make([]float32, len(exact))
			Conv2dWinograd(got, x, NewWinogradWeights(w, s.OutC, s.C), b, s, make([]float32, WinogradWork(s)))
			// The vector transforms give the Go loops' bits.
			saved := useWinogradAVX512
			useWinogradAVX512 = false
			loops := make([]float32, len(exact))
			Conv2dWinograd(loops, x, NewWinogradWeights(w, s.OutC, s.C), b, s, make([]float32, WinogradWork(s)))
			useWinogradAVX512 = saved
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(loops[i]) {
					t.Fatalf("output %d: %v, the Go transforms give %v", i, got[i], loops[i])
				}
			}
			var we, de, scale float64
			for i, e := range exact {
				we = math.Max(we, math.Abs(float64(got[i])-e))
				de = math.Max(de, math.Abs(float64(direct[i])-e))
				scale = math.Max(scale, math.Abs(e))
			}
			t.Logf("max error: Winograd %.3g, direct %.3g (outputs up to %.3g)", we, de, scale)
			if we > 4*de+1e-7*scale {
				t.Errorf("Winograd error %.3g, over 4x the direct convolution's %.3g", we, de)
			}
			per, in := s.OutC*s.H*s.W, s.C*s.H*s.W
			one := s
			one.N = 1
			single := make([]float32, per)
			ww := NewWinogradWeights(w, s.OutC, s.C)
			for n := 0; n < s.N; n++ {
				Conv2dWinograd(single, x[n*in:(n+1)*in], ww, b, one, make([]float32, WinogradWork(one)))
				for i, v := range single {
					if math.Float32bits(got[n*per+i]) != math.Float32bits(v) {
						t.Fatalf("image %d alone differs from its batch at %d", n, i)
					}
				}
			}
		})
	}
}

// naiveConv64 is the textbook definition of the convolution, summed in
// float64; b may be nil.
func naiveConv64(x, w, b []float32, s ConvShape) []float64 {
	oh, ow := s.OutH(), s.OutW()
	y := make([]float64, s.N*s.OutC*oh*ow)
	for n := 0; n < s.N; n++ {
		for o := 0; o < s.OutC; o++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					var acc float64
					if b != nil {
						acc = float64(b[o])
					}
					for c := 0; c < s.C; c++ {
						for ki := 0; ki < s.KH; ki++ {
							for kj := 0; kj < s.KW; kj++ {
								iy, ix := i*s.Stride-s.PadT+ki, j*s.Stride-s.PadL+kj
								if iy < 0 || iy >= s.H || ix < 0 || ix >= s.W {
									continue
								}
								acc += float64(x[((n*s.C+c)*s.H+iy)*s.W+ix]) * float64(w[((o*s.C+c)*s.KH+ki)*s.KW+kj])
							}
						}
					}
					y[((n*s.OutC+o)*oh+i)*ow+j] = acc
				}
			}
		}
	}
	return y
}

// BenchmarkWinograd compares Conv2dWinograd with the direct convolution
// (weights packed ahead for both) at the CIFAR UNet's and the MNIST UNet's
// 3x3 shapes, batch 32.
func BenchmarkWinograd(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range []ConvShape{
		{N: 32, C: 128, H: 32, W: 32, OutC: 128}, {N: 32, C: 256, H: 16, W: 16, OutC: 256},
		{N: 32, C: 256, H: 8, W: 8, OutC: 256}, {N: 32, C: 64, H: 8, W: 8, OutC: 64}, {N: 32, C: 128, H: 4, W: 4, OutC: 128},
	} {
		s.KH, s.KW, s.Stride, s.PadT, s.PadL, s.PadB, s.PadR = 3, 3, 1, 1, 1, 1, 1
		x := randNormal(r, s.N*s.C*s.H*s.W)
		w := randNormal(r, s.OutC*s.C*9)
		bias := randNormal(r, s.OutC)
		dst := make([]float32, s.N*s.OutC*s.H*s.W)
		name := fmt.Sprintf("%dch-%dx%d", s.C, s.H, s.W)
		flops := 2 * 9 * float64(s.C*s.OutC) * float64(s.N*s.H*s.W)
		ww := NewWinogradWeights(w, s.OutC, s.C)
		b.Run(name+"/winograd", func(b *testing.B) {
			work := make([]float32, WinogradWork(s))
			for b.Loop() {
				Conv2dWinograd(dst, x, ww, bias, s, work)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "direct-GFLOP/s")
		})
		b.Run(name+"/direct", func(b *testing.B) {
			work := make([]float32, ConvWork(s))
			packed := blas.NewPackedA(s.OutC, 9*s.C, w, 9*s.C)
			for b.Loop() {
				Conv2d(dst, x, w, packed, bias, s, work)
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "direct-GFLOP/s")
		})
	}
}
