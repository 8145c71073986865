package kernel

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ldm-go/ldm/internal/blas"
)

// TestConvPackerMatchesIm2col checks the packed panels convPacker builds
// against the column matrix of the element-by-element im2col, for the
// panel widths of every GEMM kernel and blocks that start and end anywhere,
// with the AVX-512 packing (where the CPU has it) and the portable loop.
func TestConvPackerMatchesIm2col(t *testing.T) {
	defer func(saved bool) { useMaskedPack = saved }(useMaskedPack)
	for _, masked := range []bool{true, false} {
		if masked && !hasMaskedPack {
			t.Log("no AVX-512: only the portable packing is checked")
			continue
		}
		useMaskedPack = masked
		t.Run(map[bool]string{true: "avx512", false: "go"}[masked], checkConvPacker)
	}
}

func checkConvPacker(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	shapes := []ConvShape{
		{N: 3, C: 4, H: 8, W: 8, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 5, C: 3, H: 4, W: 4, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 7, C: 2, H: 2, W: 2, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 2, C: 2, H: 7, W: 5, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 2, C: 3, H: 1, W: 9, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 3, C: 5, H: 6, W: 3, KH: 1, KW: 1},
		{N: 2, C: 2, H: 3, W: 2, KH: 5, KW: 5, PadT: 2, PadL: 2, PadB: 2, PadR: 2},
		{N: 2, C: 2, H: 5, W: 6, KH: 3, KW: 2, PadT: 0, PadL: 1, PadB: 2, PadR: 0},
		{N: 2, C: 40, H: 8, W: 8, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1}, // blocks of over 256 rows
	}
	for _, s := range shapes {
		s.OutC, s.Stride = 1, 1
		if !isSameStride1(s) {
			t.Fatalf("%+v is not a same-size stride-1 shape", s)
		}
		k, ncols := s.ColRows(), s.ColCols()
		x := randNormal(r, s.N*s.C*s.H*s.W)
		cols := make([]float32, k*ncols)
		im2colGeneric(cols, x, s)
		p := &convPacker{x: x, s: s}
		for _, nr := range []int{4, 16, 32} {
			for _, b := range [][4]int{{0, k, 0, ncols}, {1, k - 2, nr, ncols - 1}, {k / 2, k - k/2, 3, min(ncols, 3+nr+5)}, {5, min(k-5, 300), 0, ncols}} {
				k0, kc, n0, n1 := b[0], b[1], b[2], b[3]
				if kc <= 0 || n1 <= n0 {
					continue
				}
				panels := (n1 - n0 + nr - 1) / nr
				got := make([]float32, panels*nr*kc)
				for i := range got {
					got[i] = float32(math.NaN())
				}
				p.PackB(got, nr, k0, kc, n0, n1)
				for q := 0; q < panels; q++ {
					for i := 0; i < kc; i++ {
						for c := 0; c < nr; c++ {
							var want float32
							if j := n0 + q*nr + c; j < n1 {
								want = cols[(k0+i)*ncols+j]
							}
							if g := got[q*nr*kc+i*nr+c]; math.Float32bits(g) != math.Float32bits(want) {
								t.Fatalf("%+v, nr %d, block %v: row %d col %d is %v, im2col gives %v", s, nr, b, k0+i, n0+q*nr+c, g, want)
							}
						}
					}
				}
			}
		}
	}
}

// TestConvPackerDirectPanels checks the tables of the panels the GEMM
// reads in place against the column matrix: every lane a table reads holds
// the column entry, every lane it masks is a zero of the padding; and that
// a convolution gives the same bits with panels read in place or packed.
func TestConvPackerDirectPanels(t *testing.T) {
	if blas.DirectWidth() != 2*directRun {
		t.Skip("the active GEMM kernel does not read panels in place")
	}
	r := rand.New(rand.NewPCG(13, 14))
	shapes := []ConvShape{
		{N: 3, C: 4, H: 8, W: 8, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 5, C: 3, H: 4, W: 4, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 2, C: 2, H: 32, W: 32, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1},
		{N: 3, C: 2, H: 6, W: 8, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1}, // 48 pixels: runs straddle panels
		{N: 2, C: 3, H: 4, W: 8, KH: 2, KW: 2, PadT: 1, PadL: 0, PadB: 0, PadR: 1}, // a sub-pixel phase
		{N: 3, C: 5, H: 4, W: 8, KH: 1, KW: 1},
		{N: 2, C: 2, H: 5, W: 5, KH: 3, KW: 3, PadT: 1, PadL: 1, PadB: 1, PadR: 1}, // 25 pixels: never in place
	}
	for _, s := range shapes {
		s.OutC, s.Stride = 6, 1
		k, ncols := s.ColRows(), s.ColCols()
		x := randNormal(r, s.N*s.C*s.H*s.W)
		cols := make([]float32, k*ncols)
		im2colGeneric(cols, x, s)
		p := newConvPacker(x, s)
		inPlace := 0
		for n0 := 0; n0+32 <= ncols; n0 += 32 {
			base, tab, ok := p.DirectPanel(32, n0)
			if !ok {
				continue
			}
			inPlace++
			for row := 0; row < k; row++ {
				mask := uint32(tab[4*row+2])
				for l := 0; l < 32; l++ {
					want := cols[row*ncols+n0+l]
					off := int(tab[4*row+l/16]) + l%16
					if mask&(1<<l) == 0 {
						if want != 0 {
							t.Fatalf("%+v, panel %d, row %d, lane %d: masked, im2col holds %v", s, n0, row, l, want)
						}
						continue
					}
					if off < 0 || off >= len(base) || base[off] != want {
						t.Fatalf("%+v, panel %d, row %d, lane %d: reads offset %d, im2col holds %v", s, n0, row, l, off, want)
					}
				}
			}
		}
		p.release()
		if hw := s.H * s.W; (hw%16 == 0) != (inPlace > 0) {
			t.Fatalf("%+v: %d panels read in place", s, inPlace)
		}
		w := randNormal(r, s.OutC*k)
		direct := make([]float32, s.N*s.OutC*s.H*s.W)
		Conv2d(direct, x, w, nil, nil, s, make([]float32, ConvWork(s)))
		useDirect = false
		packed := make([]float32, len(direct))
		Conv2d(packed, x, w, nil, nil, s, make([]float32, ConvWork(s)))
		useDirect = true
		for i := range packed {
			if math.Float32bits(direct[i]) != math.Float32bits(packed[i]) {
				t.Fatalf("%+v: output %d is %v read in place, %v packed", s, i, direct[i], packed[i])
			}
		}
	}
}

// TestDirectTablesCacheBounded checks that the cache of read-in-place
// tables stays bounded over many shapes and still serves a shape's tables
// as built: the same table for the same panel offset.
func TestDirectTablesCacheBounded(t *testing.T) {
	s := ConvShape{N: 2, C: 3, H: 4, W: 8, OutC: 5, KH: 3, KW: 3, Stride: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1}
	first := directTablesFor(s)
	for c := 1; c <= 2*maxCachedTableShapes; c++ {
		o := s
		o.C = 100 + c
		directTablesFor(o)
		directTables.Lock()
		n := len(directTables.m)
		directTables.Unlock()
		if n > maxCachedTableShapes {
			t.Fatalf("%d shapes cached, want at most %d", n, maxCachedTableShapes)
		}
	}
	again := directTablesFor(s)
	if len(again) != len(first) {
		t.Fatalf("rebuilt tables: %d offsets, first build %d", len(again), len(first))
	}
	for o := range first {
		if !slices.Equal(first[o], again[o]) {
			t.Fatalf("offset %d: rebuilt table differs from the first build", o)
		}
	}
}
