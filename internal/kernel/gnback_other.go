//go:build !amd64

package kernel

// useGNBackVector is false without the vector loops; a variable, as on
// amd64, so that the tests that switch it build everywhere.
var useGNBackVector = false

func gnBackSumsAVX2(d, xs *float32, n int, m, r float64, sums *[8]float64) { panic("unreachable") }

func gnBackApplyAVX512(out, d, xs *float32, n int, rw, a, b float64) { panic("unreachable") }
