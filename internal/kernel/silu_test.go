package kernel

import (
	"math"
	"math/rand/v2"
	"testing"
)

// siluInputs covers the range where SiLU's float32 result is normal, the
// clamping edges of the exponential, and the special values.
func siluInputs() []float32 {
	var xs []float32
	for x := float32(-110); x <= 110; x += 0.00731 {
		xs = append(xs, x)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		xs = append(xs, float32(r.NormFloat64()*3))
	}
	for _, e := range []float64{89, 104} {
		for _, d := range []float64{-1e-4, 0, 1e-4} {
			xs = append(xs, float32(e+d), float32(-e-d))
		}
	}
	return append(xs, 0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, math.SmallestNonzeroFloat32,
		math.MaxFloat32, -math.MaxFloat32, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()))
}

// TestSiLUPaths forces each SiLU implementation this machine runs and
// checks it against x / (1 + e^-x) evaluated in float64 with math.Exp:
// within 4 float32 ulps (4 * 2^-24 relative) where the float32 result is
// normal, and within the smallest normal float32 elsewhere. Every path must also give the Go
// path's bits, in place and out of place, for every length's tail.
func TestSiLUPaths(t *testing.T) {
	xs := siluInputs()
	want := make([]float32, len(xs))
	siluGo(want, xs)
	for _, p := range siluPaths {
		t.Run(p.name, func(t *testing.T) {
			got := make([]float32, len(xs))
			p.fn(got, xs)
			worst := 0.0
			for i, x := range xs {
				ref := float64(x) / (1 + math.Exp(-float64(x)))
				g := float64(got[i])
				switch {
				case math.IsNaN(ref):
					if !math.IsNaN(g) {
						t.Errorf("silu(%g) = %g, want NaN", x, g)
					}
					continue
				case math.IsInf(ref, 0):
					if g != ref {
						t.Errorf("silu(%g) = %g, want %g", x, g, ref)
					}
					continue
				case math.Abs(ref) < 0x1p-126:
					if math.Abs(g-ref) > 0x1p-126 {
						t.Errorf("silu(%g) = %g, want %g", x, g, ref)
					}
					continue
				}
				if rel := math.Abs(g-ref) / math.Abs(ref); rel > worst {
					worst = rel
				}
			}
			if worst > 4*0x1p-24 {
				t.Errorf("max relative error %.3g, want <= 4 ulps (%.3g)", worst, 4*0x1p-24)
			}
			t.Logf("max relative error %.3g", worst)
			for i := range xs {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
					t.Fatalf("silu(%g) = %g (%#x), the Go path gives %g (%#x)", xs[i], got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
				}
			}
			for n := 0; n <= 40; n++ {
				in := append([]float32(nil), xs[1000:1000+n]...)
				p.fn(in, in)
				for i := range in {
					if in[i] != want[1000+i] {
						t.Fatalf("length %d in place: element %d = %g, want %g", n, i, in[i], want[1000+i])
					}
				}
			}
		})
	}
}

// BenchmarkSiLU runs each path over a UNet-sized activation.
func BenchmarkSiLU(b *testing.B) {
	x := make([]float32, 1<<16)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range x {
		x[i] = float32(r.NormFloat64() * 2)
	}
	y := make([]float32, len(x))
	for _, p := range siluPaths {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				p.fn(y, x)
			}
			b.SetBytes(int64(4 * len(x)))
		})
	}
}

// TestGroupNormSiLU checks the fused norm and activation against the two
// kernels run one after the other: the same bits, in place or not, and
// GroupNormSiLUStats writes both outputs and the statistics.
func TestGroupNormSiLU(t *testing.T) {
	const n, c, hw, groups = 3, 8, 37, 4
	r := rand.New(rand.NewPCG(5, 6))
	x := randNormal(r, n*c*hw)
	w, b := randNormal(r, c), randNormal(r, c)
	norm := make([]float32, len(x))
	mean, rstd := make([]float32, n*groups), make([]float32, n*groups)
	GroupNorm(norm, x, w, b, n, c, hw, groups, 1e-5, mean, rstd)
	want := make([]float32, len(x))
	SiLU(want, norm)

	got := make([]float32, len(x))
	GroupNormSiLU(got, x, w, b, n, c, hw, groups, 1e-5)
	inPlace := append([]float32(nil), x...)
	GroupNormSiLU(inPlace, inPlace, w, b, n, c, hw, groups, 1e-5)
	gotNorm, gotAct := make([]float32, len(x)), make([]float32, len(x))
	gotMean, gotRstd := make([]float32, n*groups), make([]float32, n*groups)
	GroupNormSiLUStats(gotNorm, gotAct, x, w, b, n, c, hw, groups, 1e-5, gotMean, gotRstd)
	for i := range x {
		if got[i] != want[i] || inPlace[i] != want[i] || gotAct[i] != want[i] || gotNorm[i] != norm[i] {
			t.Fatalf("element %d: fused %g, in place %g, stats variant %g (norm %g); want %g (norm %g)",
				i, got[i], inPlace[i], gotAct[i], gotNorm[i], want[i], norm[i])
		}
	}
	for i := range mean {
		if gotMean[i] != mean[i] || gotRstd[i] != rstd[i] {
			t.Fatalf("statistics %d: mean %g rstd %g, want %g %g", i, gotMean[i], gotRstd[i], mean[i], rstd[i])
		}
	}
}
