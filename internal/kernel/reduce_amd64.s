// Group norm's float64 reductions and affine map, eight float64 lanes per
// register. The sums keep two accumulators, lanes 0-7 and 8-15 of
// reduce.go's sixteen, fold them as lanes16 does, and treat a ragged tail
// with masked loads whose missing lanes add +0, as the Go loops do.

//go:build amd64

#include "textflag.h"

// TAILMASK sets K1 (lanes 0-7) and K2 (lanes 8-15) to the n%16 lanes of
// the tail; n in CX, clobbers AX and CX.
#define TAILMASK \
	ANDQ $15, CX \
	MOVL $1, AX \
	SHLL CX, AX \
	DECL AX \
	KMOVW AX, K1 \
	SHRL $8, AX \
	KMOVW AX, K2

// LOADTAIL widens the tail at SI into Z2 and Z3, the missing lanes zero.
#define LOADTAIL \
	VMOVUPS.Z (SI), K1, Y2 \
	VMOVUPS.Z 32(SI), K2, Y3 \
	VCVTPS2PD Y2, Z2 \
	VCVTPS2PD Y3, Z3

// FOLD16 leaves in X0 the sum of Z0's and Z1's lanes in lanes16's order.
#define FOLD16 \
	VADDPD Z1, Z0, Z0 \
	VEXTRACTF64X4 $1, Z0, Y1 \
	VADDPD Y1, Y0, Y0 \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPD X1, X0, X0 \
	VPERMILPD $1, X0, X1 \
	VADDSD X1, X0, X0

// func sum64AVX512(x *float32, n int) float64
TEXT ·sum64AVX512(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VXORPD Z0, Z0, Z0
	VXORPD Z1, Z1, Z1
	MOVQ CX, DX
	SHRQ $4, DX
	JZ sumtail

sumloop:
	VCVTPS2PD (SI), Z2
	VCVTPS2PD 32(SI), Z3
	VADDPD Z2, Z0, Z0
	VADDPD Z3, Z1, Z1
	ADDQ $64, SI
	DECQ DX
	JNZ sumloop

sumtail:
	TESTQ $15, CX
	JZ sumfold
	TAILMASK
	LOADTAIL
	VADDPD Z2, Z0, Z0
	VADDPD Z3, Z1, Z1

sumfold:
	FOLD16
	VMOVSD X0, ret+16(FP)
	VZEROUPPER
	RET

// func sqdev64AVX512(x *float32, n int, m float64) float64
TEXT ·sqdev64AVX512(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSD m+16(FP), Z4
	VXORPD Z0, Z0, Z0
	VXORPD Z1, Z1, Z1
	MOVQ CX, DX
	SHRQ $4, DX
	JZ sqtail

sqloop:
	VCVTPS2PD (SI), Z2
	VCVTPS2PD 32(SI), Z3
	VSUBPD Z4, Z2, Z2
	VSUBPD Z4, Z3, Z3
	VMULPD Z2, Z2, Z2
	VMULPD Z3, Z3, Z3
	VADDPD Z2, Z0, Z0
	VADDPD Z3, Z1, Z1
	ADDQ $64, SI
	DECQ DX
	JNZ sqloop

sqtail:
	TESTQ $15, CX
	JZ sqfold
	TAILMASK
	LOADTAIL
	VSUBPD Z4, Z2, Z2
	VSUBPD Z4, Z3, Z3
	// The lanes past the end square to zero, not to m^2.
	VMULPD.Z Z2, Z2, K1, Z2
	VMULPD.Z Z3, Z3, K2, Z3
	VADDPD Z2, Z0, Z0
	VADDPD Z3, Z1, Z1

sqfold:
	FOLD16
	VMOVSD X0, ret+24(FP)
	VZEROUPPER
	RET

// func affine64AVX512(dst, x *float32, n int, scale, shift float64)
TEXT ·affine64AVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSD scale+24(FP), Z5
	VBROADCASTSD shift+32(FP), Z6
	MOVQ CX, DX
	SHRQ $4, DX
	JZ afftail

affloop:
	VCVTPS2PD (SI), Z2
	VCVTPS2PD 32(SI), Z3
	VMULPD Z5, Z2, Z2
	VMULPD Z5, Z3, Z3
	VADDPD Z6, Z2, Z2
	VADDPD Z6, Z3, Z3
	VCVTPD2PS Z2, Y2
	VCVTPD2PS Z3, Y3
	VMOVUPS Y2, (DI)
	VMOVUPS Y3, 32(DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ DX
	JNZ affloop

afftail:
	TESTQ $15, CX
	JZ affdone
	TAILMASK
	LOADTAIL
	VMULPD Z5, Z2, Z2
	VMULPD Z5, Z3, Z3
	VADDPD Z6, Z2, Z2
	VADDPD Z6, Z3, Z3
	VCVTPD2PS Z2, Y2
	VCVTPD2PS Z3, Y3
	VMOVUPS Y2, K1, (DI)
	VMOVUPS Y3, K2, 32(DI)

affdone:
	VZEROUPPER
	RET
