package nn

import (
	"math"

	"github.com/ldm-go/ldm/internal/kernel"
)

// Tape records, during a training forward, how to carry gradients back
// through each operation. Layers' ForwardTape methods and the Tape's own
// operations (SiLU, Add, Concat, ...) run the forward and append a backward
// step; Backward replays the steps in reverse.
//
// A trainer runs, for each step:
//
//	tp.Reset()                        // or tp := nn.NewTape() the first time
//	out := layer.ForwardTape(tp, x)   // or a model's training forward
//	loss, g := nn.MSELoss(out, target)
//	tp.AddGrad(out, g)                // dloss/dout
//	tp.Backward()                     // parameter gradients now in Param.Grad
//
// Every operation on the tape returns a new tensor and never changes its
// inputs, since the backward steps read them. A nil *Tape is valid
// everywhere and records nothing, which is the inference path.
//
// The tape owns the memory of the tensors its operations return and of the
// gradients: Reset hands it all back for the next step, so that a training
// loop reusing one tape stops allocating after its first step. Tensors a
// taped operation returned must not be used after Reset.
type Tape struct {
	steps    []func()
	grads    map[*Tensor][]float32
	constant map[*Tensor]bool
	scratch  []float32
	ws       *Workspace
	// owned are the tensors and buffers taken from ws during the step.
	owned  []*Tensor
	floats [][]float32
	// taken is the gradient the running backward step consumed; it goes
	// back to ws when the step ends unless the step passed it on.
	taken []float32
}

// NewTape returns an empty tape.
func NewTape() *Tape {
	return &Tape{grads: map[*Tensor][]float32{}, constant: map[*Tensor]bool{}, ws: NewWorkspace()}
}

func (tp *Tape) record(step func()) {
	if tp != nil {
		tp.steps = append(tp.steps, step)
	}
}

// workspace is where taped forwards take their outputs: the tape's, or nil
// (fresh allocations) without a tape.
func (tp *Tape) workspace() *Workspace {
	if tp == nil {
		return nil
	}
	return tp.ws
}

// tensor returns an output tensor whose every element the caller writes.
func (tp *Tape) tensor(n, c, h, w int) *Tensor {
	if tp == nil {
		return NewTensor(n, c, h, w)
	}
	return tp.keep(tp.ws.Tensor(n, c, h, w))
}

// keep registers t, which came from tp.workspace(), for release at Reset.
func (tp *Tape) keep(t *Tensor) *Tensor {
	if tp != nil {
		tp.owned = append(tp.owned, t)
	}
	return t
}

// buffer returns n floats of stale data that live until Reset.
func (tp *Tape) buffer(n int) []float32 {
	if tp == nil {
		return make([]float32, n)
	}
	b := tp.ws.Floats(n)
	tp.floats = append(tp.floats, b)
	return b
}

// keepFloats registers b, which came from tp.workspace(), for release at
// Reset.
func (tp *Tape) keepFloats(b []float32) []float32 {
	if tp != nil {
		tp.floats = append(tp.floats, b)
	}
	return b
}

// Constant marks t as needing no gradient (data, targets): backward steps
// skip computing it.
func (tp *Tape) Constant(t *Tensor) {
	if tp != nil {
		tp.constant[t] = true
	}
}

// grad returns t's gradient buffer, zeros on first use, or nil when t is
// constant.
func (tp *Tape) grad(t *Tensor) []float32 {
	if tp.constant[t] {
		return nil
	}
	g := tp.grads[t]
	if g == nil {
		g = tp.ws.Floats(len(t.Data))
		clear(g)
		tp.grads[t] = g
	}
	return g
}

// addGrad adds g to t's gradient. When t has none yet and g is the
// gradient the running step took, g itself becomes t's gradient instead of
// being added to zeros.
func (tp *Tape) addGrad(t *Tensor, g []float32) {
	if tp.constant[t] {
		return
	}
	if d := tp.grads[t]; d != nil {
		kernel.AddInto(d, g)
		return
	}
	if len(g) > 0 && len(tp.taken) > 0 && &g[0] == &tp.taken[0] && len(g) == len(tp.taken) {
		tp.grads[t] = g
		tp.taken = nil
		return
	}
	d := tp.ws.Floats(len(t.Data))
	copy(d, g)
	tp.grads[t] = d
}

// take returns the gradient of an operation's output and forgets it: the
// step that produced a tensor runs after every step that read it, so the
// gradient is complete and is not needed again.
func (tp *Tape) take(t *Tensor) []float32 {
	g := tp.grads[t]
	delete(tp.grads, t)
	tp.taken = g
	return g
}

// work returns a scratch buffer of n floats shared by the backward steps,
// which run one at a time.
func (tp *Tape) work(n int) []float32 {
	if cap(tp.scratch) < n {
		tp.scratch = make([]float32, n)
	}
	return tp.scratch[:n]
}

// AddGrad adds g to the gradient of t: the seed of Backward, dloss/dt for
// each tensor the loss was computed from.
func (tp *Tape) AddGrad(t *Tensor, g []float32) {
	if len(g) != len(t.Data) {
		panic("nn: Tape.AddGrad: gradient and tensor sizes differ")
	}
	d := tp.grad(t)
	if d == nil {
		return
	}
	kernel.AddInto(d, g)
}

// Grad is the gradient accumulated for t, or nil. After Backward it holds
// the gradients of the tensors no recorded operation produced, such as the
// model's input.
func (tp *Tape) Grad(t *Tensor) []float32 { return tp.grads[t] }

// Backward runs the recorded steps in reverse, adding the parameter
// gradients into Param.Grad, then empties the tape. Each step's output
// gradient is recycled as soon as the step is done with it.
func (tp *Tape) Backward() {
	for i := len(tp.steps) - 1; i >= 0; i-- {
		tp.taken = nil
		tp.steps[i]()
		tp.steps[i] = nil
		if tp.taken != nil {
			tp.ws.Release(tp.taken)
			tp.taken = nil
		}
	}
	tp.steps = tp.steps[:0]
}

// Reset forgets the recorded steps and all gradients, and takes back the
// memory of every tensor the tape's operations returned, for the next step.
func (tp *Tape) Reset() {
	clear(tp.steps)
	tp.steps = tp.steps[:0]
	for _, g := range tp.grads {
		tp.ws.Release(g)
	}
	clear(tp.grads)
	clear(tp.constant)
	for _, t := range tp.owned {
		tp.ws.ReleaseTensor(t)
	}
	clear(tp.owned)
	tp.owned = tp.owned[:0]
	for _, b := range tp.floats {
		tp.ws.Release(b)
	}
	clear(tp.floats)
	tp.floats = tp.floats[:0]
	tp.taken = nil
}

// SiLU returns x * sigmoid(x).
func (tp *Tape) SiLU(x *Tensor) *Tensor {
	y := tp.tensor(x.N, x.C, x.H, x.W)
	kernel.SiLU(y.Data, x.Data)
	tp.record(func() {
		dy := tp.take(y)
		if dy == nil || tp.constant[x] {
			return
		}
		if dx := tp.grads[x]; dx != nil {
			kernel.SiLUBackwardFromOutput(dx, dy, x.Data, y.Data)
			return
		}
		// x has no gradient yet (the usual case: it feeds only this SiLU):
		// turn dy into it in place.
		kernel.SiLUBackwardInPlace(dy, x.Data, y.Data)
		tp.addGrad(x, dy)
	})
	return y
}

// UpsampleNearest2x doubles the height and width by repeating pixels.
func (tp *Tape) UpsampleNearest2x(x *Tensor) *Tensor {
	y := tp.keep(UpsampleNearest2xWS(tp.workspace(), x))
	tp.record(func() {
		dy := tp.take(y)
		if dx := tp.grad(x); dy != nil && dx != nil {
			kernel.UpsampleNearest2xBackward(dx, dy, x.N*x.C, x.H, x.W)
		}
	})
	return y
}

// Residual returns (a + b) / div, the skip connection of the resnet and
// attention blocks (div is their output scale factor).
func (tp *Tape) Residual(a, b *Tensor, div float32) *Tensor {
	if len(a.Data) != len(b.Data) {
		panic("nn: Tape.Residual: sizes differ")
	}
	y := tp.tensor(a.N, a.C, a.H, a.W)
	if div == 1 {
		kernel.Add(y.Data, a.Data, b.Data)
	} else {
		kernel.AddScale(y.Data, a.Data, b.Data, div)
	}
	tp.record(func() {
		dy := tp.take(y)
		if dy == nil {
			return
		}
		if div != 1 {
			// Both inputs receive dy / div: scale the taken buffer once.
			scaled := tp.ws.Floats(len(dy))
			clear(scaled)
			kernel.AddDividedInto(scaled, dy, div)
			tp.ws.Release(dy)
			dy = scaled
			tp.taken = scaled
		}
		// Whichever input has no gradient yet may take dy itself.
		tp.addGrad(b, dy)
		tp.addGrad(a, dy)
	})
	return y
}

// AddChannelBias returns h [N, C, H, W] plus t [N, C] broadcast over each
// plane: the time embedding added in a "default" resnet block.
func (tp *Tape) AddChannelBias(h, t *Tensor) *Tensor {
	hw := h.HW()
	y := tp.tensor(h.N, h.C, h.H, h.W)
	copy(y.Data, h.Data)
	kernel.AddPlanes(y.Data, t.Data, h.N*h.C, hw)
	tp.record(func() {
		dy := tp.take(y)
		if dy == nil {
			return
		}
		if dt := tp.grad(t); dt != nil {
			for p := 0; p < h.N*h.C; p++ {
				var s float32
				for _, v := range dy[p*hw : (p+1)*hw] {
					s += v
				}
				dt[p] += s
			}
		}
		tp.addGrad(h, dy)
	})
	return y
}

// ScaleShift returns h * (1 + scale) + shift per channel, where t [N, 2C]
// holds scale then shift for each image: resnet_time_scale_shift
// "scale_shift".
func (tp *Tape) ScaleShift(h, t *Tensor) *Tensor {
	hw, c := h.HW(), h.C
	y := tp.tensor(h.N, h.C, h.H, h.W)
	copy(y.Data, h.Data)
	kernel.ScaleShiftPlanes(y.Data, t.Data, h.N, c, hw)
	tp.record(func() {
		dy := tp.take(y)
		if dy == nil {
			return
		}
		dh, dt := tp.grad(h), tp.grad(t)
		for n := 0; n < h.N; n++ {
			for ch := 0; ch < c; ch++ {
				scale := 1 + t.Data[n*2*c+ch]
				p := (n*c + ch) * hw
				g := dy[p : p+hw]
				if dh != nil {
					for i, v := range g {
						dh[p+i] += v * scale
					}
				}
				if dt != nil {
					var ss, sh float32
					for i, v := range g {
						ss += v * h.Data[p+i]
						sh += v
					}
					dt[n*2*c+ch] += ss
					dt[n*2*c+c+ch] += sh
				}
			}
		}
	})
	return y
}

// ConcatChannels stacks a and b along the channel axis.
func (tp *Tape) ConcatChannels(a, b *Tensor) *Tensor {
	y := tp.tensor(a.N, a.C+b.C, a.H, a.W)
	pa, pb := a.C*a.HW(), b.C*b.HW()
	for i := 0; i < a.N; i++ {
		copy(y.Data[i*(pa+pb):], a.Data[i*pa:(i+1)*pa])
		copy(y.Data[i*(pa+pb)+pa:], b.Data[i*pb:(i+1)*pb])
	}
	tp.record(func() {
		dy := tp.take(y)
		if dy == nil {
			return
		}
		da, db := tp.grad(a), tp.grad(b)
		for i := 0; i < a.N; i++ {
			if da != nil {
				addTo(da[i*pa:(i+1)*pa], dy[i*(pa+pb):])
			}
			if db != nil {
				addTo(db[i*pb:(i+1)*pb], dy[i*(pa+pb)+pa:])
			}
		}
	})
	return y
}

// Affine returns a*x + b elementwise.
func (tp *Tape) Affine(x *Tensor, a, b float32) *Tensor {
	y := tp.tensor(x.N, x.C, x.H, x.W)
	kernel.Affine(y.Data, x.Data, a, b)
	tp.record(func() {
		dy := tp.take(y)
		if dx := tp.grad(x); dy != nil && dx != nil {
			kernel.AddScaledInto(dx, dy, a)
		}
	})
	return y
}

// addTo adds src to dst elementwise over len(dst).
func addTo(dst, src []float32) {
	src = src[:len(dst)]
	for i, v := range src {
		dst[i] += v
	}
}

// MSELoss is mean((pred - target)^2) over all elements, summed in float64,
// and its gradient with respect to pred, 2 (pred - target) / n.
func MSELoss(pred, target *Tensor) (float64, []float32) {
	if len(pred.Data) != len(target.Data) {
		panic("nn: MSELoss: sizes differ")
	}
	n := len(pred.Data)
	g := make([]float32, n)
	scale := 2 / float32(n)
	var s float64
	for i, p := range pred.Data {
		d := p - target.Data[i]
		s += float64(d) * float64(d)
		g[i] = scale * d
	}
	return s / float64(n), g
}

// L1Loss is mean(|pred - target|) and its gradient sign(pred - target) / n
// (0 where they are equal, as torch).
func L1Loss(pred, target *Tensor) (float64, []float32) {
	if len(pred.Data) != len(target.Data) {
		panic("nn: L1Loss: sizes differ")
	}
	n := len(pred.Data)
	g := make([]float32, n)
	inv := 1 / float32(n)
	var s float64
	for i, p := range pred.Data {
		d := p - target.Data[i]
		s += math.Abs(float64(d))
		switch {
		case d > 0:
			g[i] = inv
		case d < 0:
			g[i] = -inv
		}
	}
	return s / float64(n), g
}

// DivImages returns x with image n divided by d[n] (the Fourier-embedding
// UNet's division of its output by the timestep).
func (tp *Tape) DivImages(x *Tensor, d []float32) *Tensor {
	per := len(x.Data) / x.N
	y := tp.tensor(x.N, x.C, x.H, x.W)
	for n := 0; n < x.N; n++ {
		for i, v := range x.Data[n*per : (n+1)*per] {
			y.Data[n*per+i] = v / d[n]
		}
	}
	tp.record(func() {
		dy := tp.take(y)
		dx := tp.grad(x)
		if dy == nil || dx == nil {
			return
		}
		for n := 0; n < x.N; n++ {
			for i, v := range dy[n*per : (n+1)*per] {
				dx[n*per+i] += v / d[n]
			}
		}
	})
	return y
}

// SliceChannels returns channels [lo, hi) of x.
func (tp *Tape) SliceChannels(x *Tensor, lo, hi int) *Tensor {
	hw := x.HW()
	y := tp.tensor(x.N, hi-lo, x.H, x.W)
	per := (hi - lo) * hw
	for n := 0; n < x.N; n++ {
		copy(y.Data[n*per:(n+1)*per], x.Data[(n*x.C+lo)*hw:])
	}
	tp.record(func() {
		dy := tp.take(y)
		dx := tp.grad(x)
		if dy == nil || dx == nil {
			return
		}
		for n := 0; n < x.N; n++ {
			addTo(dx[(n*x.C+lo)*hw:][:per], dy[n*per:])
		}
	})
	return y
}

// Clamp returns x limited to [lo, hi]. As torch.clamp, the gradient passes
// where lo <= x <= hi and is zero elsewhere.
func (tp *Tape) Clamp(x *Tensor, lo, hi float32) *Tensor {
	y := tp.tensor(x.N, x.C, x.H, x.W)
	for i, v := range x.Data {
		y.Data[i] = min(max(v, lo), hi)
	}
	tp.record(func() {
		dy := tp.take(y)
		dx := tp.grad(x)
		if dy == nil || dx == nil {
			return
		}
		for i, v := range x.Data {
			if v >= lo && v <= hi {
				dx[i] += dy[i]
			}
		}
	})
	return y
}

// GaussianSample returns mean + exp(logvar/2) * eps, the reparameterised
// sample of a diagonal Gaussian; eps is fixed noise of the same size.
func (tp *Tape) GaussianSample(mean, logvar *Tensor, eps []float32) *Tensor {
	y := tp.tensor(mean.N, mean.C, mean.H, mean.W)
	for i, lv := range logvar.Data {
		std := float32(math.Exp(float64(0.5 * lv)))
		y.Data[i] = mean.Data[i] + std*eps[i]
	}
	tp.record(func() {
		dy := tp.take(y)
		if dy == nil {
			return
		}
		if dm := tp.grad(mean); dm != nil {
			addTo(dm, dy)
		}
		if dl := tp.grad(logvar); dl != nil {
			for i, lv := range logvar.Data {
				std := math.Exp(0.5 * float64(lv))
				dl[i] += float32(float64(dy[i]) * float64(eps[i]) * 0.5 * std)
			}
		}
	})
	return y
}

// ReuseTape returns tp emptied by Reset, or a new tape when tp is nil: a
// trainer keeps one tape, whose memory serves every micro-batch in turn.
func ReuseTape(tp *Tape) *Tape {
	if tp == nil {
		return NewTape()
	}
	tp.Reset()
	return tp
}
