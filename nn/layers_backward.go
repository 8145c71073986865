package nn

import (
	"math"

	"github.com/ldm-go/ldm/internal/blas"
	"github.com/ldm-go/ldm/internal/kernel"
)

// EnsureGrad returns p.Grad, allocating it as zeros on first use.
func (p *Param) EnsureGrad() []float32 {
	if p.Grad == nil {
		p.Grad = make([]float32, len(p.Data))
	}
	return p.Grad
}

// ZeroGrad sets every allocated gradient to zero, as after an optimiser
// step.
func (ps *Params) ZeroGrad() {
	for _, p := range ps.list {
		clear(p.Grad)
	}
}

// ForwardTape is Forward recording the backward step on tp.
func (c *Conv2d) ForwardTape(tp *Tape, x *Tensor) *Tensor {
	y := tp.keep(c.ForwardWS(tp.workspace(), x))
	s := c.shape(x)
	tp.record(func() {
		dy := tp.take(y)
		if dy == nil {
			return
		}
		var db []float32
		if c.Bias != nil {
			db = c.Bias.EnsureGrad()
		}
		kernel.Conv2dBackward(tp.grad(x), c.Weight.EnsureGrad(), db, dy, x.Data, c.Weight.Data, s, tp.work(kernel.ConvBackwardWork(s)))
	})
	return y
}

// ForwardTape is Forward recording the backward step on tp.
func (g *GroupNorm) ForwardTape(tp *Tape, x *Tensor) *Tensor {
	if tp == nil {
		return g.Forward(x)
	}
	// The forward's kernel, keeping the statistics for the backward step.
	y := tp.tensor(x.N, x.C, x.H, x.W)
	stats := tp.buffer(2 * x.N * g.Groups)
	mean, rstd := stats[:x.N*g.Groups], stats[x.N*g.Groups:]
	kernel.GroupNorm(y.Data, x.Data, g.Weight.Data, g.Bias.Data, x.N, x.C, x.HW(), g.Groups, g.Eps, mean, rstd)
	tp.record(func() {
		dy := tp.take(y)
		if dy == nil {
			return
		}
		dx := tp.grad(x)
		if dx == nil {
			dx = tp.work(len(x.Data))
		}
		kernel.GroupNormBackwardStats(dx, g.Weight.EnsureGrad(), g.Bias.EnsureGrad(), dy, x.Data, g.Weight.Data, mean, rstd, x.N, x.C, x.HW(), g.Groups, g.Eps)
	})
	return y
}

// ForwardTape maps x, read as x.N rows of In features, to [x.N, Out, 1, 1].
func (l *Linear) ForwardTape(tp *Tape, x *Tensor) *Tensor {
	n := x.N
	if len(x.Data) != n*l.In {
		panic("nn: Linear: input features do not match")
	}
	y := &Tensor{Data: tp.keepFloats(l.ForwardWS(tp.workspace(), x.Data, n)), N: n, C: l.Out, H: 1, W: 1}
	tp.record(func() {
		dy := tp.take(y)
		if dy == nil {
			return
		}
		// dW [Out, In] += dy^T [Out, n] x [n, In]; dx [n, In] += dy W.
		blas.Sgemm(true, false, l.Out, l.In, n, 1, dy, l.Out, x.Data, l.In, 1, l.Weight.EnsureGrad(), l.In)
		db := l.Bias.EnsureGrad()
		for i := 0; i < n; i++ {
			addTo(db, dy[i*l.Out:])
		}
		if dx := tp.grad(x); dx != nil {
			blas.Sgemm(false, false, n, l.In, l.Out, 1, dy, l.Out, l.Weight.Data, l.In, 1, dx, l.In)
		}
	})
	return y
}

// ForwardTape returns the rows for ids as [len(ids), Dim, 1, 1].
func (e *Embedding) ForwardTape(tp *Tape, ids []int) *Tensor {
	y := &Tensor{Data: tp.keepFloats(e.ForwardWS(tp.workspace(), ids)), N: len(ids), C: e.Dim, H: 1, W: 1}
	ids = append([]int(nil), ids...)
	tp.record(func() {
		dy := tp.take(y)
		if dy == nil {
			return
		}
		dw := e.Weight.EnsureGrad()
		for i, id := range ids {
			addTo(dw[id*e.Dim:(id+1)*e.Dim], dy[i*e.Dim:])
		}
	})
	return y
}

// ForwardTape maps [n, in] to [n, dim].
func (t *TimestepEmbedding) ForwardTape(tp *Tape, x *Tensor) *Tensor {
	return t.Linear2.ForwardTape(tp, tp.SiLU(t.Linear1.ForwardTape(tp, x)))
}

// ForwardTape is Forward recording the backward step on tp.
func (d *Downsample2D) ForwardTape(tp *Tape, x *Tensor) *Tensor { return d.Conv.ForwardTape(tp, x) }

// ForwardTape is Forward recording the backward step on tp.
//
// The forward is ForwardWS's, so training sees the bits inference gives;
// the backward step is that of upsampling and then convolving, with the
// upsampled input rebuilt for the weight gradient.
func (u *Upsample2D) ForwardTape(tp *Tape, x *Tensor) *Tensor {
	c := u.Conv
	s := c.shape(x)
	if tp == nil || x.C != c.In || !kernel.IsUpsampleConv(s) {
		return c.ForwardTape(tp, tp.UpsampleNearest2x(x))
	}
	y := tp.keep(u.ForwardWS(tp.workspace(), x))
	tp.record(func() {
		dy := tp.take(y)
		if dy == nil {
			return
		}
		us := s
		us.H, us.W = 2*x.H, 2*x.W
		up := tp.ws.Floats(len(x.Data) * 4)
		kernel.UpsampleNearest2x(up, x.Data, x.N*x.C, x.H, x.W)
		dx := tp.grad(x)
		var dup []float32
		if dx != nil {
			dup = tp.ws.Floats(len(up))
			clear(dup)
		}
		var db []float32
		if c.Bias != nil {
			db = c.Bias.EnsureGrad()
		}
		kernel.Conv2dBackward(dup, c.Weight.EnsureGrad(), db, dy, up, c.Weight.Data, us, tp.work(kernel.ConvBackwardWork(us)))
		if dx != nil {
			kernel.UpsampleNearest2xBackward(dx, dup, x.N*x.C, x.H, x.W)
			tp.ws.Release(dup)
		}
		tp.ws.Release(up)
	})
	return y
}

// ForwardTape applies the block; tembAct is SiLU(temb) as [N, tembDim] or
// nil. It computes what Forward computes, operation by operation.
func (r *ResnetBlock2D) ForwardTape(tp *Tape, x, tembAct *Tensor) *Tensor {
	h := r.Conv1.ForwardTape(tp, tp.SiLU(r.Norm1.ForwardTape(tp, x)))
	var t *Tensor
	if r.TimeEmbProj != nil && tembAct != nil {
		t = r.TimeEmbProj.ForwardTape(tp, tembAct)
	}
	if !r.ScaleShift {
		if t != nil {
			h = tp.AddChannelBias(h, t)
		}
		h = r.Norm2.ForwardTape(tp, h)
	} else {
		h = r.Norm2.ForwardTape(tp, h)
		if t != nil {
			h = tp.ScaleShift(h, t)
		}
	}
	h = r.Conv2.ForwardTape(tp, tp.SiLU(h))
	sc := x
	if r.ConvShortcut != nil {
		sc = r.ConvShortcut.ForwardTape(tp, x)
	}
	return tp.Residual(sc, h, r.OutputScaleFactor)
}

// linearBackwardCF is the backward of projectCF: given dy [out, n] for
// y = W x + b with x [in, n], it adds W^T dy to dx (when not nil) and the
// weight and bias gradients. xt is scratch of n*in floats.
func linearBackwardCF(dx []float32, l *Linear, dy, x []float32, n int, xt []float32) {
	// dW [out, in] += dy [out, n] x^T [n, in], with x^T formed explicitly
	// so that the GEMM reads both operands by rows.
	kernel.TransposeParallel(xt, x, l.In, n)
	blas.Sgemm(false, false, l.Out, l.In, n, 1, dy, n, xt, l.In, 1, l.Weight.EnsureGrad(), l.In)
	db := l.Bias.EnsureGrad()
	for o := range db {
		var s float32
		for _, v := range dy[o*n : (o+1)*n] {
			s += v
		}
		db[o] += s
	}
	if dx != nil {
		blas.Sgemm(true, false, l.In, n, l.Out, 1, l.Weight.Data, l.In, dy, n, 1, dx, n)
	}
}

// ForwardTape is Forward recording the backward step on tp. As Forward,
// it lays the batch out channel-major [C, N*HW] so that each projection is
// one GEMM over every image, forward and backward. The projections are kept
// for the backward step; the attention probabilities are recomputed there,
// which costs one small GEMM per head and image instead of HW*HW floats
// each.
func (a *Attention) ForwardTape(tp *Tape, x *Tensor) *Tensor {
	if tp == nil {
		return a.Forward(x)
	}
	hw, c := x.HW(), x.C
	inner := a.Heads * a.HeadDim
	d := a.HeadDim
	ncols := x.N * hw
	h := x
	if a.GroupNorm != nil {
		h = a.GroupNorm.ForwardTape(tp, x)
	}
	hc := h.Data
	if x.N > 1 {
		hc = tp.buffer(c * ncols)
		kernel.ToChannelMajor(hc, h.Data, x.N, c, hw)
	}
	q := tp.buffer(inner * ncols)
	k := tp.buffer(inner * ncols)
	v := tp.buffer(inner * ncols)
	o := tp.buffer(inner * ncols)
	projectCF(q, a.ToQ, hc, ncols)
	projectCF(k, a.ToK, hc, ncols)
	projectCF(v, a.ToV, hc, ncols)
	scale := float32(1 / math.Sqrt(float64(d)))
	work := tp.ws.Floats(kernel.AttentionWork(x.N, a.Heads, hw, d))
	kernel.AttentionCore(o, q, k, v, x.N, a.Heads, d, hw, scale, work)
	tp.ws.Release(work)
	proj := tp.tensor(x.N, x.C, x.H, x.W)
	if x.N == 1 {
		projectCF(proj.Data, a.ToOut, o, ncols)
	} else {
		yc := tp.ws.Floats(c * ncols)
		blas.Sgemm(false, false, c, ncols, inner, 1, a.ToOut.Weight.Data, inner, o, ncols, 0, yc, ncols)
		kernel.FromChannelMajor(proj.Data, yc, a.ToOut.Bias.Data, x.N, c, hw)
		tp.ws.Release(yc)
	}
	tp.record(func() {
		dp := tp.take(proj)
		if dp == nil {
			return
		}
		dh := tp.grad(h)
		per := inner * ncols
		buf := tp.work(4*per + 2*c*ncols + ncols*max(c, inner) + kernel.AttentionBackwardWork(x.N, a.Heads, hw, d))
		dq, dk, dv, do := buf[:per], buf[per:2*per], buf[2*per:3*per], buf[3*per:4*per]
		buf = buf[4*per:]
		dpc, dhc := buf[:c*ncols], buf[c*ncols:2*c*ncols]
		buf = buf[2*c*ncols:]
		xt := buf[:ncols*max(c, inner)]
		abw := buf[ncols*max(c, inner):]
		if x.N == 1 {
			dpc = dp
		} else {
			kernel.ToChannelMajor(dpc, dp, x.N, c, hw)
		}
		clear(do)
		linearBackwardCF(do, a.ToOut, dpc, o, ncols, xt)
		kernel.AttentionBackward(dq, dk, dv, do, q, k, v, x.N, a.Heads, d, hw, scale, abw)
		var dhcOut []float32
		if dh != nil {
			dhcOut = dhc
			if x.N == 1 {
				dhcOut = dh
			} else {
				clear(dhc)
			}
		}
		linearBackwardCF(dhcOut, a.ToQ, dq, hc, ncols, xt)
		linearBackwardCF(dhcOut, a.ToK, dk, hc, ncols, xt)
		linearBackwardCF(dhcOut, a.ToV, dv, hc, ncols, xt)
		if dh != nil && x.N > 1 {
			kernel.AddFromChannelMajor(dh, dhc, x.N, c, hw)
		}
	})
	return tp.Residual(proj, x, a.RescaleOutputFactor)
}
