// Package simd says which vector instruction sets the kernels may use:
// those the CPU has (golang.org/x/sys/cpu), capped by the environment
// variable LDM_SIMD, so that the portable paths can be run and checked on
// any machine:
//
//	LDM_SIMD=go      the portable Go code only
//	LDM_SIMD=avx2    at most AVX2 and FMA
//	LDM_SIMD=avx512  everything the CPU has (the default)
//
// The variable is read once, at start-up.
package simd

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/cpu"
)

// Env is the variable that caps the instruction sets.
const Env = "LDM_SIMD"

var limit = parse(os.Getenv(Env))

// Level is an instruction set, in increasing order.
type Level int

const (
	Go Level = iota
	AVX2
	AVX512
)

func parse(v string) Level {
	switch v {
	case "", "avx512":
		return AVX512
	case "avx2":
		return AVX2
	case "go":
		return Go
	}
	fmt.Fprintf(os.Stderr, "ldm: %s=%q is not go, avx2 or avx512; using every instruction set the CPU has\n", Env, v)
	return AVX512
}

// HasAVX512 reports whether the kernels may use AVX-512 (F).
func HasAVX512() bool { return limit >= AVX512 && runtime.GOARCH == "amd64" && cpu.X86.HasAVX512F }

// HasAVX2FMA reports whether the kernels may use AVX2 with FMA.
func HasAVX2FMA() bool {
	return limit >= AVX2 && runtime.GOARCH == "amd64" && cpu.X86.HasAVX2 && cpu.X86.HasFMA
}
