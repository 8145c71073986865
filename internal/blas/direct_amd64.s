// The AVX-512 micro-kernel reading B in place instead of from a packed
// panel: each k step's 32 columns are two runs of 16 floats at offsets
// from a base, some lanes masked off (they read as zero and touch no
// memory), as a convolution's shifted image planes are. The FMAs and their
// order are kernelAVX512's, so the results are its bits for the same B.

//go:build amd64

#include "textflag.h"

// DSTEP is one k step: table entry at R9 (offsets of the two runs, then
// their lane masks), A values at SI, base at R10.
#define DSTEP \
	MOVLQSX 0(R9), AX \
	MOVLQSX 4(R9), BX \
	KMOVW 8(R9), K1 \
	KMOVW 10(R9), K2 \
	VMOVUPS.Z (R10)(AX*4), K1, Z16 \
	VMOVUPS.Z (R10)(BX*4), K2, Z17 \
	VBROADCASTSS 0(SI), Z18 \
	VFMADD231PS Z18, Z16, Z0 \
	VFMADD231PS Z18, Z17, Z1 \
	VBROADCASTSS 4(SI), Z19 \
	VFMADD231PS Z19, Z16, Z2 \
	VFMADD231PS Z19, Z17, Z3 \
	VBROADCASTSS 8(SI), Z20 \
	VFMADD231PS Z20, Z16, Z4 \
	VFMADD231PS Z20, Z17, Z5 \
	VBROADCASTSS 12(SI), Z21 \
	VFMADD231PS Z21, Z16, Z6 \
	VFMADD231PS Z21, Z17, Z7 \
	VBROADCASTSS 16(SI), Z22 \
	VFMADD231PS Z22, Z16, Z8 \
	VFMADD231PS Z22, Z17, Z9 \
	VBROADCASTSS 20(SI), Z23 \
	VFMADD231PS Z23, Z16, Z10 \
	VFMADD231PS Z23, Z17, Z11 \
	VBROADCASTSS 24(SI), Z24 \
	VFMADD231PS Z24, Z16, Z12 \
	VFMADD231PS Z24, Z17, Z13 \
	VBROADCASTSS 28(SI), Z25 \
	VFMADD231PS Z25, Z16, Z14 \
	VFMADD231PS Z25, Z17, Z15 \
	ADDQ $16, R9 \
	ADDQ $32, SI

// LOADROW and STOREROW finish one row of the tile (registers L, H) at DX:
// alpha*acc + beta*c, or alpha*acc alone.
#define LOADROW(L, H) \
	VMULPS Z30, L, L \
	VFMADD231PS 0(DX), Z31, L \
	VMOVUPS L, 0(DX) \
	VMULPS Z30, H, H \
	VFMADD231PS 64(DX), Z31, H \
	VMOVUPS H, 64(DX) \
	ADDQ R8, DX

#define STOREROW(L, H) \
	VMULPS Z30, L, L \
	VMOVUPS L, 0(DX) \
	VMULPS Z30, H, H \
	VMOVUPS H, 64(DX) \
	ADDQ R8, DX

// func kernelDirectAVX512(kc int, a, base *float32, tab *int32, c *float32, ldc int, alpha, beta float32, loadC int)
TEXT ·kernelDirectAVX512(SB), NOSPLIT, $0-64
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ base+16(FP), R10
	MOVQ tab+24(FP), R9
	MOVQ c+32(FP), DX
	MOVQ ldc+40(FP), R8
	SHLQ $2, R8
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	MOVQ CX, R11
	SHRQ $2, R11
	ANDQ $3, CX
	TESTQ R11, R11
	JZ dtail
dloop4:
	DSTEP
	DSTEP
	DSTEP
	DSTEP
	DECQ R11
	JNZ dloop4
dtail:
	TESTQ CX, CX
	JZ ddone
dloop1:
	DSTEP
	DECQ CX
	JNZ dloop1
ddone:
	VBROADCASTSS alpha+48(FP), Z30
	VBROADCASTSS beta+52(FP), Z31
	MOVQ loadC+56(FP), AX
	TESTQ AX, AX
	JZ dstore
	LOADROW(Z0, Z1)
	LOADROW(Z2, Z3)
	LOADROW(Z4, Z5)
	LOADROW(Z6, Z7)
	LOADROW(Z8, Z9)
	LOADROW(Z10, Z11)
	LOADROW(Z12, Z13)
	LOADROW(Z14, Z15)
	VZEROUPPER
	RET
dstore:
	STOREROW(Z0, Z1)
	STOREROW(Z2, Z3)
	STOREROW(Z4, Z5)
	STOREROW(Z6, Z7)
	STOREROW(Z8, Z9)
	STOREROW(Z10, Z11)
	STOREROW(Z12, Z13)
	STOREROW(Z14, Z15)
	VZEROUPPER
	RET

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
