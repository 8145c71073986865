// Winograd F(2x2, 3x3) transforms for up to sixteen tiles of one tile row
// at a time, lanes being tiles: winograd.go's operations in its order, so
// the results are the Go loops' bits.

//go:build amd64

#include "textflag.h"

// LOADROW widens input row R (pointer in register REG, offset in DX) into
// the four tap vectors of its tiles: P0..P3 hold x = 2tx-1+j for j = 0..3.
// Z30 and Z31 are the even and odd index vectors; K1..K4 the load masks.
#define LOADROW(REG, P0, P1, P2, P3) \
	LEAQ (REG)(DX*4), BX \
	VMOVUPS.Z 0(BX), K1, Z24 \
	VMOVUPS.Z 64(BX), K2, Z25 \
	VMOVUPS.Z 8(BX), K3, Z26 \
	VMOVUPS.Z 72(BX), K4, Z27 \
	VMOVAPS Z30, P0 \
	VPERMI2PS Z25, Z24, P0 \
	VMOVAPS Z31, P1 \
	VPERMI2PS Z25, Z24, P1 \
	VMOVAPS Z30, P2 \
	VPERMI2PS Z27, Z26, P2 \
	VMOVAPS Z31, P3 \
	VPERMI2PS Z27, Z26, P3

// ROWT is d B for one row: (E0, E1, E2, E3) from taps (P0, P1, P2, P3),
// E0 = P0-P2, E1 = P1+P2, E2 = P2-P1, E3 = P1-P3.
#define ROWT(P0, P1, P2, P3, E0, E1, E2, E3) \
	VSUBPS P2, P0, E0 \
	VADDPS P2, P1, E1 \
	VSUBPS P1, P2, E2 \
	VSUBPS P3, P1, E3

// COLT is B^T (dB) for column j: (V0, V1, V2, V3) from rows (E0, E1, E2, E3).
#define COLT(E0, E1, E2, E3, V0, V1, V2, V3) \
	VSUBPS E2, E0, V0 \
	VADDPS E2, E1, V1 \
	VSUBPS E1, E2, V2 \
	VSUBPS E3, E1, V3

// STOREV stores V, the lanes of K5, at DI and moves DI on by one plane (SI bytes).
#define STOREV(V) \
	VMOVUPS V, K5, 0(DI) \
	ADDQ SI, DI

// func wgInputAVX512(v *float32, vstride int, rows *[4]*float32, off int, masks *[5]uint16)
//
// v is V[0][c][k], planes vstride floats apart; rows are the four input
// rows (a zero row where the patch leaves the plane); the tiles' patches
// start at column off; masks are the four load masks and the lane mask.
TEXT ·wgInputAVX512(SB), NOSPLIT, $0-40
	MOVQ v+0(FP), DI
	MOVQ vstride+8(FP), SI
	SHLQ $2, SI
	MOVQ rows+16(FP), AX
	MOVQ off+24(FP), DX
	MOVQ masks+32(FP), CX
	KMOVW 0(CX), K1
	KMOVW 2(CX), K2
	KMOVW 4(CX), K3
	KMOVW 6(CX), K4
	KMOVW 8(CX), K5
	MOVQ $·wgEvenOdd(SB), BX
	VMOVUPS 0(BX), Z30
	VMOVUPS 64(BX), Z31
	// Rows 0 and 1 into E0..E7, then rows 2 and 3 into E8..E15.
	MOVQ 0(AX), R8
	LOADROW(R8, Z16, Z17, Z18, Z19)
	ROWT(Z16, Z17, Z18, Z19, Z0, Z1, Z2, Z3)
	MOVQ 8(AX), R8
	LOADROW(R8, Z16, Z17, Z18, Z19)
	ROWT(Z16, Z17, Z18, Z19, Z4, Z5, Z6, Z7)
	MOVQ 16(AX), R8
	LOADROW(R8, Z16, Z17, Z18, Z19)
	ROWT(Z16, Z17, Z18, Z19, Z8, Z9, Z10, Z11)
	MOVQ 24(AX), R8
	LOADROW(R8, Z16, Z17, Z18, Z19)
	ROWT(Z16, Z17, Z18, Z19, Z12, Z13, Z14, Z15)
	// Column j of rows (E_j, E_4+j, E_8+j, E_12+j) gives V[4i+j], i = 0..3.
	COLT(Z0, Z4, Z8, Z12, Z16, Z17, Z18, Z19)
	COLT(Z1, Z5, Z9, Z13, Z20, Z21, Z22, Z23)
	COLT(Z2, Z6, Z10, Z14, Z24, Z25, Z26, Z27)
	COLT(Z3, Z7, Z11, Z15, Z0, Z4, Z8, Z12)
	// Plane xi = 4i + j.
	STOREV(Z16)
	STOREV(Z20)
	STOREV(Z24)
	STOREV(Z0)
	STOREV(Z17)
	STOREV(Z21)
	STOREV(Z25)
	STOREV(Z4)
	STOREV(Z18)
	STOREV(Z22)
	STOREV(Z26)
	STOREV(Z8)
	STOREV(Z19)
	STOREV(Z23)
	STOREV(Z27)
	STOREV(Z12)
	VZEROUPPER
	RET

// LOADM loads plane xi's lanes (K1) at DI into V and moves DI on.
#define LOADM(V) \
	VMOVUPS.Z 0(DI), K1, V \
	ADDQ SI, DI

// func wgOutputAVX512(m *float32, mstride int, out0, out1 *float32, bias float32, masks *[3]uint16)
//
// m is M[0][o][k], planes mstride floats apart; out0 and out1 are the two
// output rows at the tiles' first column; masks are the lane mask and the
// store masks of the low and high sixteen output columns.
TEXT ·wgOutputAVX512(SB), NOSPLIT, $0-48
	MOVQ m+0(FP), DI
	MOVQ mstride+8(FP), SI
	SHLQ $2, SI
	MOVQ out0+16(FP), R8
	MOVQ out1+24(FP), R9
	VBROADCASTSS bias+32(FP), Z29
	MOVQ masks+40(FP), CX
	KMOVW 0(CX), K1
	KMOVW 2(CX), K2
	KMOVW 4(CX), K3
	LOADM(Z0)
	LOADM(Z1)
	LOADM(Z2)
	LOADM(Z3)
	LOADM(Z4)
	LOADM(Z5)
	LOADM(Z6)
	LOADM(Z7)
	LOADM(Z8)
	LOADM(Z9)
	LOADM(Z10)
	LOADM(Z11)
	LOADM(Z12)
	LOADM(Z13)
	LOADM(Z14)
	LOADM(Z15)
	// q0j = (m0j + m1j) + m2j into Z16..Z19, q1j = (m1j - m2j) - m3j into
	// Z20..Z23, m_ij in Z(4i+j).
	VADDPS Z4, Z0, Z16
	VADDPS Z8, Z16, Z16
	VADDPS Z5, Z1, Z17
	VADDPS Z9, Z17, Z17
	VADDPS Z6, Z2, Z18
	VADDPS Z10, Z18, Z18
	VADDPS Z7, Z3, Z19
	VADDPS Z11, Z19, Z19
	VSUBPS Z8, Z4, Z20
	VSUBPS Z12, Z20, Z20
	VSUBPS Z9, Z5, Z21
	VSUBPS Z13, Z21, Z21
	VSUBPS Z10, Z6, Z22
	VSUBPS Z14, Z22, Z22
	VSUBPS Z11, Z7, Z23
	VSUBPS Z15, Z23, Z23
	// y_i0 = ((q_i0 + q_i1) + q_i2) + b, y_i1 = ((q_i1 - q_i2) - q_i3) + b.
	VADDPS Z17, Z16, Z0
	VADDPS Z18, Z0, Z0
	VADDPS Z29, Z0, Z0
	VSUBPS Z18, Z17, Z1
	VSUBPS Z19, Z1, Z1
	VADDPS Z29, Z1, Z1
	VADDPS Z21, Z20, Z2
	VADDPS Z22, Z2, Z2
	VADDPS Z29, Z2, Z2
	VSUBPS Z22, Z21, Z3
	VSUBPS Z23, Z3, Z3
	VADDPS Z29, Z3, Z3
	// Interleave each row's pair into 32 output columns.
	MOVQ $·wgInterleave(SB), BX
	VMOVUPS 0(BX), Z30
	VMOVUPS 64(BX), Z31
	VMOVAPS Z30, Z4
	VPERMI2PS Z1, Z0, Z4
	VMOVAPS Z31, Z5
	VPERMI2PS Z1, Z0, Z5
	VMOVAPS Z30, Z6
	VPERMI2PS Z3, Z2, Z6
	VMOVAPS Z31, Z7
	VPERMI2PS Z3, Z2, Z7
	VMOVUPS Z4, K2, 0(R8)
	VMOVUPS Z5, K3, 64(R8)
	VMOVUPS Z6, K2, 0(R9)
	VMOVUPS Z7, K3, 64(R9)
	VZEROUPPER
	RET
