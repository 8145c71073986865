package nn

import (
	"math"

	"github.com/ldm-go/ldm/internal/blas"
	"github.com/ldm-go/ldm/internal/kernel"
)

// Attention is diffusers' Attention as the UNet and VAE blocks use it:
// self-attention over the H*W positions of a feature map, with an optional
// group norm first, a residual connection, and division by
// RescaleOutputFactor.
type Attention struct {
	GroupNorm            *GroupNorm // nil when the block has none
	ToQ, ToK, ToV, ToOut *Linear
	Heads, HeadDim       int
	RescaleOutputFactor  float32
}

// NewAttention registers prefix.{group_norm,to_q,to_k,to_v,to_out.0}. groups
// 0 means no group norm. heads = channels / headDim, as diffusers computes it.
func NewAttention(ps *Params, prefix string, channels, headDim, groups int, eps, rescale float64) *Attention {
	heads := channels / headDim
	inner := heads * headDim
	a := &Attention{Heads: heads, HeadDim: headDim, RescaleOutputFactor: float32(rescale)}
	if groups > 0 {
		a.GroupNorm = NewGroupNorm(ps, prefix+".group_norm", groups, channels, eps)
	}
	a.ToQ = NewLinear(ps, prefix+".to_q", channels, inner)
	a.ToK = NewLinear(ps, prefix+".to_k", channels, inner)
	a.ToV = NewLinear(ps, prefix+".to_v", channels, inner)
	a.ToOut = NewLinear(ps, prefix+".to_out.0", inner, channels)
	return a
}

// projectCF computes dst [out, n] = W [out, in] * x [in, n] + b, the linear
// layer applied to channel-first columns, so no transposes are needed.
func projectCF(dst []float32, l *Linear, x []float32, n int) {
	l.project(dst, x, n)
	for o, b := range l.Bias.Data {
		row := dst[o*n : (o+1)*n]
		for j := range row {
			row[j] += b
		}
	}
}

// project computes dst [out, n] = W [out, in] * x [in, n].
func (l *Linear) project(dst, x []float32, n int) {
	if pa := l.packed(); pa != nil {
		blas.SgemmA(pa, false, n, 1, x, n, 0, dst, n)
		return
	}
	blas.Sgemm(false, false, l.Out, n, l.In, 1, l.Weight.Data, l.In, x, n, 0, dst, n)
}

// Forward returns attention(x) + x, divided by RescaleOutputFactor.
func (a *Attention) Forward(x *Tensor) *Tensor { return a.ForwardWS(nil, x) }

// ForwardWS is Forward with buffers from ws. The projections of all images
// run as one GEMM each, on the batch laid out channel-major [C, N*HW].
func (a *Attention) ForwardWS(ws *Workspace, x *Tensor) *Tensor {
	hw := x.HW()
	c := x.C
	inner := a.Heads * a.HeadDim
	ncols := x.N * hw
	h := x
	if a.GroupNorm != nil {
		h = a.GroupNorm.ForwardWS(ws, x)
	}
	xc := h.Data
	if x.N > 1 {
		xc = ws.Floats(c * ncols)
		kernel.Im2col(xc, h.Data, kernel.ConvShape{N: x.N, C: c, H: x.H, W: x.W, OutC: c, KH: 1, KW: 1, Stride: 1})
	}
	q := ws.Floats(inner * ncols)
	k := ws.Floats(inner * ncols)
	v := ws.Floats(inner * ncols)
	projectCF(q, a.ToQ, xc, ncols)
	projectCF(k, a.ToK, xc, ncols)
	projectCF(v, a.ToV, xc, ncols)
	if x.N > 1 {
		ws.Release(xc)
	}
	if h != x {
		ws.ReleaseTensor(h)
	}
	o := ws.Floats(inner * ncols)
	work := ws.Floats(kernel.AttentionWork(x.N, a.Heads, hw, a.HeadDim))
	scale := float32(1 / math.Sqrt(float64(a.HeadDim)))
	kernel.AttentionCore(o, q, k, v, x.N, a.Heads, a.HeadDim, hw, scale, work)
	ws.Release(work)
	ws.Release(q)
	ws.Release(k)
	ws.Release(v)
	y := ws.Tensor(x.N, x.C, x.H, x.W)
	if x.N == 1 {
		projectCF(y.Data, a.ToOut, o, ncols)
	} else {
		yc := ws.Floats(c * ncols)
		a.ToOut.project(yc, o, ncols)
		kernel.FromChannelMajor(y.Data, yc, a.ToOut.Bias.Data, x.N, c, hw)
		ws.Release(yc)
	}
	ws.Release(o)
	if a.RescaleOutputFactor == 1 {
		kernel.Add(y.Data, y.Data, x.Data)
	} else {
		kernel.AddScale(y.Data, y.Data, x.Data, a.RescaleOutputFactor)
	}
	return y
}

// ResnetBlock2D is diffusers' ResnetBlock2D: norm1, SiLU, conv1, the time
// embedding added ("default") or applied as scale and shift after norm2
// ("scale_shift"), norm2, SiLU, conv2, plus the (1x1-projected) input,
// divided by OutputScaleFactor.
type ResnetBlock2D struct {
	Norm1        *GroupNorm
	Conv1        *Conv2d
	TimeEmbProj  *Linear // nil without a time embedding
	Norm2        *GroupNorm
	Conv2        *Conv2d
	ConvShortcut *Conv2d // nil when in == out
	// ScaleShift selects resnet_time_scale_shift "scale_shift".
	ScaleShift        bool
	OutputScaleFactor float32
}

// NewResnetBlock2D registers the block's parameters under prefix. tembDim 0
// means no time embedding (the VAE's blocks).
func NewResnetBlock2D(ps *Params, prefix string, in, out, tembDim, groups int, eps float64, scaleShift bool, outputScale float64) *ResnetBlock2D {
	r := &ResnetBlock2D{ScaleShift: scaleShift, OutputScaleFactor: float32(outputScale)}
	r.Norm1 = NewGroupNorm(ps, prefix+".norm1", groups, in, eps)
	r.Conv1 = NewConv2d(ps, prefix+".conv1", in, out, 3, 1, 1)
	if tembDim > 0 {
		projOut := out
		if scaleShift {
			projOut = 2 * out
		}
		r.TimeEmbProj = NewLinear(ps, prefix+".time_emb_proj", tembDim, projOut)
	}
	r.Norm2 = NewGroupNorm(ps, prefix+".norm2", groups, out, eps)
	r.Conv2 = NewConv2d(ps, prefix+".conv2", out, out, 3, 1, 1)
	if in != out {
		r.ConvShortcut = NewConv2d(ps, prefix+".conv_shortcut", in, out, 1, 1, 0)
	}
	return r
}

// Forward applies the block. tembAct is SiLU(temb) [N, tembDim] or nil.
func (r *ResnetBlock2D) Forward(x *Tensor, tembAct []float32) *Tensor {
	return r.ForwardWS(nil, x, tembAct)
}

// ForwardWS is Forward with buffers from ws.
func (r *ResnetBlock2D) ForwardWS(ws *Workspace, x *Tensor, tembAct []float32) *Tensor {
	h0 := r.Norm1.ForwardSiLUWS(ws, x)
	h := r.Conv1.ForwardWS(ws, h0)
	ws.ReleaseTensor(h0)
	hw := h.HW()
	var t []float32
	if r.TimeEmbProj != nil && tembAct != nil {
		t = r.TimeEmbProj.ForwardWS(ws, tembAct, x.N)
	}
	if !r.ScaleShift {
		if t != nil {
			kernel.AddPlanes(h.Data, t, h.N*h.C, hw)
		}
		r.Norm2.ApplySiLU(h, h)
	} else {
		r.Norm2.Apply(h, h)
		if t != nil {
			kernel.ScaleShiftPlanes(h.Data, t, h.N, h.C, hw)
		}
		kernel.SiLU(h.Data, h.Data)
	}
	ws.Release(t)
	sc := x
	if r.ConvShortcut != nil {
		sc = r.ConvShortcut.ForwardWS(ws, x)
	}
	var out *Tensor
	if r.OutputScaleFactor == 1 {
		// conv2(h) + shortcut, the addition in the convolution's epilogue.
		out = r.Conv2.ForwardAddWS(ws, h, sc)
	} else {
		out = r.Conv2.ForwardWS(ws, h)
		kernel.AddScale(out.Data, sc.Data, out.Data, r.OutputScaleFactor)
	}
	ws.ReleaseTensor(h)
	if sc != x {
		ws.ReleaseTensor(sc)
	}
	return out
}

// Downsample2D is diffusers' Downsample2D with a convolution: a 3x3
// stride-2 conv with the given padding, where padding 0 means diffusers'
// asymmetric zero pad of one pixel on the right and bottom first.
type Downsample2D struct {
	Conv *Conv2d
}

// NewDownsample2D registers prefix.conv.
func NewDownsample2D(ps *Params, prefix string, channels, padding int) *Downsample2D {
	c := NewConv2d(ps, prefix+".conv", channels, channels, 3, 2, padding)
	if padding == 0 {
		c.PadB, c.PadR = 1, 1
	}
	return &Downsample2D{Conv: c}
}

// Forward halves the resolution.
func (d *Downsample2D) Forward(x *Tensor) *Tensor { return d.Conv.Forward(x) }

// ForwardWS is Forward with buffers from ws.
func (d *Downsample2D) ForwardWS(ws *Workspace, x *Tensor) *Tensor { return d.Conv.ForwardWS(ws, x) }

// Upsample2D is diffusers' Upsample2D with a convolution: nearest 2x
// upsampling then a 3x3 conv.
type Upsample2D struct {
	Conv *Conv2d
}

// NewUpsample2D registers prefix.conv.
func NewUpsample2D(ps *Params, prefix string, channels int) *Upsample2D {
	return &Upsample2D{Conv: NewConv2d(ps, prefix+".conv", channels, channels, 3, 1, 1)}
}

// Forward doubles the resolution.
func (u *Upsample2D) Forward(x *Tensor) *Tensor { return u.ForwardWS(nil, x) }

// ForwardWS is Forward with buffers from ws. A 3x3 convolution runs as
// four 2x2 convolutions of x, one per output phase (kernel.UpsampleConv3x3),
// without building the upsampled tensor.
func (u *Upsample2D) ForwardWS(ws *Workspace, x *Tensor) *Tensor {
	c := u.Conv
	s := c.shape(x)
	if x.C != c.In || !kernel.IsUpsampleConv(s) {
		up := UpsampleNearest2xWS(ws, x)
		y := c.ForwardWS(ws, up)
		ws.ReleaseTensor(up)
		return y
	}
	y := ws.Tensor(x.N, c.Out, 2*x.H, 2*x.W)
	work := ws.Floats(kernel.UpsampleConvWork(s))
	var bias []float32
	if c.Bias != nil {
		bias = c.Bias.Data
	}
	var phases *kernel.UpsamplePhases
	if v := c.Weight.Derived("upsample", func() any { return kernel.NewUpsamplePhases(c.Weight.Data, c.Out, c.In) }); v != nil {
		phases = v.(*kernel.UpsamplePhases)
	}
	kernel.UpsampleConv3x3(y.Data, x.Data, c.Weight.Data, phases, bias, s, work)
	ws.Release(work)
	return y
}
