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
)

// exp64 is e^x for the x whose result matters in float32: within 1e-8
// relative of e^x (a fifth of a float32 ulp) for x in [-104, 89], +Inf above
// and 0 below. x = k ln2 + r with |r| <= ln2/2, and e^r is its Taylor
// polynomial of degree 7, whose remainder is below 6e-9 there.
func exp64(x float64) float64 {
	switch {
	case x > 89:
		return math.Inf(1)
	case x < -104:
		return 0
	case x != x:
		return x
	}
	k := (x*log2e + roundMagic) - roundMagic
	r := (x - k*ln2Hi) - k*ln2Lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	return p * math.Float64frombits(uint64(int64(k)+1023)<<52)
}
