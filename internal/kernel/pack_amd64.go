package kernel

import "github.com/ldm-go/ldm/internal/simd"

// packTapsAVX512 writes taps rows of dst (ldd floats apart) for each of
// chans planes hw floats apart from img, tap t of a plane reading the 32
// floats at plane+offs[t]: lanes clear in masks[t] are zeros and are not
// read (masked loads do not fault), and only the lanes set in store are
// written. It prefetches the three lines of each plane from ahead bytes on.
//
//go:noescape
func packTapsAVX512(dst, img *float32, offs *int32, masks *uint32, taps, chans, hw, ldd, ahead int, store uint32)

// hasMaskedPack reports whether packTaps can run: masked 32-lane loads and
// stores need AVX-512.
var hasMaskedPack = simd.HasAVX512()

// packTaps writes rows rows of dst (ldd apart), the first of plane c's tap
// t0, then on tap by tap and plane by plane (planes hw apart in img): row
// (c, t) is seg floats from img[c*hw+offs[t]:], zeros in the lanes clear in
// masks[t]. Every lane set in masks must lie inside its plane. The
// planes' whole taps go to the kernel in one call, so a row costs its loads
// and stores alone.
func packTaps(dst, img []float32, offs []int32, masks []uint32, c, t0, rows, hw, ldd, seg int) {
	if rows == 0 {
		return
	}
	taps := len(offs)
	_ = masks[taps-1]
	_ = dst[(rows-1)*ldd+seg-1]
	_ = img[(c+(t0+rows-1)/taps+1)*hw-1]
	store := uint32(1)<<seg - 1
	// Where the last tap of the run two on in the same plane reads: when
	// a plane spans several panels, the lines the panel two on is the
	// first to need.
	ahead := 4 * (int(offs[taps-1]) + 2*seg)
	r := 0
	if t0 > 0 {
		n := min(taps-t0, rows)
		packTapsAVX512(&dst[0], &img[c*hw], &offs[t0], &masks[t0], n, 1, hw, ldd, ahead, store)
		r, c = n, c+1
	}
	if full := (rows - r) / taps; full > 0 {
		packTapsAVX512(&dst[r*ldd], &img[c*hw], &offs[0], &masks[0], taps, full, hw, ldd, ahead, store)
		r, c = r+full*taps, c+full
	}
	if r < rows {
		packTapsAVX512(&dst[r*ldd], &img[c*hw], &offs[0], &masks[0], rows-r, 1, hw, ldd, ahead, store)
	}
}

// packPlanesAVX512 packs rows rows of a panel of whole small images, the
// first of plane 0's tap t0 (see the assembly).
//
//go:noescape
func packPlanesAVX512(dst, img *float32, gidx, perm *int32, masks *uint16, halves, taps, t0, rows, hw, ldd int)

// packPlanes is packPlanesAVX512 on slices: rows rows of dst (ldd apart,
// halves 16-lane halves each), from the planes hw floats apart from img.
// Every lane gidx and masks let it read must lie inside img's planes.
func packPlanes(dst, img []float32, gidx *[32]int32, perm []int32, masks []uint16, halves, t0, rows, hw, ldd int) {
	if rows == 0 {
		return
	}
	taps := len(perm) / 16
	_ = masks[2*taps+1]
	_ = dst[(rows-1)*ldd+16*halves-1]
	_ = img[0]
	packPlanesAVX512(&dst[0], &img[0], &gidx[0], &perm[0], &masks[0], halves, taps, t0, rows, hw, ldd)
}
