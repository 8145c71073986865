package nn

import (
	"math"
	"testing"
)

// TestLinearFewRowsBitIdentical checks that a batch with fewer rows than
// outputs, which ForwardWS computes as W x^T, gives each row the bits it
// gets within a batch of more rows than outputs (x W^T), with the weights
// read as they are and packed once (frozen), on one kernel and the others.
func TestLinearFewRowsBitIdentical(t *testing.T) {
	for _, frozen := range []bool{false, true} {
		ps := &Params{}
		l := NewLinear(ps, "lin", 300, 45)
		randomParams(ps, 3)
		if frozen {
			ps.Freeze()
		}
		const many = 50
		x := make([]float32, many*l.In)
		NewRNG(4, 0).FillNormal(x)
		all := l.ForwardWS(nil, x, many)
		for _, n := range []int{1, 3, 8, 13} {
			few := l.ForwardWS(NewWorkspace(), x[:n*l.In], n)
			for i := range few {
				if math.Float32bits(few[i]) != math.Float32bits(all[i]) {
					t.Fatalf("frozen %v, %d rows: y[%d] = %v, within %d rows %v", frozen, n, i, few[i], many, all[i])
				}
			}
		}
	}
}
