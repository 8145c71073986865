package kernel

import "github.com/ldm-go/ldm/internal/blas"

// Winograd's minimal filtering F(2x2, 3x3) (Lavin and Gray, 2016) for 3x3
// convolutions with stride 1 and padding 1: each 2x2 block of output
// pixels (a tile) is A^T [(G g G^T) . (B^T d B)] A for the 4x4 input patch
// d around it, so a tile costs 16 multiply-adds per channel pair instead
// of 36. The 16 elementwise products of a batch of tiles are 16 GEMMs,
// U_xi [OutC, C] times V_xi [C, tiles], with U the weights transformed
// once (WinogradWeights, for weights that no longer change). The
// transforms add and subtract, and halve the weights, so the results agree
// with the direct convolution to float32 rounding, not bit for bit.
//
//	B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
//	G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//	A^T = [1 1 1 0; 0 1 -1 -1]

// IsWinograd reports whether s can run as Conv2dWinograd: a 3x3
// convolution with stride 1 and padding 1 of even-sized planes.
func IsWinograd(s ConvShape) bool {
	return s.KH == 3 && s.KW == 3 && s.Stride == 1 && s.PadT == 1 && s.PadL == 1 && s.PadB == 1 && s.PadR == 1 &&
		s.H%2 == 0 && s.W%2 == 0
}

// WinogradPays reports whether a layer with weights that no longer change
// should run s as Conv2dWinograd: planes of 8x8 and more and 128x128
// channel pairs or more, where the 16 GEMMs are deep and wide enough to run
// at speed. Measured at batch 32, one thread: the CIFAR UNet's 32x32
// (128 channels), 16x16 and 8x8 (256) convolutions run 2.6, 1.6 and 1.45
// times as fast as direct; 64 channels at 8x8 the same, 128 at 4x4 slower.
func WinogradPays(s ConvShape) bool {
	return IsWinograd(s) && (WinogradAlways || s.H*s.W >= 64 && s.C*s.OutC >= 128*128)
}

// WinogradAlways makes WinogradPays true for every shape Conv2dWinograd
// can run; the golden tests set it to hold that path to the reference on
// their small models.
var WinogradAlways bool

// WinogradWeights are a 3x3 kernel [OutC, C, 3, 3] transformed for
// Conv2dWinograd: U_xi = (G g G^T)_xi for each (output, input) channel
// pair, each packed as a GEMM operand.
type WinogradWeights struct {
	outC, c int
	u       []float32 // [16][OutC][C]
	packed  [16]*blas.PackedA
}

// NewWinogradWeights transforms weight [outC, c, 3, 3].
func NewWinogradWeights(weight []float32, outC, c int) *WinogradWeights {
	w := &WinogradWeights{outC: outC, c: c, u: make([]float32, 16*outC*c)}
	n := outC * c
	for oc := 0; oc < n; oc++ {
		g := (*[9]float32)(weight[oc*9:])
		// G g: four rows of three.
		var gg [4][3]float32
		for j := 0; j < 3; j++ {
			a, b, c := g[j], g[3+j], g[6+j]
			gg[0][j] = a
			gg[1][j] = ((a + b) + c) * 0.5
			gg[2][j] = ((a - b) + c) * 0.5
			gg[3][j] = c
		}
		for i := 0; i < 4; i++ {
			a, b, c := gg[i][0], gg[i][1], gg[i][2]
			row := [4]float32{a, ((a + b) + c) * 0.5, ((a - b) + c) * 0.5, c}
			for j, v := range row {
				w.u[(i*4+j)*n+oc] = v
			}
		}
	}
	for xi := range w.packed {
		w.packed[xi] = blas.NewPackedA(outC, c, w.u[xi*n:(xi+1)*n], c)
	}
	return w
}

// winogradChunk is how many tiles one round of the 16 GEMMs takes: the
// transformed inputs and products of a round stay in the caches.
const winogradChunk = 256

// WinogradWork is the scratch Conv2dWinograd needs for s, in floats.
func WinogradWork(s ConvShape) int {
	return 16 * (s.C + s.OutC) * winogradChunk
}

// Conv2dWinograd writes conv(x, weight) + bias to dst, both NCHW, for s
// with IsWinograd(s), w the transformed weight and bias [OutC] or nil.
// work holds WinogradWork(s) floats. Tiles go through in fixed chunks, so
// an image's output never depends on its batch or the thread count.
func Conv2dWinograd(dst, x []float32, w *WinogradWeights, bias []float32, s ConvShape, work []float32) {
	if !IsWinograd(s) || w.outC != s.OutC || w.c != s.C {
		panic("kernel: Conv2dWinograd: shape or weights do not fit")
	}
	if len(dst) < s.N*s.OutC*s.H*s.W || len(x) < s.N*s.C*s.H*s.W || len(work) < WinogradWork(s) {
		panic("kernel: Conv2dWinograd: buffer too small")
	}
	tiles := s.N * (s.H / 2) * (s.W / 2)
	v := work[:16*s.C*winogradChunk]
	m := work[16*s.C*winogradChunk:][:16*s.OutC*winogradChunk]
	for t0 := 0; t0 < tiles; t0 += winogradChunk {
		tc := min(winogradChunk, tiles-t0)
		in := wgTasks.get()
		*in = wgTask{x: x, v: v, s: s, t0: t0, tc: tc}
		Parallel(s.C, 16*s.C*tc, in)
		wgTasks.put(in)
		for xi := 0; xi < 16; xi++ {
			blas.SgemmA(w.packed[xi], false, tc, 1, v[xi*s.C*tc:][:s.C*tc], tc, 0, m[xi*s.OutC*tc:][:s.OutC*tc], tc)
		}
		out := wgTasks.get()
		*out = wgTask{out: true, dst: dst, v: m, bias: bias, s: s, t0: t0, tc: tc}
		Parallel(s.OutC, 16*s.OutC*tc, out)
		wgTasks.put(out)
	}
}

// wgTask is one chunk's input transform (units: input channels) or
// output transform (units: output channels).
type wgTask struct {
	out    bool
	x, dst []float32
	v      []float32 // [16][channels][tc]
	bias   []float32
	s      ConvShape
	t0, tc int
}

var wgTasks freeList[wgTask]

func (t *wgTask) Run(lo, hi int) {
	if t.out {
		for o := lo; o < hi; o++ {
			t.outputTransform(o)
		}
		return
	}
	for c := lo; c < hi; c++ {
		t.inputTransform(c)
	}
}

// wgZero is the row read where a patch leaves the top or bottom of the
// plane, for planes up to its length wide.
var wgZero [4096]float32

// inputTransform writes B^T d B of channel c's patch for every tile of the
// chunk, V[xi][c][t], sixteen tiles of a tile row at a time with AVX-512.
func (t *wgTask) inputTransform(c int) {
	s := t.s
	h, w := s.H, s.W
	if !useWinogradAVX512 || w > len(wgZero) {
		t.inputTransformGo(c)
		return
	}
	tw, th := w/2, h/2
	per := th * tw
	stride := s.C * t.tc
	for k := 0; k < t.tc; {
		tile := t.t0 + k
		n, r := tile/per, tile%per
		ty, tx := r/tw, r%tw
		seg := min(16, tw-tx, t.tc-k)
		plane := t.x[(n*s.C+c)*h*w:][:h*w]
		var rows [4]*float32
		for i := range rows {
			rows[i] = &wgZero[0]
			if y := 2*ty - 1 + i; y >= 0 && y < h {
				rows[i] = &plane[y*w]
			}
		}
		off := 2*tx - 1
		var masks [5]uint16
		for q, first := range [4]int{0, 16, 2, 18} {
			for l := 0; l < 16; l++ {
				if x := off + first + l; x >= 0 && x < w {
					masks[q] |= 1 << l
				}
			}
		}
		masks[4] = uint16(1<<seg - 1)
		wgInputAVX512(&t.v[c*t.tc+k], stride, &rows, off, &masks)
		k += seg
	}
}

func (t *wgTask) inputTransformGo(c int) {
	s := t.s
	h, w := s.H, s.W
	tw, th := w/2, h/2
	per := th * tw
	stride := s.C * t.tc
	for k := 0; k < t.tc; k++ {
		tile := t.t0 + k
		n, r := tile/per, tile%per
		ty, tx := r/tw, r%tw
		plane := t.x[(n*s.C+c)*h*w:][:h*w]
		// The 4x4 patch from (2ty-1, 2tx-1), zero outside the plane.
		var d [4][4]float32
		for i := 0; i < 4; i++ {
			y := 2*ty - 1 + i
			if y < 0 || y >= h {
				continue
			}
			row := plane[y*w : (y+1)*w]
			for j := 0; j < 4; j++ {
				if xx := 2*tx - 1 + j; xx >= 0 && xx < w {
					d[i][j] = row[xx]
				}
			}
		}
		// d B, then B^T (d B).
		var e [4][4]float32
		for i := 0; i < 4; i++ {
			e[i] = [4]float32{d[i][0] - d[i][2], d[i][1] + d[i][2], d[i][2] - d[i][1], d[i][1] - d[i][3]}
		}
		for j := 0; j < 4; j++ {
			col := [4]float32{e[0][j] - e[2][j], e[1][j] + e[2][j], e[2][j] - e[1][j], e[1][j] - e[3][j]}
			for i, val := range col {
				t.v[(i*4+j)*stride+c*t.tc+k] = val
			}
		}
	}
}

// outputTransform writes A^T M A (plus the bias) of output channel o for
// every tile of the chunk into dst, sixteen tiles of a tile row at a time
// with AVX-512.
func (t *wgTask) outputTransform(o int) {
	if !useWinogradAVX512 {
		t.outputTransformGo(o)
		return
	}
	s := t.s
	h, w := s.H, s.W
	tw, th := w/2, h/2
	per := th * tw
	stride := s.OutC * t.tc
	var b float32
	if t.bias != nil {
		b = t.bias[o]
	}
	for k := 0; k < t.tc; {
		tile := t.t0 + k
		n, r := tile/per, tile%per
		ty, tx := r/tw, r%tw
		seg := min(16, tw-tx, t.tc-k)
		plane := t.dst[(n*s.OutC+o)*h*w:][:h*w]
		cols := 2 * seg
		masks := [3]uint16{uint16(1<<seg - 1), uint16(1<<min(cols, 16) - 1), uint16(1<<max(cols-16, 0) - 1)}
		wgOutputAVX512(&t.v[o*t.tc+k], stride, &plane[2*ty*w+2*tx], &plane[(2*ty+1)*w+2*tx], b, &masks)
		k += seg
	}
}

func (t *wgTask) outputTransformGo(o int) {
	s := t.s
	h, w := s.H, s.W
	tw, th := w/2, h/2
	per := th * tw
	stride := s.OutC * t.tc
	var b float32
	if t.bias != nil {
		b = t.bias[o]
	}
	for k := 0; k < t.tc; k++ {
		tile := t.t0 + k
		n, r := tile/per, tile%per
		ty, tx := r/tw, r%tw
		var m [4][4]float32
		for xi := 0; xi < 16; xi++ {
			m[xi/4][xi%4] = t.v[xi*stride+o*t.tc+k]
		}
		// A^T M, then (A^T M) A.
		var q [2][4]float32
		for j := 0; j < 4; j++ {
			q[0][j] = (m[0][j] + m[1][j]) + m[2][j]
			q[1][j] = (m[1][j] - m[2][j]) - m[3][j]
		}
		plane := t.dst[(n*s.OutC+o)*h*w:][:h*w]
		for i := 0; i < 2; i++ {
			row := plane[(2*ty+i)*w:]
			row[2*tx] = ((q[i][0] + q[i][1]) + q[i][2]) + b
			row[2*tx+1] = ((q[i][1] - q[i][2]) - q[i][3]) + b
		}
	}
}
