package scheduler

import "gorgonia.org/tensor"

func init() {
	register("HeunDiscreteScheduler", func(c *Config) (Scheduler, error) { return NewHeun(c) })
}

// Heun is diffusers' HeunDiscreteScheduler: Heun's second-order method
// (Karras et al. 2022, algorithm 1). Every step but the first takes two
// model evaluations, so the timesteps repeat: an Euler step to the next
// sigma, then a correction averaging the two slopes. The final step to
// sigma 0 is a plain Euler step.
type Heun struct {
	sigmaBase
	// The first-order half of a step: its slope, dt and starting sample.
	firstOrder bool
	deriv      []float32
	dt         float32
	start      []float32
}

// NewHeun builds a HeunDiscreteScheduler.
func NewHeun(c *Config) (*Heun, error) {
	b, err := newSigmaBase(c, "HeunDiscreteScheduler")
	if err != nil {
		return nil, err
	}
	return &Heun{sigmaBase: b, firstOrder: true}, nil
}

// SetTimesteps prepares n inference steps (2n-1 Step calls) and resets the
// run state.
func (s *Heun) SetTimesteps(n int) error {
	if err := checkSteps(s.cfg, n); err != nil {
		return err
	}
	ts := sigmaTimesteps(s.cfg, n)
	sig := s.interpolated(ts)
	if s.cfg.UseKarrasSigmas {
		// Heun's config has no sigma_min/sigma_max: the table's ends.
		sig = karrasSigmas(sig, n, nil, nil)
		for i, v := range sig {
			ts[i] = sigmaToT(v, s.logSigmas)
		}
	}
	// sigmas: first, each interior one twice, then 0; timesteps: first,
	// then each later one twice.
	s.sigmas = make([]float32, 0, 2*n)
	s.sigmas = append(s.sigmas, float32(sig[0]))
	for _, v := range sig[1:] {
		s.sigmas = append(s.sigmas, float32(v), float32(v))
	}
	s.sigmas = append(s.sigmas, 0)
	s.timesteps = make([]float64, 0, 2*n-1)
	s.timesteps = append(s.timesteps, ts[0])
	for _, v := range ts[1:] {
		s.timesteps = append(s.timesteps, v, v)
	}
	s.idx.reset(s.timesteps)
	s.firstOrder = true
	return nil
}

// Step takes one half of a Heun step.
func (s *Heun) Step(modelOutput *tensor.Dense, t float64, sample *tensor.Dense, noise Noise) (*StepOutput, error) {
	i, err := s.idx.current(t)
	if err != nil {
		return nil, err
	}
	mo, x, err := stepArgs(modelOutput, sample)
	if err != nil {
		return nil, err
	}
	prev, x0 := s.outputs(sample.Shape())
	var sigma, next float32
	if s.firstOrder {
		sigma, next = s.sigmas[i], s.sigmas[i+1]
	} else {
		sigma, next = s.sigmas[i-1], s.sigmas[i]
	}
	sigmaIn := sigma
	if !s.firstOrder {
		sigmaIn = next
	}
	sigmaX0(x0, mo, x, s.cfg.PredictionType, sigmaIn)
	if s.cfg.ClipSample {
		clip32(x0, float32(s.cfg.ClipSampleRange))
	}
	if s.firstOrder {
		if cap(s.deriv) < len(x) {
			s.deriv = make([]float32, len(x))
			s.start = make([]float32, len(x))
		}
		s.deriv, s.start = s.deriv[:len(x)], s.start[:len(x)]
		dt := next - sigma
		for k := range prev {
			d := (x[k] - x0[k]) / sigma
			s.deriv[k] = d
			prev[k] = x[k] + float32(d*dt)
		}
		copy(s.start, x)
		s.dt = dt
		s.firstOrder = false
	} else {
		dt := s.dt
		for k := range prev {
			d := (x[k] - x0[k]) / next
			d = (s.deriv[k] + d) / 2
			prev[k] = s.start[k] + float32(d*dt)
		}
		s.firstOrder = true
	}
	s.idx.i++
	return s.output(s.prev, s.x0), nil
}
