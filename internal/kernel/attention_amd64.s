//go:build amd64

#include "textflag.h"

// The products of one (image, head) pair of attention over at most 16
// positions, one 16-lane register per output row. Each output element is
// summed from zero with one FMA per term, in term order, and then scaled:
// what the AVX-512 GEMM's micro-kernel does for each element of its tile.

// func attnScoresAVX512(scores, q, k *float32, ld, d, hw int, scale float32)
TEXT ·attnScoresAVX512(SB), NOSPLIT, $0-52
	MOVQ scores+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ k+16(FP), DX
	MOVQ ld+24(FP), R8
	SHLQ $2, R8
	MOVQ d+32(FP), R9
	MOVQ hw+40(FP), R10
	VBROADCASTSS scale+48(FP), Z30
	MOVQ $1, AX
	MOVQ R10, CX
	SHLQ CX, AX
	DECQ AX
	KMOVW AX, K1
	XORQ R11, R11
scoresrow:
	VPXORD Z0, Z0, Z0
	LEAQ (SI)(R11*4), R12
	MOVQ DX, R13
	MOVQ R9, BX
scoresterm:
	VMOVUPS.Z (R13), K1, Z1
	VBROADCASTSS (R12), Z2
	VFMADD231PS Z2, Z1, Z0
	ADDQ R8, R12
	ADDQ R8, R13
	DECQ BX
	JNZ scoresterm
	VMULPS Z30, Z0, Z0
	VMOVUPS Z0, K1, (DI)
	LEAQ (DI)(R10*4), DI
	INCQ R11
	CMPQ R11, R10
	JLT scoresrow
	VZEROUPPER
	RET

// func attnOutAVX512(o, v, pt *float32, ld, d, hw int)
TEXT ·attnOutAVX512(SB), NOSPLIT, $0-48
	MOVQ o+0(FP), DI
	MOVQ v+8(FP), SI
	MOVQ pt+16(FP), DX
	MOVQ ld+24(FP), R8
	SHLQ $2, R8
	MOVQ d+32(FP), R9
	MOVQ hw+40(FP), R10
	MOVQ $1, AX
	MOVQ R10, CX
	SHLQ CX, AX
	DECQ AX
	KMOVW AX, K1
outrow:
	VPXORD Z0, Z0, Z0
	MOVQ SI, R12
	MOVQ DX, R13
	MOVQ R10, BX
outterm:
	VMOVUPS.Z (R13), K1, Z1
	VBROADCASTSS (R12), Z2
	VFMADD231PS Z2, Z1, Z0
	ADDQ $4, R12
	LEAQ (R13)(R10*4), R13
	DECQ BX
	JNZ outterm
	VMOVUPS Z0, K1, (DI)
	ADDQ R8, DI
	ADDQ R8, SI
	DECQ R9
	JNZ outrow
	VZEROUPPER
	RET
