// The convolution epilogues of the AVX-512 path: adding a bias, or a
// partial tile, to an 8x32 tile of C. The kernel that reads B in place
// (kernelDirectAVX512) is generated into kernel512_amd64.s.

//go:build amd64

#include "textflag.h"

// func addBiasTileAVX512(c *float32, ldc int, bias *float32)
//
// Adds bias[r] to the 32 floats of each of the 8 rows of a tile (rows ldc
// floats apart): the convolution epilogue, one add per element as the Go
// loop does.
TEXT ·addBiasTileAVX512(SB), NOSPLIT, $0-24
	MOVQ c+0(FP), DI
	MOVQ ldc+8(FP), R8
	SHLQ $2, R8
	MOVQ bias+16(FP), SI
	MOVQ $8, CX
biasrow:
	VBROADCASTSS (SI), Z0
	VADDPS 0(DI), Z0, Z1
	VADDPS 64(DI), Z0, Z2
	VMOVUPS Z1, 0(DI)
	VMOVUPS Z2, 64(DI)
	ADDQ $4, SI
	ADDQ R8, DI
	DECQ CX
	JNZ biasrow
	VZEROUPPER
	RET

// func addTileAVX512(c, a *float32, ldc int)
//
// Adds the 8x32 tile at a to the one at c, rows ldc floats apart.
TEXT ·addTileAVX512(SB), NOSPLIT, $0-24
	MOVQ c+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ ldc+16(FP), R8
	SHLQ $2, R8
	MOVQ $8, CX
addrow:
	VMOVUPS 0(DI), Z0
	VMOVUPS 64(DI), Z1
	VADDPS 0(SI), Z0, Z0
	VADDPS 64(SI), Z1, Z1
	VMOVUPS Z0, 0(DI)
	VMOVUPS Z1, 64(DI)
	ADDQ R8, SI
	ADDQ R8, DI
	DECQ CX
	JNZ addrow
	VZEROUPPER
	RET
