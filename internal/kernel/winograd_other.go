//go:build !amd64

package kernel

// useWinogradAVX512 is false without the vector loops; a variable, as on
// amd64, so that the tests that switch it build everywhere.
var useWinogradAVX512 = false

func wgInputAVX512(v *float32, vstride int, rows *[4]*float32, off int, masks *[5]uint16) {
	panic("unreachable")
}

func wgOutputAVX512(m *float32, mstride int, out0, out1 *float32, bias float32, masks *[3]uint16) {
	panic("unreachable")
}
