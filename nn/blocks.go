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
	blas.Sgemm(false, false, l.Out, n, l.In, 1, l.Weight.Data, l.In, x, n, 0, dst, n)
	for o, b := range l.Bias.Data {
		row := dst[o*n : (o+1)*n]
		for j := range row {
			row[j] += b
		}
	}
}

// Forward returns attention(x) + x, divided by RescaleOutputFactor.
func (a *Attention) Forward(x *Tensor) *Tensor {
	hw := x.HW()
	c := x.C
	inner := a.Heads * a.HeadDim
	h := x
	if a.GroupNorm != nil {
		h = a.GroupNorm.Forward(x)
	}
	y := NewTensor(x.N, x.C, x.H, x.W)
	q := make([]float32, inner*hw)
	k := make([]float32, inner*hw)
	v := make([]float32, inner*hw)
	o := make([]float32, inner*hw)
	scores := make([]float32, hw*hw)
	scale := float32(1 / math.Sqrt(float64(a.HeadDim)))
	d := a.HeadDim
	for n := 0; n < x.N; n++ {
		hn := h.Data[n*c*hw : (n+1)*c*hw]
		// q, k, v are [inner, hw]: head i owns rows [i*d, (i+1)*d).
		projectCF(q, a.ToQ, hn, hw)
		projectCF(k, a.ToK, hn, hw)
		projectCF(v, a.ToV, hn, hw)
		for head := 0; head < a.Heads; head++ {
			qh := q[head*d*hw:]
			kh := k[head*d*hw:]
			vh := v[head*d*hw:]
			// scores[i, j] = scale * sum_e q[e, i] k[e, j]
			blas.Sgemm(true, false, hw, hw, d, scale, qh, hw, kh, hw, 0, scores, hw)
			kernel.SoftmaxRows(scores, hw, hw)
			// o[e, i] = sum_j v[e, j] p[i, j]
			blas.Sgemm(false, true, d, hw, hw, 1, vh, hw, scores, hw, 0, o[head*d*hw:], hw)
		}
		yn := y.Data[n*c*hw : (n+1)*c*hw]
		projectCF(yn, a.ToOut, o, hw)
		xn := x.Data[n*c*hw : (n+1)*c*hw]
		if a.RescaleOutputFactor == 1 {
			for i := range yn {
				yn[i] += xn[i]
			}
		} else {
			for i := range yn {
				yn[i] = (yn[i] + xn[i]) / a.RescaleOutputFactor
			}
		}
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
	h := r.Norm1.Forward(x)
	kernel.SiLU(h.Data, h.Data)
	h = r.Conv1.Forward(h)
	hw := h.HW()
	var t []float32
	if r.TimeEmbProj != nil && tembAct != nil {
		t = r.TimeEmbProj.Forward(tembAct, x.N)
	}
	if !r.ScaleShift {
		if t != nil {
			for n := 0; n < h.N; n++ {
				for c := 0; c < h.C; c++ {
					tv := t[n*h.C+c]
					p := h.Data[(n*h.C+c)*hw : (n*h.C+c+1)*hw]
					for i := range p {
						p[i] += tv
					}
				}
			}
		}
		h = r.Norm2.Forward(h)
	} else {
		h = r.Norm2.Forward(h)
		if t != nil {
			for n := 0; n < h.N; n++ {
				for c := 0; c < h.C; c++ {
					scale := 1 + t[n*2*h.C+c]
					shift := t[n*2*h.C+h.C+c]
					p := h.Data[(n*h.C+c)*hw : (n*h.C+c+1)*hw]
					for i := range p {
						p[i] = p[i]*scale + shift
					}
				}
			}
		}
	}
	kernel.SiLU(h.Data, h.Data)
	h = r.Conv2.Forward(h)
	sc := x
	if r.ConvShortcut != nil {
		sc = r.ConvShortcut.Forward(x)
	}
	if r.OutputScaleFactor == 1 {
		for i := range h.Data {
			h.Data[i] += sc.Data[i]
		}
	} else {
		for i := range h.Data {
			h.Data[i] = (sc.Data[i] + h.Data[i]) / r.OutputScaleFactor
		}
	}
	return h
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
func (u *Upsample2D) Forward(x *Tensor) *Tensor { return u.Conv.Forward(UpsampleNearest2x(x)) }
