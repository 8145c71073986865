package scheduler

import "math"

// The training tables are float32 and built with float32 arithmetic in the
// order torch uses, because diffusers' numbers carry exactly that rounding.

// torchLinspace32 fills dst with torch.linspace(start, end, len(dst),
// dtype=float32) as torch 1.13's AVX2 CPU kernel computes it: the ends are
// converted to float32 and the step is taken in float32; values before the
// halfway index count forward from start, the others backward from end.
// The kernel runs over blocks of linspaceVec values, a block adding k*step
// to its first value, and the tail after the last full pair of blocks is
// computed value by value. The compiled kernel fuses the multiply-adds
// except for the last lane of a block; this reproduces every golden table
// (linear and scaled_linear) bit for bit, and that rounding is what
// diffusers' numbers carry.
func torchLinspace32(dst []float32, start, end float64) {
	n := len(dst)
	if n == 0 {
		return
	}
	s, e := float32(start), float32(end)
	if n == 1 {
		dst[0] = s
		return
	}
	step := (e - s) / float32(n-1)
	half := n / 2
	at := func(i int) float32 {
		if i < half {
			return fma32(step, float32(i), s)
		}
		return fma32(-step, float32(n-1-i), e)
	}
	i := 0
	for ; i <= n-2*linspaceVec; i += linspaceVec {
		base := at(i)
		for k := 0; k < linspaceVec; k++ {
			if k == linspaceVec-1 {
				dst[i+k] = base + float32(float32(k)*step)
			} else {
				dst[i+k] = fma32(float32(k), step, base)
			}
		}
	}
	for ; i < n; i++ {
		dst[i] = at(i)
	}
}

// fma32 is a*b+c rounded once to float32, as the compiler contracts
// torch's AVX2 kernels. The product of two float32 values is exact in
// float64, so only the final sum is rounded (twice, which differs from a
// single rounding only in ties that these tables do not hit).
func fma32(a, b, c float32) float32 {
	return float32(float64(a)*float64(b) + float64(c))
}

// linspaceVec is the float32 vector width of torch's CPU kernels (AVX2).
const linspaceVec = 8

// betasForAlphaBar is diffusers' betas_for_alpha_bar with the cosine
// schedule (Nichol and Dhariwal 2021), evaluated in float64 as Python does
// and rounded to float32 once.
func betasForAlphaBar(n int, maxBeta float64) []float32 {
	alphaBar := func(t float64) float64 {
		c := math.Cos((t + 0.008) / 1.008 * math.Pi / 2)
		return c * c
	}
	out := make([]float32, n)
	for i := range out {
		t1 := float64(i) / float64(n)
		t2 := float64(i+1) / float64(n)
		out[i] = float32(math.Min(1-alphaBar(t2)/alphaBar(t1), maxBeta))
	}
	return out
}

// trainingBetas builds the betas of a validated configuration.
func trainingBetas(c *Config) []float32 {
	n := c.NumTrainTimesteps
	var betas []float32
	switch {
	case c.TrainedBetas != nil:
		betas = make([]float32, n)
		for i, b := range c.TrainedBetas {
			betas[i] = float32(b)
		}
	case c.BetaSchedule == "linear":
		betas = make([]float32, n)
		torchLinspace32(betas, c.BetaStart, c.BetaEnd)
	case c.BetaSchedule == "scaled_linear":
		betas = make([]float32, n)
		torchLinspace32(betas, math.Pow(c.BetaStart, 0.5), math.Pow(c.BetaEnd, 0.5))
		for i, b := range betas {
			betas[i] = b * b
		}
	case c.BetaSchedule == "squaredcos_cap_v2":
		betas = betasForAlphaBar(n, 0.999)
	case c.BetaSchedule == "sigmoid":
		// DDPM only: sigmoid(linspace(-6, 6)) * (end - start) + start.
		betas = make([]float32, n)
		torchLinspace32(betas, -6, 6)
		span, start := float32(c.BetaEnd-c.BetaStart), float32(c.BetaStart)
		for i, x := range betas {
			sig := float32(1 / (1 + math.Exp(-float64(x))))
			betas[i] = float32(sig*span) + start
		}
	default:
		panic("scheduler: trainingBetas on an unvalidated config")
	}
	if c.RescaleBetasZeroSNR {
		rescaleZeroTerminalSNR(betas)
	}
	return betas
}

// cumprod32 is torch.cumprod of a float32 tensor on the CPU: the running
// product is accumulated in float64 (torch's CPU accumulation type for
// float) and each output rounded to float32.
func cumprod32(dst, src []float32) {
	p := 1.0
	for i, v := range src {
		p *= float64(v)
		dst[i] = float32(p)
	}
}

// rescaleZeroTerminalSNR rescales betas in place so the last cumulative
// alpha is zero while the first is unchanged (Lin et al. 2023, algorithm 1),
// in float32 as diffusers does.
func rescaleZeroTerminalSNR(betas []float32) {
	n := len(betas)
	sq := make([]float32, n)
	for i, b := range betas {
		sq[i] = 1 - b
	}
	cumprod32(sq, sq)
	for i, a := range sq {
		sq[i] = float32(math.Sqrt(float64(a)))
	}
	first, last := sq[0], sq[n-1]
	scale := first / (first - last)
	for i := range sq {
		sq[i] = (sq[i] - last) * scale
	}
	for i, s := range sq {
		sq[i] = s * s
	}
	// alphas_bar[1:] / alphas_bar[:-1], with alphas_bar[0] first.
	prev := sq[0]
	betas[0] = 1 - sq[0]
	for i := 1; i < n; i++ {
		cur := sq[i]
		betas[i] = 1 - cur/prev
		prev = cur
	}
}

// tables are the float32 training tables every scheduler shares.
type tables struct {
	betas, alphas, alphasCumprod []float32
}

func newTables(c *Config) tables {
	var t tables
	t.betas = trainingBetas(c)
	t.alphas = make([]float32, len(t.betas))
	for i, b := range t.betas {
		t.alphas[i] = 1 - b
	}
	t.alphasCumprod = make([]float32, len(t.betas))
	cumprod32(t.alphasCumprod, t.alphas)
	return t
}

// trainSigmas is ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5 in float32,
// the noise levels of the training timesteps in the variance-exploding
// parameterisation, in training order (index = timestep).
func trainSigmas(alphasCumprod []float32) []float32 {
	out := make([]float32, len(alphasCumprod))
	for i, a := range alphasCumprod {
		out[i] = float32(math.Sqrt(float64((1 - a) / a)))
	}
	return out
}
