package simd

import "testing"

func TestParse(t *testing.T) {
	for v, want := range map[string]Level{"": AVX512, "avx512": AVX512, "avx2": AVX2, "go": Go} {
		if got := parse(v); got != want {
			t.Errorf("%s=%q: level %d, want %d", Env, v, got, want)
		}
	}
	saved := limit
	defer func() { limit = saved }()
	limit = Go
	if HasAVX512() || HasAVX2FMA() {
		t.Errorf("%s=go still allows vector kernels", Env)
	}
	limit = AVX2
	if HasAVX512() {
		t.Errorf("%s=avx2 still allows AVX-512", Env)
	}
}
