package nn

import (
	"math"
	"strings"
)

// InitKaiming initialises parameters as PyTorch's defaults do for a fresh
// diffusers model: convolution and linear weights and their biases uniform
// in ±1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5)), norm weights 1 and
// biases 0, and embedding tables standard normal. Parameters are visited in
// construction order, each from rng, so a seed fixes the whole model.
func InitKaiming(ps *Params, rng *RNG) {
	fanIn := map[string]int{}
	for _, p := range ps.List() {
		if strings.HasSuffix(p.Name, ".weight") && len(p.Shape) >= 2 {
			f := 1
			for _, d := range p.Shape[1:] {
				f *= d
			}
			fanIn[strings.TrimSuffix(p.Name, ".weight")] = f
		}
	}
	for _, p := range ps.List() {
		base := p.Name[:strings.LastIndex(p.Name, ".")+1]
		base = strings.TrimSuffix(base, ".")
		isBias := strings.HasSuffix(p.Name, ".bias")
		switch {
		case isNorm(base):
			v := float32(1)
			if isBias {
				v = 0
			}
			for i := range p.Data {
				p.Data[i] = v
			}
		case strings.HasSuffix(base, "class_embedding") && !isBias && len(p.Shape) == 2 && !hasLinearPartner(ps, base),
			base == "time_proj" && len(p.Shape) == 2:
			for i := range p.Data {
				p.Data[i] = float32(rng.Normal())
			}
		case base == "time_proj":
			// Gaussian Fourier frequencies: N(0, 1) * scale 16, frozen.
			for i := range p.Data {
				p.Data[i] = float32(16 * rng.Normal())
			}
		default:
			f, ok := fanIn[base]
			if !ok || f == 0 {
				continue
			}
			bound := 1 / math.Sqrt(float64(f))
			for i := range p.Data {
				p.Data[i] = float32((2*rng.Float64() - 1) * bound)
			}
		}
	}
}

func isNorm(base string) bool {
	last := base[strings.LastIndex(base, ".")+1:]
	return strings.Contains(last, "norm")
}

// hasLinearPartner tells a Linear layer's weight (which has a bias) from an
// Embedding table (which has none).
func hasLinearPartner(ps *Params, base string) bool {
	return ps.Get(base+".bias") != nil
}
