package kernel

import (
	"math"
	"math/rand/v2"
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
			Conv2d(y, x, w, b, s, work)
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
