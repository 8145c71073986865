package scheduler

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

func init() {
	register("DDPMScheduler", func(c *Config) (Scheduler, error) { return NewDDPM(c) })
}

// DDPM is diffusers' DDPMScheduler: ancestral sampling of the denoising
// diffusion probabilistic model (Ho et al. 2020).
//
// With variance_type "learned" or "learned_range" the model predicts its own
// variance: Step then takes a model output with twice the sample's channels
// (dimension 1), the first half being the prediction and the second the
// variance, split as diffusers splits it. A model output with the sample's
// channels uses no predicted variance, which those two types need.
type DDPM struct {
	base
	th        thresholder
	n         int
	timesteps []float64

	prev, x0 *tensor.Dense
	noise    []float32
	split    []float32
}

// NewDDPM builds a DDPMScheduler. variance_type "fixed_large_log" is
// refused: diffusers v0.31 takes the square root of log(beta) for it, which
// is NaN at every noisy step.
func NewDDPM(c *Config) (*DDPM, error) {
	b, err := newBase(c, "DDPMScheduler")
	if err != nil {
		return nil, err
	}
	if c.VarianceType == "fixed_large_log" {
		return nil, fmt.Errorf("scheduler config: variance_type: \"fixed_large_log\" is not supported: diffusers' DDPMScheduler.step takes sqrt(log(beta)), which is NaN (use \"fixed_large\")")
	}
	return &DDPM{base: b}, nil
}

// SetTimesteps prepares n inference steps spaced by timestep_spacing.
func (s *DDPM) SetTimesteps(n int) error {
	if err := checkSteps(s.cfg, n); err != nil {
		return err
	}
	s.n = n
	s.timesteps = alphaTimesteps(s.cfg, n)
	return nil
}

// Timesteps returns the integer timesteps of the schedule, descending.
func (s *DDPM) Timesteps() []float64 { return s.timesteps }

// Sigmas returns nil: DDPM has no sigma schedule.
func (s *DDPM) Sigmas() []float32 { return nil }

// InitNoiseSigma is 1.
func (s *DDPM) InitNoiseSigma() float64 { return 1 }

// ScaleModelInput copies sample to dst: DDPM does not scale the input.
func (s *DDPM) ScaleModelInput(dst, sample *tensor.Dense, t float64) error {
	return copyInput(dst, sample)
}

// AddNoise is the forward process sqrt(ac)*x0 + sqrt(1-ac)*noise.
func (s *DDPM) AddNoise(dst, original, noise *tensor.Dense, timesteps []float64) error {
	return s.addNoiseAlpha(dst, original, noise, timesteps)
}

// prevTimestep is t minus the schedule's stride, -1 or below meaning x0.
func (s *DDPM) prevTimestep(t int) int { return t - s.cfg.NumTrainTimesteps/s.n }

// Step takes one ancestral step, drawing noise at every step but the last.
func (s *DDPM) Step(modelOutput *tensor.Dense, t float64, sample *tensor.Dense, noise Noise) (*StepOutput, error) {
	if s.n == 0 {
		return nil, errNoTimesteps
	}
	if _, err := indexOf(s.timesteps, t); err != nil {
		return nil, err
	}
	learned := s.cfg.VarianceType == "learned" || s.cfg.VarianceType == "learned_range"
	if modelOutput == nil || sample == nil {
		return nil, fmt.Errorf("scheduler: Step: nil tensor")
	}
	ms, ss := modelOutput.Shape(), sample.Shape()
	split := learned && len(ms) >= 2 && len(ms) == len(ss) && ms[1] == 2*ss[1]
	if !split {
		if learned {
			return nil, fmt.Errorf("scheduler: variance_type %q: the model output (shape %v) must have twice the channels of the sample (shape %v)", s.cfg.VarianceType, ms, ss)
		}
		if err := checkShapes([]string{"sample", "model output"}, sample, modelOutput); err != nil {
			return nil, err
		}
	} else {
		for i := range ss {
			if i != 1 && ms[i] != ss[i] {
				return nil, fmt.Errorf("scheduler: model output has shape %v; expected the sample's shape %v with twice the channels", ms, ss)
			}
		}
	}
	mo, err := f32("model output", modelOutput)
	if err != nil {
		return nil, err
	}
	x, err := f32("sample", sample)
	if err != nil {
		return nil, err
	}
	var predVar []float32
	if split {
		// Channels [0, C) are the prediction, [C, 2C) the variance.
		if cap(s.split) < 2*len(x) {
			s.split = make([]float32, 2*len(x))
		}
		eps, pv := s.split[:len(x)], s.split[len(x):2*len(x)]
		inner := len(x) / ss[0] // C*H*W
		for b := 0; b < ss[0]; b++ {
			copy(eps[b*inner:(b+1)*inner], mo[2*b*inner:(2*b+1)*inner])
			copy(pv[b*inner:(b+1)*inner], mo[(2*b+1)*inner:(2*b+2)*inner])
		}
		mo, predVar = eps, pv
	}
	ti := int(t)
	pt := s.prevTimestep(ti)
	at := s.alphasCumprod[ti]
	ap := float32(1)
	if pt >= 0 {
		ap = s.alphasCumprod[pt]
	}
	bt, bp := 1-at, 1-ap
	curAlpha := at / ap
	curBeta := 1 - curAlpha

	prev := denseData(buffer(&s.prev, ss))
	x0 := denseData(buffer(&s.x0, ss))
	predictX0Alpha(x0, mo, x, s.cfg.PredictionType, at)
	postprocessX0(s.cfg, &s.th, x0, ss[0])

	c0 := float32(sqrt32(ap)*curBeta) / bt
	cs := float32(sqrt32(curAlpha)*bp) / bt
	for i := range prev {
		prev[i] = float32(c0*x0[i]) + float32(cs*x[i])
	}
	if ti > 0 {
		if noise == nil {
			return nil, errNoNoise
		}
		if cap(s.noise) < len(x) {
			s.noise = make([]float32, len(x))
		}
		z := s.noise[:len(x)]
		noise.FillNormal(z)
		// The variance before any log: beta-tilde of Ho et al., clamped.
		v := float32(bp/bt) * curBeta
		if v < 1e-20 {
			v = 1e-20
		}
		switch s.cfg.VarianceType {
		case "fixed_small":
			addScaled(prev, z, sqrt32(v))
		case "fixed_small_log":
			addScaled(prev, z, expf32(0.5*logf32(v)))
		case "fixed_large":
			addScaled(prev, z, sqrt32(curBeta))
		case "learned":
			for i := range prev {
				prev[i] += float32(sqrt32(predVar[i]) * z[i])
			}
		case "learned_range":
			minLog, maxLog := logf32(v), logf32(curBeta)
			for i := range prev {
				frac := (predVar[i] + 1) / 2
				lv := float32(frac*maxLog) + float32((1-frac)*minLog)
				prev[i] += float32(expf32(0.5*lv) * z[i])
			}
		}
	}
	return s.output(s.prev, s.x0), nil
}

func addScaled(dst, z []float32, std float32) {
	for i := range dst {
		dst[i] += float32(std * z[i])
	}
}

func logf32(x float32) float32 { return float32(math.Log(float64(x))) }
func expf32(x float32) float32 { return float32(math.Exp(float64(x))) }
