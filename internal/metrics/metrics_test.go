package metrics

import (
	"math"
	"testing"

	"github.com/ldm-go/ldm/nn"
	"gonum.org/v1/gonum/mat"
)

func gaussian(mean []float64, diag []float64) *Gaussian {
	c := mat.NewSymDense(len(diag), nil)
	for i, v := range diag {
		c.SetSym(i, i, v)
	}
	return &Gaussian{Mean: mean, Cov: c}
}

func TestFrechetDistanceClosedForms(t *testing.T) {
	// Same distribution: 0.
	a := gaussian([]float64{1, 2, 3}, []float64{1, 4, 9})
	if d, _ := FrechetDistance(a, a); math.Abs(d) > 1e-9 {
		t.Errorf("FD(a, a) = %v", d)
	}
	// Diagonal covariances: |dmu|^2 + sum (sqrt(s1) - sqrt(s2))^2.
	b := gaussian([]float64{0, 2, 5}, []float64{4, 1, 9})
	want := 1.0 + 0 + 4 + (1-2)*(1-2) + (2-1)*(2-1) + 0
	if d, _ := FrechetDistance(a, b); math.Abs(d-want) > 1e-9 {
		t.Errorf("FD = %v, want %v", d, want)
	}
	// Singular covariances stay finite and exact.
	s := gaussian([]float64{0, 0, 0}, []float64{1, 0, 0})
	u := gaussian([]float64{0, 0, 0}, []float64{0, 1, 0})
	if d, _ := FrechetDistance(s, u); math.Abs(d-2) > 1e-9 {
		t.Errorf("FD of singular covariances = %v, want 2", d)
	}
}

func TestFitAndRankDeficientSamples(t *testing.T) {
	// 200 samples in 8 dimensions lying in a 2-D subspace.
	r := nn.NewRNG(1, 1)
	x := make([]float32, 200*8)
	for i := 0; i < 200; i++ {
		u, v := r.Normal(), r.Normal()
		for j := 0; j < 8; j++ {
			x[i*8+j] = float32(u*float64(j) + v)
		}
	}
	g, err := Fit(x, 200, 8)
	if err != nil {
		t.Fatal(err)
	}
	d, err := FrechetDistance(g, g)
	if err != nil || math.IsNaN(d) || math.Abs(d) > 1e-6*mat.Trace(g.Cov) {
		t.Errorf("FD(g, g) = %v, %v for a rank-2 covariance", d, err)
	}
}

func TestInceptionScoreAndShares(t *testing.T) {
	// Confident and uniform over 4 classes: IS = 4. Uninformative: 1.
	sharp := []float32{1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}
	if s := InceptionScore(sharp, 4, 4); math.Abs(s-4) > 1e-9 {
		t.Errorf("IS = %v, want 4", s)
	}
	flat := []float32{0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25}
	if s := InceptionScore(flat, 2, 4); math.Abs(s-1) > 1e-6 {
		t.Errorf("IS = %v, want 1", s)
	}
	sh := Shares([]int{0, 1, 1, 3}, 4)
	if sh[1] != 0.5 || sh[2] != 0 || sh[3] != 0.25 {
		t.Errorf("shares %v", sh)
	}
}
