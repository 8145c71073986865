//go:build !amd64

package kernel

// useInterleaveAVX512 is false: only amd64 has the interleave kernels.
var useInterleaveAVX512 = false

// interleavePlaneAVX512 leaves every plane to the Go loop.
func interleavePlaneAVX512(d, p00, p01, p10, p11 []float32, h, w int, bias float32) bool {
	return false
}
