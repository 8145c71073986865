package kernel

import "math"

// AdamConsts are one AdamW step's scalars, rounded to float32 once.
type AdamConsts struct {
	Decay, B1, B2, C1, C2, StepSize, BC2Sqrt, Eps float32
}

// AdamW updates p, m and v in place from the gradient g (all of one
// length), with torch's float32 single-tensor arithmetic:
//
//	x = p * decay
//	m = m*b1 + c1*g
//	v = v*b2 + c2*g*g
//	p = x - stepSize * (m / (sqrt(v)/bc2Sqrt + eps))
//
// every operation rounded to float32 on its own (no fused multiply-adds),
// on every path, so they all give the same bits.
func AdamW(p, g, m, v []float32, c *AdamConsts) {
	n := len(p)
	g, m, v = g[:n], m[:n], v[:n]
	if n == 0 {
		return
	}
	if useOptimAVX512 {
		adamAVX512(&p[0], &g[0], &m[0], &v[0], n, c)
		return
	}
	adamGo(p, g, m, v, c)
}

func adamGo(p, g, m, v []float32, c *AdamConsts) {
	for i, x := range p {
		x = x * c.Decay
		gi := g[i]
		m[i] = float32(m[i]*c.B1) + float32(c.C1*gi)
		v[i] = float32(v[i]*c.B2) + float32(float32(c.C2*gi)*gi)
		denom := float32(math.Sqrt(float64(v[i])))/c.BC2Sqrt + c.Eps
		p[i] = x - float32(c.StepSize*(m[i]/denom))
	}
}

// EMA moves the shadow weights s towards p: s -= w * (s - p), each
// operation rounded to float32 on its own, on every path.
func EMA(s, p []float32, w float32) {
	n := len(p)
	s = s[:n]
	if n == 0 {
		return
	}
	if useOptimAVX512 {
		emaAVX512(&s[0], &p[0], n, w)
		return
	}
	emaGo(s, p, w)
}

func emaGo(s, p []float32, w float32) {
	for i, v := range p {
		s[i] -= float32(w * (s[i] - v))
	}
}
