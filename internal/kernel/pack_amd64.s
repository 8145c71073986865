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
