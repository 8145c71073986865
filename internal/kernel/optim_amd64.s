// AdamW and EMA updates, sixteen floats per register, with optim.go's
// operations in optim.go's order. VSQRTPS rounds the square root to
// float32 once, which is what converting the float64 square root of a
// float32 does. Tails run masked.

//go:build amd64

#include "textflag.h"

// ADAM updates the lanes of K1 of p (DI), g (SI), m (R8), v (R9).
#define ADAM \
	VMOVUPS.Z 0(DI), K1, Z0 \
	VMOVUPS.Z 0(SI), K1, Z1 \
	VMOVUPS.Z 0(R8), K1, Z2 \
	VMOVUPS.Z 0(R9), K1, Z3 \
	VMULPS Z16, Z0, Z0 \
	VMULPS Z17, Z2, Z2 \
	VMULPS Z1, Z19, Z4 \
	VADDPS Z4, Z2, Z2 \
	VMULPS Z18, Z3, Z3 \
	VMULPS Z1, Z20, Z4 \
	VMULPS Z1, Z4, Z4 \
	VADDPS Z4, Z3, Z3 \
	VSQRTPS Z3, Z5 \
	VDIVPS Z22, Z5, Z5 \
	VADDPS Z23, Z5, Z5 \
	VDIVPS Z5, Z2, Z6 \
	VMULPS Z6, Z21, Z6 \
	VSUBPS Z6, Z0, Z0 \
	VMOVUPS Z0, K1, 0(DI) \
	VMOVUPS Z2, K1, 0(R8) \
	VMOVUPS Z3, K1, 0(R9)

// func adamAVX512(p, grad, m, v *float32, n int, c *AdamConsts)
TEXT ·adamAVX512(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ m+16(FP), R8
	MOVQ v+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ c+40(FP), AX
	VBROADCASTSS 0(AX), Z16
	VBROADCASTSS 4(AX), Z17
	VBROADCASTSS 8(AX), Z18
	VBROADCASTSS 12(AX), Z19
	VBROADCASTSS 16(AX), Z20
	VBROADCASTSS 20(AX), Z21
	VBROADCASTSS 24(AX), Z22
	VBROADCASTSS 28(AX), Z23
	MOVL $0xffff, AX
	KMOVW AX, K1
adamloop:
	CMPQ CX, $16
	JLT adamtail
	ADAM
	ADDQ $64, DI
	ADDQ $64, SI
	ADDQ $64, R8
	ADDQ $64, R9
	SUBQ $16, CX
	JMP adamloop
adamtail:
	TESTQ CX, CX
	JZ adamdone
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	ADAM
adamdone:
	VZEROUPPER
	RET

// func emaAVX512(s, p *float32, n int, w float32)
TEXT ·emaAVX512(SB), NOSPLIT, $0-28
	MOVQ s+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS w+24(FP), Z16
	MOVL $0xffff, AX
	KMOVW AX, K1
emaloop:
	CMPQ CX, $16
	JLT ematail
emastep:
	VMOVUPS.Z 0(DI), K1, Z0
	VMOVUPS.Z 0(SI), K1, Z1
	VSUBPS Z1, Z0, Z2
	VMULPS Z2, Z16, Z2
	VSUBPS Z2, Z0, Z0
	VMOVUPS Z0, K1, 0(DI)
	ADDQ $64, DI
	ADDQ $64, SI
	SUBQ $16, CX
	JMP emaloop
ematail:
	TESTQ CX, CX
	JZ emadone
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	MOVQ $16, CX
	JMP emastep
emadone:
	VZEROUPPER
	RET
