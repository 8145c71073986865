package kernel

import "math"

// SiLU in float32, as PyTorch computes it: x * sigmoid(x) with a float32
// exponential. Each path computes
//
//	e = exp32(-|x|) = y * 2^k
//	silu(x) = x / (1 + e)              for x >= 0
//	silu(x) = (x*y) * 2^k / (1 + e)    for x < 0 (or NaN)
//
// with the same float32 operations in the same order and no fused
// multiply-adds, so every path gives the same bits. The exponent is never
// positive, so e never overflows, and the negative side keeps its small
// values down to the subnormals. The result is within 4 float32 ulps of
// x / (1 + e^-x).
type siluPath struct {
	name string
	fn   func(dst, x []float32)
}

// siluGoPath is the portable implementation.
var siluGoPath = siluPath{"go", siluGo}

// siluActive is the path SiLU uses, the fastest this CPU runs; tests switch
// it to force each path.
var siluActive = siluPaths[0]

// siluPathNamed returns the available path with that name, or false when
// this CPU or architecture cannot run it.
func siluPathNamed(name string) (siluPath, bool) {
	for _, p := range siluPaths {
		if p.name == name {
			return p, true
		}
	}
	return siluPath{}, false
}

// silu writes SiLU(x) to dst[:len(x)] with the active path; dst may be x.
func silu(dst, x []float32) { siluActive.fn(dst[:len(x)], x) }

// exp32's constants: Cephes' expf, whose polynomial is within 2e-7 of
// e^r on |r| <= ln2/2. ln2 is split so that k*exp32C1 is exact for the
// |k| <= 150 used here.
const (
	exp32Min   = -104 // e^-104 is below half the smallest float32 subnormal
	exp32Round = 0x1.8p23
	exp32Log2  = 1.44269504088896341
	exp32C1    = 0.693359375
	exp32C2    = -2.12194440e-4
	exp32P0    = 1.9875691500e-4
	exp32P1    = 1.3981999507e-3
	exp32P2    = 8.3334519073e-3
	exp32P3    = 4.1665795894e-2
	exp32P4    = 1.6666665459e-1
	exp32P5    = 5.0000001201e-1
)

// exp32Consts are the constants in the order silu_amd64.s reads them.
var exp32Consts = [...]float32{exp32Min, exp32Log2, exp32C1, exp32C2,
	exp32P0, exp32P1, exp32P2, exp32P3, exp32P4, exp32P5, 1}

// exp32 returns e^a = y * 2^k for a <= 0, the steps of the vector kernel
// one by one: every product is converted explicitly, which forbids the
// compiler to fuse it with the following add.
func exp32(a float32) (y, k float32) {
	if a < exp32Min {
		a = exp32Min
	}
	// Adding and subtracting 1.5*2^23 rounds to the nearest integer, ties
	// to even, as VRNDSCALEPS does.
	k = (float32(a*exp32Log2) + exp32Round) - exp32Round
	r := a - float32(k*exp32C1)
	r = r - float32(k*exp32C2)
	z := float32(r * r)
	p := float32(exp32P0)
	p = float32(p*r) + exp32P1
	p = float32(p*r) + exp32P2
	p = float32(p*r) + exp32P3
	p = float32(p*r) + exp32P4
	p = float32(p*r) + exp32P5
	y = float32(p*z) + r
	return y + 1, k
}

// scale2 is v * 2^k rounded once, as VSCALEFPS rounds it: exact in
// float64, then rounded to float32, subnormals included.
func scale2(v, k float32) float32 {
	if k >= -126 {
		// 2^k is a normal float32: one float32 product, rounded once.
		return v * math.Float32frombits(uint32(int32(k)+127)<<23)
	}
	return float32(float64(v) * math.Float64frombits(uint64(int64(k)+1023)<<52))
}

func siluGo(dst, x []float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		a := v
		if a > 0 {
			a = -a
		}
		y, k := exp32(a)
		e := scale2(y, k)
		// x*e from the unscaled y: where e is subnormal (x below -87) it
		// has lost digits that x*e, still normal down to -91, needs.
		// Below exp32Min, e^x is under every subnormal: x*e is a zero
		// (NaN for -Inf, as x / (1 + e^-x) is).
		num := v
		switch {
		case v >= 0:
		case a < exp32Min:
			num = v * zero32
		default:
			num = scale2(float32(v*y), k)
		}
		dst[i] = num / (1 + e)
	}
}

// zero32 is a zero the compiler cannot fold away: v * 0 is -0 or NaN, not 0.
var zero32 float32
