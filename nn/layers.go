package nn

import (
	"math"

	"github.com/ldm-go/ldm/internal/blas"
	"github.com/ldm-go/ldm/internal/kernel"
)

// Tensor is a contiguous NCHW float32 array: the form activations take
// inside the models. A matrix of N rows and C features has H = W = 1.
type Tensor struct {
	Data       []float32
	N, C, H, W int
}

// NewTensor allocates a zero tensor.
func NewTensor(n, c, h, w int) *Tensor {
	return &Tensor{Data: make([]float32, n*c*h*w), N: n, C: c, H: h, W: w}
}

// HW is the number of pixels of one plane.
func (t *Tensor) HW() int { return t.H * t.W }

// Conv2d is a 2-D convolution with weight [out, in, k, k] and bias [out].
type Conv2d struct {
	Weight, Bias *Param
	In, Out      int
	Kernel       int
	Stride       int
	// Padding on top, left, bottom, right.
	PadT, PadL, PadB, PadR int
}

// NewConv2d registers prefix.weight and prefix.bias and returns a square
// convolution with symmetric padding.
func NewConv2d(ps *Params, prefix string, in, out, kernelSize, stride, padding int) *Conv2d {
	return &Conv2d{
		Weight: ps.New(prefix+".weight", out, in, kernelSize, kernelSize),
		Bias:   ps.New(prefix+".bias", out),
		In:     in, Out: out, Kernel: kernelSize, Stride: stride,
		PadT: padding, PadL: padding, PadB: padding, PadR: padding,
	}
}

func (c *Conv2d) shape(x *Tensor) kernel.ConvShape {
	return kernel.ConvShape{N: x.N, C: x.C, H: x.H, W: x.W, OutC: c.Out, KH: c.Kernel, KW: c.Kernel,
		Stride: c.Stride, PadT: c.PadT, PadL: c.PadL, PadB: c.PadB, PadR: c.PadR}
}

// Forward returns the convolution of x.
func (c *Conv2d) Forward(x *Tensor) *Tensor { return c.ForwardWS(nil, x) }

// ForwardWS is Forward with buffers from ws.
func (c *Conv2d) ForwardWS(ws *Workspace, x *Tensor) *Tensor {
	if x.C != c.In {
		panic("nn: Conv2d: input channels do not match")
	}
	s := c.shape(x)
	y := ws.Tensor(x.N, c.Out, s.OutH(), s.OutW())
	var bias []float32
	if c.Bias != nil {
		bias = c.Bias.Data
	}
	if w := c.winograd(s); w != nil {
		work := ws.Floats(kernel.WinogradWork(s))
		kernel.Conv2dWinograd(y.Data, x.Data, w, bias, s, work)
		ws.Release(work)
		return y
	}
	work := ws.Floats(kernel.ConvWork(s))
	kernel.Conv2d(y.Data, x.Data, c.Weight.Data, c.packed(), bias, s, work)
	ws.Release(work)
	return y
}

// ForwardAddWS returns the convolution of x plus add (a tensor of the
// output's shape), with buffers from ws: the bits of ForwardWS followed by
// the addition, which the GEMM does as it writes the output where it can.
func (c *Conv2d) ForwardAddWS(ws *Workspace, x, add *Tensor) *Tensor {
	if x.C != c.In {
		panic("nn: Conv2d: input channels do not match")
	}
	s := c.shape(x)
	if len(add.Data) != x.N*c.Out*s.OutH()*s.OutW() {
		panic("nn: Conv2d: added tensor of another shape")
	}
	var bias []float32
	if c.Bias != nil {
		bias = c.Bias.Data
	}
	if c.winograd(s) != nil {
		y := c.ForwardWS(ws, x)
		kernel.Add(y.Data, y.Data, add.Data)
		return y
	}
	y := ws.Tensor(x.N, c.Out, s.OutH(), s.OutW())
	work := ws.Floats(kernel.ConvWork(s))
	kernel.Conv2dAdd(y.Data, x.Data, c.Weight.Data, c.packed(), bias, add.Data, s, work)
	ws.Release(work)
	return y
}

// winograd is the weight transformed for Winograd's algorithm when the
// weights are frozen and it pays at shape s, else nil. Training, whose
// weights change at every step, always convolves directly.
func (c *Conv2d) winograd(s kernel.ConvShape) *kernel.WinogradWeights {
	if !kernel.WinogradPays(s) {
		return nil
	}
	v := c.Weight.Derived("winograd", func() any { return kernel.NewWinogradWeights(c.Weight.Data, c.Out, c.In) })
	if v == nil {
		return nil
	}
	return v.(*kernel.WinogradWeights)
}

// packed is the weight packed as the convolution's GEMM operand when the
// weights are frozen, else nil.
func (c *Conv2d) packed() *blas.PackedA {
	k := c.In * c.Kernel * c.Kernel
	v := c.Weight.Derived("conv", func() any { return blas.NewPackedA(c.Out, k, c.Weight.Data, k) })
	if v == nil {
		return nil
	}
	return v.(*blas.PackedA)
}

// packed is the weight packed as a GEMM operand for channel-first
// projections when the weights are frozen, else nil.
func (l *Linear) packed() *blas.PackedA {
	v := l.Weight.Derived("linear", func() any { return blas.NewPackedA(l.Out, l.In, l.Weight.Data, l.In) })
	if v == nil {
		return nil
	}
	return v.(*blas.PackedA)
}

// GroupNorm is torch.nn.GroupNorm with affine weight and bias.
type GroupNorm struct {
	Weight, Bias *Param
	Groups       int
	Channels     int
	Eps          float32
}

// NewGroupNorm registers prefix.weight and prefix.bias, initialised to the
// identity transform.
func NewGroupNorm(ps *Params, prefix string, groups, channels int, eps float64) *GroupNorm {
	g := &GroupNorm{Weight: ps.New(prefix+".weight", channels), Bias: ps.New(prefix+".bias", channels),
		Groups: groups, Channels: channels, Eps: float32(eps)}
	for i := range g.Weight.Data {
		g.Weight.Data[i] = 1
	}
	return g
}

// Forward returns the normalised x.
func (g *GroupNorm) Forward(x *Tensor) *Tensor { return g.ForwardWS(nil, x) }

// ForwardWS is Forward with the output from ws.
func (g *GroupNorm) ForwardWS(ws *Workspace, x *Tensor) *Tensor {
	y := ws.Tensor(x.N, x.C, x.H, x.W)
	g.Apply(y, x)
	return y
}

// Apply writes the normalised x to y, which may be x.
func (g *GroupNorm) Apply(y, x *Tensor) {
	kernel.GroupNorm(y.Data, x.Data, g.Weight.Data, g.Bias.Data, x.N, x.C, x.HW(), g.Groups, g.Eps, nil, nil)
}

// ForwardSiLUWS returns SiLU of the normalised x, with the output from ws.
func (g *GroupNorm) ForwardSiLUWS(ws *Workspace, x *Tensor) *Tensor {
	y := ws.Tensor(x.N, x.C, x.H, x.W)
	g.ApplySiLU(y, x)
	return y
}

// ApplySiLU writes SiLU of the normalised x to y, which may be x, in one
// pass over the data.
func (g *GroupNorm) ApplySiLU(y, x *Tensor) {
	kernel.GroupNormSiLU(y.Data, x.Data, g.Weight.Data, g.Bias.Data, x.N, x.C, x.HW(), g.Groups, g.Eps)
}

// Linear is y = x W^T + b with W [out, in].
type Linear struct {
	Weight, Bias *Param
	In, Out      int
}

// NewLinear registers prefix.weight and prefix.bias.
func NewLinear(ps *Params, prefix string, in, out int) *Linear {
	return &Linear{Weight: ps.New(prefix+".weight", out, in), Bias: ps.New(prefix+".bias", out), In: in, Out: out}
}

// Forward maps rows [n, In] to [n, Out].
func (l *Linear) Forward(x []float32, n int) []float32 { return l.ForwardWS(nil, x, n) }

// ForwardWS is Forward with the output from ws.
func (l *Linear) ForwardWS(ws *Workspace, x []float32, n int) []float32 {
	y := ws.Floats(n * l.Out)
	if n < l.Out {
		// Few rows, as a batch's timestep embeddings: the weight as A,
		// packed once or read in place, and the small transposed product
		// transposed back. As y = x W^T the GEMM would pack all of W^T,
		// element by element, on every call. Each output is the same dot
		// product summed in the same order either way, so the bits agree.
		yt := ws.Floats(l.Out * n)
		if pa := l.packed(); pa != nil {
			blas.SgemmA(pa, true, n, 1, x, l.In, 0, yt, n)
		} else {
			blas.Sgemm(false, true, l.Out, n, l.In, 1, l.Weight.Data, l.In, x, l.In, 0, yt, n)
		}
		for i := 0; i < n; i++ {
			row := y[i*l.Out : (i+1)*l.Out]
			for j := range row {
				row[j] = yt[j*n+i]
			}
		}
		ws.Release(yt)
	} else {
		blas.Sgemm(false, true, n, l.Out, l.In, 1, x, l.In, l.Weight.Data, l.In, 0, y, l.Out)
	}
	for i := 0; i < n; i++ {
		row := y[i*l.Out : (i+1)*l.Out]
		for j, b := range l.Bias.Data {
			row[j] += b
		}
	}
	return y
}

// Embedding is a lookup table [num, dim].
type Embedding struct {
	Weight   *Param
	Num, Dim int
}

// NewEmbedding registers prefix.weight.
func NewEmbedding(ps *Params, prefix string, num, dim int) *Embedding {
	return &Embedding{Weight: ps.New(prefix+".weight", num, dim), Num: num, Dim: dim}
}

// Forward returns the rows for ids; the caller has checked 0 <= id < Num.
func (e *Embedding) Forward(ids []int) []float32 { return e.ForwardWS(nil, ids) }

// ForwardWS is Forward with the output from ws.
func (e *Embedding) ForwardWS(ws *Workspace, ids []int) []float32 {
	y := ws.Floats(len(ids) * e.Dim)
	for i, id := range ids {
		copy(y[i*e.Dim:(i+1)*e.Dim], e.Weight.Data[id*e.Dim:(id+1)*e.Dim])
	}
	return y
}

// SiLU returns x * sigmoid(x) elementwise as a new slice.
func SiLU(x []float32) []float32 {
	y := make([]float32, len(x))
	kernel.SiLU(y, x)
	return y
}

// UpsampleNearest2x doubles the height and width by repeating pixels.
func UpsampleNearest2x(x *Tensor) *Tensor { return UpsampleNearest2xWS(nil, x) }

// UpsampleNearest2xWS is UpsampleNearest2x with the output from ws.
func UpsampleNearest2xWS(ws *Workspace, x *Tensor) *Tensor {
	y := ws.Tensor(x.N, x.C, 2*x.H, 2*x.W)
	kernel.UpsampleNearest2x(y.Data, x.Data, x.N*x.C, x.H, x.W)
	return y
}

// TimestepEmbedding is the MLP after the sinusoidal projection:
// linear_1, SiLU, linear_2.
type TimestepEmbedding struct {
	Linear1, Linear2 *Linear
}

// NewTimestepEmbedding registers prefix.linear_1 and prefix.linear_2.
func NewTimestepEmbedding(ps *Params, prefix string, in, dim int) *TimestepEmbedding {
	return &TimestepEmbedding{Linear1: NewLinear(ps, prefix+".linear_1", in, dim), Linear2: NewLinear(ps, prefix+".linear_2", dim, dim)}
}

// Forward maps [n, in] to [n, dim].
func (t *TimestepEmbedding) Forward(x []float32, n int) []float32 { return t.ForwardWS(nil, x, n) }

// ForwardWS is Forward with buffers from ws.
func (t *TimestepEmbedding) ForwardWS(ws *Workspace, x []float32, n int) []float32 {
	h := t.Linear1.ForwardWS(ws, x, n)
	kernel.SiLU(h, h)
	y := t.Linear2.ForwardWS(ws, h, n)
	ws.Release(h)
	return y
}

// SinusoidalEmbedding writes diffusers' get_timestep_embedding of the
// timesteps to dst [len(timesteps), dim]: frequencies
// exp(-ln(10000) * i / (dim/2 - freqShift)), sin then cos (cos then sin with
// flipSinToCos), zero-padded when dim is odd. The arithmetic follows torch's
// float32 order: exponent = float32(-ln 10000) * i, divided by
// (half - shift), exp, times the float32 timestep.
func SinusoidalEmbedding(dst []float32, timesteps []float32, dim int, flipSinToCos bool, freqShift float64) {
	half := dim / 2
	negLog := float32(-math.Log(10000))
	denom := float32(float64(half) - freqShift)
	for n, t := range timesteps {
		row := dst[n*dim : (n+1)*dim]
		for i := 0; i < half; i++ {
			e := negLog * float32(i)
			e = e / denom
			f := float32(math.Exp(float64(e)))
			a := float64(t * f)
			s, c := float32(math.Sin(a)), float32(math.Cos(a))
			if flipSinToCos {
				row[i], row[half+i] = c, s
			} else {
				row[i], row[half+i] = s, c
			}
		}
		if dim%2 == 1 {
			row[dim-1] = 0
		}
	}
}
