// Group norm's backward loops, with the Go loops' operations in their order:
// the sums keep the four running sums of backward.go (element j in lane
// j%4 of a four-lane register), and the input gradient is computed element
// by element, eight at a time.

//go:build amd64

#include "textflag.h"

// func gnBackSumsAVX2(d, xs *float32, n int, m, r float64, sums *[8]float64)
//
// Over the first n (a multiple of 4) elements: sums[0:4] are the lanes of
// the sum of d, sums[4:8] those of the sum of d * ((xs - m) * r).
TEXT ·gnBackSumsAVX2(SB), NOSPLIT, $0-48
	MOVQ d+0(FP), SI
	MOVQ xs+8(FP), DX
	MOVQ n+16(FP), CX
	VBROADCASTSD m+24(FP), Y4
	VBROADCASTSD r+32(FP), Y5
	MOVQ sums+40(FP), DI
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	SHRQ $2, CX
	JZ gnsumdone
gnsumloop:
	VCVTPS2PD (SI), Y2
	VCVTPS2PD (DX), Y3
	VADDPD Y2, Y0, Y0
	VSUBPD Y4, Y3, Y3
	VMULPD Y5, Y3, Y3
	VMULPD Y3, Y2, Y3
	VADDPD Y3, Y1, Y1
	ADDQ $16, SI
	ADDQ $16, DX
	DECQ CX
	JNZ gnsumloop
gnsumdone:
	VMOVUPD Y0, 0(DI)
	VMOVUPD Y1, 32(DI)
	VZEROUPPER
	RET

// func gnBackApplyAVX512(out, d, xs *float32, n int, rw, a, b float64)
//
// out[j] += float32((d[j]*rw + xs[j]*a) + b) for j < n.
TEXT ·gnBackApplyAVX512(SB), NOSPLIT, $0-56
	MOVQ out+0(FP), DI
	MOVQ d+8(FP), SI
	MOVQ xs+16(FP), DX
	MOVQ n+24(FP), CX
	VBROADCASTSD rw+32(FP), Z4
	VBROADCASTSD a+40(FP), Z5
	VBROADCASTSD b+48(FP), Z6
	MOVL $0xff, AX
	KMOVW AX, K1
gnaploop:
	CMPQ CX, $8
	JLT gnaptail
gnapstep:
	VMOVUPS.Z (SI), K1, Y0
	VMOVUPS.Z (DX), K1, Y1
	VMOVUPS.Z (DI), K1, Y2
	VCVTPS2PD Y0, Z0
	VCVTPS2PD Y1, Z1
	VMULPD Z4, Z0, Z0
	VMULPD Z5, Z1, Z1
	VADDPD Z1, Z0, Z0
	VADDPD Z6, Z0, Z0
	VCVTPD2PS Z0, Y0
	VADDPS Y0, Y2, Y2
	VMOVUPS Y2, K1, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	SUBQ $8, CX
	JMP gnaploop
gnaptail:
	TESTQ CX, CX
	JZ gnapdone
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	MOVQ $8, CX
	JMP gnapstep
gnapdone:
	VZEROUPPER
	RET
