package scheduler

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

// The sigma-based methods (Euler, Euler ancestral, Heun, LMS) share the
// schedule built here: numpy float32 timesteps, sigmas interpolated in
// float64 from the float32 training sigmas, then stored as float32.

// sigmaTimesteps is the descending schedule of n timesteps the sigma-based
// classes use, with numpy's float32 rounding.
func sigmaTimesteps(c *Config, n int) []float64 {
	N := c.NumTrainTimesteps
	out := make([]float64, 0, n)
	switch c.TimestepSpacing {
	case "linspace":
		ls := npLinspace(0, float64(N-1), n)
		for i := n - 1; i >= 0; i-- {
			out = append(out, float64(float32(ls[i])))
		}
	case "leading":
		ratio := N / n
		for i := n - 1; i >= 0; i-- {
			out = append(out, float64(float32(i*ratio)+float32(c.StepsOffset)))
		}
	case "trailing":
		for _, v := range npArange(float64(N), 0, -float64(N)/float64(n)) {
			out = append(out, float64(float32(math.RoundToEven(v))-1))
		}
	}
	return out
}

// npInterp is numpy.interp(x, arange(len(fp)), fp) in float64.
func npInterp(x float64, fp []float32) float64 {
	n := len(fp)
	switch {
	case x <= 0:
		return float64(fp[0])
	case x >= float64(n-1):
		return float64(fp[n-1])
	}
	j := int(math.Floor(x))
	if float64(j) == x {
		return float64(fp[j])
	}
	slope := float64(fp[j+1]) - float64(fp[j])
	return slope*(x-float64(j)) + float64(fp[j])
}

// karrasSigmas is the schedule of Karras et al. 2022 (rho = 7) between
// sigmaMin and sigmaMax (nil: the ends of in), in numpy float64.
func karrasSigmas(in []float64, n int, sigmaMin, sigmaMax *float64) []float64 {
	lo, hi := in[len(in)-1], in[0]
	if sigmaMin != nil {
		lo = *sigmaMin
	}
	if sigmaMax != nil {
		hi = *sigmaMax
	}
	const rho = 7.0
	minInv, maxInv := math.Pow(lo, 1/rho), math.Pow(hi, 1/rho)
	ramp := npLinspace(0, 1, n)
	out := make([]float64, n)
	for i, r := range ramp {
		out[i] = math.Pow(maxInv+r*(minInv-maxInv), rho)
	}
	return out
}

// sigmaToT inverts the sigma table by linear interpolation in log sigma,
// as diffusers' _sigma_to_t (logSigmas is numpy's float32 log of the
// training sigmas).
func sigmaToT(sigma float64, logSigmas []float32) float64 {
	ls := math.Log(math.Max(sigma, 1e-10))
	// The last index whose log sigma is <= ls (0 if none), capped so that
	// low+1 is valid.
	low := 0
	for i, v := range logSigmas {
		if ls-float64(v) >= 0 {
			low = i
		}
	}
	if low > len(logSigmas)-2 {
		low = len(logSigmas) - 2
	}
	lo, hi := float64(logSigmas[low]), float64(logSigmas[low+1])
	w := (lo - ls) / (lo - hi)
	w = math.Min(math.Max(w, 0), 1)
	return (1-w)*float64(low) + w*float64(low+1)
}

func logTable(train []float32) []float32 {
	out := make([]float32, len(train))
	for i, s := range train {
		out[i] = logf32(s)
	}
	return out
}

// maxSigmaInit is init_noise_sigma of the sigma-based classes: the largest
// sigma for "linspace" and "trailing" spacing, else sqrt(max^2 + 1).
func maxSigmaInit(c *Config, sigmas []float32) float64 {
	m := sigmas[0]
	for _, s := range sigmas {
		if s > m {
			m = s
		}
	}
	if c.TimestepSpacing == "linspace" || c.TimestepSpacing == "trailing" {
		return float64(m)
	}
	return float64(sqrt32(float32(m*m) + 1))
}

// stepIndex tracks diffusers' _step_index: it starts at the index of the
// first timestep seen (the second occurrence when the timestep repeats)
// and advances by one per Step. Unlike diffusers, a call with a timestep
// other than the current one is an error rather than silently ignored.
type stepIndex struct {
	timesteps []float64
	i         int // -1 until the first call
}

func (s *stepIndex) reset(ts []float64) { s.timesteps, s.i = ts, -1 }

func (s *stepIndex) current(t float64) (int, error) {
	if s.timesteps == nil {
		return 0, errNoTimesteps
	}
	if s.i < 0 {
		first, count := -1, 0
		for i, v := range s.timesteps {
			if v == t {
				if count < 2 {
					first = i
				}
				count++
			}
		}
		if count == 0 {
			return 0, fmt.Errorf("scheduler: timestep %v is not in the schedule (set by SetTimesteps: %v)", t, s.timesteps)
		}
		s.i = first
	}
	if s.i >= len(s.timesteps) {
		return 0, fmt.Errorf("scheduler: timestep %v: all %d steps of the schedule have been taken; call SetTimesteps to start again", t, len(s.timesteps))
	}
	if s.timesteps[s.i] != t {
		return 0, fmt.Errorf("scheduler: timestep %v given where the schedule expects %v (step %d)", t, s.timesteps[s.i], s.i)
	}
	return s.i, nil
}

// sigmaX0 writes the x0 estimate of the sigma-parameterised methods in
// float32: epsilon x - sigma*m, v_prediction m*(-sigma/sqrt(sigma^2+1)) +
// x/(sigma^2+1), sample m.
func sigmaX0(dst, mo, x []float32, predictionType string, sigma float32) {
	switch predictionType {
	case "epsilon":
		for i := range dst {
			dst[i] = x[i] - float32(sigma*mo[i])
		}
	case "v_prediction":
		s2 := float32(sigma*sigma) + 1
		c := -sigma / sqrt32(s2)
		for i := range dst {
			dst[i] = float32(mo[i]*c) + x[i]/s2
		}
	case "sample":
		copy(dst, mo)
	}
}

// addNoiseSigma is the forward process of the sigma-based methods:
// dst = original + noise * sigma, sigma looked up by the index of each
// timestep in the schedule (the second occurrence if it repeats).
func addNoiseSigma(dst, original, noise []float32, per int, timesteps, schedule []float64, sigmas []float32) error {
	if schedule == nil {
		return fmt.Errorf("scheduler: AddNoise needs the schedule: call SetTimesteps first")
	}
	for b, t := range timesteps {
		idx, count := -1, 0
		for i, v := range schedule {
			if v == t {
				if count < 2 {
					idx = i
				}
				count++
			}
		}
		if idx < 0 {
			return fmt.Errorf("scheduler: AddNoise: timestep %v is not in the schedule (set by SetTimesteps: %v)", t, schedule)
		}
		s := sigmas[idx]
		for j := b * per; j < (b+1)*per; j++ {
			dst[j] = original[j] + float32(noise[j]*s)
		}
	}
	return nil
}

// sigmaBase is what the sigma-based schedulers share.
type sigmaBase struct {
	base
	train     []float32 // training sigmas, index = timestep
	logSigmas []float32
	timesteps []float64
	sigmas    []float32
	idx       stepIndex

	prev, x0 *tensor.Dense
}

func newSigmaBase(c *Config, class string) (sigmaBase, error) {
	b, err := newBase(c, class)
	if err != nil {
		return sigmaBase{}, err
	}
	if b.cfg.HasKey("rescale_betas_zero_snr") && b.cfg.RescaleBetasZeroSNR {
		// A zero terminal alpha would make the last sigma infinite;
		// diffusers sets it to 2^-24 instead.
		b.alphasCumprod[len(b.alphasCumprod)-1] = 1.0 / (1 << 24)
	}
	s := sigmaBase{base: b, train: trainSigmas(b.alphasCumprod)}
	s.logSigmas = logTable(s.train)
	return s, nil
}

// interpolated returns the float64 sigmas of timesteps ts.
func (s *sigmaBase) interpolated(ts []float64) []float64 {
	out := make([]float64, len(ts))
	for i, t := range ts {
		out[i] = npInterp(t, s.train)
	}
	return out
}

// Timesteps returns the schedule's timesteps (float32 values).
func (s *sigmaBase) Timesteps() []float64 { return s.timesteps }

// Sigmas returns the float32 noise levels, ending with the final sigma.
func (s *sigmaBase) Sigmas() []float32 { return s.sigmas }

// InitNoiseSigma is the standard deviation of the initial noise.
func (s *sigmaBase) InitNoiseSigma() float64 {
	if s.sigmas == nil {
		return maxSigmaInit(s.cfg, s.train)
	}
	return maxSigmaInit(s.cfg, s.sigmas)
}

// ScaleModelInput writes sample / sqrt(sigma^2 + 1) to dst.
func (s *sigmaBase) ScaleModelInput(dst, sample *tensor.Dense, t float64) error {
	i, err := s.idx.current(t)
	if err != nil {
		return err
	}
	return scaleInput(dst, sample, s.sigmas[i])
}

// AddNoise is the forward process original + noise*sigma(t), with t one of
// the schedule's timesteps.
func (s *sigmaBase) AddNoise(dst, original, noise *tensor.Dense, timesteps []float64) error {
	if err := checkShapes([]string{"original", "noise", "dst"}, original, noise, dst); err != nil {
		return err
	}
	per, err := perBatch("original", original, timesteps)
	if err != nil {
		return err
	}
	o, err := f32("original", original)
	if err != nil {
		return err
	}
	z, err := f32("noise", noise)
	if err != nil {
		return err
	}
	d, err := f32("dst", dst)
	if err != nil {
		return err
	}
	return addNoiseSigma(d, o, z, per, timesteps, s.timesteps, s.sigmas)
}

// outputs returns the reused output buffers for a sample shape.
func (s *sigmaBase) outputs(shape tensor.Shape) (prev, x0 []float32) {
	return denseData(buffer(&s.prev, shape)), denseData(buffer(&s.x0, shape))
}
