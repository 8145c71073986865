package scheduler

import (
	"fmt"

	"gorgonia.org/tensor"
)

func init() {
	register("EulerAncestralDiscreteScheduler", func(c *Config) (Scheduler, error) { return NewEulerAncestral(c) })
}

// EulerAncestral is diffusers' EulerAncestralDiscreteScheduler: an Euler
// step down to sigma_down followed by fresh noise of standard deviation
// sigma_up, at every step.
type EulerAncestral struct {
	sigmaBase
	noise []float32
}

// NewEulerAncestral builds an EulerAncestralDiscreteScheduler. diffusers
// does not implement prediction_type "sample" for it, so neither do we.
func NewEulerAncestral(c *Config) (*EulerAncestral, error) {
	b, err := newSigmaBase(c, "EulerAncestralDiscreteScheduler")
	if err != nil {
		return nil, err
	}
	if b.cfg.PredictionType == "sample" {
		return nil, fmt.Errorf("scheduler config: prediction_type: \"sample\" is not supported by EulerAncestralDiscreteScheduler (expected \"epsilon\" or \"v_prediction\")")
	}
	return &EulerAncestral{sigmaBase: b}, nil
}

// SetTimesteps prepares n inference steps and resets the step index.
func (s *EulerAncestral) SetTimesteps(n int) error {
	if err := checkSteps(s.cfg, n); err != nil {
		return err
	}
	ts := sigmaTimesteps(s.cfg, n)
	sig := s.interpolated(ts)
	s.sigmas = make([]float32, 0, n+1)
	for _, v := range sig {
		s.sigmas = append(s.sigmas, float32(v))
	}
	s.sigmas = append(s.sigmas, 0)
	s.timesteps = ts
	s.idx.reset(ts)
	return nil
}

// Step takes one ancestral Euler step; it draws noise at every step.
func (s *EulerAncestral) Step(modelOutput *tensor.Dense, t float64, sample *tensor.Dense, noise Noise) (*StepOutput, error) {
	i, err := s.idx.current(t)
	if err != nil {
		return nil, err
	}
	mo, x, err := stepArgs(modelOutput, sample)
	if err != nil {
		return nil, err
	}
	if noise == nil {
		return nil, errNoNoise
	}
	prev, x0 := s.outputs(sample.Shape())
	sigma := s.sigmas[i]
	sigmaX0(x0, mo, x, s.cfg.PredictionType, sigma)
	from, to := sigma, s.sigmas[i+1]
	f2, t2 := float32(from*from), float32(to*to)
	up := sqrt32(float32(t2*(f2-t2)) / f2)
	down := sqrt32(t2 - float32(up*up))
	dt := down - sigma
	if cap(s.noise) < len(x) {
		s.noise = make([]float32, len(x))
	}
	z := s.noise[:len(x)]
	noise.FillNormal(z)
	for k := range prev {
		d := (x[k] - x0[k]) / sigma
		prev[k] = x[k] + float32(d*dt)
		prev[k] += float32(z[k] * up)
	}
	s.idx.i++
	return s.output(s.prev, s.x0), nil
}
