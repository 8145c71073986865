package kernel

import "math"

// The activations and softmax need e^x only to float32 accuracy, and
// math.Exp, which handles every float64 and rounds to within an ulp of a
// float64, is several times slower than that needs.

const (
	log2e = 1.4426950408889634
	// ln 2 split so that k*ln2Hi is exact for the |k| < 2^11 used here.
	ln2Hi = 6.93147180369123816490e-01
	ln2Lo = 1.90821492927058770002e-10
	// Adding and subtracting 1.5*2^52 rounds a float64 of magnitude below
	// 2^51 to the nearest integer.
	roundMagic = 0x1.8p52
	// e^expMin is below half the smallest float32 subnormal; x / (1 + e^-x)
	// is a float32 subnormal for x below -expMax.
	expMin, expMax = -104, 104
)

// exp64 is e^x for the x whose result matters in float32: within 1e-8
// relative of e^x (a fifth of a float32 ulp) for x in [expMin, expMax], +Inf
// above and 0 below. The range reaches past float32's overflow at 88.7 so
// that x / (1 + e^-x), SiLU, stays a normal float32 down to x = -91. x = k ln2 + r with |r| <= ln2/2, and e^r is its Taylor
// polynomial of degree 7, whose remainder is below 6e-9 there.
//
// Every product is converted explicitly, which forbids the compiler to fuse
// it with the following add: the result is then the same bits on every
// architecture.
func exp64(x float64) float64 {
	switch {
	case x > expMax:
		return math.Inf(1)
	case x < expMin:
		return 0
	case x != x:
		return x
	}
	k := (float64(x*log2e) + roundMagic) - roundMagic
	r := (x - float64(k*ln2Hi)) - float64(k*ln2Lo)
	q := float64(r * (1.0 / 5040))
	q = float64(r * (1.0/720 + q))
	q = float64(r * (1.0/120 + q))
	q = float64(r * (1.0/24 + q))
	q = float64(r * (1.0/6 + q))
	q = float64(r * (1.0/2 + q))
	q = float64(r * (1 + q))
	p := 1 + q
	return p * math.Float64frombits(uint64(int64(k)+1023)<<52)
}
