package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// The finite-difference checks use the scalar loss L = sum_i c_i y_i with
// fixed random c, so dL/dy = c, and compare the backward kernel's gradient
// with the central difference (L(p+h) - L(p-h)) / 2h on a few coordinates of
// each input. L is summed in float64 from the float32 outputs. With h = 1e-2
// the truncation error is O(h^2) ~ 1e-4 relative for the smooth kernels
// (exactly zero for the linear ones), and float32 rounding of the outputs
// contributes about 1e-7 * sum|c_i y_i| / h ~ 1e-4 of the gradient scale for
// these sizes. A tolerance of 1e-2 relative plus 1e-3 of the tensor's
// largest gradient therefore leaves a margin of ten while catching any wrong
// term (a wrong index, sign or factor changes gradients by O(1)).
const (
	fdStep = 1e-2
	fdRel  = 1e-2
	fdAbs  = 1e-3
)

func randSlice(r *rand.Rand, n int, scale float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = scale * float32(r.NormFloat64())
	}
	return s
}

func dot64(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// fdCheck perturbs coords random coordinates of p and compares the central
// difference of loss with grad.
func fdCheck(t *testing.T, name string, r *rand.Rand, p, grad []float32, loss func() float64, coords int) {
	t.Helper()
	maxG := 0.0
	for _, g := range grad {
		maxG = math.Max(maxG, math.Abs(float64(g)))
	}
	if maxG == 0 {
		t.Fatalf("%s: gradient is identically zero", name)
	}
	for k := 0; k < coords; k++ {
		i := r.IntN(len(p))
		orig := p[i]
		p[i] = orig + fdStep
		hi, up := loss(), p[i]
		p[i] = orig - fdStep
		lo, down := loss(), p[i]
		p[i] = orig
		fd := (hi - lo) / float64(up-down)
		an := float64(grad[i])
		if d := math.Abs(fd - an); d > fdRel*math.Abs(an)+fdAbs*maxG {
			t.Errorf("%s[%d]: backward %.6g, finite difference %.6g (|diff| %.3g)", name, i, an, fd, d)
		}
	}
}

func TestConv2dBackwardFiniteDifference(t *testing.T) {
	shapes := []ConvShape{
		{N: 2, C: 3, H: 5, W: 6, OutC: 4, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		// diffusers' Downsample2D with padding 0: pad right and bottom only.
		{N: 2, C: 3, H: 6, W: 6, OutC: 2, KH: 3, KW: 3, Stride: 2, PadB: 1, PadR: 1},
		{N: 2, C: 3, H: 7, W: 5, OutC: 3, KH: 3, KW: 3, Stride: 2, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 1, C: 4, H: 3, W: 3, OutC: 5, KH: 1, KW: 1, Stride: 1},
	}
	for si, s := range shapes {
		r := rand.New(rand.NewPCG(uint64(si), 7))
		x := randSlice(r, s.N*s.C*s.H*s.W, 1)
		w := randSlice(r, s.OutC*s.ColRows(), 0.3)
		b := randSlice(r, s.OutC, 0.3)
		ny := s.N * s.OutC * s.OutH() * s.OutW()
		c := randSlice(r, ny, 1)
		y := make([]float32, ny)
		work := make([]float32, ConvWork(s))
		loss := func() float64 {
			Conv2d(y, x, w, nil, b, s, work)
			return dot64(y, c)
		}
		dx := make([]float32, len(x))
		dw := make([]float32, len(w))
		db := make([]float32, len(b))
		Conv2dBackward(dx, dw, db, c, x, w, s, make([]float32, ConvBackwardWork(s)))
		fdCheck(t, "conv dx", r, x, dx, loss, 12)
		fdCheck(t, "conv dw", r, w, dw, loss, 12)
		fdCheck(t, "conv db", r, b, db, loss, 4)
	}
}

func TestConv2dBackwardAccumulates(t *testing.T) {
	s := ConvShape{N: 2, C: 2, H: 4, W: 4, OutC: 3, KH: 3, KW: 3, Stride: 2, PadB: 1, PadR: 1}
	r := rand.New(rand.NewPCG(1, 2))
	x := randSlice(r, 2*2*16, 1)
	w := randSlice(r, 3*18, 1)
	dy := randSlice(r, 2*3*s.OutH()*s.OutW(), 1)
	work := make([]float32, ConvBackwardWork(s))
	dx1, dw1, db1 := make([]float32, len(x)), make([]float32, len(w)), make([]float32, 3)
	Conv2dBackward(dx1, dw1, db1, dy, x, w, s, work)
	dx2, dw2, db2 := make([]float32, len(x)), make([]float32, len(w)), make([]float32, 3)
	Conv2dBackward(dx2, dw2, db2, dy, x, w, s, work)
	Conv2dBackward(dx2, dw2, db2, dy, x, w, s, work)
	for _, pair := range [][2][]float32{{dx1, dx2}, {dw1, dw2}, {db1, db2}} {
		for i := range pair[0] {
			// dx sums several taps per element, so the second pass rounds
			// differently from an exact doubling; allow a few ulps.
			if d := math.Abs(float64(pair[1][i] - 2*pair[0][i])); d > 1e-6*math.Abs(float64(pair[0][i]))+1e-7 {
				t.Fatalf("second backward did not add to the first: %v vs 2*%v", pair[1][i], pair[0][i])
			}
		}
	}
}

func TestGroupNormBackwardFiniteDifference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	n, c, hw, groups := 2, 6, 5, 3
	x := randSlice(r, n*c*hw, 1)
	for i := range x {
		x[i] += 0.5
	}
	w := randSlice(r, c, 1)
	b := randSlice(r, c, 1)
	dy := randSlice(r, n*c*hw, 1)
	y := make([]float32, len(x))
	loss := func() float64 {
		GroupNorm(y, x, w, b, n, c, hw, groups, 1e-5, nil, nil)
		return dot64(y, dy)
	}
	dx, dw, db := make([]float32, len(x)), make([]float32, c), make([]float32, c)
	GroupNormBackward(dx, dw, db, dy, x, w, n, c, hw, groups, 1e-5)
	fdCheck(t, "groupnorm dx", r, x, dx, loss, 20)
	fdCheck(t, "groupnorm dw", r, w, dw, loss, 6)
	fdCheck(t, "groupnorm db", r, b, db, loss, 6)
	// Normalisation removes the mean: the input gradient of each group sums to zero.
	for i := 0; i < n*groups; i++ {
		var s float64
		for _, v := range dx[i*2*hw : (i+1)*2*hw] {
			s += float64(v)
		}
		if math.Abs(s) > 1e-5 {
			t.Errorf("group %d: input gradient sums to %g, want 0", i, s)
		}
	}
}

func TestSiLUBackwardFiniteDifference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	x := randSlice(r, 50, 3)
	dy := randSlice(r, 50, 1)
	y := make([]float32, 50)
	loss := func() float64 { SiLU(y, x); return dot64(y, dy) }
	dx := make([]float32, 50)
	SiLUBackward(dx, dy, x)
	fdCheck(t, "silu dx", r, x, dx, loss, 20)
}

func TestSoftmaxRowsBackwardFiniteDifference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	rows, n := 3, 7
	s := randSlice(r, rows*n, 2)
	dp := randSlice(r, rows*n, 1)
	p := make([]float32, rows*n)
	loss := func() float64 { copy(p, s); SoftmaxRows(p, rows, n); return dot64(p, dp) }
	loss()
	ds := append([]float32(nil), dp...)
	SoftmaxRowsBackward(ds, p, rows, n)
	fdCheck(t, "softmax ds", r, s, ds, loss, 15)
}

func TestUpsampleNearest2xBackwardFiniteDifference(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	planes, h, w := 3, 2, 3
	x := randSlice(r, planes*h*w, 1)
	dy := randSlice(r, planes*4*h*w, 1)
	y := make([]float32, len(dy))
	loss := func() float64 { UpsampleNearest2x(y, x, planes, h, w); return dot64(y, dy) }
	dx := make([]float32, len(x))
	UpsampleNearest2xBackward(dx, dy, planes, h, w)
	fdCheck(t, "upsample dx", r, x, dx, loss, 10)
}

// convBackwardOracle computes the three gradients of a convolution from the
// definition, summed in float64.
func convBackwardOracle(dy, x, w []float32, s ConvShape) (dx, dw, db []float64) {
	oh, ow := s.OutH(), s.OutW()
	dx = make([]float64, s.N*s.C*s.H*s.W)
	dw = make([]float64, s.OutC*s.ColRows())
	db = make([]float64, s.OutC)
	for n := 0; n < s.N; n++ {
		for o := 0; o < s.OutC; o++ {
			for y := 0; y < oh; y++ {
				for xo := 0; xo < ow; xo++ {
					g := float64(dy[((n*s.OutC+o)*oh+y)*ow+xo])
					db[o] += g
					for c := 0; c < s.C; c++ {
						for i := 0; i < s.KH; i++ {
							for j := 0; j < s.KW; j++ {
								iy, ix := y*s.Stride-s.PadT+i, xo*s.Stride-s.PadL+j
								if iy < 0 || iy >= s.H || ix < 0 || ix >= s.W {
									continue
								}
								xi := ((n*s.C+c)*s.H+iy)*s.W + ix
								wi := ((o*s.C+c)*s.KH+i)*s.KW + j
								dw[wi] += g * float64(x[xi])
								dx[xi] += g * float64(w[wi])
							}
						}
					}
				}
			}
		}
	}
	return dx, dw, db
}

// TestConv2dBackwardChunksMatchDefinition runs shapes large enough to be
// split into several chunks of images, and checks the gradients against
// the definition and their bits against a single-threaded run.
func TestConv2dBackwardChunksMatchDefinition(t *testing.T) {
	shapes := []ConvShape{
		{N: 9, C: 64, H: 16, W: 15, OutC: 6, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 7, C: 64, H: 40, W: 39, OutC: 5, KH: 3, KW: 3, Stride: 2, PadB: 1, PadR: 1},
	}
	for si, s := range shapes {
		if convBackChunk(s) >= s.N {
			t.Fatalf("shape %d: one chunk of %d images; the test needs several", si, convBackChunk(s))
		}
		r := rand.New(rand.NewPCG(uint64(si), 11))
		x := randSlice(r, s.N*s.C*s.H*s.W, 1)
		w := randSlice(r, s.OutC*s.ColRows(), 0.1)
		dy := randSlice(r, s.N*s.OutC*s.OutH()*s.OutW(), 1)
		run := func(procs int) (dx, dw, db []float32) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			dx, dw, db = make([]float32, len(x)), make([]float32, len(w)), make([]float32, s.OutC)
			Conv2dBackward(dx, dw, db, dy, x, w, s, make([]float32, ConvBackwardWork(s)))
			return dx, dw, db
		}
		dx, dw, db := run(3)
		wx, ww, wb := convBackwardOracle(dy, x, w, s)
		for _, c := range []struct {
			name string
			got  []float32
			want []float64
		}{{"dx", dx, wx}, {"dw", dw, ww}, {"db", db, wb}} {
			scale := 0.0
			for _, v := range c.want {
				scale = math.Max(scale, math.Abs(v))
			}
			for i, v := range c.got {
				if d := math.Abs(float64(v) - c.want[i]); d > 1e-5*scale {
					t.Fatalf("shape %d %s[%d] = %v, definition %v", si, c.name, i, v, c.want[i])
				}
			}
		}
		dx1, dw1, db1 := run(1)
		for _, c := range [][2][]float32{{dx, dx1}, {dw, dw1}, {db, db1}} {
			for i := range c[0] {
				if math.Float32bits(c[0][i]) != math.Float32bits(c[1][i]) {
					t.Fatalf("shape %d: element %d differs between 3 threads and 1: %v vs %v", si, i, c[0][i], c[1][i])
				}
			}
		}
	}
}

// TestGroupNormBackwardThreadCount checks that the split over cores does
// not change a bit of any gradient.
func TestGroupNormBackwardThreadCount(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 13))
	n, c, hw, groups := 6, 32, 64, 8
	x := randSlice(r, n*c*hw, 1)
	w := randSlice(r, c, 1)
	dy := randSlice(r, n*c*hw, 1)
	run := func(procs int) []float32 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		out := make([]float32, n*c*hw+2*c)
		GroupNormBackward(out[:n*c*hw], out[n*c*hw:][:c], out[n*c*hw+c:], dy, x, w, n, c, hw, groups, 1e-6)
		SiLUBackward(out[:n*c*hw], dy, x)
		return out
	}
	a, b := run(1), run(3)
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("element %d differs between 1 thread and 3: %v vs %v", i, a[i], b[i])
		}
	}
}

// TestSiLUBackwardFromOutput compares the gradient from the forward's output
// with the one from the exponential over the range activations take.
func TestSiLUBackwardFromOutput(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 15))
	n := 20000
	x := randSlice(r, n, 8)
	x[0], x[1], x[2], x[3] = 0, 1e-30, -100, 100
	dy := randSlice(r, n, 1)
	y := make([]float32, n)
	SiLU(y, x)
	want, got := make([]float32, n), make([]float32, n)
	SiLUBackward(want, dy, x)
	SiLUBackwardFromOutput(got, dy, x, y)
	for i := range got {
		if d := math.Abs(float64(got[i] - want[i])); d > 1e-6*(1+math.Abs(float64(dy[i]))) {
			t.Fatalf("x=%v: from the output %v, from exp %v", x[i], got[i], want[i])
		}
	}
}

// TestIm2colFastPaths checks the fast column-matrix paths against the
// general one, value for value.
func TestIm2colFastPaths(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 17))
	for _, s := range []ConvShape{
		{N: 3, C: 5, H: 2, W: 2, OutC: 1, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 2, C: 4, H: 5, W: 7, OutC: 1, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 2, C: 3, H: 33, W: 32, OutC: 1, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 3, C: 6, H: 4, W: 5, OutC: 1, KH: 1, KW: 1, Stride: 1},
	} {
		x := randSlice(r, s.N*s.C*s.H*s.W, 1)
		want := make([]float32, s.ColRows()*s.ColCols())
		got := make([]float32, len(want))
		for i := range got {
			got[i] = float32(math.NaN())
		}
		im2colGeneric(want, x, s)
		Im2col(got, x, s)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%+v: element %d is %v, Im2col gives %v", s, i, got[i], want[i])
			}
		}
	}
}

// TestSiLUBackwardInPlace checks that the in-place form gives the bits of
// accumulating into zeros.
func TestSiLUBackwardInPlace(t *testing.T) {
	r := rand.New(rand.NewPCG(18, 19))
	n := 10000
	x := randSlice(r, n, 6)
	x[0] = 0
	dy := randSlice(r, n, 1)
	y := make([]float32, n)
	SiLU(y, x)
	want := make([]float32, n)
	SiLUBackwardFromOutput(want, dy, x, y)
	SiLUBackwardInPlace(dy, x, y)
	for i := range want {
		if math.Float32bits(dy[i]) != math.Float32bits(want[i]) {
			t.Fatalf("element %d: in place %v, accumulated %v", i, dy[i], want[i])
		}
	}
}

// BenchmarkConv2dBackward is the backward of the training presets' largest
// convolutions: the MNIST VAE decoder's 3x3 64->32 at 32x32 and the latent
// UNet's 3x3 256->128 at 4x4, both at batch 64.
func BenchmarkConv2dBackward(b *testing.B) {
	for _, s := range []ConvShape{
		{N: 64, C: 64, H: 32, W: 32, OutC: 32, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 64, C: 256, H: 4, W: 4, OutC: 128, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
	} {
		b.Run(fmt.Sprintf("%dx%dx%d-to-%d", s.C, s.H, s.W, s.OutC), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			x := randSlice(r, s.N*s.C*s.H*s.W, 1)
			w := randSlice(r, s.OutC*s.ColRows(), 0.1)
			dy := randSlice(r, s.N*s.OutC*s.OutH()*s.OutW(), 1)
			dx, dw, db := make([]float32, len(x)), make([]float32, len(w)), make([]float32, s.OutC)
			work := make([]float32, ConvBackwardWork(s))
			for b.Loop() {
				Conv2dBackward(dx, dw, db, dy, x, w, s, work)
			}
			flops := 4 * float64(s.OutC*s.ColRows()) * float64(s.ColCols())
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// TestGroupNormBackwardPaths checks that the vector group norm backward
// loops give the Go loops' bits, with and without the forward's
// statistics, for planes whose length leaves every tail.
func TestGroupNormBackwardPaths(t *testing.T) {
	if !useGNBackVector {
		t.Skip("no vector group norm backward on this CPU")
	}
	r := rand.New(rand.NewPCG(14, 15))
	for _, hw := range []int{1, 2, 3, 4, 5, 7, 9, 16, 17, 64} {
		n, c, groups := 2, 8, 4
		x := randSlice(r, n*c*hw, 1)
		w := randSlice(r, c, 1)
		dy := randSlice(r, n*c*hw, 1)
		run := func(vector bool) []float32 {
			defer func(saved bool) { useGNBackVector = saved }(useGNBackVector)
			useGNBackVector = vector
			out := randSlice(rand.New(rand.NewPCG(1, 1)), n*c*hw+2*c, 1)
			GroupNormBackward(out[:n*c*hw], out[n*c*hw:][:c], out[n*c*hw+c:], dy, x, w, n, c, hw, groups, 1e-6)
			return out
		}
		a, b := run(true), run(false)
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Fatalf("hw %d: element %d is %v, the Go loops give %v", hw, i, a[i], b[i])
			}
		}
	}
}
