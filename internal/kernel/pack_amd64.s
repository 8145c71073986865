//go:build amd64

#include "textflag.h"

// func packMaskedAVX512(dst, img *float32, offs *int, masks *uint32, rows, ldd int, store uint32)
//
// Row r: the 32 floats at img+offs[r], lanes off in masks[r] read as zero
// without touching memory, stored to the lanes of dst+r*ldd set in store.
TEXT ·packMaskedAVX512(SB), NOSPLIT, $0-52
	MOVQ dst+0(FP), DI
	MOVQ img+8(FP), SI
	MOVQ offs+16(FP), R8
	MOVQ masks+24(FP), R9
	MOVQ rows+32(FP), CX
	MOVQ ldd+40(FP), DX
	SHLQ $2, DX
	MOVL store+48(FP), AX
	KMOVW AX, K3
	SHRL $16, AX
	KMOVW AX, K4
	TESTQ CX, CX
	JEQ done

loop:
	MOVQ (R8), AX
	LEAQ (SI)(AX*4), BX
	MOVL (R9), AX
	KMOVW AX, K1
	SHRL $16, AX
	KMOVW AX, K2
	VMOVUPS.Z (BX), K1, Z0
	VMOVUPS.Z 64(BX), K2, Z1
	VMOVUPS Z0, K3, (DI)
	VMOVUPS Z1, K4, 64(DI)
	ADDQ $8, R8
	ADDQ $4, R9
	ADDQ DX, DI
	DECQ CX
	JNZ loop

done:
	VZEROUPPER
	RET
