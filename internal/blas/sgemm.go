package blas

import (
	"fmt"
	"sync/atomic"

	"github.com/ldm-go/ldm/internal/workers"
)

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major matrices, where
// op(X) is X or its transpose. op(A) is m x k, op(B) is k x n, C is m x n;
// lda, ldb and ldc are the row strides. When beta is 0, C is not read (NaNs
// in C do not propagate).
//
// Each element of C is accumulated over k in the same order whatever the
// number of threads, so results are bit-identical for any GOMAXPROCS.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkArgs(transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
	multiply(transA, transB, m, n, k, alpha, a, lda, nil, b, ldb, nil, beta, c, ldc)
}

// PackerB supplies the B operand of SgemmPacked block by block, for a B
// that is never stored as a matrix: a convolution builds the im2col columns
// of its input straight into the packed panels instead of writing a column
// matrix larger than the cache and reading it back.
type PackerB interface {
	// PackB writes rows [k0, k0+kc) and columns [n0, n1) of B as nr-wide
	// panels of kc steps: element (k0+p, n0+q*nr+r) goes to
	// dst[q*nr*kc+p*nr+r]. The columns of the last panel past n1 must be
	// zeros. Calls for disjoint blocks may run at the same time.
	PackB(dst []float32, nr, k0, kc, n0, n1 int)
}

// DirectB is a PackerB whose full panels a kernel may instead read in
// place, as runs of an array that a table describes: a convolution reads
// each row of a panel from its input planes shifted per kernel tap, so
// reading them where they are saves writing the panel. Results are the bits
// of the packed panels.
type DirectB interface {
	PackerB
	// DirectPanel describes the nr columns from n0, every row of B: row p's
	// first nr/2 columns are base[tab[4p]+l], its last nr/2 base[tab[4p+1]+l],
	// for the lanes l whose bits are set in the low and high halves of
	// tab[4p+2] (nr/2 bits each); the other entries are zeros. Every lane
	// set lies inside base. ok is false when the panel must be packed.
	DirectPanel(nr, n0 int) (base []float32, tab []int32, ok bool)
}

// SgemmPacked is Sgemm without transposes whose k x n operand B is
// supplied by b in packed blocks. Its results are the bits Sgemm gives for
// the same B.
func SgemmPacked(m, n, k int, alpha float32, a []float32, lda int, b PackerB, beta float32, c []float32, ldc int) {
	if k < 0 {
		panic(fmt.Sprintf("blas: negative dimension k=%d", k))
	}
	checkArgs(false, false, m, n, 0, len(a), lda, 0, max(n, 1), len(c), ldc)
	checkMatrix("a", m, k, len(a), lda)
	multiply(false, false, m, n, k, alpha, a, lda, nil, nil, n, b, beta, c, ldc)
}

// multiply runs a checked multiply; B comes from packer when it is not nil,
// else from b, and A from pre when it holds A packed for the active kernel.
func multiply(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, pre *PackedA, b []float32, ldb int, packer PackerB, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	g := getGemm()
	g.setup(active, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	g.packer = packer
	if pre != nil && pre.kern == active {
		g.prepacked = pre.data
	}
	g.compute()
}

// checkArgs panics on shapes no caller should produce: every caller sizes
// its buffers itself, so a mismatch is a programmer error.
func checkArgs(transA, transB bool, m, n, k, la, lda, lb, ldb, lc, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("blas: negative dimension m=%d n=%d k=%d", m, n, k))
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkMatrix("a", ar, ac, la, lda)
	checkMatrix("b", br, bc, lb, ldb)
	checkMatrix("c", m, n, lc, ldc)
}

func checkMatrix(name string, rows, cols, length, ld int) {
	if ld < max(1, cols) {
		panic(fmt.Sprintf("blas: ld%s=%d is less than the %d columns", name, ld, cols))
	}
	if rows > 0 && cols > 0 && length < (rows-1)*ld+cols {
		panic(fmt.Sprintf("blas: %s has %d elements, a %dx%d matrix with stride %d needs %d", name, length, rows, cols, ld, (rows-1)*ld+cols))
	}
}

// scaleC sets C = beta*C, writing zeros when beta is 0 so NaNs vanish.
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// gemm is the state of one Sgemm call, shared by the goroutines that work on
// it. Its buffers are kept on a free list so that steady-state calls do not
// allocate.
type gemm struct {
	kern           *microKernel
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	packer         PackerB
	// bias, when not nil, is added to each row of C after its last k
	// block, then add, when not nil, element by element; imageHW, when
	// positive, makes C image-major (Epilogue).
	bias, add []float32
	imageHW   int
	// prepacked, when not nil, is A already packed (a PackedA's data),
	// used in place of the apack buffers without packing.
	prepacked        []float32
	lda, ldb, ldc    int
	kc, mpad         int
	panelsM          int
	tasksM, tasksN   int
	rowsPer, colsPer int
	// cols holds the edges of the column blocks (splitColumns).
	cols []int
	// rowsA says the kernel reads A's full row panels where they lie;
	// the others are packed into apack[w], goroutine w's own copy, a unit
	// at a time as its tasks first need them (apacked[w] marks those
	// done). Sharing one packed copy made each core read the panels the
	// other had just written, after a barrier.
	rowsA        bool
	apack        [][]float32
	apacked      [][]bool
	bpack, tiles [][]float32
	// direct[w] holds goroutine w's panels read in place (DirectB).
	direct            [][]directPanel
	procs             int
	units2            int
	next2, done2, wid atomic.Int64
	// refs counts the goroutines still holding the call: the last to let
	// go puts it back on the free list, which may be a helper that arrives
	// after the call has returned.
	refs atomic.Int32
	// finished receives once when a helper completes the last block of C.
	finished chan struct{}
}

// minParallelFlops is the size below which a second goroutine costs more
// to wake than it saves.
const minParallelFlops = 1 << 21

// kcFor is the depth of the k blocks: equal blocks that depend on k and the
// kernel alone, so the summation order never depends on the thread count.
func kcFor(kern *microKernel, k int) int {
	nblocks := (k + kern.kc - 1) / kern.kc
	return (k + nblocks - 1) / nblocks
}

func (g *gemm) setup(kern *microKernel, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	g.kern = kern
	g.bias, g.add, g.imageHW = nil, nil, 0
	g.transA, g.transB = transA, transB
	g.m, g.n, g.k = m, n, k
	g.alpha, g.beta = alpha, beta
	g.a, g.b, g.c = a, b, c
	g.lda, g.ldb, g.ldc = lda, ldb, ldc
	mr, nr := kern.mr, kern.nr

	g.kc = kcFor(kern, k)
	g.panelsM = (m + mr - 1) / mr
	g.mpad = g.panelsM * mr

	procs := workers.Procs()
	if 2*m*n*k < minParallelFlops {
		procs = 1
	}
	g.splitColumns(procs)
	g.tasksM = 1
	g.rowsPer = g.mpad
	if g.tasksN < procs {
		// Even one panel per block is not enough: split m too.
		g.tasksM = min(ceilDiv(procs, g.tasksN), g.panelsM)
		g.rowsPer = ceilDiv(g.panelsM, g.tasksM) * mr
		g.tasksM = ceilDiv(g.mpad, g.rowsPer)
	}
	g.procs = min(procs, g.tasksM*g.tasksN)

	for len(g.bpack) < g.procs {
		g.apack = append(g.apack, nil)
		g.apacked = append(g.apacked, nil)
		g.bpack = append(g.bpack, nil)
		g.tiles = append(g.tiles, nil)
	}
	for len(g.direct) < g.procs {
		g.direct = append(g.direct, nil)
	}
	for w := 0; w < g.procs; w++ {
		g.bpack[w] = grow(g.bpack[w], g.kc*g.colsPer)
		g.tiles[w] = grow(g.tiles[w], 2*mr*nr)
	}
}

// splitColumns splits n into the column blocks that tasks take in order,
// their edges in g.cols, and sets g.colsPer to the widest. One goroutine
// takes blocks of nc columns. Several take guided blocks: each a
// 1/(2*procs) share of the columns still left, at most nc and at least one
// panel, so the blocks narrow towards the end. A core that finishes early
// then waits for at most a narrow block of the other's, where equal blocks
// left it idle for up to a whole block: a twelfth of a two-core call at
// 256x2304x2048. Edges are multiples of nr (and rows of mr), so the tiles,
// and with them the results, never depend on the split.
func (g *gemm) splitColumns(procs int) {
	nc, nr := g.kern.nc, g.kern.nr
	g.cols = append(g.cols[:0], 0)
	for j := 0; j < g.n; {
		w := min(nc, roundUp(g.n, nr))
		if procs > 1 {
			w = min(w, roundUp(ceilDiv(g.n-j, 2*procs), nr))
		}
		j = min(g.n, j+w)
		g.cols = append(g.cols, j)
	}
	g.tasksN = len(g.cols) - 1
	g.colsPer = roundUp(g.cols[1], nr)
}

// compute runs the call and hands g back to the free list (through
// release); the caller must not use g afterwards. It returns as soon as all
// of C is done: a helper that has not started yet is not waited for.
func (g *gemm) compute() {
	g.rowsA = g.prepacked == nil && !g.transA && g.kern.fnRows != nil && g.lda%1024 != 0
	if g.prepacked == nil {
		units := ceilDiv(g.k, g.kc) * g.panelsM
		for w := 0; w < g.procs; w++ {
			if cap(g.apacked[w]) < units {
				g.apacked[w] = make([]bool, units)
			}
			g.apacked[w] = g.apacked[w][:units]
			clear(g.apacked[w])
		}
	}
	g.units2 = g.tasksM * g.tasksN
	g.next2.Store(0)
	g.done2.Store(0)
	g.wid.Store(0)
	g.refs.Store(int32(g.procs))
	if g.procs > 1 {
		jobs := workers.Queue(g.procs - 1)
		for i := 1; i < g.procs; i++ {
			jobs <- g
		}
	}
	if !g.work() {
		workers.Await(g.finished)
	}
	g.release()
}

func (g *gemm) release() {
	if g.refs.Add(-1) == 0 {
		g.a, g.b, g.c, g.packer, g.prepacked, g.bias, g.add = nil, nil, nil, nil, nil, nil, nil
		for _, dp := range g.direct {
			clear(dp[:cap(dp)])
		}
		putGemm(g)
	}
}

// work is run by each of the g.procs goroutines on the call: this one and
// procs-1 helpers. Blocks of C are claimed from a counter, so a core slowed
// by another process just takes fewer of them; which goroutine runs a block
// never changes its result. work reports whether this goroutine completed
// the call's last block of C.
func (g *gemm) work() bool {
	w := int(g.wid.Add(1) - 1)
	for {
		u := int(g.next2.Add(1) - 1)
		if u >= g.units2 {
			return false
		}
		g.multiply(w, u)
		if int(g.done2.Add(1)) == g.units2 {
			return true
		}
	}
}

// packPanelA packs unit u of op(A) (m x k, k blocks of kc) into apack for
// kern: one mr-row panel of one k block. Block pc starts at pc*mpad in
// apack, and panel i at i*kcb within its block.
func packPanelA(kern *microKernel, apack []float32, transA bool, a []float32, lda, m, k, kc, mpad, panelsM, u int) {
	mr := kern.mr
	pc := (u / panelsM) * kc
	i0 := (u % panelsM) * mr
	kcb := min(kc, k-pc)
	dst := apack[pc*mpad+i0*kcb : pc*mpad+(i0+mr)*kcb]
	rows := min(mr, m-i0)
	if transA {
		// op(A)[i][p] = a[p*lda+i]: each k step is a contiguous run of rows.
		for p := 0; p < kcb; p++ {
			d := dst[p*mr : p*mr+mr]
			src := a[(pc+p)*lda+i0:]
			copy(d[:rows], src[:rows])
			clear(d[rows:])
		}
		return
	}
	switch {
	case rows == 8 && mr == 8:
		src := a[i0*lda+pc:]
		done := 0
		if kern.packA8 != nil {
			kern.packA8(dst, src, lda, kcb)
			done = kcb &^ 7
		}
		packA8(dst[8*done:], src[done:], lda, kcb-done)
		return
	case rows == 6 && mr == 6:
		packA6(dst, a[i0*lda+pc:], lda, kcb)
		return
	case rows == 4 && mr == 4:
		packA4(dst, a[i0*lda+pc:], lda, kcb)
		return
	}
	for r := 0; r < rows; r++ {
		src := a[(i0+r)*lda+pc : (i0+r)*lda+pc+kcb]
		d := dst[r:]
		for p, v := range src {
			d[p*mr] = v
		}
	}
	if rows < mr {
		for p := 0; p < kcb; p++ {
			clear(dst[p*mr+rows : p*mr+mr])
		}
	}
}

// packA8 interleaves eight rows of A (ld apart in src) k step by k step:
// reading the eight rows side by side and writing dst in order keeps both
// streams sequential.
func packA8(dst, src []float32, ld, kc int) {
	r0 := src[0*ld : 0*ld+kc]
	r1 := src[1*ld : 1*ld+kc]
	r2 := src[2*ld : 2*ld+kc]
	r3 := src[3*ld : 3*ld+kc]
	r4 := src[4*ld : 4*ld+kc]
	r5 := src[5*ld : 5*ld+kc]
	r6 := src[6*ld : 6*ld+kc]
	r7 := src[7*ld : 7*ld+kc]
	dst = dst[:8*kc]
	for p := range r0 {
		d := (*[8]float32)(dst[8*p:])
		d[0], d[1], d[2], d[3] = r0[p], r1[p], r2[p], r3[p]
		d[4], d[5], d[6], d[7] = r4[p], r5[p], r6[p], r7[p]
	}
}

// packA6 is packA8 for six rows.
func packA6(dst, src []float32, ld, kc int) {
	r0 := src[0*ld : 0*ld+kc]
	r1 := src[1*ld : 1*ld+kc]
	r2 := src[2*ld : 2*ld+kc]
	r3 := src[3*ld : 3*ld+kc]
	r4 := src[4*ld : 4*ld+kc]
	r5 := src[5*ld : 5*ld+kc]
	dst = dst[:6*kc]
	for p := range r0 {
		d := (*[6]float32)(dst[6*p:])
		d[0], d[1], d[2] = r0[p], r1[p], r2[p]
		d[3], d[4], d[5] = r3[p], r4[p], r5[p]
	}
}

// packA4 is packA8 for four rows.
func packA4(dst, src []float32, ld, kc int) {
	r0 := src[0*ld : 0*ld+kc]
	r1 := src[1*ld : 1*ld+kc]
	r2 := src[2*ld : 2*ld+kc]
	r3 := src[3*ld : 3*ld+kc]
	dst = dst[:4*kc]
	for p := range r0 {
		d := (*[4]float32)(dst[4*p:])
		d[0], d[1], d[2], d[3] = r0[p], r1[p], r2[p], r3[p]
	}
}

// packB packs columns [n0, n1) of rows [pc, pc+kcb) of op(B) into nr-wide
// panels of kcb steps each, padding the last panel with zeros.
func (g *gemm) packB(dst []float32, pc, kcb, n0, n1 int) {
	nr := g.kern.nr
	width := n1 - n0
	full := width / nr
	rest := width - full*nr
	if g.transB {
		// op(B)[p][j] = b[j*ldb+p]: each column is a contiguous run of k.
		for j := 0; j < width; j++ {
			src := g.b[(n0+j)*g.ldb+pc : (n0+j)*g.ldb+pc+kcb]
			q, r := j/nr, j%nr
			d := dst[q*nr*kcb+r:]
			for p, v := range src {
				d[p*nr] = v
			}
		}
		if rest > 0 {
			d := dst[full*nr*kcb : (full+1)*nr*kcb]
			for p := 0; p < kcb; p++ {
				clear(d[p*nr+rest : p*nr+nr])
			}
		}
		return
	}
	if full > 0 {
		g.kern.packRows(dst[:full*nr*kcb], g.b[pc*g.ldb+n0:], g.ldb, kcb, full)
	}
	if rest > 0 {
		d := dst[full*nr*kcb : (full+1)*nr*kcb]
		for p := 0; p < kcb; p++ {
			row := d[p*nr : p*nr+nr]
			copy(row, g.b[(pc+p)*g.ldb+n0+full*nr:(pc+p)*g.ldb+n1])
			clear(row[rest:])
		}
	}
}

// packRowsGo packs rows of an untransposed B into nr-wide panels: row p of
// src (ld apart) goes to dst[q*nr*rows + p*nr] for each panel q. The
// fixed-size array copy for the Go kernel's width compiles to inline moves
// instead of a memmove call per row.
func packRowsGo(nr int, dst, src []float32, ld, rows, panels int) {
	for p := 0; p < rows; p++ {
		s := src[p*ld : p*ld+panels*nr]
		for q := 0; q < panels; q++ {
			d := dst[q*nr*rows+p*nr:]
			if nr == 4 {
				*(*[4]float32)(d) = *(*[4]float32)(s[q*4:])
			} else {
				copy(d[:nr], s[q*nr:q*nr+nr])
			}
		}
	}
}

// multiply computes task u, a block of C, over all of k with goroutine w's
// buffers.
func (g *gemm) multiply(w, u int) {
	kern := g.kern
	mr, nr := kern.mr, kern.nr
	m0 := (u % g.tasksM) * g.rowsPer
	m1 := min(m0+g.rowsPer, g.m)
	n0, n1 := g.cols[u/g.tasksM], g.cols[u/g.tasksM+1]
	panels := ceilDiv(n1-n0, nr)
	tile := g.tiles[w][:mr*nr]
	dp := g.directPanels(w, n0, n1)
	inPlace := g.rowsA && dp == nil // fnDirect reads A packed
	for pc := 0; pc < g.k; pc += g.kc {
		kcb := min(g.kc, g.k-pc)
		bp := g.bpack[w][:panels*nr*kcb]
		// With a fused kernel, full panels of an untransposed B are packed
		// by the first row of tiles itself; only a ragged last panel is
		// packed ahead.
		fused := kern.fnPack != nil && !g.transB && g.packer == nil
		if dp != nil {
			// Only the panels that cannot be read in place.
			for q := range dp {
				if dp[q].tab == nil {
					j := n0 + q*nr
					g.packer.PackB(bp[q*nr*kcb:(q+1)*nr*kcb], nr, pc, kcb, j, min(j+nr, n1))
				}
			}
		} else if g.packer != nil {
			g.packer.PackB(bp, nr, pc, kcb, n0, n1)
		} else if !fused {
			g.packB(bp, pc, kcb, n0, n1)
		} else if full := (n1 - n0) / nr; full < panels {
			g.packB(bp[full*nr*kcb:], pc, kcb, n0+full*nr, n1)
		}
		beta, loadC := g.beta, g.beta != 0
		if pc > 0 {
			beta, loadC = 1, true
		}
		apack := g.prepacked
		if apack == nil {
			for i := m0; i < m1; i += mr {
				if inPlace && i+mr <= g.m {
					continue
				}
				g.apack[w] = grow(g.apack[w], g.mpad*g.k)
				apack = g.apack[w]
				u := (pc/g.kc)*g.panelsM + i/mr
				if done := g.apacked[w]; !done[u] {
					packPanelA(kern, apack, g.transA, g.a, g.lda, g.m, g.k, g.kc, g.mpad, g.panelsM, u)
					done[u] = true
				}
			}
		}
		var ablock []float32
		if apack != nil {
			ablock = apack[pc*g.mpad:]
		}
		last := pc+g.kc >= g.k
		// Panel by panel of B, each kept in L1 while the row panels of A
		// stream past it: reading every B panel again from L2 for each row
		// panel (rows outermost) cost a tenth of the two-core rate.
		for q := 0; q < panels; q++ {
			j := n0 + q*nr
			bq := bp[q*nr*kcb : (q+1)*nr*kcb]
			cols := min(nr, g.n-j)
			// When B's rows are a multiple of 4 KB apart, a panel's rows
			// all fall in the same two L1 sets, where the packing pass's
			// own prefetches evict each other before use: so the rows of
			// the panel the fused kernel packs next are prefetched by this
			// panel's later row panels, a row per four k steps, and wait
			// in L2. (Other strides: no gain measured.)
			var next []float32
			nextRows, pfRow := 0, 0
			if fused && kern.fnPf != nil && kern.fnRowsPf != nil && g.ldb%1024 == 0 {
				nj, npc := j+nr, pc
				if nj+nr > n1 {
					nj, npc = n0, pc+g.kc
				}
				if npc < g.k && nj+nr <= n1 {
					next, nextRows = g.b[npc*g.ldb+nj:], min(g.kc, g.k-npc)
				}
			}
			prefetch := func() (*float32, bool) {
				if pfRow >= nextRows || kcb < 4 {
					return nil, false
				}
				p := &next[pfRow*g.ldb]
				pfRow += kcb / 4
				return p, true
			}
			for i := m0; i < m1; i += mr {
				rows := min(mr, g.m-i)
				packNow := fused && i == m0 && cols == nr
				if dp != nil && dp[q].tab != nil {
					d, ap := dp[q], ablock[i*kcb:(i+mr)*kcb]
					if rows == mr {
						ct, ldc := g.cTile(i, j)
						kern.fnDirect(kcb, ap, d.base, d.tab[4*pc:], ct, ldc, g.alpha, beta, loadC)
						g.finishTile(ct, ldc, i, j, nr, last)
						continue
					}
					kern.fnDirect(kcb, ap, d.base, d.tab[4*pc:], tile, nr, 1, 0, false)
					g.addTile(tile, i, j, rows, cols, beta, loadC, last)
					continue
				}
				if inPlace && rows == mr {
					ar := g.a[i*g.lda+pc:]
					if cols < nr {
						kern.fnRows(kcb, ar, g.lda, bq, tile, nr, 1, 0, false)
						g.addTile(tile, i, j, rows, cols, beta, loadC, last)
						continue
					}
					ct, ldc := g.cTile(i, j)
					if packNow {
						kern.fnPackRows(kcb, ar, g.lda, g.b[pc*g.ldb+j:], g.ldb, bq, ct, ldc, g.alpha, beta, loadC)
					} else if p, ok := prefetch(); ok {
						kern.fnRowsPf(kcb, ar, g.lda, bq, ct, ldc, g.alpha, beta, loadC, p, g.ldb)
					} else {
						kern.fnRows(kcb, ar, g.lda, bq, ct, ldc, g.alpha, beta, loadC)
					}
					g.finishTile(ct, ldc, i, j, nr, last)
					continue
				}
				ap := ablock[i*kcb : (i+mr)*kcb]
				if cols <= nr/2 && kern.fnHalf16 != nil && i+2*mr <= m1 {
					// Two full row panels on a panel of at most nr/2
					// columns: the 2mr x nr/2 kernel.
					a1 := ablock[(i+mr)*kcb : (i+2*mr)*kcb]
					if cols == nr/2 {
						ct, ldc := g.cTile(i, j)
						kern.fnHalf16(kcb, ap, a1, bq, ct, ldc, g.alpha, beta, loadC)
						g.finishTile(ct, ldc, i, j, cols, last)
						g.finishTile(ct[mr*ldc:], ldc, i+mr, j, cols, last)
					} else {
						t2 := g.tiles[w][:2*mr*nr]
						kern.fnHalf16(kcb, ap, a1, bq, t2, nr, 1, 0, false)
						g.addTile(t2[:mr*nr], i, j, mr, cols, beta, loadC, last)
						g.addTile(t2[mr*nr:], i+mr, j, mr, cols, beta, loadC, last)
					}
					i += mr // row panel i+mr is done too
					continue
				}
				if rows == mr && cols == nr {
					ct, ldc := g.cTile(i, j)
					if packNow {
						kern.fnPack(kcb, ap, g.b[pc*g.ldb+j:], g.ldb, bq, ct, ldc, g.alpha, beta, loadC)
					} else if p, ok := prefetch(); ok {
						kern.fnPf(kcb, ap, bq, ct, ldc, g.alpha, beta, loadC, p, g.ldb)
					} else {
						kern.fn(kcb, ap, bq, ct, ldc, g.alpha, beta, loadC)
					}
					g.finishTile(ct, ldc, i, j, nr, last)
					continue
				}
				if rows == mr && cols == nr/2 && kern.fnHalf != nil {
					ct, ldc := g.cTile(i, j)
					kern.fnHalf(kcb, ap, bq, ct, ldc, g.alpha, beta, loadC)
					g.finishTile(ct, ldc, i, j, nr/2, last)
					continue
				}
				switch {
				case packNow:
					kern.fnPack(kcb, ap, g.b[pc*g.ldb+j:], g.ldb, bq, tile, nr, 1, 0, false)
				case cols <= nr/2 && kern.fnHalf != nil:
					kern.fnHalf(kcb, ap, bq, tile, nr, 1, 0, false)
				default:
					kern.fn(kcb, ap, bq, tile, nr, 1, 0, false)
				}
				g.addTile(tile, i, j, rows, cols, beta, loadC, last)
			}
		}
	}
}

// cIndex is the position of C's element (i, j).
func (g *gemm) cIndex(i, j int) int {
	if hw := g.imageHW; hw > 0 {
		return (j/hw)*g.m*hw + i*hw + j%hw
	}
	return i*g.ldc + j
}

// cTile is where the full tile at (i, j) starts and its row stride: with
// an image-major C a tile's columns lie in one image (its width divides
// the image's).
func (g *gemm) cTile(i, j int) ([]float32, int) {
	if hw := g.imageHW; hw > 0 {
		return g.c[g.cIndex(i, j):], hw
	}
	return g.c[i*g.ldc+j:], g.ldc
}

// finishTile adds the bias, then the added tensor, to the mr x cols tile
// at (i, j) after its last k block: full tiles (cols = nr) with the
// kernel's own routines where it has them, 8x16 tiles (cols = nr/2) in Go.
func (g *gemm) finishTile(ct []float32, ldc, i, j, cols int, last bool) {
	if !last {
		return
	}
	full := cols == g.kern.nr
	if g.bias != nil {
		if full && g.kern.addBias != nil {
			g.kern.addBias(ct, ldc, g.bias[i:i+g.kern.mr])
		} else {
			addRowBias(ct, ldc, g.bias[i:i+g.kern.mr], cols)
		}
	}
	if g.add != nil {
		at := g.add[g.cIndex(i, j):]
		if full && g.kern.addTile != nil {
			g.kern.addTile(ct, at, ldc)
			return
		}
		for r := 0; r < g.kern.mr; r++ {
			row, ar := ct[r*ldc:r*ldc+cols], at[r*ldc:r*ldc+cols]
			for x := range row {
				row[x] += ar[x]
			}
		}
	}
}

// addRowBias adds bias[r] to the first cols values of each row r of c
// (rows ldc apart).
func addRowBias(c []float32, ldc int, bias []float32, cols int) {
	for r, b := range bias {
		row := c[r*ldc : r*ldc+cols]
		for x := range row {
			row[x] += b
		}
	}
}

// addTile finishes a ragged tile computed into tile: rows x cols of C at
// (i, j) become alpha*tile + beta*C, or alpha*tile without loadC, and after
// the last k block get the bias.
func (g *gemm) addTile(tile []float32, i, j, rows, cols int, beta float32, loadC, last bool) {
	nr := g.kern.nr
	if g.imageHW == 0 {
		// Rows of C are runs: the same arithmetic on slices, without an
		// index computation per element (small batches make every tile of
		// some layers ragged).
		for r := 0; r < rows; r++ {
			tr := tile[r*nr : r*nr+cols]
			cr := g.c[(i+r)*g.ldc+j:][:cols]
			if loadC {
				for x, v := range tr {
					cr[x] = g.alpha*v + beta*cr[x]
				}
			} else {
				for x, v := range tr {
					cr[x] = g.alpha * v
				}
			}
			if !last {
				continue
			}
			if g.bias != nil {
				b := g.bias[i+r]
				for x := range cr {
					cr[x] += b
				}
			}
			if g.add != nil {
				ar := g.add[(i+r)*g.ldc+j:][:cols]
				for x := range cr {
					cr[x] += ar[x]
				}
			}
		}
		return
	}
	for r := 0; r < rows; r++ {
		tr := tile[r*nr : r*nr+cols]
		var b float32
		bias := last && g.bias != nil
		if bias {
			b = g.bias[i+r]
		}
		for x, v := range tr {
			k := g.cIndex(i+r, j+x)
			if loadC {
				v = g.alpha*v + beta*g.c[k]
			} else {
				v = g.alpha * v
			}
			if bias {
				v += b
			}
			if last && g.add != nil {
				v += g.add[k]
			}
			g.c[k] = v
		}
	}
}

// maxDirectPanelsM is the most row panels of A for which B is read in
// place: reading a panel where it lies costs more per use than reading it
// packed (scattered lines, table and mask loads), which only the saved
// packing repays when few row panels use it. Measured on the MNIST VAE
// (16 to 64 rows: in place is faster) and UNet (64 to 128: packed is).
const maxDirectPanelsM = 4

// directPanel is a panel of B read in place: tab is nil for one that is
// packed.
type directPanel struct {
	base []float32
	tab  []int32
}

// directPanels returns, when the kernel can read B in place and the packer
// allows it, goroutine w's panels of columns [n0, n1), else nil.
func (g *gemm) directPanels(w, n0, n1 int) []directPanel {
	if g.kern.fnDirect == nil || g.packer == nil || g.panelsM > maxDirectPanelsM {
		return nil
	}
	d, ok := g.packer.(DirectB)
	if !ok {
		return nil
	}
	nr := g.kern.nr
	panels := ceilDiv(n1-n0, nr)
	if cap(g.direct[w]) < panels {
		g.direct[w] = make([]directPanel, panels)
	}
	dp := g.direct[w][:panels]
	for q := range dp {
		j := n0 + q*nr
		dp[q] = directPanel{}
		if j+nr > n1 {
			continue
		}
		if base, tab, ok := d.DirectPanel(nr, j); ok {
			dp[q] = directPanel{base, tab}
		}
	}
	return dp
}

// Work is a helper's share of the call (workers.Job).
func (g *gemm) Work() {
	if g.work() {
		g.finished <- struct{}{}
	}
	g.release()
}

var freeGemms = workers.FreeList[gemm]{New: func() *gemm { return &gemm{finished: make(chan struct{}, 1)} }}

func getGemm() *gemm { return freeGemms.Get() }

func putGemm(g *gemm) { freeGemms.Put(g) }

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func roundUp(a, b int) int { return ceilDiv(a, b) * b }

// PackedA is an m x k matrix packed once as the A operand of many
// multiplies: a layer's weights, which every forward pass would otherwise
// pack again. It holds a copy, so it stands for the matrix as it was when
// packed. Multiplies with it give the bits Sgemm gives with the matrix
// itself, on any kernel: packed for another kernel than the active one, it
// is packed again from the source matrix.
type PackedA struct {
	kern *microKernel
	m, k int
	a    []float32
	lda  int
	data []float32
}

// NewPackedA packs the m x k row-major matrix a (row stride lda) for the
// active kernel. a must not change while the PackedA is in use.
func NewPackedA(m, k int, a []float32, lda int) *PackedA {
	if m < 0 || k < 0 {
		panic(fmt.Sprintf("blas: negative dimension m=%d k=%d", m, k))
	}
	checkMatrix("a", m, k, len(a), lda)
	p := &PackedA{kern: active, m: m, k: k, a: a, lda: lda}
	if m == 0 || k == 0 {
		return p
	}
	kern := active
	kc := kcFor(kern, k)
	panels := ceilDiv(m, kern.mr)
	mpad := panels * kern.mr
	p.data = make([]float32, mpad*k)
	for u := 0; u < ceilDiv(k, kc)*panels; u++ {
		packPanelA(kern, p.data, false, a, lda, m, k, kc, mpad, panels, u)
	}
	return p
}

// Dims returns the rows and columns of the packed matrix.
func (p *PackedA) Dims() (m, k int) { return p.m, p.k }

// SgemmA is Sgemm(false, transB, m, n, k, ...) with A given packed.
func SgemmA(a *PackedA, transB bool, n int, alpha float32, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkArgs(false, transB, a.m, n, a.k, len(a.a), a.lda, len(b), ldb, len(c), ldc)
	multiply(false, transB, a.m, n, a.k, alpha, a.a, a.lda, a, b, ldb, nil, beta, c, ldc)
}

// SgemmAPacked is SgemmPacked with A given packed.
func SgemmAPacked(a *PackedA, n int, alpha float32, b PackerB, beta float32, c []float32, ldc int) {
	checkArgs(false, false, a.m, n, 0, len(a.a), a.lda, 0, max(n, 1), len(c), ldc)
	multiply(false, false, a.m, n, a.k, alpha, a.a, a.lda, a, nil, n, b, beta, c, ldc)
}

// Epilogue says how a convolution's GEMM finishes C.
type Epilogue struct {
	// Bias, when not nil, is added to each row of C after the sum over k:
	// the bits of adding it to the finished product.
	Bias []float32
	// Add, when not nil, is added to C element by element after the bias:
	// a residual connection, laid out as C.
	Add []float32
	// ImageHW, when positive, lays C out image-major, as the NCHW output
	// of a batched convolution: columns are ImageHW pixels per image, and
	// element (i, j) is at c[(j/ImageHW)*m*ImageHW + i*ImageHW +
	// j%ImageHW]. ImageHW must be a multiple of 32, the widest kernel
	// tile, so that no tile straddles two images.
	ImageHW int
}

// SgemmConv is SgemmPacked, with A pre-packed when a is not nil, writing
// C = A*B (alpha 1, beta 0) as e says.
func SgemmConv(m, n, k int, aw []float32, a *PackedA, b PackerB, c []float32, e Epilogue) {
	if e.ImageHW > 0 && (e.ImageHW%32 != 0 || n%e.ImageHW != 0) {
		panic(fmt.Sprintf("blas: SgemmConv: image of %d columns in %d", e.ImageHW, n))
	}
	if e.Bias != nil && len(e.Bias) < m {
		panic("blas: SgemmConv: bias shorter than m")
	}
	if e.Add != nil && len(e.Add) < m*n {
		panic("blas: SgemmConv: added tensor shorter than C")
	}
	if m == 0 || n == 0 {
		return
	}
	ldc := n
	if e.ImageHW > 0 {
		// Checked as the [images*m, ImageHW] matrix it is.
		checkMatrix("c", n/e.ImageHW*m, e.ImageHW, len(c), e.ImageHW)
	} else {
		checkMatrix("c", m, n, len(c), ldc)
	}
	checkMatrix("a", m, k, len(aw), max(k, 1))
	if k == 0 {
		for i := 0; i < m; i++ {
			var v float32
			if e.Bias != nil {
				v = e.Bias[i]
			}
			for j := 0; j < n; j++ {
				k := cIndexOf(e.ImageHW, m, ldc, i, j)
				c[k] = v
				if e.Add != nil {
					c[k] += e.Add[k]
				}
			}
		}
		return
	}
	g := getGemm()
	g.setup(active, false, false, m, n, k, 1, aw, max(k, 1), nil, n, 0, c, ldc)
	g.packer = b
	g.bias, g.add, g.imageHW = e.Bias, e.Add, e.ImageHW
	if a != nil && a.kern == active {
		g.prepacked = a.data
	}
	g.compute()
}

func cIndexOf(hw, m, ldc, i, j int) int {
	if hw > 0 {
		return (j/hw)*m*hw + i*hw + j%hw
	}
	return i*ldc + j
}

// KernelName names the active micro-kernel: "avx512", "avx2" or "go". A
// kernel that reproduces the GEMM's bits for a special shape checks it.
func KernelName() string { return active.name }

// DirectWidth is the panel width of the active kernel when it can read B
// in place (DirectB), else 0: a packer need only describe its panels for
// a kernel that will use the description.
func DirectWidth() int {
	if active.fnDirect == nil {
		return 0
	}
	return active.nr
}
