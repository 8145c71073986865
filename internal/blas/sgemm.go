// Package blas holds the single-precision matrix multiply every convolution,
// linear layer and attention product goes through.
package blas

import (
	"runtime"
	"sync"
)

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major matrices, where
// op(X) is X or its transpose. op(A) is m x k, op(B) is k x n, C is m x n;
// lda, ldb and ldc are the row strides. When beta is 0, C is not read (NaNs
// in C do not propagate).
//
// Each element of C is accumulated over k in the same order whatever the
// number of threads, so results are bit-identical for any GOMAXPROCS.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	workers := runtime.GOMAXPROCS(0)
	if workers > m {
		workers = m
	}
	if m*n*k < 1<<15 || workers < 2 {
		sgemmRows(transA, transB, 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	var wg sync.WaitGroup
	chunk := (m + workers - 1) / workers
	for lo := 0; lo < m; lo += chunk {
		hi := min(lo+chunk, m)
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			sgemmRows(transA, transB, lo, hi, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		}(lo, hi)
	}
	wg.Wait()
}

func sgemmRows(transA, transB bool, lo, hi, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	row := make([]float32, n)
	for i := lo; i < hi; i++ {
		clear(row)
		for p := 0; p < k; p++ {
			var av float32
			if transA {
				av = a[p*lda+i]
			} else {
				av = a[i*lda+p]
			}
			if transB {
				for j := 0; j < n; j++ {
					row[j] += av * b[j*ldb+p]
				}
			} else {
				bp := b[p*ldb : p*ldb+n]
				for j, bv := range bp {
					row[j] += av * bv
				}
			}
		}
		ci := c[i*ldc : i*ldc+n]
		if beta == 0 {
			for j := range ci {
				ci[j] = alpha * row[j]
			}
		} else {
			for j := range ci {
				ci[j] = alpha*row[j] + beta*ci[j]
			}
		}
	}
}
