package kernel

// Float64 reductions and the affine map of group norm over float32 data.
// The sums run in sixteen lanes, element i in lane i%16, and the lanes are
// combined by halves (lane j with lane j+8, then j+4, j+2, j+1), which is
// the order an AVX-512 loop with two accumulators of eight float64 lanes
// takes. Every path performs the same operations in that order, so they
// all give the same bits, and the split of a reduction never depends on
// the thread count.

// reducePath is one implementation of the three operations.
type reducePath struct {
	name string
	// sum returns the sum of float64(x[i]).
	sum func(x []float32) float64
	// sqdev returns the sum of (float64(x[i]) - m)^2.
	sqdev func(x []float32, m float64) float64
	// affine writes float32(float64(x[i])*scale + shift) to dst[i].
	affine func(dst, x []float32, scale, shift float64)
}

var reduceGoPath = reducePath{"go", sum64Go, sqdev64Go, affine64Go}

// reduceActive is the path the norms use; tests switch it to force each.
var reduceActive = reducePaths[0]

func sum64(x []float32) float64              { return reduceActive.sum(x) }
func sqdev64(x []float32, m float64) float64 { return reduceActive.sqdev(x, m) }
func affine64(dst, x []float32, scale, shift float64) {
	reduceActive.affine(dst[:len(x)], x, scale, shift)
}

// lanes16 folds sixteen partial sums in the fixed order.
func lanes16(a *[16]float64) float64 {
	var h [8]float64
	for j := range h {
		h[j] = a[j] + a[j+8]
	}
	q0, q1, q2, q3 := h[0]+h[4], h[1]+h[5], h[2]+h[6], h[3]+h[7]
	return (q0 + q2) + (q1 + q3)
}

func sum64Go(x []float32) float64 {
	var a [16]float64
	n := len(x) &^ 15
	for i := 0; i < n; i += 16 {
		v := (*[16]float32)(x[i:])
		for j := range a {
			a[j] += float64(v[j])
		}
	}
	// The vector loop adds zeros in the lanes past the end; so does this,
	// which matters only for the sign of a zero sum.
	if n < len(x) {
		for j := range a {
			if n+j < len(x) {
				a[j] += float64(x[n+j])
			} else {
				a[j] += 0
			}
		}
	}
	return lanes16(&a)
}

func sqdev64Go(x []float32, m float64) float64 {
	var a [16]float64
	n := len(x) &^ 15
	for i := 0; i < n; i += 16 {
		v := (*[16]float32)(x[i:])
		for j := range a {
			d := float64(v[j]) - m
			a[j] += float64(d * d) // the conversion keeps the product rounded, as the vector code does
		}
	}
	if n < len(x) {
		for j := range a {
			if n+j < len(x) {
				d := float64(x[n+j]) - m
				a[j] += float64(d * d)
			} else {
				a[j] += 0
			}
		}
	}
	return lanes16(&a)
}

func affine64Go(dst, x []float32, scale, shift float64) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = float32(float64(float64(v)*scale) + shift)
	}
}
