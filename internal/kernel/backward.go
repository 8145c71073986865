package kernel

import (
	"math"

	"github.com/ldm-go/ldm/internal/blas"
)

// The backward kernels below accumulate into their destinations (dx, dw,
// db): a tensor used twice receives the sum of both gradients, and parameter
// gradients add up over micro-batches. Every sum runs in one fixed order, so
// gradients are bit-identical whatever GOMAXPROCS is: work is split over
// cores only where the units write disjoint outputs, and reductions that span
// units (a weight gradient summed over images) go through per-unit partial
// results combined in unit order afterwards.

// maxBackColFloats bounds the column matrix of one chunk of images in
// Conv2dBackward (4 MB): small enough that the im2col, GEMM and col2im of a
// chunk stay in cache, large enough that the GEMMs are not tiny.
const maxBackColFloats = 1 << 20

// convBackChunk is how many images Conv2dBackward handles at a time. It
// depends on the shape alone, never on the thread count, since the weight
// gradient is summed chunk by chunk.
func convBackChunk(s ConvShape) int {
	per := convBackColRows(s) * s.OutH() * s.OutW()
	return max(1, min(s.N, maxBackColFloats/max(per, 1)))
}

// convBackColRows is the rows of the largest column matrix Conv2dBackward
// builds: x's, and for 3x3 "same" convolutions also dy's.
func convBackColRows(s ConvShape) int {
	if is3x3Same(s) {
		return max(s.C, s.OutC) * 9
	}
	return s.ColRows()
}

// ConvBackwardWork is the scratch size Conv2dBackward needs for shape s.
func ConvBackwardWork(s ConvShape) int {
	k, nc := s.ColRows(), convBackChunk(s)*s.OutH()*s.OutW()
	n := convBackColRows(s)*nc + 2*s.OutC*nc + k*s.OutC
	if is3x3Same(s) {
		n += s.C*nc + k*s.OutC
	}
	return n
}

// Conv2dBackward accumulates the gradients of dst = conv(x, weight) + bias
// given dy = dL/ddst [N, OutC, OH, OW]: dx (may be nil when x needs no
// gradient), dw [OutC, C, KH, KW] and db [OutC] (nil when there is no bias).
// work holds at least ConvBackwardWork(s) floats.
//
// The images go through in chunks of convBackChunk(s). Per chunk, with cols
// the column matrix [K, NHW] and dyr = dy as [OutC, NHW]: dw^T [K, OutC] +=
// cols dyr^T, summed over the chunks by the GEMM's beta, and dx +=
// col2im(weight^T dyr). For 3x3 "same" convolutions dx is instead the
// convolution of dy with the flipped, transposed kernel: one GEMM over the
// column matrix of dy, whose result is dx itself rather than nine column
// rows per channel to add back.
func Conv2dBackward(dx, dw, db, dy, x, weight []float32, s ConvShape, work []float32) {
	hw := s.OutH() * s.OutW()
	k := s.ColRows()
	if len(dy) < s.N*s.OutC*hw || len(x) < s.N*s.C*s.H*s.W || len(work) < ConvBackwardWork(s) {
		panic("kernel: Conv2dBackward: buffer too small")
	}
	if len(dw) < s.OutC*k || (dx != nil && len(dx) < s.N*s.C*s.H*s.W) || (db != nil && len(db) < s.OutC) {
		panic("kernel: Conv2dBackward: gradient buffer too small")
	}
	nb := convBackChunk(s)
	maxNC := nb * hw
	cols := work[:convBackColRows(s)*maxNC]
	work = work[len(cols):]
	dyr := work[:s.OutC*maxNC]
	work = work[s.OutC*maxNC:]
	dyt := work[:maxNC*s.OutC]
	work = work[maxNC*s.OutC:]
	dwt := work[:k*s.OutC] // dw transposed [K, OutC], summed over chunks
	work = work[k*s.OutC:]
	flipped := is3x3Same(s) && dx != nil
	var wt, dxc []float32
	var ts ConvShape
	if flipped {
		// wt [C, OutC*9]: wt[c, (o, i, j)] = weight[o, c, 2-i, 2-j].
		wt = work[:k*s.OutC]
		dxc = work[k*s.OutC:][:s.C*maxNC]
		for o := 0; o < s.OutC; o++ {
			for c := 0; c < s.C; c++ {
				src := weight[(o*s.C+c)*9:][:9]
				d := wt[c*s.OutC*9+o*9:][:9]
				for t := range d {
					d[t] = src[8-t]
				}
			}
		}
		ts = ConvShape{C: s.OutC, H: s.H, W: s.W, OutC: s.C, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1}
	}

	in := s.C * s.H * s.W
	out := s.OutC * hw
	if db != nil {
		biasGrad(db, dy, s.N, s.OutC, hw)
	}
	for n0 := 0; n0 < s.N; n0 += nb {
		cs := s
		cs.N = min(nb, s.N-n0)
		nc := cs.N * hw
		dyc := dy[n0*out:][:cs.N*out]
		// dyt = dy as [nc, OutC], and for the col2im path dyr = dy as
		// [OutC, nc].
		toPixelMajor(dyt[:nc*s.OutC], dyc, cs.N, s.OutC, hw)
		if !flipped && dx != nil {
			reorderToChannelMajor(dyr[:s.OutC*nc], dyc, cs.N, s.OutC, hw)
		}
		// dw^T [K, OutC] += cols [K, nc] dyt [nc, OutC]: both operands are
		// read row by row, which is what makes the GEMM fast.
		beta := float32(1)
		if n0 == 0 {
			beta = 0
		}
		Im2col(cols[:k*nc], x[n0*in:][:cs.N*in], cs)
		blas.Sgemm(false, false, k, s.OutC, nc, 1, cols, nc, dyt, s.OutC, beta, dwt, s.OutC)
		if dx == nil {
			continue
		}
		if flipped {
			// dx [C, nc] = wt [C, OutC*9] im2col(dy) [OutC*9, nc], the
			// column matrix packed as the GEMM goes (implicit.go).
			ts.N = cs.N
			p := newConvPacker(dyc, ts)
			blas.SgemmPacked(s.C, nc, s.OutC*9, 1, wt, s.OutC*9, p, 0, dxc, nc)
			p.release()
			AddFromChannelMajor(dx[n0*in:][:cs.N*in], dxc[:s.C*nc], cs.N, s.C, hw)
			continue
		}
		// dcols [K, nc] = weight^T [K, OutC] dyr [OutC, nc], reusing cols.
		blas.Sgemm(true, false, k, nc, s.OutC, 1, weight, k, dyr, nc, 0, cols, nc)
		col2imAdd(dx[n0*in:][:cs.N*in], cols[:k*nc], cs)
	}
	for o := 0; o < s.OutC; o++ {
		row := dw[o*k : (o+1)*k]
		for i := range row {
			row[i] += dwt[i*s.OutC+o]
		}
	}
}

// biasGrad adds to db[o] the sum of dy over every image and pixel of
// channel o, image by image in order.
func biasGrad(db, dy []float32, n, c, hw int) {
	t := bwTasks.get()
	*t = bwTask{op: bwBias, dx: db, dy: dy, n: n, c: c, hw: hw}
	Parallel(c, n*c*hw, t)
	bwTasks.put(t)
}

// reorderToChannelMajor writes src [n, c, hw] to dst [c, n*hw].
func reorderToChannelMajor(dst, src []float32, n, c, hw int) {
	t := bwTasks.get()
	*t = bwTask{op: bwToCM, dx: dst, dy: src, n: n, c: c, hw: hw}
	Parallel(c, n*c*hw, t)
	bwTasks.put(t)
}

// toPixelMajor writes src [n, c, hw] to dst [n*hw, c]: row i*hw+p holds
// pixel p of image i across the channels.
func toPixelMajor(dst, src []float32, n, c, hw int) {
	t := bwTasks.get()
	*t = bwTask{op: bwToPM, dx: dst[:n*hw*c], dy: src[:n*c*hw], n: n, c: c, hw: hw}
	Parallel(n*((hw+31)/32), n*c*hw, t)
	bwTasks.put(t)
}

// ToChannelMajor writes src [n, c, hw] to dst [c, n*hw], the layout in
// which one GEMM covers every image of a batch.
func ToChannelMajor(dst, src []float32, n, c, hw int) {
	reorderToChannelMajor(dst[:c*n*hw], src[:n*c*hw], n, c, hw)
}

// AddFromChannelMajor accumulates src [c, n*hw] into dst [n, c, hw].
func AddFromChannelMajor(dst, src []float32, n, c, hw int) {
	t := bwTasks.get()
	*t = bwTask{op: bwAddFromCM, dx: dst[:n*c*hw], dy: src[:c*n*hw], n: n, c: c, hw: hw}
	Parallel(c, 2*n*c*hw, t)
	bwTasks.put(t)
}

// TransposeParallel writes the transpose of the rows x cols matrix a to dst
// (cols x rows), split over cores.
func TransposeParallel(dst, a []float32, rows, cols int) {
	transposeParallel(dst[:rows*cols], a[:rows*cols], rows, cols)
}

// transposeParallel writes the transpose of the rows x cols matrix a to dst,
// in blocks of 32 columns of a split over cores.
func transposeParallel(dst, a []float32, rows, cols int) {
	t := bwTasks.get()
	*t = bwTask{op: bwTranspose, dx: dst, dy: a, n: rows, c: cols}
	Parallel((cols+31)/32, rows*cols, t)
	bwTasks.put(t)
}

// is3x3Same reports whether s is a 3x3 convolution with stride 1 and
// padding 1 on every side, whose output has the input's size.
func is3x3Same(s ConvShape) bool {
	return s.KH == 3 && s.KW == 3 && s.Stride == 1 && s.PadT == 1 && s.PadL == 1 && s.PadB == 1 && s.PadR == 1 && s.W >= 2 && s.H >= 2
}

// im2col3x3 writes the rows of channels [lo, hi) of the column matrix of a
// 3x3 "same" convolution. Row (c, i, j) of image n is the image plane
// shifted by (i-1) rows and (j-1) columns: as flat arrays, the plane moved
// by (i-1)*w + (j-1) elements, after which the pixels that read outside the
// image (one edge row and one edge column) are zeroed.
func im2col3x3(cols, x []float32, s ConvShape, lo, hi int) {
	h, w := s.H, s.W
	hw := h * w
	ncols := s.N * hw
	for c := lo; c < hi; c++ {
		for n := 0; n < s.N; n++ {
			src := x[(n*s.C+c)*hw:][:hw]
			for i := 0; i < 3; i++ {
				for j := 0; j < 3; j++ {
					d := cols[(c*9+i*3+j)*ncols+n*hw:][:hw]
					delta := (i-1)*w + (j - 1)
					if delta >= 0 {
						copy(d[:hw-delta], src[delta:])
						clear(d[hw-delta:])
					} else {
						copy(d[-delta:], src[:hw+delta])
						clear(d[:-delta])
					}
					switch i {
					case 0:
						clear(d[:w])
					case 2:
						clear(d[hw-w:])
					}
					switch j {
					case 0:
						for y := 0; y < hw; y += w {
							d[y] = 0
						}
					case 2:
						for y := w - 1; y < hw; y += w {
							d[y] = 0
						}
					}
				}
			}
		}
	}
}

// col2imAdd is the adjoint of Im2col, accumulated into dx: each
// column-matrix entry is added back at the input position it was read from
// (padding entries are dropped). Channels write disjoint planes, so they
// are split over cores; within a pixel the taps are added in (i, j) order.
func col2imAdd(dx, cols []float32, s ConvShape) {
	t := bwTasks.get()
	*t = bwTask{op: bwCol2im, dx: dx, dy: cols, s: s}
	Parallel(s.C, s.ColRows()*s.ColCols(), t)
	bwTasks.put(t)
}

// GroupNormBackward accumulates the gradients of GroupNorm (same arguments
// as the forward) given dy: dx, dw and db. The statistics are recomputed
// from x in float64, as the forward computes them. Each (image, group) is a
// unit of parallel work; the weight and bias gradients of each image go to
// partial sums that are added image by image afterwards.
func GroupNormBackward(dx, dw, db, dy, x, weight []float32, n, c, hw, groups int, eps float32) {
	GroupNormBackwardStats(dx, dw, db, dy, x, weight, nil, nil, n, c, hw, groups, eps)
}

// GroupNormBackwardStats is GroupNormBackward given the per-(image, group)
// mean and rstd the forward wrote, which saves two passes over x; with nil
// statistics they are recomputed.
func GroupNormBackwardStats(dx, dw, db, dy, x, weight, mean, rstd []float32, n, c, hw, groups int, eps float32) {
	if c%groups != 0 {
		panic("kernel: GroupNormBackward: channels not divisible by groups")
	}
	if len(x) < n*c*hw || len(dy) < n*c*hw || len(dx) < n*c*hw {
		panic("kernel: GroupNormBackward: buffer too small")
	}
	part := make([]float32, 2*n*c)
	t := gnTasks.get()
	*t = gnBackTask{dx: dx, dy: dy, x: x, weight: weight, mean: mean, rstd: rstd, part: part, c: c, hw: hw, groups: groups, eps: eps}
	Parallel(n*groups, 2*n*c*hw, t)
	gnTasks.put(t)
	for i := 0; i < n; i++ {
		pw, pb := part[2*i*c:][:c], part[(2*i+1)*c:][:c]
		for cc := 0; cc < c; cc++ {
			dw[cc] += pw[cc]
			db[cc] += pb[cc]
		}
	}
}

type gnBackTask struct {
	dx, dy, x, weight, part []float32
	mean, rstd              []float32
	c, hw, groups           int
	eps                     float32
}

var gnTasks freeList[gnBackTask]

func (t *gnBackTask) Run(lo, hi int) {
	c, hw := t.c, t.hw
	cpg := c / t.groups
	size := cpg * hw
	for u := lo; u < hi; u++ {
		i, g := u/t.groups, u%t.groups
		off := (i*c + g*cpg) * hw
		src := t.x[off : off+size]
		var m, r float64
		if t.mean != nil {
			m, r = float64(t.mean[u]), float64(t.rstd[u])
		} else {
			m = sum64(src) / float64(size)
			r = 1 / math.Sqrt(sqdev64(src, m)/float64(size)+float64(t.eps))
		}
		// With xhat = (x - m) r and g = dy * w:
		// dx = r (g - mean(g) - xhat mean(g xhat)).
		pw, pb := t.part[2*i*c:][:c], t.part[(2*i+1)*c:][:c]
		var sg, sgx float64
		for ch := 0; ch < cpg; ch++ {
			cc := g*cpg + ch
			w := float64(t.weight[cc])
			d := t.dy[off+ch*hw : off+(ch+1)*hw]
			xs := src[ch*hw : (ch+1)*hw]
			xs = xs[:len(d)]
			// Four running sums each, so that the adds do not wait on
			// one another; they are combined in a fixed order.
			var a0, a1, a2, a3, b0, b1, b2, b3 float64
			j := 0
			if useGNBackVector && len(d) >= 4 {
				var sums [8]float64
				j = len(d) &^ 3
				gnBackSumsAVX2(&d[0], &xs[0], j, m, r, &sums)
				a0, a1, a2, a3 = sums[0], sums[1], sums[2], sums[3]
				b0, b1, b2, b3 = sums[4], sums[5], sums[6], sums[7]
			}
			for ; j+4 <= len(d); j += 4 {
				v0, v1, v2, v3 := float64(d[j]), float64(d[j+1]), float64(d[j+2]), float64(d[j+3])
				a0 += v0
				a1 += v1
				a2 += v2
				a3 += v3
				b0 += v0 * ((float64(xs[j]) - m) * r)
				b1 += v1 * ((float64(xs[j+1]) - m) * r)
				b2 += v2 * ((float64(xs[j+2]) - m) * r)
				b3 += v3 * ((float64(xs[j+3]) - m) * r)
			}
			for ; j < len(d); j++ {
				v := float64(d[j])
				a0 += v
				b0 += v * ((float64(xs[j]) - m) * r)
			}
			sdy := (a0 + a1) + (a2 + a3)
			sdyx := (b0 + b1) + (b2 + b3)
			pw[cc] = float32(sdyx)
			pb[cc] = float32(sdy)
			sg += sdy * w
			sgx += sdyx * w
		}
		mg, mgx := sg/float64(size), sgx/float64(size)
		for ch := 0; ch < cpg; ch++ {
			cc := g*cpg + ch
			w := float64(t.weight[cc])
			d := t.dy[off+ch*hw : off+(ch+1)*hw]
			xs := src[ch*hw : (ch+1)*hw]
			out := t.dx[off+ch*hw : off+(ch+1)*hw]
			xs, out = xs[:len(d)], out[:len(d)]
			// r (v w - mg - (x - m) r mgx) = v (r w) + (x a + b).
			rw, a := r*w, -r*r*mgx
			b := -r*mg - m*a
			if useGNBackVector && len(d) > 0 {
				gnBackApplyAVX512(&out[0], &d[0], &xs[0], len(d), rw, a, b)
				continue
			}
			for j, v := range d {
				out[j] += float32(float64(float64(v)*rw) + float64(float64(xs[j])*a) + b)
			}
		}
	}
}

// SiLUBackward accumulates dx += dy * d/dx[x sigmoid(x)]
// = dy * s (1 + x (1 - s)) with s = sigmoid(x).
func SiLUBackward(dx, dy, x []float32) {
	elementwiseBack(bwSiLU, dx, dy, x, 0)
}

// SiLUBackwardFromOutput is SiLUBackward given also y = SiLU(x), the
// forward's output: sigmoid(x) is y/x, which a float32 division gives to
// within a few roundings instead of an exponential (0.5 at x = 0, where y/x
// is undefined). y must be the output of SiLU for the same x.
func SiLUBackwardFromOutput(dx, dy, x, y []float32) {
	n := len(dx)
	if len(dy) < n || len(x) < n || len(y) < n {
		panic("kernel: backward operands shorter than dx")
	}
	t := bwTasks.get()
	*t = bwTask{op: bwSiLUOut, dx: dx, dy: dy, x: x, y: y, n: n}
	Parallel((n+ewBlock-1)/ewBlock, n, t)
	bwTasks.put(t)
}

// SiLUBackwardInPlace is SiLUBackwardFromOutput into a zero dx, written
// over dy: dy = dy * silu'(x), for a gradient the caller can hand on.
func SiLUBackwardInPlace(dy, x, y []float32) {
	n := len(dy)
	if len(x) < n || len(y) < n {
		panic("kernel: backward operands shorter than dy")
	}
	t := bwTasks.get()
	*t = bwTask{op: bwSiLUOutInPlace, dx: dy, dy: dy, x: x, y: y, n: n}
	Parallel((n+ewBlock-1)/ewBlock, n, t)
	bwTasks.put(t)
}

// AddInto accumulates dx += dy elementwise over len(dx).
func AddInto(dx, dy []float32) { elementwiseBack(bwAdd, dx, dy, nil, 0) }

// AddScaledInto accumulates dx += a*dy elementwise over len(dx).
func AddScaledInto(dx, dy []float32, a float32) { elementwiseBack(bwAddScaled, dx, dy, nil, a) }

// AddDividedInto accumulates dx += dy/d elementwise over len(dx).
func AddDividedInto(dx, dy []float32, d float32) { elementwiseBack(bwAddDivided, dx, dy, nil, d) }

func elementwiseBack(op bwOp, dx, dy, x []float32, a float32) {
	n := len(dx)
	if len(dy) < n || (x != nil && len(x) < n) {
		panic("kernel: backward operands shorter than dx")
	}
	t := bwTasks.get()
	*t = bwTask{op: op, dx: dx, dy: dy, x: x, a: a, n: n}
	Parallel((n+ewBlock-1)/ewBlock, n, t)
	bwTasks.put(t)
}

type bwOp int

const (
	bwSiLU           bwOp = iota // dx += dy * silu'(x), blocks of ewBlock
	bwSiLUOut                    // the same from x and y = silu(x)
	bwSiLUOutInPlace             // dx = dy * silu'(x) from x and y, dx may be dy
	bwAdd                        // dx += dy
	bwAddScaled                  // dx += a*dy
	bwAddDivided                 // dx += dy/a
	bwBias                       // dx[o] += sum of dy[:, o, :], unit o
	bwToCM                       // dx [c, n*hw] = dy [n, c, hw], unit c
	bwTranspose                  // dx = dy^T for dy [n rows, c cols], unit 32 columns
	bwCol2im                     // dx += col2im(dy), unit channel
	bwUpsample                   // dx [planes, h, w] += 2x2 sums of dy, unit plane
	bwIm2col3x3                  // dx = im2col of dy for a 3x3 "same" conv, unit channel
	bwAddFromCM                  // dx [n, c, hw] += dy [c, n*hw], unit c
	bwToPM                       // dx [n*hw, c] = dy [n, c, hw], unit 32 pixels of an image
)

// bwTask is the one task type of the backward kernels; its fields mean what
// each op's comment says.
type bwTask struct {
	op        bwOp
	dx, dy, x []float32
	y         []float32
	a         float32
	n, c, hw  int
	h, w      int
	s         ConvShape
}

var bwTasks freeList[bwTask]

func (t *bwTask) Run(lo, hi int) {
	switch t.op {
	case bwSiLU, bwSiLUOut, bwSiLUOutInPlace, bwAdd, bwAddScaled, bwAddDivided:
		i0, i1 := lo*ewBlock, min(hi*ewBlock, t.n)
		dx, dy := t.dx[i0:i1], t.dy[i0:i1]
		dy = dy[:len(dx)]
		switch t.op {
		case bwSiLU:
			x := t.x[i0:i1]
			x = x[:len(dx)]
			for i, v := range x {
				xv := float64(v)
				s := 1 / (1 + exp64(-xv))
				dx[i] += float32(float64(dy[i]) * s * (1 + xv*(1-s)))
			}
		case bwSiLUOut:
			x, y := t.x[i0:i1], t.y[i0:i1]
			x, y = x[:len(dx)], y[:len(dx)]
			dy = dy[:len(x)]
			for i, v := range x {
				var s float32 = 0.5
				if v != 0 {
					s = y[i] / v
				}
				dx[i] += dy[i] * s * (1 + v*(1-s))
			}
		case bwSiLUOutInPlace:
			x, y := t.x[i0:i1], t.y[i0:i1]
			x, y = x[:len(dx)], y[:len(dx)]
			dy = dy[:len(x)]
			for i, v := range x {
				var s float32 = 0.5
				if v != 0 {
					s = y[i] / v
				}
				dx[i] = 0 + dy[i]*s*(1+v*(1-s))
			}
		case bwAdd:
			for i, v := range dy {
				dx[i] += v
			}
		case bwAddScaled:
			a := t.a
			for i, v := range dy {
				dx[i] += a * v
			}
		case bwAddDivided:
			a := t.a
			for i, v := range dy {
				dx[i] += v / a
			}
		}
	case bwBias:
		for o := lo; o < hi; o++ {
			// Eight running sums, combined pairwise at the end, keep the
			// adds from waiting on each other; the order is still fixed.
			var acc [8]float32
			for i := 0; i < t.n; i++ {
				src := t.dy[(i*t.c+o)*t.hw:][:t.hw]
				j := 0
				for ; j+8 <= len(src); j += 8 {
					v := (*[8]float32)(src[j:])
					acc[0] += v[0]
					acc[1] += v[1]
					acc[2] += v[2]
					acc[3] += v[3]
					acc[4] += v[4]
					acc[5] += v[5]
					acc[6] += v[6]
					acc[7] += v[7]
				}
				for ; j < len(src); j++ {
					acc[j&7] += src[j]
				}
			}
			t.dx[o] += ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
		}
	case bwToCM:
		nhw := t.n * t.hw
		for o := lo; o < hi; o++ {
			for i := 0; i < t.n; i++ {
				copy(t.dx[o*nhw+i*t.hw:][:t.hw], t.dy[(i*t.c+o)*t.hw:][:t.hw])
			}
		}
	case bwToPM:
		blocks := (t.hw + 31) / 32
		c, hw := t.c, t.hw
		for u := lo; u < hi; u++ {
			i, p0 := u/blocks, (u%blocks)*32
			p1 := min(p0+32, hw)
			dst := t.dx[(i*hw+p0)*c : (i*hw+p1)*c]
			for o := 0; o < c; o++ {
				src := t.dy[(i*c+o)*hw+p0 : (i*c+o)*hw+p1]
				for k, v := range src {
					dst[k*c+o] = v
				}
			}
		}
	case bwAddFromCM:
		nhw := t.n * t.hw
		for o := lo; o < hi; o++ {
			for i := 0; i < t.n; i++ {
				d := t.dx[(i*t.c+o)*t.hw:][:t.hw]
				src := t.dy[o*nhw+i*t.hw:][:t.hw]
				for k, v := range src {
					d[k] += v
				}
			}
		}
	case bwTranspose:
		rows, cols := t.n, t.c
		const blk = 32
		for j0 := lo * blk; j0 < min(hi*blk, cols); j0 += blk {
			j1 := min(j0+blk, cols)
			for i0 := 0; i0 < rows; i0 += blk {
				i1 := min(i0+blk, rows)
				for j := j0; j < j1; j++ {
					d := t.dx[j*rows+i0 : j*rows+i1]
					for k := range d {
						d[k] = t.dy[(i0+k)*cols+j]
					}
				}
			}
		}
	case bwIm2col3x3:
		im2col3x3(t.dx, t.dy, t.s, lo, hi)
	case bwCol2im:
		col2imChannels(t.dx, t.dy, t.s, lo, hi)
	case bwUpsample:
		h, w := t.h, t.w
		w2 := 2 * w
		for p := lo; p < hi; p++ {
			src := t.dy[p*4*h*w:][:4*h*w]
			out := t.dx[p*h*w:][:h*w]
			for y := 0; y < h; y++ {
				r0 := src[2*y*w2:][:w2]
				r1 := src[(2*y+1)*w2:][:w2]
				o := out[y*w:][:w]
				for xx := range o {
					o[xx] += (r0[2*xx] + r0[2*xx+1]) + (r1[2*xx] + r1[2*xx+1])
				}
			}
		}
	}
}

// col2imChannels is col2imAdd for channels [lo, hi).
func col2imChannels(dx, cols []float32, s ConvShape, lo, hi int) {
	oh, ow := s.OutH(), s.OutW()
	hw := oh * ow
	ncols := s.N * hw
	plane := s.H * s.W
	for c := lo; c < hi; c++ {
		for n := 0; n < s.N; n++ {
			img := dx[(n*s.C+c)*plane:][:plane]
			for i := 0; i < s.KH; i++ {
				for j := 0; j < s.KW; j++ {
					src := cols[((c*s.KH+i)*s.KW+j)*ncols+n*hw:][:hw]
					// Output columns [xlo, xhi) read inside the image.
					xlo, xhi := 0, ow
					if s.Stride == 1 {
						xlo = max(0, s.PadL-j)
						xhi = min(ow, s.W+s.PadL-j)
					}
					for y := 0; y < oh; y++ {
						iy := y*s.Stride - s.PadT + i
						if iy < 0 || iy >= s.H {
							continue
						}
						d := img[iy*s.W:][:s.W]
						sr := src[y*ow:][:ow]
						if s.Stride == 1 {
							if xhi > xlo {
								dd := d[xlo-s.PadL+j : xhi-s.PadL+j]
								ss := sr[xlo:xhi]
								ss = ss[:len(dd)]
								for k, v := range ss {
									dd[k] += v
								}
							}
							continue
						}
						for xo := 0; xo < ow; xo++ {
							ix := xo*s.Stride - s.PadL + j
							if ix >= 0 && ix < s.W {
								d[ix] += sr[xo]
							}
						}
					}
				}
			}
		}
	}
}

// SoftmaxRowsBackward turns dp = dL/dp into dL/ds in place for p =
// softmax(s) row by row: ds = p (dp - sum_j dp_j p_j).
func SoftmaxRowsBackward(dp, p []float32, rows, n int) {
	for r := 0; r < rows; r++ {
		d := dp[r*n : (r+1)*n]
		pr := p[r*n : (r+1)*n]
		var dot float64
		for j, v := range d {
			dot += float64(v) * float64(pr[j])
		}
		for j, v := range d {
			d[j] = float32(float64(pr[j]) * (float64(v) - dot))
		}
	}
}

// UpsampleNearest2xBackward accumulates into dx [planes, h, w] the sum of
// the four gradients of dy [planes, 2h, 2w] each input pixel was copied to.
func UpsampleNearest2xBackward(dx, dy []float32, planes, h, w int) {
	t := bwTasks.get()
	*t = bwTask{op: bwUpsample, dx: dx[:planes*h*w], dy: dy[:planes*4*h*w], h: h, w: w}
	Parallel(planes, 5*planes*h*w, t)
	bwTasks.put(t)
}

// Attention backward pairs (image, head) below this many FLOPs per product
// run one pair per goroutine with single-threaded GEMMs; above it the pairs
// run one after another with the GEMMs themselves parallel. Each pair
// writes its own part of dq, dk and dv, so the split changes no result.
const attnBackParallelFlops = 1 << 21

func attnBackSerial(hw, d int) bool { return 2*hw*hw*d >= attnBackParallelFlops }

// AttentionBackwardWork is the scratch AttentionBackward needs, in floats.
func AttentionBackwardWork(n, heads, hw, d int) int {
	if attnBackSerial(hw, d) {
		return 3 * hw * hw
	}
	return n * heads * 3 * hw * hw
}

// AttentionBackward is the adjoint of AttentionCore (same layout and
// arguments): given do, the gradient of o, it writes (not accumulates) the
// gradients dq, dk and dv [heads*d, n*hw]. The attention probabilities are
// recomputed from q and k, one (image, head) pair at a time. work holds
// AttentionBackwardWork floats.
func AttentionBackward(dq, dk, dv, do, q, k, v []float32, n, heads, d, hw int, scale float32, work []float32) {
	if len(work) < AttentionBackwardWork(n, heads, hw, d) {
		panic("kernel: AttentionBackward: work too small")
	}
	size := heads * d * n * hw
	if len(dq) < size || len(dk) < size || len(dv) < size || len(do) < size || len(q) < size || len(k) < size || len(v) < size {
		panic("kernel: AttentionBackward: buffer too small")
	}
	t := attnBackTasks.get()
	*t = attnBackTask{dq: dq, dk: dk, dv: dv, do: do, q: q, k: k, v: v, n: n, d: d, hw: hw, scale: scale, work: work}
	if attnBackSerial(hw, d) {
		t.serial = true
		t.Run(0, n*heads)
	} else {
		Parallel(n*heads, n*heads*10*hw*hw*d, t)
	}
	attnBackTasks.put(t)
}

type attnBackTask struct {
	dq, dk, dv, do, q, k, v, work []float32
	n, d, hw                      int
	scale                         float32
	serial                        bool
}

var attnBackTasks freeList[attnBackTask]

func (t *attnBackTask) Run(lo, hi int) {
	hw, d := t.hw, t.d
	ld := t.n * hw
	for u := lo; u < hi; u++ {
		head, img := u/t.n, u%t.n
		off := head*d*ld + img*hw
		buf := t.work[:3*hw*hw]
		if !t.serial {
			buf = t.work[u*3*hw*hw:][:3*hw*hw]
		}
		p, dP, dSt := buf[:hw*hw], buf[hw*hw:2*hw*hw], buf[2*hw*hw:]
		q, k, v, do := t.q[off:], t.k[off:], t.v[off:], t.do[off:]
		// p[i, j] = softmax_j(scale sum_e q[e, i] k[e, j]), as the forward.
		blas.Sgemm(true, false, hw, hw, d, t.scale, q, ld, k, ld, 0, p, hw)
		st := softmaxTask{x: p, n: hw}
		st.Run(0, hw)
		// o[e, i] = sum_j v[e, j] p[i, j]:
		// dp[i, j] = sum_e do[e, i] v[e, j], dv[e, j] = sum_i do[e, i] p[i, j].
		blas.Sgemm(true, false, hw, hw, d, 1, do, ld, v, ld, 0, dP, hw)
		blas.Sgemm(false, false, d, hw, hw, 1, do, ld, p, hw, 0, t.dv[off:], ld)
		SoftmaxRowsBackward(dP, p, hw, hw)
		// s[i, j] = scale sum_e q[e, i] k[e, j]:
		// dq[e, i] = scale sum_j k[e, j] ds[i, j], dk[e, j] = scale sum_i q[e, i] ds[i, j].
		Transpose(dSt, dP, hw, hw)
		blas.Sgemm(false, false, d, hw, hw, t.scale, k, ld, dSt, hw, 0, t.dq[off:], ld)
		blas.Sgemm(false, false, d, hw, hw, t.scale, q, ld, dP, hw, 0, t.dk[off:], ld)
	}
}
