package kernel

import "golang.org/x/sys/cpu"

// siluPaths lists the SiLU implementations this CPU runs, fastest first.
var siluPaths = amd64SiLUPaths()

func amd64SiLUPaths() []siluPath {
	var ps []siluPath
	if cpu.X86.HasAVX512F {
		ps = append(ps, siluPath{"avx512", siluAVX512Slice})
	}
	if cpu.X86.HasAVX2 {
		ps = append(ps, siluPath{"avx2", siluAVX2Slice})
	}
	return append(ps, siluGoPath)
}

// expConsts4 holds each of expConsts four times, the 256-bit operands the
// AVX2 kernel reads from memory (it has too few registers to keep them).
var expConsts4 = func() (c [len(expConsts) * 4]float64) {
	for i, v := range expConsts {
		for j := 0; j < 4; j++ {
			c[4*i+j] = v
		}
	}
	return c
}()

// siluAVX512 writes SiLU of x[:n] to dst[:n], n a multiple of 8.
//
//go:noescape
func siluAVX512(dst, x *float32, n int, consts *float64)

// siluAVX2 writes SiLU of x[:n] to dst[:n], n a multiple of 4.
//
//go:noescape
func siluAVX2(dst, x *float32, n int, consts *float64)

// The wrappers run the last len(x) % 8 (or % 4) values through the kernel
// too, copied to a zero-padded buffer: the planes of small feature maps
// (2x2) are shorter than a vector.

func siluAVX512Slice(dst, x []float32) {
	n := len(x) &^ 7
	if n > 0 {
		_ = dst[n-1]
		siluAVX512(&dst[0], &x[0], n, &expConsts[0])
	}
	if n < len(x) {
		var buf [8]float32
		copy(buf[:], x[n:])
		siluAVX512(&buf[0], &buf[0], 8, &expConsts[0])
		copy(dst[n:len(x)], buf[:])
	}
}

func siluAVX2Slice(dst, x []float32) {
	n := len(x) &^ 3
	if n > 0 {
		_ = dst[n-1]
		siluAVX2(&dst[0], &x[0], n, &expConsts4[0])
	}
	if n < len(x) {
		var buf [4]float32
		copy(buf[:], x[n:])
		siluAVX2(&buf[0], &buf[0], 4, &expConsts4[0])
		copy(dst[n:len(x)], buf[:])
	}
}
