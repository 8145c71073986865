package scheduler

import (
	"fmt"

	"gorgonia.org/tensor"
)

// DDIMInverse is diffusers' DDIMInverseScheduler: deterministic DDIM run
// backwards, from a clean sample towards noise, so that DDIM sampling from
// the result with the same model and step count returns (approximately) the
// sample. It is used to find the noise of a real image, for example to
// interpolate between images in noise space.
//
// Timesteps ascend. Step(model output at t, t, x) moves x from the level of
// the previous timestep t - T/n (alpha 1 when that is negative and
// set_alpha_to_one holds, else alphas_cumprod[0]) up to the level of t, as
// diffusers does: the model is evaluated at the noisier timestep t on the
// less noisy sample, the usual approximation of DDIM inversion. Only
// "leading" and "trailing" spacings are defined, as in diffusers; only
// clip_sample post-processing applies (diffusers' inverse scheduler has no
// thresholding).
//
// Config returns the training configuration as a DDIMScheduler config, since
// the inverse scheduler shares every key with it.
type DDIMInverse struct {
	base
	initialAlpha float32
	n            int
	timesteps    []float64
	prev, x0     *tensor.Dense
}

// NewDDIMInverse builds the inverse of DDIM for the training schedule of c
// (a config of any class; its training keys carry over as diffusers'
// from_config does).
func NewDDIMInverse(c *Config) (*DDIMInverse, error) {
	if c == nil {
		return nil, fmt.Errorf("scheduler: nil config")
	}
	if c.ClassName != "DDIMScheduler" {
		var err error
		if c, err = c.Convert("DDIMScheduler"); err != nil {
			return nil, err
		}
	}
	b, err := newBase(c, "DDIMScheduler")
	if err != nil {
		return nil, err
	}
	s := &DDIMInverse{base: b, initialAlpha: 1}
	if !c.SetAlphaToOne {
		s.initialAlpha = s.alphasCumprod[0]
	}
	return s, nil
}

// SetTimesteps prepares n inversion steps (ascending timesteps).
func (s *DDIMInverse) SetTimesteps(n int) error {
	if err := checkSteps(s.cfg, n); err != nil {
		return err
	}
	sp := s.cfg.TimestepSpacing
	if sp != "leading" && sp != "trailing" {
		return fmt.Errorf("scheduler: DDIM inversion: timestep_spacing %q is not supported (expected leading or trailing)", sp)
	}
	desc := alphaTimesteps(s.cfg, n)
	s.timesteps = make([]float64, n)
	for i, t := range desc {
		s.timesteps[n-1-i] = t
	}
	s.n = n
	return nil
}

// Timesteps returns the integer timesteps, ascending.
func (s *DDIMInverse) Timesteps() []float64 { return s.timesteps }

// Sigmas returns nil: DDIM has no sigma schedule.
func (s *DDIMInverse) Sigmas() []float32 { return nil }

// InitNoiseSigma is 1.
func (s *DDIMInverse) InitNoiseSigma() float64 { return 1 }

// ScaleModelInput copies sample to dst.
func (s *DDIMInverse) ScaleModelInput(dst, sample *tensor.Dense, t float64) error {
	return copyInput(dst, sample)
}

// AddNoise is the forward process sqrt(ac)*x0 + sqrt(1-ac)*noise.
func (s *DDIMInverse) AddNoise(dst, original, noise *tensor.Dense, timesteps []float64) error {
	return s.addNoiseAlpha(dst, original, noise, timesteps)
}

// Step takes one inversion step up to timestep t; noise is not used.
func (s *DDIMInverse) Step(modelOutput *tensor.Dense, t float64, sample *tensor.Dense, _ Noise) (*StepOutput, error) {
	if s.n == 0 {
		return nil, errNoTimesteps
	}
	if _, err := indexOf(s.timesteps, t); err != nil {
		return nil, err
	}
	mo, x, err := stepArgs(modelOutput, sample)
	if err != nil {
		return nil, err
	}
	T := s.cfg.NumTrainTimesteps
	from := min(int(t)-T/s.n, T-1)
	at := s.initialAlpha
	if from >= 0 {
		at = s.alphasCumprod[from]
	}
	ap := s.alphasCumprod[int(t)]
	bt := 1 - at
	sa, sb := sqrt32(at), sqrt32(bt)
	shape := sample.Shape()
	prev := denseData(buffer(&s.prev, shape))
	x0 := denseData(buffer(&s.x0, shape))
	eps := make([]float32, len(x))
	switch s.cfg.PredictionType {
	case "epsilon":
		for i := range x {
			x0[i] = (x[i] - float32(sb*mo[i])) / sa
		}
		copy(eps, mo)
	case "sample":
		copy(x0, mo)
		for i := range x {
			eps[i] = (x[i] - float32(sa*x0[i])) / sb
		}
	case "v_prediction":
		for i := range x {
			x0[i] = float32(sa*x[i]) - float32(sb*mo[i])
			eps[i] = float32(sa*mo[i]) + float32(sb*x[i])
		}
	}
	if s.cfg.ClipSample {
		clip32(x0, float32(s.cfg.ClipSampleRange))
	}
	dir, sp := sqrt32(1-ap), sqrt32(ap)
	for i := range prev {
		prev[i] = float32(sp*x0[i]) + float32(dir*eps[i])
	}
	return s.output(s.prev, s.x0), nil
}
