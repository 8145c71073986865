//go:build !amd64

package kernel

// hasMaskedPack is false: only amd64 has the masked packing kernel.
const hasMaskedPack = false

func packTaps(dst, img []float32, offs []int32, masks []uint32, c, t0, rows, hw, ldd, seg int) {
	panic("kernel: packTaps without AVX-512")
}

func packPlanes(dst, img []float32, gidx *[32]int32, perm []int32, masks []uint16, halves, t0, rows, hw, ldd int) {
	panic("kernel: packPlanes without AVX-512")
}
