package kernel

import "github.com/ldm-go/ldm/internal/blas"

// Sub-pixel convolution of a nearest-neighbour upsampling. Upsampling 2x
// and then convolving with a 3x3 kernel (padding 1) reads, for each output
// pixel, only a 2x2 neighbourhood of the low-resolution input: the output
// pixel (2y+a, 2x+b) of phase (a, b) is a 2x2 convolution of x at (y, x)
// whose kernel sums the 3x3 taps that land on the same input pixel. Four
// such convolutions cost 16 multiply-adds per input pixel and output
// channel pair where the upsampled convolution costs 36, and the
// upsampled tensor, four times the input, is never written. The sums of
// taps round differently from the products they replace, so results agree
// with the upsampled convolution to float32 rounding, not bit for bit.

// For output row parity a = 0 the kernel rows 0 and (1, 2) read input
// rows y-1 and y; for a = 1 the rows (0, 1) and 2 read rows y and y+1.
// Columns group the same way.

// IsUpsampleConv reports whether s, the shape of the convolution after a
// 2x nearest upsampling, can run as UpsampleConv3x3: 3x3, stride 1,
// padding 1 on every side.
func IsUpsampleConv(s ConvShape) bool {
	return s.KH == 3 && s.KW == 3 && s.Stride == 1 && s.PadT == 1 && s.PadL == 1 && s.PadB == 1 && s.PadR == 1
}

// phaseShape is the 2x2 convolution of x for output phase (a, b).
func phaseShape(s ConvShape, n, a, b int) ConvShape {
	return ConvShape{N: n, C: s.C, H: s.H, W: s.W, OutC: s.OutC, KH: 2, KW: 2, Stride: 1,
		PadT: 1 - a, PadL: 1 - b, PadB: a, PadR: b}
}

// upConvChunk is how many images one GEMM per phase takes: as many as keep
// the four phase outputs under maxColFloats.
func upConvChunk(s ConvShape) int {
	per := 4 * s.OutC * s.H * s.W
	return max(1, min(s.N, maxColFloats/max(per, 1)))
}

// UpsampleConvWork is the scratch UpsampleConv3x3 needs for s (the
// low-resolution input's shape and the 3x3 kernel).
func UpsampleConvWork(s ConvShape) int {
	return 16*s.OutC*s.C + 4*s.OutC*upConvChunk(s)*s.H*s.W
}

// UpsamplePhases are the four phase kernels of a 3x3 weight, built once
// for weights that do not change, each also packed as a GEMM operand.
type UpsamplePhases struct {
	outC, c int
	w       []float32 // [4][OutC, C, 2, 2]
	packed  [4]*blas.PackedA
}

// NewUpsamplePhases prepares the weight [outC, c, 3, 3] for
// UpsampleConv3x3.
func NewUpsamplePhases(weight []float32, outC, c int) *UpsamplePhases {
	p := &UpsamplePhases{outC: outC, c: c, w: make([]float32, 16*outC*c)}
	phaseWeights(p.w, weight, outC, c)
	for i := range p.packed {
		p.packed[i] = blas.NewPackedA(outC, 4*c, p.w[i*4*outC*c:][:4*outC*c], 4*c)
	}
	return p
}

// UpsampleConv3x3 writes conv(upsample2x(x), weight) + bias to dst
// [N, OutC, 2H, 2W], for x [N, C, H, W] as s describes it (N, C, H, W and
// OutC; IsUpsampleConv(s) must hold), weight [OutC, C, 3, 3] and bias
// [OutC] or nil. phases, when not nil, is NewUpsamplePhases of weight,
// which saves preparing it again and gives the same bits. work holds
// UpsampleConvWork(s) floats.
func UpsampleConv3x3(dst, x, weight []float32, phases *UpsamplePhases, bias []float32, s ConvShape, work []float32) {
	if !IsUpsampleConv(s) {
		panic("kernel: UpsampleConv3x3: not a 3x3 convolution with padding 1")
	}
	hw := s.H * s.W
	if len(dst) < s.N*s.OutC*4*hw || len(x) < s.N*s.C*hw || len(weight) < s.OutC*s.C*9 {
		panic("kernel: UpsampleConv3x3: buffer too small")
	}
	if len(work) < UpsampleConvWork(s) {
		panic("kernel: UpsampleConv3x3: work too small")
	}
	k := 4 * s.C
	pw := work[:4*s.OutC*k]
	work = work[len(pw):]
	if phases != nil {
		if phases.outC != s.OutC || phases.c != s.C {
			panic("kernel: UpsampleConv3x3: phases of another shape")
		}
		pw = phases.w
	} else {
		phaseWeights(pw, weight, s.OutC, s.C)
	}
	nb := upConvChunk(s)
	in, out := s.C*hw, s.OutC*4*hw
	for n0 := 0; n0 < s.N; n0 += nb {
		n := min(nb, s.N-n0)
		nc := n * hw
		res := work[:4*s.OutC*nc]
		xc := x[n0*in:][:n*in]
		for p := 0; p < 4; p++ {
			pk := newConvPacker(xc, phaseShape(s, n, p>>1, p&1))
			var packed *blas.PackedA
			if phases != nil {
				packed = phases.packed[p]
			}
			convGEMM(res[p*s.OutC*nc:][:s.OutC*nc], pw[p*s.OutC*k:][:s.OutC*k], packed, s.OutC, nc, k, nil, pk)
			pk.release()
		}
		t := interleaveTasks.get()
		*t = interleaveTask{dst: dst[n0*out:][:n*out], res: res, bias: bias, n: n, c: s.OutC, h: s.H, w: s.W}
		Parallel(s.OutC, 4*s.OutC*nc, t)
		interleaveTasks.put(t)
	}
}

// phaseWeights writes the four phase kernels [4][OutC, C, 2, 2] (phase
// 2a+b) of the 3x3 weight [OutC, C, 3, 3]: each 2x2 tap sums the 3x3 taps
// phaseRows assigns to it, first along each kernel row, then the rows.
func phaseWeights(dst, weight []float32, outC, c int) {
	n := outC * c
	p0, p1 := dst[:4*n], dst[4*n:][:4*n]
	p2, p3 := dst[8*n:][:4*n], dst[12*n:][:4*n]
	for oc := 0; oc < n; oc++ {
		w := (*[9]float32)(weight[oc*9:])
		// Per kernel row i: the column groups of phase b = 0, {0} and
		// {1, 2}, and of b = 1, {0, 1} and {2}.
		var l0, l12, l01, l2 [3]float32
		for i := 0; i < 3; i++ {
			l0[i], l12[i] = w[3*i], w[3*i+1]+w[3*i+2]
			l01[i], l2[i] = w[3*i]+w[3*i+1], w[3*i+2]
		}
		d0, d1 := (*[4]float32)(p0[4*oc:]), (*[4]float32)(p1[4*oc:])
		d2, d3 := (*[4]float32)(p2[4*oc:]), (*[4]float32)(p3[4*oc:])
		// Rows: a = 0 groups {0} and {1, 2}, a = 1 groups {0, 1} and {2}.
		*d0 = [4]float32{l0[0], l12[0], l0[1] + l0[2], l12[1] + l12[2]}
		*d1 = [4]float32{l01[0], l2[0], l01[1] + l01[2], l2[1] + l2[2]}
		*d2 = [4]float32{l0[0] + l0[1], l12[0] + l12[1], l0[2], l12[2]}
		*d3 = [4]float32{l01[0] + l01[1], l2[0] + l2[1], l01[2], l2[2]}
	}
}

// interleaveTask moves the four phase outputs res [4][C, N, H, W] into dst
// [N, C, 2H, 2W], adding the bias: phase 2a+b holds the output pixels
// (2y+a, 2x+b).
type interleaveTask struct {
	dst, res, bias []float32
	n, c, h, w     int
}

var interleaveTasks freeList[interleaveTask]

func (t *interleaveTask) Run(lo, hi int) {
	h, w := t.h, t.w
	hw := h * w
	phase := t.n * t.c * hw
	for o := lo; o < hi; o++ {
		var bias float32
		if t.bias != nil {
			bias = t.bias[o]
		}
		for n := 0; n < t.n; n++ {
			src := (o*t.n + n) * hw
			p00 := t.res[src:][:hw]
			p01 := t.res[phase+src:][:hw]
			p10 := t.res[2*phase+src:][:hw]
			p11 := t.res[3*phase+src:][:hw]
			d := t.dst[(n*t.c+o)*4*hw:][:4*hw]
			if interleavePlaneAVX512(d, p00, p01, p10, p11, h, w, bias) {
				continue
			}
			for y := 0; y < h; y++ {
				top := d[2*y*2*w:][:2*w]
				bot := d[(2*y+1)*2*w:][:2*w]
				r00, r01 := p00[y*w:][:w], p01[y*w:][:w]
				r10, r11 := p10[y*w:][:w], p11[y*w:][:w]
				for x := range r00 {
					top[2*x] = r00[x] + bias
					top[2*x+1] = r01[x] + bias
					bot[2*x] = r10[x] + bias
					bot[2*x+1] = r11[x] + bias
				}
			}
		}
	}
}
