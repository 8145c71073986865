// Package metrics computes the sample-quality figures of evaluation: the
// Frechet distance between Gaussian fits of two feature sets (FID when the
// features are Inception's; here the MNIST classifier's), the Inception
// Score from class probabilities, label shares, and PSNR.
package metrics

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"
)

// Gaussian is the mean and covariance of a set of feature vectors.
type Gaussian struct {
	Mean []float64
	Cov  *mat.SymDense
}

// Fit estimates the mean and (unbiased) covariance of n feature vectors of
// dimension d stored row by row in x.
func Fit(x []float32, n, d int) (*Gaussian, error) {
	if n < 2 || len(x) != n*d {
		return nil, fmt.Errorf("metrics: need at least 2 vectors of dimension %d, got %d values", d, len(x))
	}
	data := make([]float64, len(x))
	for i, v := range x {
		data[i] = float64(v)
	}
	m := mat.NewDense(n, d, data)
	g := &Gaussian{Mean: make([]float64, d), Cov: mat.NewSymDense(d, nil)}
	for j := 0; j < d; j++ {
		g.Mean[j] = stat.Mean(mat.Col(nil, j, m), nil)
	}
	stat.CovarianceMatrix(g.Cov, m, nil)
	return g, nil
}

// FrechetDistance is |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).
//
// The trace of the matrix square root is computed as the sum of the square
// roots of the eigenvalues of S1^(1/2) S2 S1^(1/2), a symmetric positive
// semi-definite matrix with the same eigenvalues as S1 S2; negative
// eigenvalues from rounding are clamped to zero. This stays finite and
// accurate when a covariance is singular or nearly so, where the usual
// sqrtm of the non-symmetric product can return complex or NaN values.
func FrechetDistance(a, b *Gaussian) (float64, error) {
	d := len(a.Mean)
	if len(b.Mean) != d {
		return 0, fmt.Errorf("metrics: feature dimensions differ: %d and %d", d, len(b.Mean))
	}
	var dm float64
	for i := range a.Mean {
		x := a.Mean[i] - b.Mean[i]
		dm += x * x
	}
	sqrtA, err := symSqrt(a.Cov)
	if err != nil {
		return 0, err
	}
	var tmp, m mat.Dense
	tmp.Mul(sqrtA, b.Cov)
	m.Mul(&tmp, sqrtA)
	sym := mat.NewSymDense(d, nil)
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			sym.SetSym(i, j, 0.5*(m.At(i, j)+m.At(j, i)))
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(sym, false) {
		return 0, fmt.Errorf("metrics: eigendecomposition did not converge")
	}
	var trSqrt float64
	for _, v := range eig.Values(nil) {
		trSqrt += math.Sqrt(math.Max(v, 0))
	}
	return dm + mat.Trace(a.Cov) + mat.Trace(b.Cov) - 2*trSqrt, nil
}

// symSqrt is the principal square root of a symmetric PSD matrix.
func symSqrt(s *mat.SymDense) (*mat.Dense, error) {
	var eig mat.EigenSym
	if !eig.Factorize(s, true) {
		return nil, fmt.Errorf("metrics: eigendecomposition did not converge")
	}
	vals := eig.Values(nil)
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	n := len(vals)
	d := mat.NewDiagDense(n, nil)
	for i, v := range vals {
		d.SetDiag(i, math.Sqrt(math.Max(v, 0)))
	}
	var t, r mat.Dense
	t.Mul(&vecs, d)
	r.Mul(&t, vecs.T())
	return &r, nil
}

// InceptionScore is exp(mean over samples of KL(p(y|x) || p(y))), where
// p(y) is the mean of the rows of probs [n, k].
func InceptionScore(probs []float32, n, k int) float64 {
	marg := make([]float64, k)
	for i := 0; i < n; i++ {
		for j := 0; j < k; j++ {
			marg[j] += float64(probs[i*k+j]) / float64(n)
		}
	}
	var kl float64
	for i := 0; i < n; i++ {
		for j := 0; j < k; j++ {
			p := float64(probs[i*k+j])
			if p > 0 {
				kl += p * (math.Log(p) - math.Log(marg[j]))
			}
		}
	}
	return math.Exp(kl / float64(n))
}

// Shares is the fraction of labels equal to each class in [0, k).
func Shares(labels []int, k int) []float64 {
	s := make([]float64, k)
	for _, l := range labels {
		if l >= 0 && l < k {
			s[l]++
		}
	}
	for i := range s {
		s[i] /= float64(max(len(labels), 1))
	}
	return s
}
