package blas

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"

	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// kernelNames are every kernel path Sgemm has; a test skips only those this
// CPU cannot run.
var kernelNames = []string{"avx512", "avx2", "go"}

// forEachKernel runs f with each kernel forced in turn.
func forEachKernel(t *testing.T, f func(t *testing.T)) {
	for _, name := range kernelNames {
		t.Run(name, func(t *testing.T) {
			k := kernelNamed(name)
			if k == nil {
				t.Skipf("this CPU cannot run the %s kernel", name)
			}
			saved := active
			active = k
			defer func() { active = saved }()
			f(t)
		})
	}
}

// oracle is gonum's reference Sgemm, which is row-major like ours.
func oracle(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := gblas.NoTrans, gblas.NoTrans
	if transA {
		ta = gblas.Trans
	}
	if transB {
		tb = gblas.Trans
	}
	gonum.Implementation{}.Sgemm(ta, tb, m, n, k, alpha, a, max(lda, 1), b, max(ldb, 1), beta, c, max(ldc, 1))
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = rng.Float32()*2 - 1
	}
	return s
}

type gemmCase struct {
	transA, transB bool
	m, n, k        int
	pad            int // extra columns in every leading dimension
	alpha, beta    float32
}

func (tc gemmCase) String() string {
	return fmt.Sprintf("tA=%v,tB=%v,m=%d,n=%d,k=%d,pad=%d,alpha=%v,beta=%v", tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.pad, tc.alpha, tc.beta)
}

// operands builds random A, B and C for tc with their leading dimensions;
// C is filled with NaN when beta is 0, which must not leak into the result.
func (tc gemmCase) operands(rng *rand.Rand) (a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	ar, ac := tc.m, tc.k
	if tc.transA {
		ar, ac = tc.k, tc.m
	}
	br, bc := tc.k, tc.n
	if tc.transB {
		br, bc = tc.n, tc.k
	}
	lda, ldb, ldc = ac+tc.pad, bc+tc.pad, tc.n+tc.pad
	lda, ldb, ldc = max(lda, 1), max(ldb, 1), max(ldc, 1)
	a = randSlice(rng, ar*lda)
	b = randSlice(rng, br*ldb)
	c = randSlice(rng, tc.m*ldc)
	if tc.beta == 0 {
		for i := range c {
			c[i] = float32(math.NaN())
		}
	}
	return
}

// check runs Sgemm and the oracle on the same operands and compares every
// element of C, padding included (which must be left untouched).
func (tc gemmCase) check(t *testing.T, rng *rand.Rand) {
	t.Helper()
	a, lda, b, ldb, c, ldc := tc.operands(rng)
	want := append([]float32(nil), c...)
	oracle(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, want, ldc)
	got := append([]float32(nil), c...)
	Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, got, ldc)
	// Both results carry at most (k+2) unit roundoffs of error relative to
	// |alpha|*|op(A)|*|op(B)| + |beta|*|C| (the standard bound for a
	// recursive dot product), so they differ by at most twice that.
	mag := magnitudes(tc, a, lda, b, ldb, c, ldc)
	for i := range want {
		w, g := want[i], got[i]
		if math.IsNaN(float64(w)) && math.IsNaN(float64(g)) {
			continue
		}
		tol := 2 * float64(tc.k+2) * 0x1p-24 * mag[i]
		if math.IsNaN(float64(g)) || math.Abs(float64(g)-float64(w)) > tol {
			t.Fatalf("%v: c[%d] (row %d, col %d) = %v, want %v (tolerance %g)", tc, i, i/ldc, i%ldc, g, w, tol)
		}
	}
}

// magnitudes returns |alpha|*|op(A)|*|op(B)| + |beta|*|C| in float64 for
// every element of C (0 where C is padding or beta is 0).
func magnitudes(tc gemmCase, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) []float64 {
	mag := make([]float64, len(c))
	for i := 0; i < tc.m; i++ {
		for j := 0; j < tc.n; j++ {
			var s float64
			for p := 0; p < tc.k; p++ {
				ai, bi := i*lda+p, p*ldb+j
				if tc.transA {
					ai = p*lda + i
				}
				if tc.transB {
					bi = j*ldb + p
				}
				av, bv := a[ai], b[bi]
				s += math.Abs(float64(av) * float64(bv))
			}
			s *= math.Abs(float64(tc.alpha))
			if tc.beta != 0 {
				s += math.Abs(float64(tc.beta) * float64(c[i*ldc+j]))
			}
			mag[i*ldc+j] = s
		}
	}
	return mag
}

func abs32(x float32) float32 { return float32(math.Abs(float64(x))) }

// TestSgemmConformance checks every kernel path against gonum over all
// transposes, odd and edge sizes, padded strides, and the special alphas and
// betas.
func TestSgemmConformance(t *testing.T) {
	sizes := []int{0, 1, 2, 3, 5, 7, 8, 13, 16, 17, 31, 32, 33, 47, 67}
	short := []int{1, 7, 33}
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for _, transA := range []bool{false, true} {
			for _, transB := range []bool{false, true} {
				// Every size in every dimension, with the plain alpha and beta.
				for _, m := range sizes {
					for _, n := range sizes {
						for _, k := range []int{0, 1, 5, 16, 37, 70} {
							gemmCase{transA, transB, m, n, k, (m + n + k) % 3, 1, 0}.check(t, rng)
						}
					}
				}
				// Every alpha and beta on a few shapes, with padding.
				for _, alpha := range []float32{0, 1, -0.5, 2.5} {
					for _, beta := range []float32{0, 1, 0.7} {
						for _, m := range short {
							for _, n := range short {
								for _, k := range short {
									gemmCase{transA, transB, m, n, k, 3, alpha, beta}.check(t, rng)
								}
							}
						}
					}
				}
			}
		}
	})
}

// TestSgemmLarge covers several k blocks, several column blocks and the
// parallel split, with sizes that are not multiples of any tile.
func TestSgemmLarge(t *testing.T) {
	cases := []gemmCase{
		{false, false, 67, 611, 601, 5, 1, 0},
		{true, false, 130, 97, 700, 1, -0.5, 0.7},
		{false, true, 19, 1100, 300, 0, 2.5, 1},
		{true, true, 250, 45, 513, 2, 1, 0.7},
		// B's rows 4 KB apart: the packed and the rows-of-A kernels that
		// prefetch the next panel of B (A's rows 4 KB apart too in the
		// second, which makes Sgemm pack A).
		{false, false, 40, 1000, 600, 24, 1, 0.5},
		{false, false, 21, 1000, 1000, 24, -0.5, 0},
	}
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		for _, tc := range cases {
			tc.check(t, rng)
		}
	})
}

// TestSgemmThreadsBitIdentical checks that GOMAXPROCS 1 and 2 give the same
// bits, on shapes where two goroutines split n, split m, or run alone.
func TestSgemmThreadsBitIdentical(t *testing.T) {
	cases := []gemmCase{
		{false, false, 64, 2048, 576, 0, 1, 0},
		{false, false, 130, 40, 1152, 3, 1, 0.7},
		{true, true, 77, 333, 300, 1, -0.5, 1},
		{false, true, 256, 96, 64, 0, 1, 0},
		{false, false, 40, 1003, 520, 3, 1, 0.5}, // guided blocks, ragged last
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		for _, tc := range cases {
			a, lda, b, ldb, c, ldc := tc.operands(rng)
			var results [2][]float32
			for i, procs := range []int{1, 2} {
				runtime.GOMAXPROCS(procs)
				results[i] = append([]float32(nil), c...)
				Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, results[i], ldc)
			}
			for i := range results[0] {
				if math.Float32bits(results[0][i]) != math.Float32bits(results[1][i]) {
					t.Fatalf("%v: c[%d] is %v with 1 thread and %v with 2", tc, i, results[0][i], results[1][i])
				}
			}
		}
	})
}

// TestSplitColumns checks the column blocks tasks take: they cover n in
// order, their inner edges are multiples of nr, none is wider than nc or
// than the block before it, and with two goroutines the last is one panel
// wide when n allows, so the core that finishes first waits little.
func TestSplitColumns(t *testing.T) {
	forEachKernel(t, func(t *testing.T) {
		nr, nc := active.nr, active.nc
		for _, n := range []int{1, nr - 1, nr, 3*nr + 5, 128, 512, 1003, 2048, 32768} {
			for _, procs := range []int{1, 2, 3} {
				g := &gemm{kern: active, n: n}
				g.splitColumns(procs)
				if g.cols[0] != 0 || g.cols[g.tasksN] != n || len(g.cols) != g.tasksN+1 {
					t.Fatalf("n=%d procs=%d: edges %v do not run from 0 to n", n, procs, g.cols)
				}
				for i := 1; i <= g.tasksN; i++ {
					w := g.cols[i] - g.cols[i-1]
					if w <= 0 || w > nc || w > g.colsPer || (i < g.tasksN && g.cols[i]%nr != 0) {
						t.Fatalf("n=%d procs=%d: block %d of %v is %d wide (nr %d, nc %d, colsPer %d)", n, procs, i-1, g.cols, w, nr, nc, g.colsPer)
					}
					if i > 1 && w > g.cols[i-1]-g.cols[i-2] {
						t.Fatalf("n=%d procs=%d: block %d of %v is wider than the one before", n, procs, i-1, g.cols)
					}
				}
				if last := g.cols[g.tasksN] - g.cols[g.tasksN-1]; procs > 1 && last > nr {
					t.Fatalf("n=%d procs=%d: last block of %v is %d wide, want at most %d", n, procs, g.cols, last, nr)
				}
			}
		}
	})
}

// TestSgemmNoAllocs checks that a warmed-up mid-size call allocates nothing,
// on one thread and on two.
func TestSgemmNoAllocs(t *testing.T) {
	const m, n, k = 128, 512, 1152
	rng := rand.New(rand.NewPCG(7, 8))
	a, b, c := randSlice(rng, m*k), randSlice(rng, k*n), make([]float32, m*n)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 2} {
		runtime.GOMAXPROCS(procs)
		Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
		allocs := testing.AllocsPerRun(5, func() {
			Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
		})
		if allocs != 0 {
			t.Errorf("GOMAXPROCS %d: Sgemm allocated %v times per call, want 0", procs, allocs)
		}
	}
}

// matrixPacker is a PackerB reading an ordinary row-major B, which Sgemm
// can multiply too.
type matrixPacker struct {
	b  []float32
	ld int
}

func (p *matrixPacker) PackB(dst []float32, nr, k0, kc, n0, n1 int) {
	for j := n0; j < n0+roundUp(n1-n0, nr); j++ {
		q, r := (j-n0)/nr, (j-n0)%nr
		for i := 0; i < kc; i++ {
			v := float32(0)
			if j < n1 {
				v = p.b[(k0+i)*p.ld+j]
			}
			dst[q*nr*kc+i*nr+r] = v
		}
	}
}

// TestSgemmPackedMatchesSgemm checks that a packed B gives Sgemm's bits
// with every kernel, on one thread and two, over edge sizes, several k and
// column blocks and both splits of the work.
func TestSgemmPackedMatchesSgemm(t *testing.T) {
	cases := []gemmCase{
		{m: 1, n: 1, k: 1, alpha: 1},
		{m: 7, n: 33, k: 37, pad: 2, alpha: -0.5, beta: 0.7},
		{m: 17, n: 5, k: 70, alpha: 1, beta: 1},
		{m: 67, n: 611, k: 601, pad: 5, alpha: 1},
		{m: 130, n: 40, k: 1152, pad: 3, alpha: 1, beta: 0.7},
		{m: 64, n: 2048, k: 576, alpha: 1},
		{m: 5, n: 3, k: 0, alpha: 1, beta: 0.5},
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(9, 10))
		for _, tc := range cases {
			a, lda, b, ldb, c, ldc := tc.operands(rng)
			want := append([]float32(nil), c...)
			Sgemm(false, false, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, want, ldc)
			for _, procs := range []int{1, 2} {
				runtime.GOMAXPROCS(procs)
				got := append([]float32(nil), c...)
				SgemmPacked(tc.m, tc.n, tc.k, tc.alpha, a, lda, &matrixPacker{b, ldb}, tc.beta, got, ldc)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%v, GOMAXPROCS %d: c[%d] is %v, Sgemm gives %v", tc, procs, i, got[i], want[i])
					}
				}
			}
		}
	})
}

// TestPackedAMatchesSgemm checks that a pre-packed A gives Sgemm's bits
// with every kernel, with B as a matrix (both transposes) and from a
// packer, on one thread and two; and that an A packed for one kernel still
// gives the bits of another when that one is active. Where the kernel can
// read A's rows in place, Sgemm does so for its full row panels (all but
// the k = 1024 case, whose rows would share cache sets), so this also
// checks those kernels against the packed ones.
func TestPackedAMatchesSgemm(t *testing.T) {
	cases := []gemmCase{
		{m: 1, n: 1, k: 1, alpha: 1},
		{m: 7, n: 33, k: 37, pad: 2, alpha: -0.5, beta: 0.7},
		{m: 17, n: 5, k: 70, alpha: 1, beta: 1},
		{m: 67, n: 611, k: 601, pad: 5, alpha: 1},
		{m: 130, n: 40, k: 1152, pad: 3, alpha: 1, beta: 0.7},
		{m: 16, n: 70, k: 1024, alpha: 1},
		{m: 24, n: 48, k: 300, pad: 1, alpha: 0.5, beta: 0.25},
		{m: 40, n: 1000, k: 600, pad: 24, alpha: 1, beta: 0.5},
		{m: 5, n: 3, k: 0, alpha: 1, beta: 0.5},
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	check := func(t *testing.T, tc gemmCase, what string, got, want []float32) {
		t.Helper()
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%v, %s: c[%d] is %v, Sgemm gives %v", tc, what, i, got[i], want[i])
			}
		}
	}
	other := kernels[len(kernels)-1] // the Go kernel
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 12))
		for _, tc := range cases {
			a, lda, b, ldb, c, ldc := tc.operands(rng)
			pa := NewPackedA(tc.m, tc.k, a, lda)
			saved := active
			active = other
			stale := NewPackedA(tc.m, tc.k, a, lda)
			active = saved
			if m, k := pa.Dims(); m != tc.m || k != tc.k {
				t.Fatalf("%v: Dims %d x %d", tc, m, k)
			}
			want := append([]float32(nil), c...)
			Sgemm(false, false, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, want, ldc)
			// B transposed: the same values read as B^T.
			bt := make([]float32, tc.n*max(tc.k, 1))
			for p := 0; p < tc.k; p++ {
				for j := 0; j < tc.n; j++ {
					bt[j*max(tc.k, 1)+p] = b[p*ldb+j]
				}
			}
			for _, procs := range []int{1, 2} {
				runtime.GOMAXPROCS(procs)
				got := append([]float32(nil), c...)
				SgemmA(pa, false, tc.n, tc.alpha, b, ldb, tc.beta, got, ldc)
				check(t, tc, fmt.Sprintf("SgemmA, GOMAXPROCS %d", procs), got, want)
				got = append(got[:0], c...)
				SgemmA(pa, true, tc.n, tc.alpha, bt, max(tc.k, 1), tc.beta, got, ldc)
				check(t, tc, fmt.Sprintf("SgemmA with B transposed, GOMAXPROCS %d", procs), got, want)
				got = append(got[:0], c...)
				SgemmAPacked(pa, tc.n, tc.alpha, &matrixPacker{b, ldb}, tc.beta, got, ldc)
				check(t, tc, fmt.Sprintf("SgemmAPacked, GOMAXPROCS %d", procs), got, want)
				got = append(got[:0], c...)
				SgemmA(stale, false, tc.n, tc.alpha, b, ldb, tc.beta, got, ldc)
				check(t, tc, fmt.Sprintf("packed for the go kernel, GOMAXPROCS %d", procs), got, want)
			}
		}
	})
}

// directPacker is a DirectB over a matrix whose entries with zero[i] set
// read as zeros: its panels are read in place with those lanes masked,
// except every third panel, which it asks to have packed. Its tables are
// built ahead, so concurrent calls only read them.
type directPacker struct {
	matrixPacker
	zero []bool
	tabs map[int][]int32
	used atomic.Int64 // panels handed out to be read in place
}

func newDirectPacker(b []float32, ld, k, n int, zero []bool) *directPacker {
	p := &directPacker{matrixPacker: matrixPacker{b, ld}, zero: zero, tabs: map[int][]int32{}}
	const nr, half = 32, 16
	for n0 := 0; n0+nr <= n; n0 += nr {
		t := make([]int32, 4*k)
		for i := 0; i < k; i++ {
			var mask uint32
			for l := 0; l < nr; l++ {
				if !zero[i*ld+n0+l] {
					mask |= 1 << l
				}
			}
			t[4*i], t[4*i+1], t[4*i+2] = int32(i*ld+n0), int32(i*ld+n0+half), int32(mask)
		}
		p.tabs[n0] = t
	}
	return p
}

func (p *directPacker) PackB(dst []float32, nr, k0, kc, n0, n1 int) {
	p.matrixPacker.PackB(dst, nr, k0, kc, n0, n1)
	for j := n0; j < n1; j++ {
		q, r := (j-n0)/nr, (j-n0)%nr
		for i := 0; i < kc; i++ {
			if p.zero[(k0+i)*p.ld+j] {
				dst[q*nr*kc+i*nr+r] = 0
			}
		}
	}
}

func (p *directPacker) DirectPanel(nr, n0 int) ([]float32, []int32, bool) {
	t, ok := p.tabs[n0]
	if nr != 32 || !ok || (n0/nr)%3 == 2 {
		return nil, nil, false
	}
	p.used.Add(1)
	return p.b, t, true
}

// TestDirectBMatchesSgemm checks that panels read in place give the bits
// of packed ones (Sgemm on the matrix with the masked entries zeroed),
// with every kernel, pre-packed A or not, on one thread and two.
func TestDirectBMatchesSgemm(t *testing.T) {
	cases := []gemmCase{
		{m: 8, n: 32, k: 1, alpha: 1},
		{m: 7, n: 100, k: 37, pad: 2, alpha: -0.5, beta: 0.7},
		{m: 16, n: 256, k: 288, alpha: 1},
		{m: 29, n: 611, k: 601, pad: 5, alpha: 1, beta: 1},
		{m: 67, n: 300, k: 70, alpha: 1}, // too many rows to read B in place
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(13, 14))
		for _, tc := range cases {
			a, lda, b, ldb, c, ldc := tc.operands(rng)
			zero := make([]bool, len(b))
			zb := append([]float32(nil), b...)
			for i := range zero {
				if rng.IntN(5) == 0 {
					zero[i], zb[i] = true, 0
				}
			}
			want := append([]float32(nil), c...)
			Sgemm(false, false, tc.m, tc.n, tc.k, tc.alpha, a, lda, zb, ldb, tc.beta, want, ldc)
			pa := NewPackedA(tc.m, tc.k, a, lda)
			for _, procs := range []int{1, 2} {
				runtime.GOMAXPROCS(procs)
				d := newDirectPacker(b, ldb, tc.k, tc.n, zero)
				got := append([]float32(nil), c...)
				SgemmPacked(tc.m, tc.n, tc.k, tc.alpha, a, lda, d, tc.beta, got, ldc)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%v, GOMAXPROCS %d: c[%d] is %v, Sgemm gives %v", tc, procs, i, got[i], want[i])
					}
				}
				got = append(got[:0], c...)
				SgemmAPacked(pa, tc.n, tc.alpha, d, tc.beta, got, ldc)
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%v, packed A, GOMAXPROCS %d: c[%d] is %v, Sgemm gives %v", tc, procs, i, got[i], want[i])
					}
				}
				if active.fnDirect != nil && ceilDiv(tc.m, active.mr) <= maxDirectPanelsM && d.used.Load() == 0 {
					t.Fatalf("%v: no panel was read in place", tc)
				}
			}
		}
	})
}

// TestSgemmConvMatchesSgemm checks the convolution epilogue against Sgemm
// and then the NCHW reorder with the bias, then a residual, added: the
// same bits with every
// kernel, B packed or read in place, A packed ahead or not, C image-major
// or plain, on one thread and two.
func TestSgemmConvMatchesSgemm(t *testing.T) {
	type conv struct{ m, k, hw, images int }
	// hw 48 and 16 leave panels of 16 columns (laid out plainly only:
	// image-major needs a multiple of 32).
	cases := []conv{{8, 9, 32, 1}, {16, 144, 64, 3}, {13, 37, 32, 5}, {64, 300, 1024, 2}, {130, 20, 64, 2}, {24, 300, 48, 1}, {16, 1152, 16, 1}}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	forEachKernel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(17, 18))
		for _, tc := range cases {
			n := tc.hw * tc.images
			a, b := randSlice(rng, tc.m*tc.k), randSlice(rng, tc.k*n)
			bias := randSlice(rng, tc.m)
			res := randSlice(rng, tc.m*n) // the residual, laid out as C
			zero := make([]bool, len(b))
			out := make([]float32, tc.m*n)
			Sgemm(false, false, tc.m, n, tc.k, 1, a, tc.k, b, n, 0, out, n)
			want := make([]float32, len(out))
			plain := make([]float32, len(out))
			for i := 0; i < tc.m; i++ {
				for j := 0; j < n; j++ {
					v := out[i*n+j] + bias[i]
					plain[i*n+j] = v + res[i*n+j]
					k := (j/tc.hw)*tc.m*tc.hw + i*tc.hw + j%tc.hw
					want[k] = v + res[k]
				}
			}
			pa := NewPackedA(tc.m, tc.k, a, tc.k)
			for _, procs := range []int{1, 2} {
				runtime.GOMAXPROCS(procs)
				for _, packed := range []*PackedA{nil, pa} {
					for _, direct := range []bool{false, true} {
						var src PackerB = &matrixPacker{b, n}
						if direct {
							src = newDirectPacker(b, n, tc.k, n, zero)
						}
						got := make([]float32, len(want))
						what := fmt.Sprintf("%+v, GOMAXPROCS %d, packed A %v, in place %v", tc, procs, packed != nil, direct)
						if tc.hw%32 == 0 {
							SgemmConv(tc.m, n, tc.k, a, packed, src, got, Epilogue{Bias: bias, Add: res, ImageHW: tc.hw})
							for i := range want {
								if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
									t.Fatalf("%s: image-major c[%d] is %v, want %v", what, i, got[i], want[i])
								}
							}
						}
						SgemmConv(tc.m, n, tc.k, a, packed, src, got, Epilogue{Bias: bias, Add: res})
						for i := range plain {
							if math.Float32bits(got[i]) != math.Float32bits(plain[i]) {
								t.Fatalf("%s: c[%d] is %v, want %v", what, i, got[i], plain[i])
							}
						}
					}
				}
			}
		}
	})
}

// TestHalfKernelMatchesKernel checks the narrow kernels against the full
// ones on the first half of a panel's columns, bit for bit, writing and
// accumulating into C, and that they leave the other columns alone.
func TestHalfKernelMatchesKernel(t *testing.T) {
	ran := false
	for _, k := range kernels {
		if k.fnHalf == nil {
			continue
		}
		ran = true
		rng := rand.New(rand.NewPCG(5, 6))
		for _, kc := range []int{1, 3, 4, 7, 64, 231} {
			a, b := randSlice(rng, k.mr*kc), randSlice(rng, k.nr*kc)
			c0 := randSlice(rng, k.mr*k.nr)
			for _, loadC := range []bool{false, true} {
				want := append([]float32(nil), c0...)
				got := append([]float32(nil), c0...)
				k.fn(kc, a, b, want, k.nr, 0.5, -1.5, loadC)
				k.fnHalf(kc, a, b, got, k.nr, 0.5, -1.5, loadC)
				for i := range got {
					w := want[i]
					if i%k.nr >= k.nr/2 {
						w = c0[i]
					}
					if math.Float32bits(got[i]) != math.Float32bits(w) {
						t.Fatalf("%s kc=%d loadC=%v: c[%d] = %v, want %v", k.name, kc, loadC, i, got[i], w)
					}
				}
			}
		}
	}
	if !ran && kernelNamed("avx512") != nil {
		t.Fatal("the AVX-512 kernel has no half-width variant")
	}
}
