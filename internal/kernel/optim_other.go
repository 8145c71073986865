//go:build !amd64

package kernel

const useOptimAVX512 = false

func adamAVX512(p, g, m, v *float32, n int, c *AdamConsts) { panic("unreachable") }

func emaAVX512(s, p *float32, n int, w float32) { panic("unreachable") }
