package kernel

import (
	"math"

	"github.com/ldm-go/ldm/internal/workers"
)

// freeList recycles the task structs handed to Parallel, so that a kernel
// call does not allocate one.
type freeList[T any] struct{ workers.FreeList[T] }

func (f *freeList[T]) get() *T { return f.Get() }

func (f *freeList[T]) put(t *T) {
	var zero T
	*t = zero // drop references to the caller's buffers
	f.Put(t)
}

type groupNormTask struct {
	dst, x, weight, bias []float32
	act                  []float32 // receives SiLU(dst) when not nil
	c, hw, groups        int
	eps                  float32
	mean, rstd           []float32
}

var groupNormTasks freeList[groupNormTask]

// GroupNorm normalises x [N, C, HW] over each of groups groups of C/groups
// channels, then applies the per-channel affine weight and bias:
// dst = (x - mean) / sqrt(var + eps) * weight + bias, with the biased
// variance, as torch.nn.GroupNorm. If mean and rstd are not nil they receive
// the per-(n, group) statistics for the backward pass. dst may be x.
// Each (image, group) is one unit of parallel work, reduced in one order.
func GroupNorm(dst, x, weight, bias []float32, n, c, hw, groups int, eps float32, mean, rstd []float32) {
	groupNorm(dst, nil, x, weight, bias, n, c, hw, groups, eps, mean, rstd)
}

// GroupNormSiLU is GroupNorm followed by SiLU, dst = SiLU(GroupNorm(x)), in
// one pass: each channel's plane goes through SiLU while it is still in
// cache. dst may be x.
func GroupNormSiLU(dst, x, weight, bias []float32, n, c, hw, groups int, eps float32) {
	groupNorm(dst, dst, x, weight, bias, n, c, hw, groups, eps, nil, nil)
}

// GroupNormSiLUStats writes both the normalised x to norm and its SiLU to
// act in one pass, with the statistics as GroupNorm, for a training step
// that keeps both. norm may be x; act must be neither.
func GroupNormSiLUStats(norm, act, x, weight, bias []float32, n, c, hw, groups int, eps float32, mean, rstd []float32) {
	if len(act) < n*c*hw {
		panic("kernel: GroupNormSiLUStats: buffer too small")
	}
	groupNorm(norm, act, x, weight, bias, n, c, hw, groups, eps, mean, rstd)
}

func groupNorm(dst, act, x, weight, bias []float32, n, c, hw, groups int, eps float32, mean, rstd []float32) {
	if c%groups != 0 {
		panic("kernel: GroupNorm: channels not divisible by groups")
	}
	if len(x) < n*c*hw || len(dst) < n*c*hw {
		panic("kernel: GroupNorm: buffer too small")
	}
	t := groupNormTasks.get()
	*t = groupNormTask{dst: dst, act: act, x: x, weight: weight, bias: bias, c: c, hw: hw, groups: groups, eps: eps, mean: mean, rstd: rstd}
	Parallel(n*groups, n*c*hw, t)
	groupNormTasks.put(t)
}

func (t *groupNormTask) Run(lo, hi int) {
	cpg := t.c / t.groups
	hw := t.hw
	size := cpg * hw
	for u := lo; u < hi; u++ {
		i, g := u/t.groups, u%t.groups
		off := (i*t.c + g*cpg) * hw
		src := t.x[off : off+size]
		m := sum64(src) / float64(size)
		variance := sqdev64(src, m) / float64(size)
		r := 1 / math.Sqrt(variance+float64(t.eps))
		if t.mean != nil {
			t.mean[u] = float32(m)
			t.rstd[u] = float32(r)
		}
		for ch := 0; ch < cpg; ch++ {
			cc := g*cpg + ch
			scale := r * float64(t.weight[cc])
			shift := float64(t.bias[cc]) - m*scale
			affine64(t.dst[off+ch*hw:off+(ch+1)*hw], src[ch*hw:(ch+1)*hw], scale, shift)
		}
		if t.act != nil {
			// The whole group at once: a 2x2 plane is shorter than a vector.
			silu(t.act[off:off+size], t.dst[off:off+size])
		}
	}
}

// Element-wise operations, run in blocks of ewBlock elements.
const ewBlock = 4096

type ewOp int

const (
	opSiLU     ewOp = iota // dst = a * sigmoid(a)
	opAdd                  // dst = a + b
	opAddScale             // dst = (a + b) / s
	opAffine               // dst = a*s + sh
)

type ewTask struct {
	op      ewOp
	dst     []float32
	a, b    []float32
	s, sh   float32
	n       int
	planeHW int
}

var ewTasks freeList[ewTask]

func elementwise(op ewOp, dst, a, b []float32, s, sh float32) {
	n := len(dst)
	if len(a) < n || (b != nil && len(b) < n) {
		panic("kernel: element-wise operands shorter than dst")
	}
	t := ewTasks.get()
	*t = ewTask{op: op, dst: dst, a: a, b: b, s: s, sh: sh, n: n}
	Parallel((n+ewBlock-1)/ewBlock, n, t)
	ewTasks.put(t)
}

func (t *ewTask) Run(lo, hi int) {
	i0, i1 := lo*ewBlock, min(hi*ewBlock, t.n)
	d := t.dst[i0:i1]
	a := t.a[i0:i1]
	switch t.op {
	case opSiLU:
		silu(d, a)
	case opAdd:
		b := t.b[i0:i1]
		for i, v := range a {
			d[i] = v + b[i]
		}
	case opAddScale:
		b := t.b[i0:i1]
		for i, v := range a {
			d[i] = (v + b[i]) / t.s
		}
	case opAffine:
		for i, v := range a {
			d[i] = v*t.s + t.sh
		}
	}
}

// SiLU computes dst = x * sigmoid(x). dst may be x.
func SiLU(dst, x []float32) { elementwise(opSiLU, dst[:len(x)], x, nil, 0, 0) }

// Add computes dst = a + b elementwise; dst may be a or b.
func Add(dst, a, b []float32) { elementwise(opAdd, dst, a, b, 0, 0) }

// AddScale computes dst = (a + b) / s elementwise, as diffusers' residual
// connections with an output scale factor; dst may be a or b.
func AddScale(dst, a, b []float32, s float32) { elementwise(opAddScale, dst, a, b, s, 0) }

// Affine computes dst = a*s + shift elementwise; dst may be a.
func Affine(dst, a []float32, s, shift float32) { elementwise(opAffine, dst, a, nil, s, shift) }

type planeTask struct {
	op          planeOp
	dst, x, v   []float32
	c, hw, h, w int
}

type planeOp int

const (
	opAddPlane   planeOp = iota // dst[n, c, :] += v[n*c + c]
	opScaleShift                // dst[n, c, :] = dst*(1 + v[n, c]) + v[n, C + c]
	opUpsample                  // dst = nearest 2x of x, plane by plane
)

var planeTasks freeList[planeTask]

// AddPlanes adds v[i] to every element of plane i of dst [planes, hw], as
// the time embedding is added to feature maps.
func AddPlanes(dst, v []float32, planes, hw int) {
	t := planeTasks.get()
	*t = planeTask{op: opAddPlane, dst: dst[:planes*hw], v: v, hw: hw}
	Parallel(planes, planes*hw, t)
	planeTasks.put(t)
}

// ScaleShiftPlanes applies the "scale_shift" time embedding to dst
// [N, C, hw]: plane (n, c) becomes x*(1 + v[n, c]) + v[n, C + c] for v
// [N, 2C].
func ScaleShiftPlanes(dst, v []float32, n, c, hw int) {
	t := planeTasks.get()
	*t = planeTask{op: opScaleShift, dst: dst[:n*c*hw], v: v, c: c, hw: hw}
	Parallel(n*c, n*c*hw, t)
	planeTasks.put(t)
}

// UpsampleNearest2x writes the 2x nearest-neighbour upsampling of x
// [planes, h, w] to dst [planes, 2h, 2w].
func UpsampleNearest2x(dst, x []float32, planes, h, w int) {
	t := planeTasks.get()
	*t = planeTask{op: opUpsample, dst: dst[:planes*4*h*w], x: x[:planes*h*w], h: h, w: w}
	Parallel(planes, 5*planes*h*w, t)
	planeTasks.put(t)
}

func (t *planeTask) Run(lo, hi int) {
	switch t.op {
	case opAddPlane:
		for p := lo; p < hi; p++ {
			b := t.v[p]
			d := t.dst[p*t.hw : (p+1)*t.hw]
			for i := range d {
				d[i] += b
			}
		}
	case opScaleShift:
		for p := lo; p < hi; p++ {
			n, c := p/t.c, p%t.c
			scale := 1 + t.v[n*2*t.c+c]
			shift := t.v[n*2*t.c+t.c+c]
			d := t.dst[p*t.hw : (p+1)*t.hw]
			for i, v := range d {
				d[i] = v*scale + shift
			}
		}
	case opUpsample:
		h, w := t.h, t.w
		w2 := 2 * w
		for p := lo; p < hi; p++ {
			src := t.x[p*h*w:][:h*w]
			out := t.dst[p*4*h*w:][:4*h*w]
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
}

type softmaxTask struct {
	x []float32
	n int
}

var softmaxTasks freeList[softmaxTask]

// SoftmaxRows replaces each of the rows of length n in x by its softmax.
func SoftmaxRows(x []float32, rows, n int) {
	t := softmaxTasks.get()
	*t = softmaxTask{x: x[:rows*n], n: n}
	Parallel(rows, 4*rows*n, t)
	softmaxTasks.put(t)
}

func (t *softmaxTask) Run(lo, hi int) {
	n := t.n
	for r := lo; r < hi; r++ {
		row := t.x[r*n : (r+1)*n]
		mx := float32(math.Inf(-1))
		for _, v := range row {
			if v > mx {
				mx = v
			}
		}
		var sum float64
		for j, v := range row {
			e := exp64(float64(v - mx))
			row[j] = float32(e)
			sum += e
		}
		inv := 1 / sum
		for j, v := range row {
			row[j] = float32(float64(v) * inv)
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
