// SiLU in float32, sixteen values per register: silu.go's operations in
// silu.go's order (exp32, then the division), so the results are the bits
// the Go loop gives. VSCALEFPS rounds y * 2^k once, as the Go code's float64
// product converted to float32 does, subnormals included.

//go:build amd64

#include "textflag.h"

// Offsets of exp32Consts (silu.go).
#define C_MIN 0
#define C_LOG2E 4
#define C_C1 8
#define C_C2 12
#define C_P0 16
#define C_P1 20
#define C_P2 24
#define C_P3 28
#define C_P4 32
#define C_P5 36
#define C_ONE 40

// SILU2 computes two vectors: x in V and V2, results in place; uses A, K,
// R, Q, Z, P (and A2...P2) as scratch and M (M2) as a mask register (first
// the lanes below exp32Min, whose x*e is x*0, then those with x >= 0). The
// constants are in Z16..Z28. It interleaves the two vectors stage by
// stage: each vector's operations form one dependency chain, and one
// vector after the other the two chains filled the scheduler's window
// (14% slower). A single vector runs as V with a scratch V2.
#define SILU2(V, A, K, R, Q, Z, P, M, V2, A2, K2, R2, Q2, Z2, P2, M2) \
	SILU_REDUCE(V, A, K, R, Q, M) \
	SILU_REDUCE(V2, A2, K2, R2, Q2, M2) \
	SILU_POLY(R, Z, P) \
	SILU_POLY(R2, Z2, P2) \
	SILU_HORNER(R, P, Z22) \
	SILU_HORNER(R2, P2, Z22) \
	SILU_HORNER(R, P, Z23) \
	SILU_HORNER(R2, P2, Z23) \
	SILU_HORNER(R, P, Z24) \
	SILU_HORNER(R2, P2, Z24) \
	SILU_HORNER(R, P, Z25) \
	SILU_HORNER(R2, P2, Z25) \
	SILU_FINISH(V, K, R, Q, Z, P, M) \
	SILU_FINISH(V2, K2, R2, Q2, Z2, P2, M2)

// SILU_REDUCE: A = -|x| clamped to exp32Min (M marks the lanes below it),
// K = round(A*log2(e)), R = A - K*ln2 in two parts.
#define SILU_REDUCE(V, A, K, R, Q, M) \
	VORPS Z27, V, A \
	VCMPPS $0x11, Z16, A, M \
	VMAXPS Z16, A, A \
	VMULPS Z17, A, K \
	VRNDSCALEPS $0, K, K \
	VMULPS Z18, K, Q \
	VSUBPS Q, A, R \
	VMULPS Z19, K, Q \
	VSUBPS Q, R, R

// SILU_POLY starts the polynomial: Z = R*R, P = R*p0 + p1.
#define SILU_POLY(R, Z, P) \
	VMULPS R, R, Z \
	VMULPS R, Z20, P \
	VADDPS Z21, P, P

// SILU_HORNER is one Horner step: P = P*R + C.
#define SILU_HORNER(R, P, C) \
	VMULPS R, P, P \
	VADDPS C, P, P

// SILU_FINISH: y = P*Z + R + 1, e = y*2^K, and x/(1+e) or (x*y*2^K)/(1+e).
#define SILU_FINISH(V, K, R, Q, Z, P, M) \
	VMULPS Z, P, P \
	VADDPS R, P, P \
	VADDPS Z26, P, P \
	VMULPS P, V, Q \
	VSCALEFPS K, Q, Q \
	VMULPS Z28, V, M, Q \
	VSCALEFPS K, P, P \
	VCMPPS $0x1d, Z28, V, M \
	VMOVAPS V, M, Q \
	VADDPS Z26, P, P \
	VDIVPS P, Q, V

// func siluAVX512(dst, x *float32, n int, consts *float32)
TEXT ·siluAVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ consts+24(FP), AX
	VBROADCASTSS C_MIN(AX), Z16
	VBROADCASTSS C_LOG2E(AX), Z17
	VBROADCASTSS C_C1(AX), Z18
	VBROADCASTSS C_C2(AX), Z19
	VBROADCASTSS C_P0(AX), Z20
	VBROADCASTSS C_P1(AX), Z21
	VBROADCASTSS C_P2(AX), Z22
	VBROADCASTSS C_P3(AX), Z23
	VBROADCASTSS C_P4(AX), Z24
	VBROADCASTSS C_P5(AX), Z25
	VBROADCASTSS C_ONE(AX), Z26
	MOVL $0x80000000, BX
	VPBROADCASTD BX, Z27
	VPXORD Z28, Z28, Z28
	CMPQ CX, $32
	JLT silu1
silu2:
	VMOVUPS 0(SI), Z0
	VMOVUPS 64(SI), Z8
	SILU2(Z0, Z1, Z2, Z3, Z4, Z5, Z6, K1, Z8, Z9, Z10, Z11, Z12, Z13, Z14, K2)
	VMOVUPS Z0, 0(DI)
	VMOVUPS Z8, 64(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	CMPQ CX, $32
	JGE silu2
silu1:
	CMPQ CX, $16
	JLT silutail
	VMOVUPS 0(SI), Z0
	SILU2(Z0, Z1, Z2, Z3, Z4, Z5, Z6, K1, Z8, Z9, Z10, Z11, Z12, Z13, Z14, K2)
	VMOVUPS Z0, 0(DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
silutail:
	TESTQ CX, CX
	JZ silu512done
	// The last n%16 values: a masked load and store, the other lanes zero.
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K3
	VMOVUPS.Z 0(SI), K3, Z0
	SILU2(Z0, Z1, Z2, Z3, Z4, Z5, Z6, K1, Z8, Z9, Z10, Z11, Z12, Z13, Z14, K2)
	VMOVUPS Z0, K3, 0(DI)
silu512done:
	VZEROUPPER
	RET
