package kernel

import (
	"math"
	"testing"
)

// TestExp64 checks the fast exponential against math.Exp over the range
// where it is computed, and at the edges.
func TestExp64(t *testing.T) {
	worst := 0.0
	for x := float64(expMin); x <= expMax; x += 0.000731 {
		want := math.Exp(x)
		got := exp64(x)
		if rel := math.Abs(got-want) / want; rel > worst {
			worst = rel
		}
	}
	if worst > 1e-8 {
		t.Errorf("max relative error %.3g, want <= 1e-8", worst)
	}
	if !math.IsInf(exp64(105), 1) || exp64(-105) != 0 || !math.IsNaN(exp64(math.NaN())) {
		t.Errorf("edges: exp64(105)=%v exp64(-105)=%v exp64(NaN)=%v", exp64(105), exp64(-105), exp64(math.NaN()))
	}
	// float32 results agree with the correctly rounded ones almost always.
	diff := 0
	n := 0
	for x := float32(-20); x <= 20; x += 0.0013 {
		n++
		if float32(exp64(float64(x))) != float32(math.Exp(float64(x))) {
			diff++
		}
	}
	if diff > n/100 {
		t.Errorf("%d of %d float32 results differ from math.Exp's", diff, n)
	}
}
