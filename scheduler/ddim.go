package scheduler

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

func init() {
	register("DDIMScheduler", func(c *Config) (Scheduler, error) { return NewDDIM(c) })
}

// DDIM is diffusers' DDIMScheduler: denoising diffusion implicit models
// (Song et al. 2021). Eta (0 by default, set with SetEta) scales the noise
// added at each step: 0 is the deterministic DDIM, 1 matches DDPM's
// variance.
type DDIM struct {
	base
	th         thresholder
	eta        float64
	finalAlpha float32
	n          int
	timesteps  []float64

	prev, x0 *tensor.Dense
	eps      []float32
	noise    []float32
}

// NewDDIM builds a DDIMScheduler.
func NewDDIM(c *Config) (*DDIM, error) {
	b, err := newBase(c, "DDIMScheduler")
	if err != nil {
		return nil, err
	}
	s := &DDIM{base: b, finalAlpha: 1}
	if !c.SetAlphaToOne {
		s.finalAlpha = s.alphasCumprod[0]
	}
	return s, nil
}

// SetEta sets the weight of the noise of each step (diffusers' step
// argument eta); it stays in force across SetTimesteps.
func (s *DDIM) SetEta(eta float64) error {
	if !(eta >= 0) || math.IsInf(eta, 1) {
		return fmt.Errorf("scheduler: eta: expected a finite number >= 0, found %v", eta)
	}
	s.eta = eta
	return nil
}

// Eta returns the current eta.
func (s *DDIM) Eta() float64 { return s.eta }

// SetTimesteps prepares n inference steps spaced by timestep_spacing.
func (s *DDIM) SetTimesteps(n int) error {
	if err := checkSteps(s.cfg, n); err != nil {
		return err
	}
	s.n = n
	s.timesteps = alphaTimesteps(s.cfg, n)
	return nil
}

// Timesteps returns the integer timesteps of the schedule, descending.
func (s *DDIM) Timesteps() []float64 { return s.timesteps }

// Sigmas returns nil: DDIM has no sigma schedule.
func (s *DDIM) Sigmas() []float32 { return nil }

// InitNoiseSigma is 1.
func (s *DDIM) InitNoiseSigma() float64 { return 1 }

// ScaleModelInput copies sample to dst: DDIM does not scale the input.
func (s *DDIM) ScaleModelInput(dst, sample *tensor.Dense, t float64) error {
	return copyInput(dst, sample)
}

// AddNoise is the forward process sqrt(ac)*x0 + sqrt(1-ac)*noise.
func (s *DDIM) AddNoise(dst, original, noise *tensor.Dense, timesteps []float64) error {
	return s.addNoiseAlpha(dst, original, noise, timesteps)
}

// Step takes one DDIM step; noise is drawn only when eta > 0.
func (s *DDIM) Step(modelOutput *tensor.Dense, t float64, sample *tensor.Dense, noise Noise) (*StepOutput, error) {
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
	if s.eta > 0 && noise == nil {
		return nil, errNoNoise
	}
	ti := int(t)
	pt := ti - s.cfg.NumTrainTimesteps/s.n
	at := s.alphasCumprod[ti]
	ap := s.finalAlpha
	if pt >= 0 {
		ap = s.alphasCumprod[pt]
	}
	bt := 1 - at
	sa, sb := sqrt32(at), sqrt32(bt)

	shape := sample.Shape()
	prev := denseData(buffer(&s.prev, shape))
	x0 := denseData(buffer(&s.x0, shape))
	if cap(s.eps) < len(x) {
		s.eps = make([]float32, len(x))
	}
	eps := s.eps[:len(x)]
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
	postprocessX0(s.cfg, &s.th, x0, shape[0])

	bp := 1 - ap
	variance := float32(bp/bt) * (1 - at/ap)
	std := float32(s.eta) * sqrt32(variance)
	dirSq := 1 - ap - float32(std*std)
	if dirSq < 0 {
		return nil, fmt.Errorf("scheduler: eta = %v is too large at timestep %v: 1 - alpha_prev - std^2 = %v < 0", s.eta, t, dirSq)
	}
	dir := sqrt32(dirSq)
	sp := sqrt32(ap)
	for i := range prev {
		prev[i] = float32(sp*x0[i]) + float32(dir*eps[i])
	}
	if s.eta > 0 {
		if cap(s.noise) < len(x) {
			s.noise = make([]float32, len(x))
		}
		z := s.noise[:len(x)]
		noise.FillNormal(z)
		addScaled(prev, z, std)
	}
	return s.output(s.prev, s.x0), nil
}
