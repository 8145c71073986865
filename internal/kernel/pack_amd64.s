//go:build amd64

#include "textflag.h"

// func packTapsAVX512(dst, img *float32, offs *int32, masks *uint32, taps, chans, hw, ldd, ahead int, store uint32)
//
// For each of chans image planes (hw floats apart from img) and each of its
// taps in turn, one row of dst (rows ldd floats apart): the 32 floats at
// plane+offs[t], with the lanes clear in masks[t] read as zero without
// touching memory, stored to the lanes set in store. The three lines of
// each plane from plane+ahead bytes on are prefetched: the hardware does not
// follow one stream per plane, and the panels after this one read them.
TEXT ·packTapsAVX512(SB), NOSPLIT, $0-76
	MOVQ dst+0(FP), DI
	MOVQ img+8(FP), SI
	MOVQ offs+16(FP), R8
	MOVQ masks+24(FP), R9
	MOVQ taps+32(FP), R10
	MOVQ chans+40(FP), R11
	MOVQ hw+48(FP), R12
	SHLQ $2, R12
	MOVQ ldd+56(FP), DX
	SHLQ $2, DX
	TESTQ R11, R11
	JEQ done
	TESTQ R10, R10
	JEQ done
	MOVQ ahead+64(FP), R13
	MOVL store+72(FP), AX
	KMOVW AX, K3
	SHRL $16, AX
	KMOVW AX, K4

chan:
	XORQ CX, CX
	PREFETCHT0 (SI)(R13*1)
	PREFETCHT0 64(SI)(R13*1)
	PREFETCHT0 128(SI)(R13*1)

tap:
	MOVLQSX (R8)(CX*4), AX
	LEAQ (SI)(AX*4), BX
	KMOVW (R9)(CX*4), K1
	KMOVW 2(R9)(CX*4), K2
	VMOVUPS.Z (BX), K1, Z0
	VMOVUPS.Z 64(BX), K2, Z1
	VMOVUPS Z0, K3, (DI)
	VMOVUPS Z1, K4, 64(DI)
	ADDQ DX, DI
	INCQ CX
	CMPQ CX, R10
	JLT tap
	ADDQ R12, SI
	DECQ R11
	JNZ chan

done:
	VZEROUPPER
	RET

// func packPlanesAVX512(dst, img *float32, gidx, perm *int32, masks *uint16, halves, taps, t0, rows, hw, ldd int)
//
// packTapsAVX512 for planes of at most 16 pixels, a panel holding whole
// images: per plane (hw floats on from img), gather the panel's images'
// pixels into one zmm per 16 columns (lane l of half h from
// img+gidx[16h+l], the lanes clear in masks[2t+h] of every tap not read),
// then each tap's row is one permutation of it (perm[16t:], lanes clear in
// masks[2t+h] zeroed) and one store, a half at a time. Rows start at tap
// t0 of the first plane.
TEXT ·packPlanesAVX512(SB), NOSPLIT, $0-88
	MOVQ dst+0(FP), DI
	MOVQ img+8(FP), SI
	MOVQ gidx+16(FP), AX
	VMOVDQU32 (AX), Z28
	VMOVDQU32 64(AX), Z29
	MOVQ perm+24(FP), R8
	MOVQ masks+32(FP), R9
	MOVQ halves+40(FP), R10
	MOVQ taps+48(FP), R11
	MOVQ t0+56(FP), CX
	MOVQ rows+64(FP), BX
	MOVQ hw+72(FP), R12
	SHLQ $2, R12
	MOVQ ldd+80(FP), DX
	SHLQ $2, DX
	// K5, K6: the lanes any tap reads, per half (masks[2*taps], [2*taps+1]).
	KMOVW (R9)(R11*4), K5
	KMOVW 2(R9)(R11*4), K6
	TESTQ BX, BX
	JEQ pdone

pplane:
	KMOVW K5, K1
	VXORPS Z0, Z0, Z0
	VGATHERDPS (SI)(Z28*4), K1, Z0
	// A half that reads nothing (a panel of at most 16 columns) is not
	// gathered: masked accesses with no lane set are slow on this CPU.
	VXORPS Z1, Z1, Z1
	KORTESTW K6, K6
	JZ ptap
	KMOVW K6, K2
	VGATHERDPS (SI)(Z29*4), K2, Z1

ptap:
	MOVQ CX, AX
	SHLQ $6, AX
	VMOVDQU32 (R8)(AX*1), Z2
	KMOVW (R9)(CX*4), K3
	VPERMPS.Z Z0, Z2, K3, Z3
	VMOVUPS Z3, (DI)
	CMPQ R10, $1
	JEQ pnext
	KMOVW 2(R9)(CX*4), K4
	VPERMPS.Z Z1, Z2, K4, Z4
	VMOVUPS Z4, 64(DI)

pnext:
	ADDQ DX, DI
	DECQ BX
	JEQ pdone
	INCQ CX
	CMPQ CX, R11
	JLT ptap
	XORQ CX, CX
	ADDQ R12, SI
	JMP pplane

pdone:
	VZEROUPPER
	RET
