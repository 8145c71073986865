package kernel

// siluPath is one implementation of SiLU over a slice: assembly where the
// CPU has vector units for it, Go everywhere. They all compute
// float32(x / (1 + exp64(-x))) in float64 with the same operations in the
// same order, so every path gives the same bits.
type siluPath struct {
	name string
	fn   func(dst, x []float32)
}

// siluGoPath is the portable implementation.
var siluGoPath = siluPath{"go", siluGo}

// siluActive is the path SiLU uses, the fastest this CPU runs; tests switch
// it to force each path.
var siluActive = siluPaths[0]

// siluPathNamed returns the available path with that name, or false when
// this CPU or architecture cannot run it.
func siluPathNamed(name string) (siluPath, bool) {
	for _, p := range siluPaths {
		if p.name == name {
			return p, true
		}
	}
	return siluPath{}, false
}

// silu writes SiLU(x) to dst[:len(x)] with the active path; dst may be x.
func silu(dst, x []float32) { siluActive.fn(dst[:len(x)], x) }

func siluGo(dst, x []float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = float32(float64(v) / (1 + exp64(-float64(v))))
	}
}
