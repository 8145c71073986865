//go:build !amd64

package kernel

const useGNBackVector = false

func gnBackSumsAVX2(d, xs *float32, n int, m, r float64, sums *[8]float64) { panic("unreachable") }

func gnBackApplyAVX512(out, d, xs *float32, n int, rw, a, b float64) { panic("unreachable") }
