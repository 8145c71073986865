package kernel

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/ldm-go/ldm/internal/blas"
)

// attentionByGEMM is AttentionCore's general path, pair by pair: the scores
// and the output as two GEMMs around the softmax.
func attentionByGEMM(o, q, k, v []float32, n, heads, d, hw int, scale float32) {
	ld := n * hw
	scores := make([]float32, hw*hw)
	for head := range heads {
		for img := range n {
			off := head*d*ld + img*hw
			blas.Sgemm(true, false, hw, hw, d, scale, q[off:], ld, k[off:], ld, 0, scores, hw)
			SoftmaxRows(scores, hw, hw)
			blas.Sgemm(false, true, d, hw, hw, 1, v[off:], ld, scores, hw, 0, o[off:], ld)
		}
	}
}

// TestAttentionSmallMatchesGEMM checks that the one-register-per-row path
// for at most 16 positions (taken where the GEMM runs its AVX-512 kernel)
// gives the GEMM path's bits, at every size it serves and at head sizes
// that are not multiples of the vector width, and that the output is the
// attention of the definition (float64, within float32 rounding).
func TestAttentionSmallMatchesGEMM(t *testing.T) {
	t.Logf("small path taken: %v (GEMM kernel %s)", attnSmallOK(4), blas.KernelName())
	r := rand.New(rand.NewPCG(31, 32))
	for _, hw := range []int{1, 2, 3, 4, 5, 8, 9, 15, 16, 17} {
		for _, c := range []struct{ n, heads, d int }{{1, 1, 1}, {3, 1, 7}, {2, 4, 32}, {5, 2, 40}} {
			t.Run(fmt.Sprintf("hw%d-n%d-h%d-d%d", hw, c.n, c.heads, c.d), func(t *testing.T) {
				size := c.heads * c.d * c.n * hw
				q, k, v := randNormal(r, size), randNormal(r, size), randNormal(r, size)
				scale := float32(1 / math.Sqrt(float64(c.d)))
				want := make([]float32, size)
				attentionByGEMM(want, q, k, v, c.n, c.heads, c.d, hw, scale)
				got := make([]float32, size)
				AttentionCore(got, q, k, v, c.n, c.heads, c.d, hw, scale, make([]float32, AttentionWork(c.n, c.heads, hw, c.d)))
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("element %d: %v, the GEMM path gives %v (%d bits differ)", i, got[i], want[i],
							bits.OnesCount32(math.Float32bits(got[i])^math.Float32bits(want[i])))
					}
				}
				ld := c.n * hw
				worst := 0.0
				for head := range c.heads {
					for img := range c.n {
						off := head*c.d*ld + img*hw
						for i := range hw {
							p := make([]float64, hw)
							var mx, sum float64 = math.Inf(-1), 0
							for j := range hw {
								for e := range c.d {
									p[j] += float64(q[off+e*ld+i]) * float64(k[off+e*ld+j])
								}
								p[j] *= float64(scale)
								mx = math.Max(mx, p[j])
							}
							for j := range p {
								p[j] = math.Exp(p[j] - mx)
								sum += p[j]
							}
							for e := range c.d {
								var o float64
								for j := range hw {
									o += float64(v[off+e*ld+j]) * p[j] / sum
								}
								worst = math.Max(worst, math.Abs(o-float64(got[off+e*ld+i])))
							}
						}
					}
				}
				if worst > 1e-5 {
					t.Errorf("largest error against the float64 attention %.3g", worst)
				}
			})
		}
	}
}
