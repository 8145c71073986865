package scheduler

import (
	"fmt"

	"gorgonia.org/tensor"
)

func init() {
	register("EulerDiscreteScheduler", func(c *Config) (Scheduler, error) { return NewEuler(c) })
}

// Euler is diffusers' EulerDiscreteScheduler: Euler's method on the
// probability-flow ODE in the sigma parameterisation (Karras et al. 2022,
// algorithm 2, without churn).
type Euler struct {
	sigmaBase
}

// NewEuler builds an EulerDiscreteScheduler.
func NewEuler(c *Config) (*Euler, error) {
	b, err := newSigmaBase(c, "EulerDiscreteScheduler")
	if err != nil {
		return nil, err
	}
	if b.cfg.UseKarrasSigmas && b.cfg.InterpolationType == "log_linear" {
		// diffusers would build n+2 sigmas here; refuse rather than guess.
		return nil, fmt.Errorf("scheduler config: use_karras_sigmas with interpolation_type \"log_linear\" is not supported")
	}
	return &Euler{sigmaBase: b}, nil
}

// SetTimesteps prepares n inference steps and resets the step index.
func (s *Euler) SetTimesteps(n int) error {
	if err := checkSteps(s.cfg, n); err != nil {
		return err
	}
	ts := sigmaTimesteps(s.cfg, n)
	var sig []float64
	if s.cfg.InterpolationType == "log_linear" {
		// torch.linspace(log(sigma_last), log(sigma_first), n+1).exp() in
		// float32, over the training table's ends.
		ls := make([]float32, n+1)
		torchLinspace32(ls, float64(logf32(s.train[len(s.train)-1])), float64(logf32(s.train[0])))
		sig = make([]float64, n+1)
		for i, v := range ls {
			sig[i] = float64(expf32(v))
		}
	} else {
		sig = s.interpolated(ts)
	}
	if s.cfg.UseKarrasSigmas {
		sig = karrasSigmas(sig, n, s.cfg.SigmaMin, s.cfg.SigmaMax)
		for i, v := range sig {
			ts[i] = float64(float32(sigmaToT(v, s.logSigmas)))
		}
	}
	last := float32(0)
	if s.cfg.FinalSigmasType == "sigma_min" {
		last = s.train[0]
	}
	s.sigmas = make([]float32, 0, len(sig)+1)
	for _, v := range sig {
		s.sigmas = append(s.sigmas, float32(v))
	}
	s.sigmas = append(s.sigmas, last)
	if s.cfg.TimestepType == "continuous" && s.cfg.PredictionType == "v_prediction" {
		for i := range ts {
			ts[i] = float64(0.25 * logf32(s.sigmas[i]))
		}
	}
	s.timesteps = ts
	s.idx.reset(ts)
	return nil
}

// Step takes one Euler step.
func (s *Euler) Step(modelOutput *tensor.Dense, t float64, sample *tensor.Dense, noise Noise) (*StepOutput, error) {
	i, err := s.idx.current(t)
	if err != nil {
		return nil, err
	}
	mo, x, err := stepArgs(modelOutput, sample)
	if err != nil {
		return nil, err
	}
	prev, x0 := s.outputs(sample.Shape())
	sigma := s.sigmas[i]
	sigmaX0(x0, mo, x, s.cfg.PredictionType, sigma)
	dt := s.sigmas[i+1] - sigma
	for k := range prev {
		d := (x[k] - x0[k]) / sigma
		prev[k] = x[k] + float32(d*dt)
	}
	s.idx.i++
	return s.output(s.prev, s.x0), nil
}
