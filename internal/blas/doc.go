// Package blas holds the single-precision matrix multiply every convolution,
// linear layer and attention product goes through.
//
// Sgemm packs panels of both operands into contiguous buffers and runs a
// register-blocked micro-kernel over them: AVX-512 or AVX2+FMA assembly on
// amd64, chosen at start-up from the CPU's features, and a blocked pure-Go
// kernel everywhere else. The AVX-512 kernels read an untransposed A's rows
// where they lie instead of packing it, and have an 8x16 variant for narrow
// panels; gen_avx512.go writes that family (go generate). Work is split over
// blocks of C only, never over k, so every element of C is summed in the
// same order for any GOMAXPROCS and results are bit-identical whatever the
// thread count.
//
// SgemmPacked takes B from a PackerB that writes the packed panels itself,
// for a B that is never stored: the implicit-GEMM convolution of
// internal/kernel builds its im2col columns that way.
package blas
