package kernel

import (
	"math/bits"
	"sync"

	"github.com/ldm-go/ldm/internal/blas"
	"github.com/ldm-go/ldm/internal/workers"
)

// Implicit-GEMM convolution: for stride-1 convolutions whose output has the
// input's size (3x3 with padding 1, 1x1 without padding, and any other
// "same" kernel up to 7x7) every row of the column matrix is an image plane
// shifted by a fixed number of elements, with the pixels that read outside
// the image zeroed. convPacker builds those rows straight into the GEMM's packed B
// panels, so the column matrix, which at the models' batch sizes is larger
// than L2, is never written and read back.

// isSameStride1 reports whether s is a stride-1 convolution, of at most 7x7,
// whose output has the input's height and width.
func isSameStride1(s ConvShape) bool {
	return s.Stride == 1 && s.PadT+s.PadB == s.KH-1 && s.PadL+s.PadR == s.KW-1 &&
		s.KH <= 7 && s.KW <= 7 &&
		s.PadT >= 0 && s.PadB >= 0 && s.PadL >= 0 && s.PadR >= 0
}

// tapInside reports whether tap (i, j) of pixel pix, for a "same"
// convolution (isSameStride1), reads inside the image rather than its
// zero padding.
func (s ConvShape) tapInside(pix, i, j int) bool {
	y, x := pix/s.W+i-s.PadT, pix%s.W+j-s.PadL
	return y >= 0 && y < s.H && x >= 0 && x < s.W
}

// convPacker is the B operand (the column matrix) of the convolution of x
// with shape s, packed on demand (blas.PackerB). Row (c, i, j) and column
// (n, pixel) hold x[n, c] at the pixel moved by (i-PadT, j-PadL).
//
// It is also a blas.DirectB: when the planes hold a whole number of
// 16-pixel runs, every full 32-column panel is two runs of plane pixels per
// row, and the kernel reads them where they lie. Which lanes a run reads
// and where depends only on the panel's pixel offset in its plane, so
// there is one table per offset (directTablesFor).
type convPacker struct {
	x []float32
	s ConvShape
	// tab[o] is the table of panels starting at pixel 16*o, nil where
	// none starts; shared, never written.
	tab [][]int32
}

// convPackers keeps packers; get one with newConvPacker and return it with
// release.
var convPackers workers.FreeList[convPacker]

func newConvPacker(x []float32, s ConvShape) *convPacker {
	p := convPackers.Get()
	p.x, p.s = x, s
	p.tab = nil
	if useDirect && blas.DirectWidth() == 2*directRun && (s.H*s.W)%directRun == 0 && s.KH*s.KW <= maxPackTaps {
		p.tab = directTablesFor(s)
	}
	return p
}

func (p *convPacker) release() {
	p.x, p.tab = nil, nil
	convPackers.Put(p)
}

// directRun is the number of columns in each half of a panel read in place.
const directRun = 16

// useDirect lets the kernel read panels in place; tests turn it off to
// compare with packed panels.
var useDirect = true

// tableKey is what a shape's tables depend on: not the batch, since the
// tables cover the panels of any number of images.
type tableKey struct{ c, h, w, kh, kw, padT, padL int }

// directTables caches the tables of the shapes convolved so far: built on
// every call, they cost 1-2% of the default UNet's forward at batch 32. A
// model has a handful of shapes; a full cache is simply emptied.
var directTables struct {
	sync.Mutex
	m map[tableKey][][]int32
}

const maxCachedTableShapes = 64

// directTablesFor returns the tables of s's panels read in place, one per
// pixel offset a panel can start at (nil where none can), building them
// the first time: a panel starts at a multiple of 32 columns, so offsets
// repeat after two planes.
func directTablesFor(s ConvShape) [][]int32 {
	key := tableKey{s.C, s.H, s.W, s.KH, s.KW, s.PadT, s.PadL}
	directTables.Lock()
	defer directTables.Unlock()
	if t, ok := directTables.m[key]; ok {
		return t
	}
	if directTables.m == nil || len(directTables.m) >= maxCachedTableShapes {
		directTables.m = map[tableKey][][]int32{}
	}
	hw := s.H * s.W
	k := s.ColRows()
	tab := make([][]int32, hw/directRun)
	for n0 := 0; n0 < 2*hw; n0 += 2 * directRun {
		if o := (n0 % hw) / directRun; tab[o] == nil {
			tab[o] = make([]int32, 4*k)
			fillTable(tab[o], s, o*directRun)
		}
	}
	directTables.m[key] = tab
	return tab
}

// fillTable writes the table of a panel whose first column is pixel pix of
// an image: its second run is the next 16 pixels, of the next image when
// the plane ends.
func fillTable(t []int32, s ConvShape, pix int) {
	h, w := s.H, s.W
	hw := h * w
	taps := s.KH * s.KW
	var off [2][maxPackTaps]int32
	var mask [2][maxPackTaps]uint32
	for half := 0; half < 2; half++ {
		start, img := pix+half*directRun, 0
		if start >= hw {
			start, img = start-hw, s.C*hw
		}
		for i := 0; i < s.KH; i++ {
			for j := 0; j < s.KW; j++ {
				tap := i*s.KW + j
				off[half][tap] = int32(img + start + (i-s.PadT)*w + (j - s.PadL))
				var m uint32
				for l := 0; l < directRun; l++ {
					if s.tapInside(start+l, i, j) {
						m |= 1 << l
					}
				}
				mask[half][tap] = m
			}
		}
	}
	r := 0
	for c := 0; c < s.C; c++ {
		co := int32(c * hw)
		for tap := 0; tap < taps; tap++ {
			e := t[4*r : 4*r+4]
			e[0], e[1] = off[0][tap]+co, off[1][tap]+co
			e[2], e[3] = int32(mask[0][tap]|mask[1][tap]<<directRun), 0
			r++
		}
	}
}

// DirectPanel implements blas.DirectB.
func (p *convPacker) DirectPanel(nr, n0 int) ([]float32, []int32, bool) {
	hw := p.s.H * p.s.W
	if nr != 2*directRun || len(p.tab) == 0 || n0%nr != 0 {
		return nil, nil, false
	}
	t := p.tab[(n0%hw)/directRun]
	if t == nil {
		return nil, nil, false
	}
	n := n0 / hw
	return p.x[n*p.s.C*hw:], t, true
}

// useMaskedPack selects the AVX-512 packing of runs of up to 32 columns;
// tests turn it off to check the portable loop.
var useMaskedPack = hasMaskedPack

// PackB implements blas.PackerB. Each panel's columns are split by image;
// within an image a row of the panel is one contiguous run of the plane.
// Panels of images smaller than 16 pixels (the default UNet's 2x2 level)
// go through packSmall instead.
func (p *convPacker) PackB(dst []float32, nr, k0, kc, n0, n1 int) {
	hw := p.s.H * p.s.W
	for q0 := n0; q0 < n1; q0 += nr {
		panel := dst[(q0-n0)*kc:][:nr*kc]
		w := min(nr, n1-q0)
		if useMaskedPack && hw < 16 && 16%hw == 0 && q0%hw == 0 && (nr == 16 || nr == 32) {
			p.packSmall(panel, nr, k0, kc, q0, w)
			continue
		}
		if w < nr {
			for r := 0; r < kc; r++ {
				clear(panel[r*nr+w : r*nr+nr])
			}
		}
		for t := 0; t < w; {
			col := q0 + t
			n := col / hw
			pix := col - n*hw
			seg := min(w-t, hw-pix)
			p.packRun(panel[t:], nr, k0, kc, n, pix, seg)
			t += seg
		}
	}
}

// packSmall packs the panel of columns [q0, q0+w) of rows [k0, k0+kc) for
// planes of fewer than 16 pixels that divide 16, the panel starting with
// an image: every 16 columns hold whole images, so a plane's pixels for a
// half of the panel fit one register (one gather), and each tap's row is a
// permutation of them with the pixels it reads outside the image zeroed
// (packPlanes). packTaps would copy runs of a few pixels, one image at a
// time. A 16-pixel plane is one run already, and gathering it is slower
// than copying it.
func (p *convPacker) packSmall(dst []float32, nr, k0, kc, q0, w int) {
	s := p.s
	hw := s.H * s.W
	taps := s.KH * s.KW
	halves := nr / 16
	first := q0 / hw
	var gidx [32]int32
	var perm [maxPackTaps * 16]int32
	var masks [2*maxPackTaps + 2]uint16
	// The panel's first w columns are valid, but the gather reads every
	// pixel of the images they fall in: a tap of a valid column may read
	// any of them.
	var valid [2]uint16
	read := (w + hw - 1) / hw * hw
	for l := 0; l < min(16*halves, read); l++ {
		if l < w {
			valid[l/16] |= 1 << (l % 16)
		}
		masks[2*taps+l/16] |= 1 << (l % 16)
		gidx[l] = int32((l/hw)*s.C*hw + l%hw)
	}
	for i := 0; i < s.KH; i++ {
		for j := 0; j < s.KW; j++ {
			t := i*s.KW + j
			var m uint16
			for l := 0; l < 16; l++ {
				if s.tapInside(l%hw, i, j) {
					m |= 1 << l
					perm[16*t+l] = int32(l + (i-s.PadT)*s.W + (j - s.PadL))
				}
			}
			masks[2*t], masks[2*t+1] = m&valid[0], m&valid[1]
		}
	}
	c0, t0 := k0/taps, k0%taps
	img := p.x[first*s.C*hw+c0*hw:]
	packPlanes(dst, img, &gidx, perm[:16*taps], masks[:2*taps+2], halves, t0, kc, hw, nr)
}

// maxPackTaps bounds the kernel taps convPacker handles (7x7); the tap
// table lives on the stack.
const maxPackTaps = 49

// packTap is where a kernel tap reads a run from: its offset in the plane,
// the part [lo, hi) of the run inside the plane, and a bit for each entry
// of the run that reads padding and must be zero.
type packTap struct {
	off, lo, hi int
	zero        uint64
}

// packRun writes, for rows [k0, k0+kc), the seg (at most 64) columns of
// image n starting at pixel pix, row r at dst[r*nr:]. The run's place in
// the image is the same for every channel, so what each tap copies and
// zeroes is worked out once, and a row is one copy and a few stores.
func (p *convPacker) packRun(dst []float32, nr, k0, kc, n, pix, seg int) {
	s := p.s
	h, w := s.H, s.W
	hw := h * w
	taps := s.KH * s.KW
	img := p.x[n*s.C*hw:][:s.C*hw]
	var tab [maxPackTaps]packTap
	// rowZero[i] and colZero[j]: the run's entries whose kernel row i or
	// column j reads above/below or left/right of the image.
	var rowZero, colZero [7]uint64
	y, x := pix/w, pix%w
	for u := 0; u < seg; u++ {
		for i := 0; i < s.KH; i++ {
			if iy := y + i - s.PadT; iy < 0 || iy >= h {
				rowZero[i] |= 1 << u
			}
		}
		for j := 0; j < s.KW; j++ {
			if ix := x + j - s.PadL; ix < 0 || ix >= w {
				colZero[j] |= 1 << u
			}
		}
		if x++; x == w {
			x = 0
			y++
		}
	}
	for i := 0; i < s.KH; i++ {
		for j := 0; j < s.KW; j++ {
			t := &tab[i*s.KW+j]
			t.off = pix + (i-s.PadT)*w + (j - s.PadL)
			// Entries that would read before or past the plane are padding,
			// so clipping the copy to the plane loses nothing.
			t.lo = min(seg, max(0, -t.off))
			t.hi = max(t.lo, min(seg, hw-t.off))
			t.zero = rowZero[i] | colZero[j]
			for u := 0; u < t.lo; u++ {
				t.zero |= 1 << u
			}
			for u := t.hi; u < seg; u++ {
				t.zero |= 1 << u
			}
		}
	}
	c, tap := k0/taps, k0%taps
	if useMaskedPack && seg <= 32 {
		// Each row is one masked load and store (packTaps), from the
		// taps' offsets and the lanes of each that read the image.
		var offs [maxPackTaps]int32
		var masks [maxPackTaps]uint32
		keep := uint32(1)<<seg - 1
		for t := range taps {
			offs[t] = int32(tab[t].off)
			masks[t] = ^uint32(tab[t].zero) & keep
		}
		packTaps(dst, img, offs[:taps], masks[:taps], c, tap, kc, hw, nr, seg)
		return
	}
	for r := 0; r < kc; r++ {
		t := &tab[tap]
		d := dst[r*nr:][:seg]
		if t.hi > t.lo {
			b := c*hw + t.off
			copySeg(d[t.lo:t.hi], img[b+t.lo:b+t.hi])
		}
		for m := t.zero; m != 0; m &= m - 1 {
			d[bits.TrailingZeros64(m)] = 0
		}
		if tap++; tap == taps {
			tap = 0
			c++
		}
	}
}

// copySeg is copy(d, s) for the short runs packing makes: the panel widths
// of the kernels are copied as fixed-size arrays, which compile to vector
// moves instead of a memmove call.
func copySeg(d, s []float32) {
	switch len(d) {
	case 32:
		*(*[32]float32)(d) = *(*[32]float32)(s)
	case 16:
		*(*[16]float32)(d) = *(*[16]float32)(s)
	case 8:
		*(*[8]float32)(d) = *(*[8]float32)(s)
	case 4:
		*(*[4]float32)(d) = *(*[4]float32)(s)
	default:
		copy(d, s)
	}
}
