package nn

import (
	"fmt"
	"math"
	"testing"
)

// The layer gradient checks compare the tape's gradients of the scalar
// L = sum_i c_i y_i (fixed random c) with central differences on random
// coordinates of every parameter and of the input. L is summed in float64.
// With step h = 1e-2 the truncation error is O(h^2), about 1e-4 of the
// gradient for these smooth layers, and float32 rounding of the outputs adds
// about 1e-7 * sum|c_i y_i| / h, under 1e-3 of the largest gradient for
// these sizes. The tolerance, 1e-2 relative plus 2e-3 of the tensor's
// largest gradient, keeps a margin over both while any wrong term (index,
// sign, missing factor) changes gradients by O(1) and fails. Gradients that
// are mathematically zero (attention key biases: softmax ignores a constant
// added to a row) leave only the rounding noise of L in the difference, so
// an absolute floor of 1e-6 * sum|c_i y_i| / h (about 8 float32 ulps of L)
// is allowed on top.
const (
	fdStep = 1e-2
	fdRel  = 1e-2
	fdAbs  = 2e-3
)

func dot64(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func randomParams(ps *Params, seed uint64) {
	r := NewRNG(seed, 3)
	for _, p := range ps.List() {
		for i := range p.Data {
			if len(p.Shape) == 1 && (p.Name[len(p.Name)-7:] == ".weight") {
				p.Data[i] = 1 + 0.2*r.NormFloat32() // norm scales
			} else {
				p.Data[i] = 0.3 * r.NormFloat32()
			}
		}
	}
}

func randomTensor(n, c, h, w int, seed uint64) *Tensor {
	x := NewTensor(n, c, h, w)
	NewRNG(seed, 5).FillNormal(x.Data)
	return x
}

func fdCompare(t *testing.T, name string, r *RNG, p, grad []float32, loss func() float64, coords int, floor float64) {
	t.Helper()
	if grad == nil {
		t.Errorf("%s: no gradient computed", name)
		return
	}
	maxG := 0.0
	for _, g := range grad {
		maxG = math.Max(maxG, math.Abs(float64(g)))
	}
	if maxG == 0 && floor == 0 {
		t.Errorf("%s: gradient is identically zero", name)
		return
	}
	for k := 0; k < min(coords, len(p)); k++ {
		i := r.Intn(len(p))
		orig := p[i]
		p[i] = orig + fdStep
		hi, up := loss(), p[i]
		p[i] = orig - fdStep
		lo, down := loss(), p[i]
		p[i] = orig
		fd := (hi - lo) / float64(up-down)
		an := float64(grad[i])
		if d := math.Abs(fd - an); d > fdRel*math.Abs(an)+fdAbs*maxG+floor {
			t.Errorf("%s[%d]: backward %.6g, finite difference %.6g (|diff| %.3g, max |grad| %.3g)", name, i, an, fd, d, maxG)
		}
	}
}

// checkLayer runs fwd on a tape, back-propagates c, and checks the
// gradients of every parameter in ps and of each input by finite
// differences. It also checks that the taped forward computes exactly what
// the inference forward (fwd with a nil tape, or infer when given) does.
func checkLayer(t *testing.T, ps *Params, inputs []*Tensor, fwd func(tp *Tape) *Tensor, infer func() *Tensor) {
	t.Helper()
	ps.ZeroGrad()
	tp := NewTape()
	y := fwd(tp)
	if infer == nil {
		infer = func() *Tensor { return fwd(nil) }
	}
	ref := infer()
	for i := range y.Data {
		if y.Data[i] != ref.Data[i] {
			t.Fatalf("taped forward differs from inference at %d: %v vs %v", i, y.Data[i], ref.Data[i])
		}
	}
	c := randomTensor(y.N, y.C, y.H, y.W, 99)
	tp.AddGrad(y, c.Data)
	tp.Backward()
	loss := func() float64 { return dot64(fwd(nil).Data, c.Data) }
	var lscale float64
	for i, v := range y.Data {
		lscale += math.Abs(float64(v) * float64(c.Data[i]))
	}
	floor := 1e-6 * lscale / fdStep
	r := NewRNG(7, 7)
	for _, p := range ps.List() {
		fdCompare(t, p.Name, r, p.Data, p.Grad, loss, 6, floor)
	}
	for i, x := range inputs {
		g := tp.Grad(x)
		fdCompare(t, fmt.Sprintf("input %d", i), r, x.Data, append([]float32(nil), g...), loss, 10, floor)
	}
}

func TestConv2dGradient(t *testing.T) {
	ps := &Params{}
	c := NewConv2d(ps, "conv", 3, 4, 3, 1, 1)
	randomParams(ps, 1)
	x := randomTensor(2, 3, 5, 4, 2)
	checkLayer(t, ps, []*Tensor{x}, func(tp *Tape) *Tensor { return c.ForwardTape(tp, x) }, nil)
}

func TestDownsample2DGradient(t *testing.T) {
	for _, pad := range []int{0, 1} {
		ps := &Params{}
		d := NewDownsample2D(ps, "down", 3, pad)
		randomParams(ps, 3)
		x := randomTensor(2, 3, 6, 6, 4)
		checkLayer(t, ps, []*Tensor{x}, func(tp *Tape) *Tensor { return d.ForwardTape(tp, x) }, func() *Tensor { return d.Forward(x) })
	}
}

func TestUpsample2DGradient(t *testing.T) {
	ps := &Params{}
	u := NewUpsample2D(ps, "up", 3)
	randomParams(ps, 5)
	x := randomTensor(2, 3, 3, 2, 6)
	checkLayer(t, ps, []*Tensor{x}, func(tp *Tape) *Tensor { return u.ForwardTape(tp, x) }, func() *Tensor { return u.Forward(x) })
}

func TestGroupNormGradient(t *testing.T) {
	ps := &Params{}
	g := NewGroupNorm(ps, "norm", 2, 6, 1e-6)
	randomParams(ps, 7)
	x := randomTensor(2, 6, 3, 3, 8)
	checkLayer(t, ps, []*Tensor{x}, func(tp *Tape) *Tensor { return g.ForwardTape(tp, x) }, nil)
}

func TestLinearGradient(t *testing.T) {
	ps := &Params{}
	l := NewLinear(ps, "lin", 5, 3)
	randomParams(ps, 9)
	x := randomTensor(4, 5, 1, 1, 10)
	checkLayer(t, ps, []*Tensor{x}, func(tp *Tape) *Tensor { return l.ForwardTape(tp, x) }, nil)
}

func TestTimestepAndClassEmbeddingGradient(t *testing.T) {
	ps := &Params{}
	te := NewTimestepEmbedding(ps, "time_embedding", 8, 6)
	emb := NewEmbedding(ps, "class_embedding", 4, 6)
	randomParams(ps, 11)
	ts := []float32{3, 500, 999}
	sin := NewTensor(3, 8, 1, 1)
	SinusoidalEmbedding(sin.Data, ts, 8, true, 0)
	ids := []int{2, 0, 2} // a repeated label must receive both rows' gradients
	fwd := func(tp *Tape) *Tensor {
		return tp.Residual(te.ForwardTape(tp, sin), emb.ForwardTape(tp, ids), 1)
	}
	infer := func() *Tensor {
		a := te.Forward(sin.Data, 3)
		b := emb.Forward(ids)
		for i := range a {
			a[i] += b[i]
		}
		return &Tensor{Data: a, N: 3, C: 6, H: 1, W: 1}
	}
	checkLayer(t, ps, []*Tensor{sin}, fwd, infer)
	if g := emb.Weight.Grad; g[6] != 0 || g[18] != 0 {
		t.Errorf("unused class rows 1 and 3 received gradient %v, %v", g[6], g[18])
	}
}

func TestAttentionGradient(t *testing.T) {
	tests := []struct {
		name              string
		channels, headDim int
		groups            int
		rescale           float64
	}{
		{"one head with group norm", 4, 4, 2, 1},
		{"two heads rescaled", 8, 4, 4, 2},
		{"no group norm", 4, 2, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := &Params{}
			a := NewAttention(ps, "attn", tc.channels, tc.headDim, tc.groups, 1e-6, tc.rescale)
			randomParams(ps, 13)
			// A single image takes the path without channel-major copies.
			for _, n := range []int{1, 2} {
				x := randomTensor(n, tc.channels, 3, 3, 14)
				checkLayer(t, ps, []*Tensor{x}, func(tp *Tape) *Tensor { return a.ForwardTape(tp, x) }, func() *Tensor { return a.Forward(x) })
			}
		})
	}
}

func TestResnetBlock2DGradient(t *testing.T) {
	tests := []struct {
		name       string
		in, out    int
		temb       int
		scaleShift bool
		outScale   float64
	}{
		{"default with time embedding and shortcut", 4, 6, 5, false, 1},
		{"scale_shift, output scale 2", 4, 4, 5, true, 2},
		{"no time embedding", 6, 4, 0, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := &Params{}
			r := NewResnetBlock2D(ps, "res", tc.in, tc.out, tc.temb, 2, 1e-5, tc.scaleShift, tc.outScale)
			randomParams(ps, 15)
			x := randomTensor(2, tc.in, 4, 3, 16)
			inputs := []*Tensor{x}
			var temb *Tensor
			if tc.temb > 0 {
				temb = randomTensor(2, tc.temb, 1, 1, 17)
				inputs = append(inputs, temb)
			}
			infer := func() *Tensor {
				var td []float32
				if temb != nil {
					td = temb.Data
				}
				return r.Forward(x, td)
			}
			checkLayer(t, ps, inputs, func(tp *Tape) *Tensor { return r.ForwardTape(tp, x, temb) }, infer)
		})
	}
}

func TestTapeAccumulatesIntoParamGrad(t *testing.T) {
	ps := &Params{}
	l := NewLinear(ps, "lin", 3, 2)
	randomParams(ps, 19)
	x := randomTensor(2, 3, 1, 1, 20)
	run := func() {
		tp := NewTape()
		y := l.ForwardTape(tp, x)
		tp.AddGrad(y, []float32{1, 2, 3, 4})
		tp.Backward()
	}
	run()
	once := append([]float32(nil), l.Weight.Grad...)
	run()
	for i, g := range l.Weight.Grad {
		if g != 2*once[i] {
			t.Fatalf("second backward: grad %v, want %v", g, 2*once[i])
		}
	}
	ps.ZeroGrad()
	for _, g := range l.Weight.Grad {
		if g != 0 {
			t.Fatal("ZeroGrad left a non-zero gradient")
		}
	}
}

func TestConstantInputGetsNoGradient(t *testing.T) {
	ps := &Params{}
	c := NewConv2d(ps, "conv", 2, 2, 3, 1, 1)
	randomParams(ps, 21)
	x := randomTensor(1, 2, 3, 3, 22)
	tp := NewTape()
	tp.Constant(x)
	y := c.ForwardTape(tp, x)
	tp.AddGrad(y, y.Data)
	tp.Backward()
	if tp.Grad(x) != nil {
		t.Error("a constant input received a gradient")
	}
	if c.Weight.Grad == nil {
		t.Error("the weight received no gradient")
	}
}

func TestLosses(t *testing.T) {
	pred := &Tensor{Data: []float32{1, 2, 3, 4}, N: 1, C: 4, H: 1, W: 1}
	target := &Tensor{Data: []float32{0, 2, 5, 3}, N: 1, C: 4, H: 1, W: 1}
	l, g := MSELoss(pred, target)
	if l != (1+0+4+1)/4.0 {
		t.Errorf("MSE = %v, want 1.5", l)
	}
	for i, want := range []float32{0.5, 0, -1, 0.5} {
		if g[i] != want {
			t.Errorf("MSE grad[%d] = %v, want %v", i, g[i], want)
		}
	}
	l, g = L1Loss(pred, target)
	if l != 1 {
		t.Errorf("L1 = %v, want 1", l)
	}
	for i, want := range []float32{0.25, 0, -0.25, 0.25} {
		if g[i] != want {
			t.Errorf("L1 grad[%d] = %v, want %v", i, g[i], want)
		}
	}
}

func TestTensorOpsGradient(t *testing.T) {
	x := randomTensor(2, 4, 2, 3, 30)
	for i := range x.Data {
		// Keep every value away from the clamp bounds, where the
		// derivative jumps and central differences straddle the kink.
		if math.Abs(math.Abs(float64(x.Data[i]))-0.8) < 0.05 {
			x.Data[i] += 0.1
		}
	}
	eps := randomTensor(2, 2, 2, 3, 31)
	d := []float32{0.5, 3}
	fwd := func(tp *Tape) *Tensor {
		mean := tp.SliceChannels(x, 0, 2)
		logvar := tp.Clamp(tp.SliceChannels(x, 2, 4), -0.8, 0.8)
		z := tp.GaussianSample(mean, logvar, eps.Data)
		z = tp.Affine(z, 2, -1)
		return tp.DivImages(tp.ConcatChannels(z, logvar), d)
	}
	checkLayer(t, &Params{}, []*Tensor{x}, fwd, nil)

	// Clamped entries pass no gradient.
	tp := NewTape()
	y := tp.Clamp(x, -0.8, 0.8)
	ones := make([]float32, len(y.Data))
	for i := range ones {
		ones[i] = 1
	}
	tp.AddGrad(y, ones)
	tp.Backward()
	for i, v := range x.Data {
		want := float32(1)
		if v < -0.8 || v > 0.8 {
			want = 0
		}
		if g := tp.Grad(x)[i]; g != want {
			t.Fatalf("clamp gradient at x = %v is %v, want %v", v, g, want)
		}
	}
}

// TestTapeReuseAfterReset runs the same resnet and attention step on a
// fresh tape and then twice on one reused tape: the recycled tensors and
// gradients hold stale data, which must never leak into a result.
func TestTapeReuseAfterReset(t *testing.T) {
	ps := &Params{}
	r := NewResnetBlock2D(ps, "res", 4, 6, 5, 2, 1e-5, false, 1)
	a := NewAttention(ps, "attn", 6, 3, 2, 1e-6, 1)
	randomParams(ps, 21)
	x := randomTensor(3, 4, 4, 5, 22)
	temb := randomTensor(3, 5, 1, 1, 23)
	c := randomTensor(3, 6, 4, 5, 24)
	step := func(tp *Tape) ([]float32, []float32) {
		ps.ZeroGrad()
		y := a.ForwardTape(tp, r.ForwardTape(tp, x, tp.SiLU(temb)))
		tp.AddGrad(y, c.Data)
		tp.Backward()
		var grads []float32
		for _, p := range ps.List() {
			grads = append(grads, p.Grad...)
		}
		return append([]float32(nil), y.Data...), append(grads, tp.Grad(x)...)
	}
	wantY, wantG := step(NewTape())
	tp := NewTape()
	for round := 0; round < 2; round++ {
		tp.Reset()
		y, g := step(tp)
		for i := range wantY {
			if math.Float32bits(y[i]) != math.Float32bits(wantY[i]) {
				t.Fatalf("round %d: output %d is %v, fresh tape %v", round, i, y[i], wantY[i])
			}
		}
		for i := range wantG {
			if math.Float32bits(g[i]) != math.Float32bits(wantG[i]) {
				t.Fatalf("round %d: gradient %d is %v, fresh tape %v", round, i, g[i], wantG[i])
			}
		}
	}
}
