package kernel

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestReducePaths forces each implementation of group norm's reductions
// this machine runs and checks that it gives the Go path's bits for every
// length up to 70 and a long one, at offsets that misalign the data, and
// that the sums are the float64 sums to within their rounding.
func TestReducePaths(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	data := make([]float32, 5000)
	for i := range data {
		data[i] = float32(r.NormFloat64()*3 + 0.5)
	}
	lengths := []int{4099}
	for n := 0; n <= 70; n++ {
		lengths = append(lengths, n)
	}
	for _, p := range reducePaths {
		t.Run(p.name, func(t *testing.T) {
			for _, n := range lengths {
				for _, off := range []int{0, 1, 3} {
					x := data[off : off+n]
					s, want := p.sum(x), sum64Go(x)
					if math.Float64bits(s) != math.Float64bits(want) {
						t.Fatalf("sum of %d: %v, the Go path gives %v", n, s, want)
					}
					var exact float64
					for _, v := range x {
						exact += float64(v)
					}
					if math.Abs(s-exact) > 1e-12*float64(n+1)*3 {
						t.Fatalf("sum of %d: %v, want %v", n, s, exact)
					}
					m := exact / float64(max(n, 1))
					q, wq := p.sqdev(x, m), sqdev64Go(x, m)
					if math.Float64bits(q) != math.Float64bits(wq) {
						t.Fatalf("sqdev of %d: %v, the Go path gives %v", n, q, wq)
					}
					got := make([]float32, n+1)
					got[n] = 42
					ref := make([]float32, n)
					p.affine(got[:n], x, 0.37, -1.25)
					affine64Go(ref, x, 0.37, -1.25)
					for i := range ref {
						if math.Float32bits(got[i]) != math.Float32bits(ref[i]) {
							t.Fatalf("affine of %d: element %d = %v, the Go path gives %v", n, i, got[i], ref[i])
						}
					}
					if got[n] != 42 {
						t.Fatalf("affine of %d wrote past the end", n)
					}
				}
			}
			// In place, and a zero sum of negative zeros keeps its sign as
			// the Go path does.
			x := append([]float32(nil), data[:37]...)
			p.affine(x, x, 2, 1)
			for i := range x {
				if want := float32(float64(float64(data[i])*2) + 1); x[i] != want {
					t.Fatalf("affine in place: element %d = %v, want %v", i, x[i], want)
				}
			}
			z := make([]float32, 19)
			for i := range z {
				z[i] = float32(math.Copysign(0, -1))
			}
			if a, b := p.sum(z), sum64Go(z); math.Float64bits(a) != math.Float64bits(b) {
				t.Fatalf("sum of negative zeros: %v, the Go path gives %v", a, b)
			}
		})
	}
}

// BenchmarkGroupNorm runs group norm, alone and with SiLU, at the shapes
// of the VAE decoder's 32x32 layers and the UNet's 8x8 ones, on each
// reduction path.
func BenchmarkGroupNorm(b *testing.B) {
	shapes := []struct {
		name             string
		n, c, hw, groups int
	}{{"vae32x32", 32, 16, 1024, 8}, {"unet8x8", 32, 64, 64, 32}}
	for _, s := range shapes {
		x := make([]float32, s.n*s.c*s.hw)
		for i := range x {
			x[i] = float32(i%17) - 8
		}
		w, bias := make([]float32, s.c), make([]float32, s.c)
		for i := range w {
			w[i] = 1
		}
		y := make([]float32, len(x))
		for _, p := range reducePaths {
			for _, act := range []bool{false, true} {
				name := s.name + "/" + p.name
				if act {
					name += "+silu"
				}
				b.Run(name, func(b *testing.B) {
					saved := reduceActive
					reduceActive = p
					defer func() { reduceActive = saved }()
					for b.Loop() {
						if act {
							GroupNormSiLU(y, x, w, bias, s.n, s.c, s.hw, s.groups, 1e-6)
						} else {
							GroupNorm(y, x, w, bias, s.n, s.c, s.hw, s.groups, 1e-6, nil, nil)
						}
					}
					b.SetBytes(int64(8 * len(x)))
				})
			}
		}
	}
}
