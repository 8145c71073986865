//go:build amd64

#include "textflag.h"

// The upsampling convolution's interleave (upconv.go): out row 2y is
// p00[y] and p01[y] alternating, out row 2y+1 is p10[y] and p11[y], each
// value plus the bias. Sixteen pixels of each phase make 64 output values:
// VPERMI2PS pairs a[i] with b[i] through the index vectors at idx (the
// first sixteen lanes' pairs, then the last sixteen's).

// PHASES loads sixteen values of each phase at offset R, adds the bias (Z31)
// and leaves the top row's pairs in Z4 (lanes 0-7) and Z5 (8-15), the bottom
// row's in Z6 and Z7.
#define PHASES(R) \
	VADDPS 0(SI)(R*1), Z31, Z0 \
	VADDPS 0(DX)(R*1), Z31, Z1 \
	VADDPS 0(R8)(R*1), Z31, Z2 \
	VADDPS 0(R9)(R*1), Z31, Z3 \
	VMOVAPS Z29, Z4 \
	VPERMI2PS Z1, Z0, Z4 \
	VMOVAPS Z30, Z5 \
	VPERMI2PS Z1, Z0, Z5 \
	VMOVAPS Z29, Z6 \
	VPERMI2PS Z3, Z2, Z6 \
	VMOVAPS Z30, Z7 \
	VPERMI2PS Z3, Z2, Z7

// func interleavePhasesAVX512(dst, p00, p01, p10, p11 *float32, h, w int, bias float32, idx *[32]int32)
// w is 4, 8 or a multiple of 16.
//
// At widths 4 and 8 a block of sixteen values is four rows or two, whose
// output rows (top y, bottom y, top y+1, ...) lie one after the other in
// 64 values. At width 8, Z4 to Z7 are those rows. At width 4, Z4 holds the
// top output rows y and y+1 and Z6 the bottom ones; VSHUFF32X4 takes their
// halves in output order, and from Z5 and Z7 those of rows y+2 and y+3.
//
// At a multiple of 16 each row's chunks of sixteen make its top output
// row, 32 values per chunk, and the bottom one 2*w values after it.
TEXT ·interleavePhasesAVX512(SB), NOSPLIT, $0-72
	MOVQ dst+0(FP), DI
	MOVQ p00+8(FP), SI
	MOVQ p01+16(FP), DX
	MOVQ p10+24(FP), R8
	MOVQ p11+32(FP), R9
	MOVQ h+40(FP), CX
	MOVQ w+48(FP), R10
	VBROADCASTSS bias+56(FP), Z31
	MOVQ idx+64(FP), AX
	VMOVDQU32 0(AX), Z29
	VMOVDQU32 64(AX), Z30
	XORQ BX, BX
	TESTQ CX, CX
	JZ done
	CMPQ R10, $4
	JEQ width4
	CMPQ R10, $8
	JEQ width8
	// R10: chunks a row; R11: bytes of one output row (2*w floats).
	SHRQ $4, R10
	MOVQ R10, R11
	SHLQ $7, R11
row16:
	MOVQ R10, R12
	MOVQ DI, R13
chunk16:
	PHASES(BX)
	VMOVUPS Z4, 0(R13)
	VMOVUPS Z5, 64(R13)
	VMOVUPS Z6, 0(R13)(R11*1)
	VMOVUPS Z7, 64(R13)(R11*1)
	ADDQ $64, BX
	ADDQ $128, R13
	DECQ R12
	JNZ chunk16
	LEAQ 0(DI)(R11*2), DI
	DECQ CX
	JNZ row16
	JMP done
width8:
	SHRQ $1, CX
loop8:
	PHASES(BX)
	VMOVUPS Z4, 0(DI)
	VMOVUPS Z6, 64(DI)
	VMOVUPS Z5, 128(DI)
	VMOVUPS Z7, 192(DI)
	ADDQ $64, BX
	ADDQ $256, DI
	DECQ CX
	JNZ loop8
	JMP done
width4:
	SHRQ $2, CX
loop4:
	PHASES(BX)
	VSHUFF32X4 $0x44, Z6, Z4, Z8
	VSHUFF32X4 $0xee, Z6, Z4, Z9
	VSHUFF32X4 $0x44, Z7, Z5, Z10
	VSHUFF32X4 $0xee, Z7, Z5, Z11
	VMOVUPS Z8, 0(DI)
	VMOVUPS Z9, 64(DI)
	VMOVUPS Z10, 128(DI)
	VMOVUPS Z11, 192(DI)
	ADDQ $64, BX
	ADDQ $256, DI
	DECQ CX
	JNZ loop4
done:
	VZEROUPPER
	RET
