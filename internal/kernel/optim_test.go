package kernel

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestOptimPaths checks that the vector AdamW and EMA updates give the Go
// loops' bits, for every length up to 40 and a long one.
func TestOptimPaths(t *testing.T) {
	if !useOptimAVX512 {
		t.Skip("no vector optimiser kernels on this CPU")
	}
	r := rand.New(rand.NewPCG(19, 20))
	c := &AdamConsts{Decay: 1 - 1e-5, B1: 0.9, B2: 0.999, C1: 0.1, C2: 0.001, StepSize: 3e-3, BC2Sqrt: 0.31, Eps: 1e-8}
	for _, n := range append([]int{1000}, func() (l []int) {
		for i := 0; i <= 40; i++ {
			l = append(l, i)
		}
		return
	}()...) {
		p, g, m, v := randNormal(r, n), randNormal(r, n), randNormal(r, n), randNormal(r, n)
		for i := range v {
			v[i] = v[i] * v[i]
		}
		if n > 3 {
			g[1], v[2], m[3] = 0, 0, float32(math.Copysign(0, -1))
		}
		p2, m2, v2 := append([]float32(nil), p...), append([]float32(nil), m...), append([]float32(nil), v...)
		AdamW(p, g, m, v, c)
		adamGo(p2, g, m2, v2, c)
		for _, pair := range [][2][]float32{{p, p2}, {m, m2}, {v, v2}} {
			for i := range pair[0] {
				if math.Float32bits(pair[0][i]) != math.Float32bits(pair[1][i]) {
					t.Fatalf("AdamW of %d: element %d is %v, the Go loop gives %v", n, i, pair[0][i], pair[1][i])
				}
			}
		}
		s := randNormal(r, n)
		s2 := append([]float32(nil), s...)
		EMA(s, p, 0.013)
		emaGo(s2, p, 0.013)
		for i := range s {
			if math.Float32bits(s[i]) != math.Float32bits(s2[i]) {
				t.Fatalf("EMA of %d: element %d is %v, the Go loop gives %v", n, i, s[i], s2[i])
			}
		}
	}
}
