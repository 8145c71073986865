package kernel

import "math"

// GroupNorm normalises x [N, C, HW] over each of groups groups of C/groups
// channels, then applies the per-channel affine weight and bias:
// dst = (x - mean) / sqrt(var + eps) * weight + bias, with the biased
// variance, as torch.nn.GroupNorm. If mean and rstd are not nil they receive
// the per-(n, group) statistics for the backward pass. dst may be x.
func GroupNorm(dst, x, weight, bias []float32, n, c, hw, groups int, eps float32, mean, rstd []float32) {
	if c%groups != 0 {
		panic("kernel: GroupNorm: channels not divisible by groups")
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
			variance := ss / float64(size)
			r := 1 / math.Sqrt(variance+float64(eps))
			if mean != nil {
				mean[i*groups+g] = float32(m)
				rstd[i*groups+g] = float32(r)
			}
			for ch := 0; ch < cpg; ch++ {
				cc := g*cpg + ch
				scale := r * float64(weight[cc])
				shift := float64(bias[cc]) - m*scale
				d := dst[off+ch*hw : off+(ch+1)*hw]
				s := src[ch*hw : (ch+1)*hw]
				for j, v := range s {
					d[j] = float32(float64(v)*scale + shift)
				}
			}
		}
	}
}

// SiLU computes dst = x * sigmoid(x). dst may be x.
func SiLU(dst, x []float32) {
	for i, v := range x {
		dst[i] = float32(float64(v) / (1 + math.Exp(-float64(v))))
	}
}

// SoftmaxRows replaces each of the rows of length n in x by its softmax.
func SoftmaxRows(x []float32, rows, n int) {
	for r := 0; r < rows; r++ {
		row := x[r*n : (r+1)*n]
		mx := float32(math.Inf(-1))
		for _, v := range row {
			if v > mx {
				mx = v
			}
		}
		var sum float64
		for j, v := range row {
			e := math.Exp(float64(v - mx))
			row[j] = float32(e)
			sum += e
		}
		inv := 1 / sum
		for j, v := range row {
			row[j] = float32(float64(v) * inv)
		}
	}
}

// UpsampleNearest2x writes the 2x nearest-neighbour upsampling of x
// [planes, h, w] to dst [planes, 2h, 2w].
func UpsampleNearest2x(dst, x []float32, planes, h, w int) {
	w2 := 2 * w
	for p := 0; p < planes; p++ {
		src := x[p*h*w:][:h*w]
		out := dst[p*4*h*w:][:4*h*w]
		for y := 0; y < h; y++ {
			row := out[2*y*w2:][:w2]
			s := src[y*w:][:w]
			for xx, v := range s {
				row[2*xx] = v
				row[2*xx+1] = v
			}
			copy(out[(2*y+1)*w2:][:w2], row)
		}
	}
}

// Transpose writes the transpose of the rows x cols matrix a to dst (cols x rows).
func Transpose(dst, a []float32, rows, cols int) {
	const blk = 32
	for i0 := 0; i0 < rows; i0 += blk {
		for j0 := 0; j0 < cols; j0 += blk {
			for i := i0; i < min(i0+blk, rows); i++ {
				for j := j0; j < min(j0+blk, cols); j++ {
					dst[j*rows+i] = a[i*cols+j]
				}
			}
		}
	}
}
