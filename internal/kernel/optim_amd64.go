package kernel

import "github.com/ldm-go/ldm/internal/simd"

// useOptimAVX512 selects the AVX-512 optimiser kernels; tests turn it off
// to compare with the Go loops.
var useOptimAVX512 = simd.HasAVX512()

// adamAVX512 is AdamW over n elements, sixteen at a time.
//
//go:noescape
func adamAVX512(p, grad, m, v *float32, n int, c *AdamConsts)

// emaAVX512 is EMA over n elements, sixteen at a time.
//
//go:noescape
func emaAVX512(s, p *float32, n int, w float32)
