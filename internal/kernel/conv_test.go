package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/ldm-go/ldm/internal/blas"
)

// naiveConv is the textbook definition, the oracle for Conv2d, summed in
// float64 (naiveConv64) and rounded once.
func naiveConv(x, w, b []float32, s ConvShape) []float32 {
	e := naiveConv64(x, w, b, s)
	y := make([]float32, len(e))
	for i, v := range e {
		y[i] = float32(v)
	}
	return y
}

func randNormal(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func TestConv2dMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	shapes := []ConvShape{
		{N: 1, C: 3, H: 8, W: 8, OutC: 5, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 3, C: 4, H: 7, W: 9, OutC: 6, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 2, C: 4, H: 8, W: 6, OutC: 4, KH: 3, KW: 3, Stride: 2, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 2, C: 4, H: 8, W: 6, OutC: 4, KH: 3, KW: 3, Stride: 2, PadB: 1, PadR: 1}, // diffusers' padding 0 downsample
		{N: 2, C: 6, H: 5, W: 5, OutC: 3, KH: 1, KW: 1, Stride: 1},
		{N: 1, C: 6, H: 5, W: 5, OutC: 3, KH: 1, KW: 1, Stride: 1},
		{N: 2, C: 2, H: 6, W: 6, OutC: 3, KH: 5, KW: 5, Stride: 1, PadT: 2, PadL: 2, PadB: 2, PadR: 2},
		{N: 1, C: 2, H: 9, W: 7, OutC: 3, KH: 3, KW: 3, Stride: 3},
		// Batched maps of 4 and 16 pixels, as a latent UNet's deepest
		// levels: their results move to NCHW by fixed-size copies.
		{N: 5, C: 8, H: 2, W: 2, OutC: 9, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 3, C: 8, H: 4, W: 4, OutC: 7, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
	}
	for _, s := range shapes {
		x := randNormal(r, s.N*s.C*s.H*s.W)
		w := randNormal(r, s.OutC*s.C*s.KH*s.KW)
		b := randNormal(r, s.OutC)
		want := naiveConv(x, w, b, s)
		got := make([]float32, len(want))
		for i := range got {
			got[i] = float32(math.NaN()) // must be overwritten
		}
		Conv2d(got, x, w, nil, b, s, make([]float32, ConvWork(s)))
		for i := range want {
			if d := math.Abs(float64(got[i] - want[i])); d > 1e-5*float64(s.ColRows()) || math.IsNaN(float64(got[i])) {
				t.Fatalf("%+v: element %d: got %v, want %v", s, i, got[i], want[i])
			}
		}
		// With the weights pre-packed: the same bits.
		packed := make([]float32, len(got))
		Conv2d(packed, x, w, blas.NewPackedA(s.OutC, s.ColRows(), w, s.ColRows()), b, s, make([]float32, ConvWork(s)))
		for i := range got {
			if math.Float32bits(packed[i]) != math.Float32bits(got[i]) {
				t.Fatalf("%+v: element %d: %v with packed weights, %v without", s, i, packed[i], got[i])
			}
		}
	}
}

// Col2im is the adjoint of Im2col: <Im2col(x), c> = <x, Col2im(c)>.
func TestCol2imIsAdjoint(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	s := ConvShape{N: 2, C: 3, H: 7, W: 6, OutC: 1, KH: 3, KW: 3, Stride: 2, PadT: 0, PadL: 0, PadB: 1, PadR: 1}
	x := randNormal(r, s.N*s.C*s.H*s.W)
	c := randNormal(r, s.ColRows()*s.ColCols())
	cols := make([]float32, len(c))
	Im2col(cols, x, s)
	dx := make([]float32, len(x))
	Col2im(dx, c, s)
	var a, b float64
	for i := range c {
		a += float64(cols[i]) * float64(c[i])
	}
	for i := range x {
		b += float64(x[i]) * float64(dx[i])
	}
	if math.Abs(a-b) > 1e-9*math.Max(1, math.Abs(a))*float64(len(c)) {
		t.Errorf("<Im2col(x), c> = %v, <x, Col2im(c)> = %v", a, b)
	}
}

func TestGroupNormStatistics(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	n, c, hw, groups := 2, 6, 10, 3
	x := randNormal(r, n*c*hw)
	for i := range x {
		x[i] = 3 + 2*x[i]
	}
	w := make([]float32, c)
	b := make([]float32, c)
	for i := range w {
		w[i] = 1
	}
	y := make([]float32, len(x))
	GroupNorm(y, x, w, b, n, c, hw, groups, 1e-5, nil, nil)
	size := c / groups * hw
	for g := 0; g < n*groups; g++ {
		var m, v float64
		for _, e := range y[g*size : (g+1)*size] {
			m += float64(e)
		}
		m /= float64(size)
		for _, e := range y[g*size : (g+1)*size] {
			v += (float64(e) - m) * (float64(e) - m)
		}
		v /= float64(size)
		if math.Abs(m) > 1e-6 || math.Abs(v-1) > 1e-4 {
			t.Errorf("group %d: mean %v, variance %v after normalising", g, m, v)
		}
	}
}

func TestSoftmaxAndUpsample(t *testing.T) {
	x := []float32{1, 2, 3, 1000, 1000, -1000}
	SoftmaxRows(x, 2, 3)
	want := []float32{0.09003057, 0.24472848, 0.66524094, 0.5, 0.5, 0}
	for i := range x {
		if math.Abs(float64(x[i]-want[i])) > 1e-7 {
			t.Errorf("softmax[%d] = %v, want %v", i, x[i], want[i])
		}
	}
	up := make([]float32, 16)
	UpsampleNearest2x(up, []float32{1, 2, 3, 4}, 1, 2, 2)
	wantUp := []float32{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}
	for i := range up {
		if up[i] != wantUp[i] {
			t.Fatalf("upsample = %v, want %v", up, wantUp)
		}
	}
}

// BenchmarkConv2d runs the 3x3 convolutions of the golden UNet (block
// channels 32 and 64 on 8x8 and 4x4 latents) at batch 1 and 32.
func BenchmarkConv2d(b *testing.B) {
	cases := []struct {
		name string
		s    ConvShape
	}{
		{"unet32x8x8_b1", ConvShape{N: 1, C: 32, H: 8, W: 8, OutC: 32, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
		{"unet32x8x8_b32", ConvShape{N: 32, C: 32, H: 8, W: 8, OutC: 32, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
		{"unet64x4x4_b32", ConvShape{N: 32, C: 64, H: 4, W: 4, OutC: 64, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
		{"unet96to32x8x8_b32", ConvShape{N: 32, C: 96, H: 8, W: 8, OutC: 32, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
		{"cifar128x32x32_b8", ConvShape{N: 8, C: 128, H: 32, W: 32, OutC: 128, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1}},
	}
	r := rand.New(rand.NewPCG(7, 8))
	for _, c := range cases {
		s := c.s
		conv, flops := benchConv(r, s)
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				conv()
			}
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// benchConv returns a call of Conv2d on random operands of shape s, with
// unfrozen weights, and the multiply-adds it does, counted as two flops.
func benchConv(r *rand.Rand, s ConvShape) (func(), float64) {
	x := randNormal(r, s.N*s.C*s.H*s.W)
	w := randNormal(r, s.OutC*s.ColRows())
	bias := randNormal(r, s.OutC)
	y := make([]float32, s.N*s.OutC*s.OutH()*s.OutW())
	work := make([]float32, ConvWork(s))
	flops := 2 * float64(s.OutC) * float64(s.ColRows()) * float64(s.ColCols())
	return func() { Conv2d(y, x, w, nil, bias, s, work) }, flops
}

// BenchmarkConvShareOfPeak runs the 3x3 convolutions of the default MNIST
// latent UNet and of the ddpm-cifar10-32 UNet at batch 32 the way their
// training runs them (an implicit GEMM on weights that are not frozen: the
// column matrix is packed straight from the image, or read where it lies),
// on one core and on two, and reports the share of the FMA peak measured
// just before on as many cores. These are the im2col shapes of
// internal/blas's BenchmarkSgemm (M x K x N = out channels x 9 in channels
// x batch pixels) as the models compute them; the blas benchmark multiplies
// explicit column matrices, which at CIFAR's first level (151 MB) the model
// never builds. At the MNIST model's smallest maps the two-core figure is
// of one convolution split between the cores, which the model does not
// do: it gives each core half the batch, so there the one-core figure is
// the one it runs.
func BenchmarkConvShareOfPeak(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 9))
	for _, c := range []struct {
		model string
		s     ConvShape
	}{
		{"mnist", ConvShape{N: 32, C: 64, H: 8, W: 8, OutC: 64}},
		{"mnist", ConvShape{N: 32, C: 128, H: 4, W: 4, OutC: 128}},
		{"mnist", ConvShape{N: 32, C: 128, H: 2, W: 2, OutC: 128}},
		{"mnist", ConvShape{N: 32, C: 256, H: 2, W: 2, OutC: 128}},
		{"cifar", ConvShape{N: 32, C: 128, H: 32, W: 32, OutC: 128}},
		{"cifar", ConvShape{N: 32, C: 256, H: 16, W: 16, OutC: 256}},
		{"cifar", ConvShape{N: 32, C: 256, H: 8, W: 8, OutC: 256}},
		{"cifar", ConvShape{N: 32, C: 256, H: 4, W: 4, OutC: 256}},
	} {
		s := c.s
		s.KH, s.KW, s.Stride = 3, 3, 1
		s.PadT, s.PadL, s.PadB, s.PadR = 1, 1, 1, 1
		conv, flops := benchConv(r, s)
		for _, procs := range []int{1, 2} {
			name := fmt.Sprintf("%s/%dx%dx%d/procs=%d", c.model, s.OutC, s.ColRows(), s.ColCols(), procs)
			b.Run(name, func(b *testing.B) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				peak := blas.PeakGFLOPS(procs)
				conv()
				for b.Loop() {
					conv()
				}
				gflops := flops * float64(b.N) / b.Elapsed().Seconds() / 1e9
				b.ReportMetric(gflops, "GFLOP/s")
				if peak > 0 {
					b.ReportMetric(100*gflops/peak, "%peak")
				}
			})
		}
	}
}

// BenchmarkIm2col3x3 builds the column matrices of the training presets'
// 3x3 "same" convolutions.
func BenchmarkIm2col3x3(b *testing.B) {
	for _, s := range []ConvShape{
		{N: 64, C: 128, H: 8, W: 8},
		{N: 64, C: 256, H: 4, W: 4},
		{N: 64, C: 256, H: 2, W: 2},
		{N: 16, C: 64, H: 32, W: 32},
	} {
		s.OutC, s.KH, s.KW, s.Stride = s.C, 3, 3, 1
		s.PadT, s.PadL, s.PadB, s.PadR = 1, 1, 1, 1
		x := randNormal(rand.New(rand.NewPCG(1, 1)), s.N*s.C*s.H*s.W)
		cols := make([]float32, s.ColRows()*s.ColCols())
		b.Run(fmt.Sprintf("%dx%dx%d_b%d", s.C, s.H, s.W, s.N), func(b *testing.B) {
			for b.Loop() {
				Im2col(cols, x, s)
			}
			b.SetBytes(int64(4 * len(cols)))
		})
	}
}

// TestConv2dAddMatchesConvThenAdd checks the fused residual addition
// against the convolution followed by Add, bit for bit, on the paths that
// fuse it (NCHW from the GEMM) and those that do not.
func TestConv2dAddMatchesConvThenAdd(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	for _, s := range []ConvShape{
		{N: 3, C: 8, H: 8, W: 8, OutC: 16, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 1, C: 8, H: 4, W: 4, OutC: 16, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 5, C: 8, H: 4, W: 4, OutC: 16, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 2, C: 6, H: 8, W: 8, OutC: 3, KH: 1, KW: 1, Stride: 1},
		{N: 2, C: 4, H: 8, W: 6, OutC: 4, KH: 3, KW: 3, Stride: 2, PadB: 1, PadR: 1},
	} {
		x := randNormal(r, s.N*s.C*s.H*s.W)
		w := randNormal(r, s.OutC*s.ColRows())
		b := randNormal(r, s.OutC)
		n := s.N * s.OutC * s.OutH() * s.OutW()
		add := randNormal(r, n)
		want := make([]float32, n)
		Conv2d(want, x, w, nil, b, s, make([]float32, ConvWork(s)))
		Add(want, want, add)
		got := make([]float32, n)
		Conv2dAdd(got, x, w, nil, b, add, s, make([]float32, ConvWork(s)))
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%+v: element %d is %v, the convolution then Add gives %v", s, i, got[i], want[i])
			}
		}
	}
}
