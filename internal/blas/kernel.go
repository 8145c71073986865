package blas

// microKernel is one register-blocked inner kernel. fn computes the mr x nr
// product of a packed A panel (kc steps of mr values) and a packed B panel (kc
// steps of nr values) and writes c[i*ldc+j] = alpha*acc + beta*c[i*ldc+j];
// when loadC is false c is only written, so NaNs already there vanish.
type microKernel struct {
	name   string
	mr, nr int
	// kc is the depth of a k block: a B micro-panel (kc*nr) stays in L1
	// while the row panels of A (mr*kc each) stream past it, and the B
	// block (kc x nc) stays in L2.
	kc, nc int
	fn     func(kc int, a, b, c []float32, ldc int, alpha, beta float32, loadC bool)
	// fnPack, when not nil, is fn reading B's full panel unpacked from an
	// untransposed source (rows ldb apart) and storing it packed into bpack
	// on the way, for the first pass over each panel.
	fnPack func(kc int, a, b []float32, ldb int, bpack, c []float32, ldc int, alpha, beta float32, loadC bool)
	// fnRows and fnPackRows, when not nil, are fn and fnPack reading A's
	// full panel unpacked from its mr rows (lda apart) in a row-major A.
	fnRows     func(kc int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32, loadC bool)
	fnPackRows func(kc int, a []float32, lda int, b []float32, ldb int, bpack, c []float32, ldc int, alpha, beta float32, loadC bool)
	// fnPf and fnRowsPf, when not nil, are fn and fnRows also prefetching
	// the unpacked rows of B's next panel, one row per four k steps, from
	// next (rows ldn apart), while this panel's FMAs run.
	fnPf     func(kc int, a, b, c []float32, ldc int, alpha, beta float32, loadC bool, next *float32, ldn int)
	fnRowsPf func(kc int, a []float32, lda int, b, c []float32, ldc int, alpha, beta float32, loadC bool, next *float32, ldn int)
	// fnHalf, when not nil, is fn for the first nr/2 columns alone: the
	// same bits there, for panels with no more columns than that.
	fnHalf func(kc int, a, b, c []float32, ldc int, alpha, beta float32, loadC bool)
	// fnHalf16, when not nil, is fnHalf on two packed row panels at once
	// (a0 then a1, rows of C ldc apart): the same bits on 2*mr rows.
	fnHalf16 func(kc int, a0, a1, b, c []float32, ldc int, alpha, beta float32, loadC bool)
	// fnDirect, when not nil, is fn reading B in place as DirectB
	// describes, for panels of nr/2 = 16 columns per half.
	fnDirect func(kc int, a, base []float32, tab []int32, c []float32, ldc int, alpha, beta float32, loadC bool)
	// addBias, when not nil, adds bias[r] to row r of a full mr x nr tile
	// of C (rows ldc apart), as addRowBias does.
	addBias func(c []float32, ldc int, bias []float32)
	// addTile, when not nil, adds the full mr x nr tile a to c, both with
	// rows ldc apart.
	addTile func(c, a []float32, ldc int)
	// packA8, when not nil, replaces the portable packA8 for the first
	// 8*floor(kc/8) k steps of a full eight-row panel.
	packA8 func(dst, src []float32, ld, kc int)
	// packRows packs rows of an untransposed B into `panels` full nr-wide
	// panels: row p of src (ld apart) goes to dst[q*nr*rows + p*nr].
	packRows func(dst, src []float32, ld, rows, panels int)
}

// goKernel is the portable kernel, also the one every CPU without AVX2 runs.
var goKernel = &microKernel{name: "go", mr: 4, nr: 4, kc: 256, nc: 512, fn: kernelGo, packRows: packRows4}

// active is the kernel Sgemm uses; tests switch it to force each path.
var active = kernels[0]

// kernelNamed returns the available kernel with that name, or nil when this
// CPU or architecture cannot run it.
func kernelNamed(name string) *microKernel {
	for _, k := range kernels {
		if k.name == name {
			return k
		}
	}
	return nil
}

// kernelGo is a 4x4 register tile: 16 accumulators plus 8 operands fit the
// 32 floating-point registers of arm64 without spilling.
func kernelGo(kc int, a, b, c []float32, ldc int, alpha, beta float32, loadC bool) {
	a = a[:4*kc]
	b = b[:4*kc]
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	var c20, c21, c22, c23 float32
	var c30, c31, c32, c33 float32
	for len(a) >= 4 && len(b) >= 4 {
		a0, a1, a2, a3 := a[0], a[1], a[2], a[3]
		b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
		a = a[4:]
		b = b[4:]
	}
	storeRow4(c[0*ldc:0*ldc+4], c00, c01, c02, c03, alpha, beta, loadC)
	storeRow4(c[1*ldc:1*ldc+4], c10, c11, c12, c13, alpha, beta, loadC)
	storeRow4(c[2*ldc:2*ldc+4], c20, c21, c22, c23, alpha, beta, loadC)
	storeRow4(c[3*ldc:3*ldc+4], c30, c31, c32, c33, alpha, beta, loadC)
}

func storeRow4(c []float32, v0, v1, v2, v3, alpha, beta float32, loadC bool) {
	c = c[:4]
	if loadC {
		c[0] = alpha*v0 + beta*c[0]
		c[1] = alpha*v1 + beta*c[1]
		c[2] = alpha*v2 + beta*c[2]
		c[3] = alpha*v3 + beta*c[3]
		return
	}
	c[0] = alpha * v0
	c[1] = alpha * v1
	c[2] = alpha * v2
	c[3] = alpha * v3
}

func packRows4(dst, src []float32, ld, rows, panels int) { packRowsGo(4, dst, src, ld, rows, panels) }
