package kernel

import (
	"math"

	"github.com/ldm-go/ldm/internal/blas"
)

// The backward kernels below accumulate into their destinations (dx, dw,
// db): a tensor used twice receives the sum of both gradients, and parameter
// gradients add up over micro-batches. Every sum runs in one fixed order, so
// gradients are bit-identical whatever GOMAXPROCS is.

// ConvBackwardWork is the scratch size Conv2dBackward needs for shape s.
func ConvBackwardWork(s ConvShape) int {
	k, nc := s.ColRows(), s.ColCols()
	return k*nc + 2*s.OutC*nc + k*s.OutC
}

// Conv2dBackward accumulates the gradients of dst = conv(x, weight) + bias
// given dy = dL/ddst [N, OutC, OH, OW]: dx (may be nil when x needs no
// gradient), dw [OutC, C, KH, KW] and db [OutC] (nil when there is no bias).
// work holds at least ConvBackwardWork(s) floats.
func Conv2dBackward(dx, dw, db, dy, x, weight []float32, s ConvShape, work []float32) {
	oh, ow := s.OutH(), s.OutW()
	hw := oh * ow
	k := s.ColRows()
	nc := s.N * hw
	if len(dy) < s.N*s.OutC*hw || len(work) < ConvBackwardWork(s) {
		panic("kernel: Conv2dBackward: buffer too small")
	}
	cols := work[:k*nc]
	work = work[k*nc:]
	dyr := work[:s.OutC*nc] // dy as [OutC, N*HW]
	work = work[s.OutC*nc:]
	dyt := work[:nc*s.OutC] // its transpose [N*HW, OutC]
	work = work[nc*s.OutC:]
	dwt := work[:k*s.OutC] // dw transposed [K, OutC]
	work = work[k*s.OutC:]

	for o := 0; o < s.OutC; o++ {
		for n := 0; n < s.N; n++ {
			copy(dyr[o*nc+n*hw:][:hw], dy[(n*s.OutC+o)*hw:][:hw])
		}
	}
	if db != nil {
		for o := 0; o < s.OutC; o++ {
			var sum float32
			for _, v := range dyr[o*nc : (o+1)*nc] {
				sum += v
			}
			db[o] += sum
		}
	}
	// dw^T [K, OutC] = cols [K, NHW] * dyr^T [NHW, OutC]; both operands are
	// read row by row, which is what makes the GEMM fast.
	Im2col(cols, x, s)
	Transpose(dyt, dyr, s.OutC, nc)
	blas.Sgemm(false, false, k, s.OutC, nc, 1, cols, nc, dyt, s.OutC, 0, dwt, s.OutC)
	for o := 0; o < s.OutC; o++ {
		row := dw[o*k : (o+1)*k]
		for i := range row {
			row[i] += dwt[i*s.OutC+o]
		}
	}
	if dx == nil {
		return
	}
	// dcols [K, NHW] = weight^T [K, OutC] * dyr [OutC, NHW], reusing cols.
	blas.Sgemm(true, false, k, nc, s.OutC, 1, weight, k, dyr, nc, 0, cols, nc)
	Col2im(dx, cols, s)
}

// GroupNormBackward accumulates the gradients of GroupNorm (same arguments
// as the forward) given dy: dx, dw and db. The statistics are recomputed
// from x in float64, as the forward computes them.
func GroupNormBackward(dx, dw, db, dy, x, weight []float32, n, c, hw, groups int, eps float32) {
	if c%groups != 0 {
		panic("kernel: GroupNormBackward: channels not divisible by groups")
	}
	cpg := c / groups
	size := cpg * hw
	for i := 0; i < n; i++ {
		for g := 0; g < groups; g++ {
			off := (i*c + g*cpg) * hw
			src := x[off : off+size]
			var s float64
			for _, v := range src {
				s += float64(v)
			}
			m := s / float64(size)
			var ss float64
			for _, v := range src {
				d := float64(v) - m
				ss += d * d
			}
			r := 1 / math.Sqrt(ss/float64(size)+float64(eps))
			// With xhat = (x - m) r and g = dy * w:
			// dx = r (g - mean(g) - xhat mean(g xhat)).
			var sg, sgx float64
			for ch := 0; ch < cpg; ch++ {
				cc := g*cpg + ch
				w := float64(weight[cc])
				var sdy, sdyx float64
				d := dy[off+ch*hw : off+(ch+1)*hw]
				xs := src[ch*hw : (ch+1)*hw]
				for j, v := range d {
					xh := (float64(xs[j]) - m) * r
					sdy += float64(v)
					sdyx += float64(v) * xh
				}
				dw[cc] += float32(sdyx)
				db[cc] += float32(sdy)
				sg += sdy * w
				sgx += sdyx * w
			}
			mg, mgx := sg/float64(size), sgx/float64(size)
			for ch := 0; ch < cpg; ch++ {
				cc := g*cpg + ch
				w := float64(weight[cc])
				d := dy[off+ch*hw : off+(ch+1)*hw]
				xs := src[ch*hw : (ch+1)*hw]
				out := dx[off+ch*hw : off+(ch+1)*hw]
				for j, v := range d {
					xh := (float64(xs[j]) - m) * r
					out[j] += float32(r * (float64(v)*w - mg - xh*mgx))
				}
			}
		}
	}
}

// SiLUBackward accumulates dx += dy * d/dx[x sigmoid(x)]
// = dy * s (1 + x (1 - s)) with s = sigmoid(x).
func SiLUBackward(dx, dy, x []float32) {
	for i, v := range x {
		xv := float64(v)
		s := 1 / (1 + math.Exp(-xv))
		dx[i] += float32(float64(dy[i]) * s * (1 + xv*(1-s)))
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
	w2 := 2 * w
	for p := 0; p < planes; p++ {
		src := dy[p*4*h*w:][:4*h*w]
		out := dx[p*h*w:][:h*w]
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
