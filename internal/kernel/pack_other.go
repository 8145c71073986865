//go:build !amd64

package kernel

// hasMaskedPack is false: only amd64 has the masked packing kernel.
const hasMaskedPack = false

func packRows(dst, img []float32, offs []int, masks []uint32, ldd, seg int) {
	panic("kernel: packRows without AVX-512")
}
