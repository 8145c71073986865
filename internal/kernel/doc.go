// Package kernel holds the flat float32 kernels the layers are made of:
// im2col for convolution, group normalisation, activations, softmax and
// resampling. Kernels know shapes, not models; they take the destination
// first and panic on inconsistent shapes, which are programmer errors.
//
// Where a reduction decides accuracy (norm statistics, softmax sums) it is
// carried out in float64: the golden tolerances are measured against a
// float64 computation, so being closer to it is always safe.
//
// Stride-1 convolutions whose output has the input's size never build the
// column matrix: convPacker (implicit.go) writes its columns straight into
// the GEMM's packed panels (blas.SgemmPacked), with an AVX-512 masked-load
// kernel (pack_amd64.s) where the CPU has one.
//
// SiLU, the one activation with a cost that shows, has AVX-512 and AVX2
// kernels (silu_amd64.s) chosen at start-up from the CPU's features; they
// repeat the Go loop's float64 operations in its order, so every path gives
// the same bits on any machine.
package kernel
