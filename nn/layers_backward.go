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
	y := tp.keep(g.ForwardWS(tp.workspace(), x))
	tp.record(func() {
		dy := tp.take(y)
		if dy == nil {
			return
		}
		dx := tp.grad(x)
		if dx == nil {
			dx = tp.work(len(x.Data))
		}
		kernel.GroupNormBackward(dx, g.Weight.EnsureGrad(), g.Bias.EnsureGrad(), dy, x.Data, g.Weight.Data, x.N, x.C, x.HW(), g.Groups, g.Eps)
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
func (u *Upsample2D) ForwardTape(tp *Tape, x *Tensor) *Tensor {
	return u.Conv.ForwardTape(tp, tp.UpsampleNearest2x(x))
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
	kernel.Transpose(xt, x, l.In, n)
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

// ForwardTape is Forward recording the backward step on tp. The
// projections are kept for the backward step; the attention probabilities
// are recomputed there, which costs one small GEMM per head instead of
// HW*HW floats per head and image.
func (a *Attention) ForwardTape(tp *Tape, x *Tensor) *Tensor {
	if tp == nil {
		return a.Forward(x)
	}
	hw, c := x.HW(), x.C
	inner := a.Heads * a.HeadDim
	d := a.HeadDim
	h := x
	if a.GroupNorm != nil {
		h = a.GroupNorm.ForwardTape(tp, x)
	}
	per := inner * hw
	q := tp.buffer(x.N * per)
	k := tp.buffer(x.N * per)
	v := tp.buffer(x.N * per)
	o := tp.buffer(x.N * per)
	scores := tp.buffer(hw * hw)
	scale := float32(1 / math.Sqrt(float64(d)))
	proj := tp.tensor(x.N, x.C, x.H, x.W)
	for n := 0; n < x.N; n++ {
		hn := h.Data[n*c*hw : (n+1)*c*hw]
		qn, kn, vn, on := q[n*per:][:per], k[n*per:][:per], v[n*per:][:per], o[n*per:][:per]
		projectCF(qn, a.ToQ, hn, hw)
		projectCF(kn, a.ToK, hn, hw)
		projectCF(vn, a.ToV, hn, hw)
		for head := 0; head < a.Heads; head++ {
			blas.Sgemm(true, false, hw, hw, d, scale, qn[head*d*hw:], hw, kn[head*d*hw:], hw, 0, scores, hw)
			kernel.SoftmaxRows(scores, hw, hw)
			blas.Sgemm(false, true, d, hw, hw, 1, vn[head*d*hw:], hw, scores, hw, 0, on[head*d*hw:], hw)
		}
		projectCF(proj.Data[n*c*hw:(n+1)*c*hw], a.ToOut, on, hw)
	}
	tp.record(func() {
		dp := tp.take(proj)
		if dp == nil {
			return
		}
		dh := tp.grad(h)
		buf := tp.work(4*per + 3*hw*hw + hw*max(c, inner))
		dq, dk, dv, do := buf[:per], buf[per:2*per], buf[2*per:3*per], buf[3*per:4*per]
		buf = buf[4*per:]
		p, dP, dSt := buf[:hw*hw], buf[hw*hw:2*hw*hw], buf[2*hw*hw:3*hw*hw]
		xt := buf[3*hw*hw:]
		for n := 0; n < x.N; n++ {
			hn := h.Data[n*c*hw : (n+1)*c*hw]
			qn, kn, vn, on := q[n*per:][:per], k[n*per:][:per], v[n*per:][:per], o[n*per:][:per]
			dpn := dp[n*c*hw : (n+1)*c*hw]
			clear(do)
			linearBackwardCF(do, a.ToOut, dpn, on, hw, xt)
			for head := 0; head < a.Heads; head++ {
				off := head * d * hw
				qh, kh, vh, doh := qn[off:], kn[off:], vn[off:], do[off:]
				blas.Sgemm(true, false, hw, hw, d, scale, qh, hw, kh, hw, 0, p, hw)
				kernel.SoftmaxRows(p, hw, hw)
				// o[e, i] = sum_j v[e, j] p[i, j]:
				// dp[i, j] = sum_e do[e, i] v[e, j], dv[e, j] = sum_i do[e, i] p[i, j].
				blas.Sgemm(true, false, hw, hw, d, 1, doh, hw, vh, hw, 0, dP, hw)
				blas.Sgemm(false, false, d, hw, hw, 1, doh, hw, p, hw, 0, dv[off:], hw)
				kernel.SoftmaxRowsBackward(dP, p, hw, hw)
				// s[i, j] = scale sum_e q[e, i] k[e, j]:
				// dq[e, i] = scale sum_j k[e, j] ds[i, j], dk[e, j] = scale sum_i q[e, i] ds[i, j].
				kernel.Transpose(dSt, dP, hw, hw)
				blas.Sgemm(false, false, d, hw, hw, scale, kh, hw, dSt, hw, 0, dq[off:], hw)
				blas.Sgemm(false, false, d, hw, hw, scale, qh, hw, dP, hw, 0, dk[off:], hw)
			}
			var dhn []float32
			if dh != nil {
				dhn = dh[n*c*hw : (n+1)*c*hw]
			}
			linearBackwardCF(dhn, a.ToQ, dq, hn, hw, xt)
			linearBackwardCF(dhn, a.ToK, dk, hn, hw, xt)
			linearBackwardCF(dhn, a.ToV, dv, hn, hw, xt)
		}
	})
	return tp.Residual(proj, x, a.RescaleOutputFactor)
}
