// SiLU kernels: float32(v / (1 + exp64(-v))) for 8 (AVX-512) or 4 (AVX2)
// floats at a time, in float64 with exp64's operations in exp64's order
// (exp.go), so the results are the bits the Go loop gives. The argument of
// the exponential is clamped to [expMin, expMax] = [-104, 104], which
// changes nothing inside that range and keeps the exponent bits valid
// outside it; below -104 the clamped e^a is under 1e-45, so 1 + e^a is
// exactly 1 as with exp64's 0, and above 104 e^a is set to +Inf as exp64
// returns. A NaN input gives a NaN
// through the numerator.

//go:build amd64

#include "textflag.h"

// Offsets of expConsts (exp.go), and of expConsts4 in 32-byte rows.
#define C_LO 0
#define C_HI 1
#define C_LOG2E 2
#define C_MAGIC 3
#define C_LN2HI 4
#define C_LN2LO 5
#define C_P7 6
#define C_P6 7
#define C_P5 8
#define C_P4 9
#define C_P3 10
#define C_P2 11
#define C_ONE 12
#define C_INF 13
#define C_BIAS 14
#define C_SIGN 15

// SILU512 computes one vector: v in V (float64), result in V; uses
// A, T, K, R, Q as scratch and KM as the mask of a > expMax.
#define SILU512(V, A, T, K, R, Q, KM) \
	VPXORQ Z31, V, A \
	VCMPPD $0x1e, Z17, A, KM \
	VMAXPD Z16, A, A \
	VMINPD Z17, A, A \
	VMULPD Z18, A, T \
	VADDPD Z19, T, T \
	VSUBPD Z19, T, K \
	VMULPD Z20, K, R \
	VSUBPD R, A, R \
	VMULPD Z21, K, K \
	VSUBPD K, R, R \
	VMULPD Z22, R, Q \
	VADDPD Z23, Q, Q \
	VMULPD R, Q, Q \
	VADDPD Z24, Q, Q \
	VMULPD R, Q, Q \
	VADDPD Z25, Q, Q \
	VMULPD R, Q, Q \
	VADDPD Z26, Q, Q \
	VMULPD R, Q, Q \
	VADDPD Z27, Q, Q \
	VMULPD R, Q, Q \
	VADDPD Z28, Q, Q \
	VMULPD R, Q, Q \
	VADDPD Z28, Q, Q \
	VPADDQ Z30, T, T \
	VPSLLQ $52, T, T \
	VMULPD T, Q, Q \
	VMOVAPD Z29, KM, Q \
	VADDPD Z28, Q, Q \
	VDIVPD Q, V, V

// func siluAVX512(dst, x *float32, n int, consts *float64)
TEXT ·siluAVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ consts+24(FP), AX
	VBROADCASTSD (C_LO*8)(AX), Z16
	VBROADCASTSD (C_HI*8)(AX), Z17
	VBROADCASTSD (C_LOG2E*8)(AX), Z18
	VBROADCASTSD (C_MAGIC*8)(AX), Z19
	VBROADCASTSD (C_LN2HI*8)(AX), Z20
	VBROADCASTSD (C_LN2LO*8)(AX), Z21
	VBROADCASTSD (C_P7*8)(AX), Z22
	VBROADCASTSD (C_P6*8)(AX), Z23
	VBROADCASTSD (C_P5*8)(AX), Z24
	VBROADCASTSD (C_P4*8)(AX), Z25
	VBROADCASTSD (C_P3*8)(AX), Z26
	VBROADCASTSD (C_P2*8)(AX), Z27
	VBROADCASTSD (C_ONE*8)(AX), Z28
	VBROADCASTSD (C_INF*8)(AX), Z29
	VPBROADCASTQ (C_BIAS*8)(AX), Z30
	VPBROADCASTQ (C_SIGN*8)(AX), Z31
	CMPQ CX, $16
	JLT silu512one
silu512two:
	VCVTPS2PD 0(SI), Z0
	VCVTPS2PD 32(SI), Z8
	SILU512(Z0, Z1, Z2, Z3, Z4, Z5, K1)
	SILU512(Z8, Z9, Z10, Z11, Z12, Z13, K2)
	VCVTPD2PS Z0, Y0
	VCVTPD2PS Z8, Y8
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y8, 32(DI)
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $16, CX
	CMPQ CX, $16
	JGE silu512two
silu512one:
	TESTQ CX, CX
	JZ silu512done
	VCVTPS2PD 0(SI), Z0
	SILU512(Z0, Z1, Z2, Z3, Z4, Z5, K1)
	VCVTPD2PS Z0, Y0
	VMOVUPS Y0, 0(DI)
silu512done:
	VZEROUPPER
	RET

// SILU256 is SILU512 for four values in a ymm register, with the constants
// read from expConsts4 at AX and the mask of a > expMax kept in M.
#define SILU256(V, A, T, K, R, Q, M) \
	VXORPD (C_SIGN*32)(AX), V, A \
	VCMPPD $0x1e, (C_HI*32)(AX), A, M \
	VMAXPD (C_LO*32)(AX), A, A \
	VMINPD (C_HI*32)(AX), A, A \
	VMULPD (C_LOG2E*32)(AX), A, T \
	VADDPD (C_MAGIC*32)(AX), T, T \
	VSUBPD (C_MAGIC*32)(AX), T, K \
	VMULPD (C_LN2HI*32)(AX), K, R \
	VSUBPD R, A, R \
	VMULPD (C_LN2LO*32)(AX), K, K \
	VSUBPD K, R, R \
	VMULPD (C_P7*32)(AX), R, Q \
	VADDPD (C_P6*32)(AX), Q, Q \
	VMULPD R, Q, Q \
	VADDPD (C_P5*32)(AX), Q, Q \
	VMULPD R, Q, Q \
	VADDPD (C_P4*32)(AX), Q, Q \
	VMULPD R, Q, Q \
	VADDPD (C_P3*32)(AX), Q, Q \
	VMULPD R, Q, Q \
	VADDPD (C_P2*32)(AX), Q, Q \
	VMULPD R, Q, Q \
	VADDPD (C_ONE*32)(AX), Q, Q \
	VMULPD R, Q, Q \
	VADDPD (C_ONE*32)(AX), Q, Q \
	VPADDQ (C_BIAS*32)(AX), T, T \
	VPSLLQ $52, T, T \
	VMULPD T, Q, Q \
	VBLENDVPD M, (C_INF*32)(AX), Q, Q \
	VADDPD (C_ONE*32)(AX), Q, Q \
	VDIVPD Q, V, V

// func siluAVX2(dst, x *float32, n int, consts *float64)
TEXT ·siluAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ consts+24(FP), AX
	CMPQ CX, $8
	JLT silu256one
silu256two:
	VCVTPS2PD 0(SI), Y0
	VCVTPS2PD 16(SI), Y8
	SILU256(Y0, Y1, Y2, Y3, Y4, Y5, Y6)
	SILU256(Y8, Y9, Y10, Y11, Y12, Y13, Y14)
	VCVTPD2PSY Y0, X0
	VCVTPD2PSY Y8, X8
	VMOVUPS X0, 0(DI)
	VMOVUPS X8, 16(DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	CMPQ CX, $8
	JGE silu256two
silu256one:
	TESTQ CX, CX
	JZ silu256done
	VCVTPS2PD 0(SI), Y0
	SILU256(Y0, Y1, Y2, Y3, Y4, Y5, Y6)
	VCVTPD2PSY Y0, X0
	VMOVUPS X0, 0(DI)
silu256done:
	VZEROUPPER
	RET
