package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ldm-go/ldm/internal/blas"
)

// TestUpsampleConvMatchesDefinition checks UpsampleConv3x3 against the
// upsampled convolution evaluated in float64. The sub-pixel form sums up
// to three weights, then at most 4*C products and the bias, so each output
// is within (4*C + 4) float32 roundings of its terms: |got - exact| <=
// (4*C + 4) * 2^-24 * (sum of |w_ij * x| + |b|), the standard bound for a
// float32 sum, which an index or phase mistake exceeds by orders of
// magnitude. The result of each image must not depend on its batch.
func TestUpsampleConvMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	shapes := []ConvShape{
		{N: 1, C: 3, H: 4, W: 4, OutC: 5},
		{N: 3, C: 8, H: 2, W: 2, OutC: 8},
		{N: 2, C: 5, H: 3, W: 7, OutC: 4},
		{N: 5, C: 16, H: 8, W: 8, OutC: 16},
		{N: 2, C: 32, H: 16, W: 16, OutC: 32},
	}
	for _, s := range shapes {
		s.KH, s.KW, s.Stride, s.PadT, s.PadL, s.PadB, s.PadR = 3, 3, 1, 1, 1, 1, 1
		t.Run(fmt.Sprintf("%dx%dx%dx%d-%d", s.N, s.C, s.H, s.W, s.OutC), func(t *testing.T) {
			x := randNormal(r, s.N*s.C*s.H*s.W)
			w := randNormal(r, s.OutC*s.C*9)
			b := randNormal(r, s.OutC)
			got := make([]float32, s.N*s.OutC*4*s.H*s.W)
			UpsampleConv3x3(got, x, w, nil, b, s, make([]float32, UpsampleConvWork(s)))
			// With the phases prepared once: the same bits.
			prepared := make([]float32, len(got))
			UpsampleConv3x3(prepared, x, w, NewUpsamplePhases(w, s.OutC, s.C), b, s, make([]float32, UpsampleConvWork(s)))
			for i := range got {
				if math.Float32bits(prepared[i]) != math.Float32bits(got[i]) {
					t.Fatalf("element %d: %v with prepared phases, %v without", i, prepared[i], got[i])
				}
			}

			up := make([]float32, s.N*s.C*4*s.H*s.W)
			UpsampleNearest2x(up, x, s.N*s.C, s.H, s.W)
			us := s
			us.H, us.W = 2*s.H, 2*s.W
			oh, ow := us.OutH(), us.OutW()
			worst := 0.0
			for n := 0; n < s.N; n++ {
				for o := 0; o < s.OutC; o++ {
					for i := 0; i < oh; i++ {
						for j := 0; j < ow; j++ {
							exact, mag := float64(b[o]), math.Abs(float64(b[o]))
							for c := 0; c < s.C; c++ {
								for ki := 0; ki < 3; ki++ {
									for kj := 0; kj < 3; kj++ {
										iy, ix := i-1+ki, j-1+kj
										if iy < 0 || iy >= us.H || ix < 0 || ix >= us.W {
											continue
										}
										p := float64(up[((n*s.C+c)*us.H+iy)*us.W+ix]) * float64(w[((o*s.C+c)*3+ki)*3+kj])
										exact += p
										mag += math.Abs(p)
									}
								}
							}
							g := float64(got[((n*s.OutC+o)*oh+i)*ow+j])
							bound := float64(4*s.C+4) * 0x1p-24 * mag
							if d := math.Abs(g - exact); d > bound {
								t.Fatalf("output (%d, %d, %d, %d) = %v, want %v within %.3g", n, o, i, j, g, exact, bound)
							} else if d/bound > worst {
								worst = d / bound
							}
						}
					}
				}
			}
			t.Logf("worst error %.3f of the bound", worst)

			// Image by image: the same bits as in the batch.
			per, in := s.OutC*4*s.H*s.W, s.C*s.H*s.W
			one := s
			one.N = 1
			single := make([]float32, per)
			for n := 0; n < s.N; n++ {
				UpsampleConv3x3(single, x[n*in:(n+1)*in], w, nil, b, one, make([]float32, UpsampleConvWork(one)))
				for i, v := range single {
					if got[n*per+i] != v {
						t.Fatalf("image %d alone differs from its batch at %d: %v vs %v", n, i, v, got[n*per+i])
					}
				}
			}
		})
	}
}

// BenchmarkUpsampleConv compares the sub-pixel form with upsampling and
// then convolving, at the VAE decoder's last upsampler (32 channels,
// 16x16 to 32x32) and the UNet's (128 channels, 4x4 to 8x8), batch 32.
func BenchmarkUpsampleConv(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range []ConvShape{{N: 32, C: 32, H: 16, W: 16, OutC: 32}, {N: 32, C: 128, H: 4, W: 4, OutC: 128}, {N: 1, C: 128, H: 4, W: 4, OutC: 128}, {N: 1, C: 32, H: 16, W: 16, OutC: 32}, {N: 1, C: 64, H: 8, W: 8, OutC: 64}} {
		s.KH, s.KW, s.Stride, s.PadT, s.PadL, s.PadB, s.PadR = 3, 3, 1, 1, 1, 1, 1
		x := randNormal(r, s.N*s.C*s.H*s.W)
		w := randNormal(r, s.OutC*s.C*9)
		bias := randNormal(r, s.OutC)
		dst := make([]float32, s.N*s.OutC*4*s.H*s.W)
		name := fmt.Sprintf("%dx%dch-%dx%d", s.N, s.C, s.H, s.W)
		phases := NewUpsamplePhases(w, s.OutC, s.C)
		b.Run(name+"/subpixel", func(b *testing.B) {
			work := make([]float32, UpsampleConvWork(s))
			for b.Loop() {
				UpsampleConv3x3(dst, x, w, phases, bias, s, work)
			}
		})
		b.Run(name+"/upsampled", func(b *testing.B) {
			us := s
			us.H, us.W = 2*s.H, 2*s.W
			up := make([]float32, s.N*s.C*4*s.H*s.W)
			work := make([]float32, ConvWork(us))
			packed := blas.NewPackedA(s.OutC, 9*s.C, w, 9*s.C)
			for b.Loop() {
				UpsampleNearest2x(up, x, s.N*s.C, s.H, s.W)
				Conv2d(dst, up, w, packed, bias, us, work)
			}
		})
	}
}

// TestInterleaveKernelsMatchGo checks the AVX-512 interleave of the four
// phases against the Go loop, bit for bit, at the widths it takes (4, 8,
// 16, 32) and at those it leaves to the loop, with and without a bias.
func TestInterleaveKernelsMatchGo(t *testing.T) {
	if !useInterleaveAVX512 {
		t.Skip("this CPU has no AVX-512 interleave")
	}
	defer func(v bool) { useInterleaveAVX512 = v }(useInterleaveAVX512)
	r := rand.New(rand.NewPCG(3, 4))
	for _, s := range [][4]int{{2, 3, 8, 8}, {1, 2, 4, 8}, {2, 3, 16, 16}, {1, 2, 3, 32}, {2, 2, 5, 8}, {1, 3, 4, 4}, {2, 2, 8, 4}, {1, 2, 6, 4}, {1, 1, 2, 48}, {2, 2, 2, 2}} {
		n, c, h, w := s[0], s[1], s[2], s[3]
		res := randNormal(r, 4*n*c*h*w)
		for _, bias := range [][]float32{nil, randNormal(r, c)} {
			var out [2][]float32
			for i, asm := range []bool{false, true} {
				useInterleaveAVX512 = asm
				out[i] = make([]float32, len(res))
				(&interleaveTask{dst: out[i], res: res, bias: bias, n: n, c: c, h: h, w: w}).Run(0, c)
			}
			for i := range out[0] {
				if math.Float32bits(out[0][i]) != math.Float32bits(out[1][i]) {
					t.Fatalf("n=%d c=%d h=%d w=%d bias=%v: out[%d] is %v from the kernel, %v from the loop", n, c, h, w, bias != nil, i, out[1][i], out[0][i])
				}
			}
		}
	}
}
