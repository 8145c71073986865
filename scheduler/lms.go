package scheduler

import "gorgonia.org/tensor"

func init() {
	register("LMSDiscreteScheduler", func(c *Config) (Scheduler, error) { return NewLMS(c) })
}

// LMSOrder is the order of diffusers' LMSDiscreteScheduler.step (its
// default order argument).
const LMSOrder = 4

// LMS is diffusers' LMSDiscreteScheduler: a linear multistep method on the
// sigma-parameterised ODE (Karras et al. 2022's k-diffusion LMS). The
// coefficients integrate the Lagrange basis polynomials through the last
// sigmas over the step; diffusers integrates them numerically with scipy's
// quad, we exactly, by Gauss-Legendre quadrature (exact for the polynomial
// degrees involved).
type LMS struct {
	sigmaBase
	// derivs holds the last LMSOrder slopes, oldest first.
	derivs [][]float32
	pool   [][]float32
	coeffs [LMSOrder]float64
}

// NewLMS builds an LMSDiscreteScheduler.
func NewLMS(c *Config) (*LMS, error) {
	b, err := newSigmaBase(c, "LMSDiscreteScheduler")
	if err != nil {
		return nil, err
	}
	return &LMS{sigmaBase: b}, nil
}

// SetTimesteps prepares n inference steps and resets the history.
func (s *LMS) SetTimesteps(n int) error {
	if err := checkSteps(s.cfg, n); err != nil {
		return err
	}
	ts := sigmaTimesteps(s.cfg, n)
	sig := s.interpolated(ts)
	if s.cfg.UseKarrasSigmas {
		// LMS ignores sigma_min/sigma_max: the table's ends.
		sig = karrasSigmas(sig, n, nil, nil)
		for i, v := range sig {
			ts[i] = sigmaToT(v, s.logSigmas)
		}
	}
	s.sigmas = make([]float32, 0, n+1)
	for _, v := range sig {
		s.sigmas = append(s.sigmas, float32(v))
	}
	s.sigmas = append(s.sigmas, 0)
	s.timesteps = ts
	s.idx.reset(ts)
	s.pool = append(s.pool, s.derivs...)
	s.derivs = s.derivs[:0]
	return nil
}

// gauss4 are the 4-point Gauss-Legendre nodes and weights on [-1, 1],
// exact for polynomials up to degree 7.
var gauss4 = [4][2]float64{
	{-0.8611363115940526, 0.3478548451374538},
	{-0.3399810435848563, 0.6521451548625461},
	{0.3399810435848563, 0.6521451548625461},
	{0.8611363115940526, 0.3478548451374538},
}

// lmsCoefficient integrates, from sigmas[t] to sigmas[t+1], the Lagrange
// basis polynomial that is 1 at sigmas[t-current] and 0 at the other
// sigmas[t-k], k < order.
func (s *LMS) lmsCoefficient(order, t, current int) float64 {
	sg := func(i int) float64 { return float64(s.sigmas[i]) }
	basis := func(tau float64) float64 {
		p := 1.0
		for k := 0; k < order; k++ {
			if k == current {
				continue
			}
			p *= (tau - sg(t-k)) / (sg(t-current) - sg(t-k))
		}
		return p
	}
	a, b := sg(t), sg(t+1)
	half, mid := (b-a)/2, (a+b)/2
	sum := 0.0
	for _, nw := range gauss4 {
		sum += nw[1] * basis(mid+half*nw[0])
	}
	return sum * half
}

// Step takes one LMS step.
func (s *LMS) Step(modelOutput *tensor.Dense, t float64, sample *tensor.Dense, noise Noise) (*StepOutput, error) {
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

	var d []float32
	if len(s.derivs) == LMSOrder {
		d = s.derivs[0]
		s.derivs = append(s.derivs[:0], s.derivs[1:]...)
	} else if n := len(s.pool); n > 0 {
		d = s.pool[n-1]
		s.pool = s.pool[:n-1]
	}
	if cap(d) < len(x) {
		d = make([]float32, len(x))
	}
	d = d[:len(x)]
	for k := range d {
		d[k] = (x[k] - x0[k]) / sigma
	}
	s.derivs = append(s.derivs, d)

	order := min(i+1, LMSOrder)
	for c := 0; c < order; c++ {
		s.coeffs[c] = s.lmsCoefficient(order, i, c)
	}
	// sample + (c0*d[-1] + c1*d[-2] + ...), each product in float32.
	for k := range prev {
		acc := float32(0)
		for c := 0; c < order; c++ {
			acc += float32(float32(s.coeffs[c]) * s.derivs[len(s.derivs)-1-c][k])
		}
		prev[k] = x[k] + acc
	}
	s.idx.i++
	return s.output(s.prev, s.x0), nil
}
