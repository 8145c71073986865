package kernel

import "github.com/ldm-go/ldm/internal/blas"

// ConvShape describes a 2-D convolution over a batch of NCHW images.
// PadT/PadL/PadB/PadR are the zero paddings on each side: diffusers'
// stride-2 downsampling with padding 0 pads only right and bottom.
type ConvShape struct {
	N, C, H, W   int // input
	OutC, KH, KW int
	Stride       int
	PadT, PadL   int
	PadB, PadR   int
}

// OutH is the output height.
func (s ConvShape) OutH() int { return (s.H+s.PadT+s.PadB-s.KH)/s.Stride + 1 }

// OutW is the output width.
func (s ConvShape) OutW() int { return (s.W+s.PadL+s.PadR-s.KW)/s.Stride + 1 }

// ColRows is K = C*KH*KW, the rows of the column matrix.
func (s ConvShape) ColRows() int { return s.C * s.KH * s.KW }

// ColCols is N*OutH*OutW, the columns of the column matrix.
func (s ConvShape) ColCols() int { return s.N * s.OutH() * s.OutW() }

// Im2col writes the column matrix of x to cols: cols has ColRows rows and
// ColCols columns (row-major); row (c, i, j) holds, for every output pixel of
// every image, the input value under kernel tap (i, j) of channel c, or 0 in
// the padding. Rows are filled in parallel.
//
// The shapes that dominate the models have fast paths: 1x1 convolutions,
// whose column matrix is x in channel-major order, and 3x3 "same"
// convolutions, whose rows are whole image planes shifted (im2col3x3); the
// others go element by element.
func Im2col(cols, x []float32, s ConvShape) {
	if len(cols) < s.ColRows()*s.ColCols() || len(x) < s.N*s.C*s.H*s.W {
		panic("kernel: Im2col: buffer too small")
	}
	switch {
	case s.KH == 1 && s.KW == 1 && s.Stride == 1 && s.PadT+s.PadL+s.PadB+s.PadR == 0:
		reorderToChannelMajor(cols[:s.C*s.N*s.H*s.W], x, s.N, s.C, s.H*s.W)
		return
	case is3x3Same(s):
		t := bwTasks.get()
		*t = bwTask{op: bwIm2col3x3, dx: cols, dy: x, s: s}
		Parallel(s.C, s.ColRows()*s.ColCols(), t)
		bwTasks.put(t)
		return
	}
	im2colGeneric(cols, x, s)
}

// im2colGeneric is Im2col for any shape, row by row.
func im2colGeneric(cols, x []float32, s ConvShape) {
	t := im2colTasks.get()
	*t = im2colTask{cols: cols, x: x, s: s}
	Parallel(s.ColRows(), s.ColRows()*s.ColCols(), t)
	im2colTasks.put(t)
}

type im2colTask struct {
	cols, x []float32
	s       ConvShape
}

var im2colTasks freeList[im2colTask]

func (t *im2colTask) Run(lo, hi int) {
	s := t.s
	oh, ow := s.OutH(), s.OutW()
	ncols := s.N * oh * ow
	for r := lo; r < hi; r++ {
		c, i, j := r/(s.KH*s.KW), r/s.KW%s.KH, r%s.KW
		row := t.cols[r*ncols:][:ncols]
		for n := 0; n < s.N; n++ {
			img := t.x[(n*s.C+c)*s.H*s.W:][:s.H*s.W]
			dst := row[n*oh*ow:][:oh*ow]
			for y := 0; y < oh; y++ {
				iy := y*s.Stride - s.PadT + i
				d := dst[y*ow:][:ow]
				if iy < 0 || iy >= s.H {
					clear(d)
					continue
				}
				src := img[iy*s.W:][:s.W]
				if s.Stride == 1 {
					// Contiguous run: ix = x - PadL + j.
					lo := max(0, s.PadL-j)
					hi := max(min(ow, s.W+s.PadL-j), lo)
					for xo := 0; xo < lo; xo++ {
						d[xo] = 0
					}
					if hi-lo >= 32 {
						copy(d[lo:hi], src[lo-s.PadL+j:hi-s.PadL+j])
					} else {
						// Short rows: a loop beats memmove's call.
						sr := src[lo-s.PadL+j : hi-s.PadL+j]
						dr := d[lo:hi]
						for xo := range dr {
							dr[xo] = sr[xo]
						}
					}
					for xo := hi; xo < ow; xo++ {
						d[xo] = 0
					}
					continue
				}
				for xo := 0; xo < ow; xo++ {
					ix := xo*s.Stride - s.PadL + j
					if ix < 0 || ix >= s.W {
						d[xo] = 0
					} else {
						d[xo] = src[ix]
					}
				}
			}
		}
	}
}

// Col2im is the adjoint of Im2col: it adds each column-matrix entry back
// into dx at the input position it was read from (padding entries are
// dropped). dx is accumulated into, not overwritten.
func Col2im(dx, cols []float32, s ConvShape) {
	oh, ow := s.OutH(), s.OutW()
	ncols := s.N * oh * ow
	for c := 0; c < s.C; c++ {
		for i := 0; i < s.KH; i++ {
			for j := 0; j < s.KW; j++ {
				row := cols[((c*s.KH+i)*s.KW+j)*ncols:][:ncols]
				for n := 0; n < s.N; n++ {
					img := dx[(n*s.C+c)*s.H*s.W:][:s.H*s.W]
					src := row[n*oh*ow:][:oh*ow]
					for y := 0; y < oh; y++ {
						iy := y*s.Stride - s.PadT + i
						if iy < 0 || iy >= s.H {
							continue
						}
						d := img[iy*s.W:][:s.W]
						for xo := 0; xo < ow; xo++ {
							ix := xo*s.Stride - s.PadL + j
							if ix >= 0 && ix < s.W {
								d[ix] += src[y*ow+xo]
							}
						}
					}
				}
			}
		}
	}
}

// Conv2d computes dst = conv(x, weight) + bias for NCHW x and dst, weight
// [OutC, C, KH, KW], bias [OutC] or nil. packed, when not nil, is weight
// as a [OutC, C*KH*KW] blas.PackedA, which saves packing it again and
// gives the same bits. work is scratch of at least ConvWork(s) floats. The images go through in chunks (see convChunk), so
// the scratch stays bounded whatever the batch size; each output element
// is the same GEMM sum whatever the chunk, so an image's output never
// depends on the rest of its batch.
func Conv2d(dst, x, weight []float32, packed *blas.PackedA, bias []float32, s ConvShape, work []float32) {
	conv2d(dst, x, weight, packed, bias, nil, s, work)
}

// Conv2dAdd is Conv2d followed by dst += add (add NCHW like dst), the
// residual connection of a resnet block: the bits of the two one after
// the other, the addition done by the GEMM's epilogue where the GEMM
// writes dst itself.
func Conv2dAdd(dst, x, weight []float32, packed *blas.PackedA, bias, add []float32, s ConvShape, work []float32) {
	if len(add) < s.N*s.OutC*s.OutH()*s.OutW() {
		panic("kernel: Conv2dAdd: added tensor too small")
	}
	conv2d(dst, x, weight, packed, bias, add, s, work)
}

func conv2d(dst, x, weight []float32, packed *blas.PackedA, bias, add []float32, s ConvShape, work []float32) {
	hw := s.OutH() * s.OutW()
	if len(dst) < s.N*s.OutC*hw || len(x) < s.N*s.C*s.H*s.W {
		panic("kernel: Conv2d: buffer too small")
	}
	if len(work) < ConvWork(s) {
		panic("kernel: Conv2d: work too small")
	}
	nb := convChunk(s)
	in := s.C * s.H * s.W
	for n0 := 0; n0 < s.N; n0 += nb {
		cs := s
		cs.N = min(nb, s.N-n0)
		var ac []float32
		if add != nil {
			ac = add[n0*s.OutC*hw:][:cs.N*s.OutC*hw]
		}
		conv2dChunk(dst[n0*s.OutC*hw:], x[n0*in:], weight, packed, bias, ac, cs, work)
	}
}

// maxColFloats bounds the column matrix of one chunk of images (16 MB):
// past a few thousand columns a bigger GEMM is no faster.
const maxColFloats = 1 << 22

// directNCHW reports whether the implicit GEMM of s writes its NCHW output
// itself: one image, or planes that hold whole kernel tiles.
func directNCHW(s ConvShape) bool {
	return isSameStride1(s) && (s.N == 1 || (s.OutH()*s.OutW())%32 == 0)
}

// convChunk is how many images Conv2d convolves with one GEMM: as many as
// keep the column matrix under maxColFloats, and at least one. Without a
// column matrix (isSameStride1) the GEMM result of a batch, which is
// reordered to NCHW, is what is bounded.
func convChunk(s ConvShape) int {
	per := s.ColRows() * s.OutH() * s.OutW()
	switch {
	case directNCHW(s):
		return s.N // no scratch to bound
	case isSameStride1(s):
		per = s.OutC * s.OutH() * s.OutW()
	}
	return max(1, min(s.N, maxColFloats/max(per, 1)))
}

// ConvWork is the scratch size Conv2d needs for shape s.
func ConvWork(s ConvShape) int {
	nb := convChunk(s)
	cols := nb * s.OutH() * s.OutW()
	switch {
	case directNCHW(s), isSameStride1(s) && nb == 1:
		return 0
	case isSameStride1(s):
		return s.OutC * cols
	case nb == 1:
		return s.ColRows() * cols
	}
	return (s.ColRows() + s.OutC) * cols
}

func conv2dChunk(dst, x, weight []float32, packed *blas.PackedA, bias, add []float32, s ConvShape, work []float32) {
	hw := s.OutH() * s.OutW()
	k := s.ColRows()
	ncols := s.N * hw
	if isSameStride1(s) && (s.KH > 1 || s.KW > 1 || s.N > 1) {
		conv2dImplicit(dst, x, weight, packed, bias, add, s, work)
		return
	}
	if add != nil {
		defer Add(dst[:s.N*s.OutC*hw], dst[:s.N*s.OutC*hw], add)
	}
	var cols []float32
	if s.KH == 1 && s.KW == 1 && s.Stride == 1 && s.PadT+s.PadL+s.PadB+s.PadR == 0 && s.N == 1 {
		cols = x[:k*ncols]
	} else {
		cols = work[:k*ncols]
		Im2col(cols, x, s)
		work = work[k*ncols:]
	}
	if s.N == 1 {
		// The GEMM result is already NCHW.
		convGEMM(dst, weight, packed, s.OutC, ncols, k, cols, nil)
		addBiasNCHW(dst, bias, 1, s.OutC, hw)
		return
	}
	out := work[:s.OutC*ncols]
	convGEMM(out, weight, packed, s.OutC, ncols, k, cols, nil)
	FromChannelMajor(dst, out, bias, s.N, s.OutC, hw)
}

// convGEMM computes dst [m, n] = weight [m, k] B [k, n], with B the matrix
// b or, when b is nil, what packer packs, and the weight pre-packed when
// packed is not nil.
func convGEMM(dst, weight []float32, packed *blas.PackedA, m, n, k int, b []float32, packer blas.PackerB) {
	switch {
	case packed != nil && b != nil:
		blas.SgemmA(packed, false, n, 1, b, n, 0, dst, n)
	case packed != nil:
		blas.SgemmAPacked(packed, n, 1, packer, 0, dst, n)
	case b != nil:
		blas.Sgemm(false, false, m, n, k, 1, weight, k, b, n, 0, dst, n)
	default:
		blas.SgemmPacked(m, n, k, 1, weight, k, packer, 0, dst, n)
	}
}

// conv2dImplicit is conv2dChunk for the shapes convPacker handles: the GEMM
// reads the column matrix from x as it packs it (see implicit.go).
func conv2dImplicit(dst, x, weight []float32, packed *blas.PackedA, bias, add []float32, s ConvShape, work []float32) {
	hw := s.OutH() * s.OutW()
	k := s.ColRows()
	ncols := s.N * hw
	p := newConvPacker(x[:s.N*s.C*s.H*s.W], s)
	if directNCHW(s) {
		// The GEMM writes NCHW and adds the bias itself.
		e := blas.Epilogue{Bias: bias, Add: add}
		if s.N > 1 {
			e.ImageHW = hw
		}
		blas.SgemmConv(s.OutC, ncols, k, weight, packed, p, dst[:s.N*s.OutC*hw], e)
	} else {
		out := work[:s.OutC*ncols]
		convGEMM(out, weight, packed, s.OutC, ncols, k, nil, p)
		FromChannelMajor(dst, out, bias, s.N, s.OutC, hw)
		if add != nil {
			Add(dst[:s.N*s.OutC*hw], dst[:s.N*s.OutC*hw], add)
		}
	}
	p.release()
}

// reorderTask moves a batched GEMM result [C, N, HW] to NCHW, adding the bias.
type reorderTask struct {
	dst, out, bias []float32
	n, c, hw       int
}

var reorderTasks freeList[reorderTask]

func (t *reorderTask) Run(lo, hi int) {
	hw, n, c := t.hw, t.n, t.c
	for o := lo; o < hi; o++ {
		var b float32
		if t.bias != nil {
			b = t.bias[o]
		}
		src := t.out[o*n*hw : (o+1)*n*hw]
		// The smallest feature maps move a few floats per image: copies
		// of fixed size, without a loop and two slicings for each.
		switch hw {
		case 4:
			for i := range n {
				s, d := (*[4]float32)(src[4*i:]), (*[4]float32)(t.dst[(i*c+o)*4:])
				d[0], d[1], d[2], d[3] = s[0]+b, s[1]+b, s[2]+b, s[3]+b
			}
			continue
		case 16:
			for i := range n {
				s, d := (*[16]float32)(src[16*i:]), (*[16]float32)(t.dst[(i*c+o)*16:])
				for x := range d {
					d[x] = s[x] + b
				}
			}
			continue
		}
		for i := range n {
			s := src[i*hw : (i+1)*hw]
			d := t.dst[(i*c+o)*hw:][:hw]
			for x, v := range s {
				d[x] = v + b
			}
		}
	}
}

func addBiasNCHW(dst, bias []float32, n, c, hw int) {
	if bias == nil {
		return
	}
	for i := 0; i < n; i++ {
		AddPlanes(dst[i*c*hw:], bias, c, hw)
	}
}
