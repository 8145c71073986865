package scheduler

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

func init() {
	register("PNDMScheduler", func(c *Config) (Scheduler, error) { return NewPNDM(c) })
}

// pndmOrder is the number of Runge-Kutta warm-up steps' worth of history
// PNDM builds (diffusers' pndm_order).
const pndmOrder = 4

// PNDM is diffusers' PNDMScheduler: pseudo numerical methods for diffusion
// models (Liu et al. 2022). Without skip_prk_steps it starts with
// Runge-Kutta (PRK) steps, four model calls per step over three steps, then
// continues with the linear multistep PLMS; with skip_prk_steps it starts
// PLMS directly, repeating the second timestep. Step returns no x0.
type PNDM struct {
	base
	finalAlpha float32
	n          int
	prk        []float64
	timesteps  []float64

	counter int
	ets     [][]float32
	pool    [][]float32
	// curModel accumulates the Runge-Kutta slopes; curSample is the sample
	// a multi-call step started from.
	curModel     []float32
	curModelSet  bool
	curSample    []float32
	curSampleSet bool
	combined     []float32

	prev *tensor.Dense
}

// NewPNDM builds a PNDMScheduler. diffusers supports prediction_type
// "epsilon" and "v_prediction" only.
func NewPNDM(c *Config) (*PNDM, error) {
	b, err := newBase(c, "PNDMScheduler")
	if err != nil {
		return nil, err
	}
	if c.PredictionType == "sample" {
		return nil, fmt.Errorf("scheduler config: prediction_type: \"sample\" is not supported by PNDMScheduler (expected \"epsilon\" or \"v_prediction\")")
	}
	s := &PNDM{base: b, finalAlpha: 1}
	if !c.SetAlphaToOne {
		s.finalAlpha = s.alphasCumprod[0]
	}
	return s, nil
}

// SetTimesteps prepares n inference steps and resets the run state. The
// schedule has n+1 calls with skip_prk_steps and more without.
func (s *PNDM) SetTimesteps(n int) error {
	if err := checkSteps(s.cfg, n); err != nil {
		return err
	}
	N := s.cfg.NumTrainTimesteps
	// Ascending base timesteps.
	base := make([]float64, 0, n)
	switch s.cfg.TimestepSpacing {
	case "linspace":
		for _, v := range npLinspace(0, float64(N-1), n) {
			base = append(base, roundEven(v))
		}
	case "leading":
		ratio := N / n
		for i := 0; i < n; i++ {
			base = append(base, float64(i*ratio+s.cfg.StepsOffset))
		}
	case "trailing":
		ar := npArange(float64(N), 0, -float64(N)/float64(n))
		for i := len(ar) - 1; i >= 0; i-- {
			base = append(base, roundEven(ar[i])-1)
		}
	}
	var prk, plms []float64
	if s.cfg.SkipPRKSteps {
		m := len(base)
		seq := append(append(append([]float64{}, base[:m-1]...), base[max(m-2, 0):m-1]...), base[m-1])
		plms = reversed(seq)
	} else {
		if len(base) < pndmOrder {
			return fmt.Errorf("scheduler: PNDM with Runge-Kutta steps needs at least %d inference steps, found %d (or set skip_prk_steps)", pndmOrder, n)
		}
		half := float64(N / n / 2)
		var p []float64
		for _, t := range base[len(base)-pndmOrder:] {
			p = append(p, t, t+half)
		}
		p = p[:len(p)-1]
		var rep []float64
		for _, t := range p {
			rep = append(rep, t, t)
		}
		prk = reversed(rep[1 : len(rep)-1])
		plms = reversed(base[:len(base)-3])
	}
	s.n = n
	s.prk = prk
	s.timesteps = append(append([]float64{}, prk...), plms...)
	s.counter = 0
	s.pool = append(s.pool, s.ets...)
	s.ets = s.ets[:0]
	s.curModelSet, s.curSampleSet = false, false
	return nil
}

func reversed(v []float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[len(v)-1-i] = x
	}
	return out
}

func roundEven(x float64) float64 { return math.RoundToEven(x) }

// Timesteps lists the calls' timesteps (some repeat).
func (s *PNDM) Timesteps() []float64 { return s.timesteps }

// Sigmas returns nil: PNDM has no sigma schedule.
func (s *PNDM) Sigmas() []float32 { return nil }

// InitNoiseSigma is 1.
func (s *PNDM) InitNoiseSigma() float64 { return 1 }

// ScaleModelInput copies sample to dst: PNDM does not scale the input.
func (s *PNDM) ScaleModelInput(dst, sample *tensor.Dense, t float64) error {
	return copyInput(dst, sample)
}

// AddNoise is the forward process sqrt(ac)*x0 + sqrt(1-ac)*noise.
func (s *PNDM) AddNoise(dst, original, noise *tensor.Dense, timesteps []float64) error {
	return s.addNoiseAlpha(dst, original, noise, timesteps)
}

// pushET appends a copy of m to the model-output history, keeping at most
// keep entries before it.
func (s *PNDM) pushET(m []float32, keep int) {
	for len(s.ets) > keep {
		s.pool = append(s.pool, s.ets[0])
		s.ets = append(s.ets[:0], s.ets[1:]...)
	}
	var e []float32
	if n := len(s.pool); n > 0 {
		e, s.pool = s.pool[n-1], s.pool[:n-1]
	}
	if cap(e) < len(m) {
		e = make([]float32, len(m))
	}
	e = e[:len(m)]
	copy(e, m)
	s.ets = append(s.ets, e)
}

func grow(b *[]float32, n int) []float32 {
	if cap(*b) < n {
		*b = make([]float32, n)
	}
	*b = (*b)[:n]
	return *b
}

// Step takes the next PRK or PLMS call.
func (s *PNDM) Step(modelOutput *tensor.Dense, t float64, sample *tensor.Dense, noise Noise) (*StepOutput, error) {
	if s.n == 0 {
		return nil, errNoTimesteps
	}
	if s.counter >= len(s.timesteps) {
		return nil, fmt.Errorf("scheduler: timestep %v: all %d steps of the schedule have been taken; call SetTimesteps to start again", t, len(s.timesteps))
	}
	if s.timesteps[s.counter] != t {
		return nil, fmt.Errorf("scheduler: timestep %v given where the schedule expects %v (step %d)", t, s.timesteps[s.counter], s.counter)
	}
	mo, x, err := stepArgs(modelOutput, sample)
	if err != nil {
		return nil, err
	}
	prev := denseData(buffer(&s.prev, sample.Shape()))
	if s.counter < len(s.prk) && !s.cfg.SkipPRKSteps {
		s.stepPRK(prev, mo, x, int(t))
	} else {
		s.stepPLMS(prev, mo, x, int(t))
	}
	s.counter++
	return s.output(s.prev, nil), nil
}

func (s *PNDM) stepPRK(prev, mo, x []float32, t int) {
	N := s.cfg.NumTrainTimesteps
	diff := 0
	if s.counter%2 == 0 {
		diff = N / s.n / 2
	}
	prevT := t - diff
	t = int(s.prk[s.counter/4*4])
	cur := grow(&s.curModel, len(x))
	var m []float32
	switch s.counter % 4 {
	case 0:
		scaleInto(cur, mo, float32(1.0/6), s.curModelSet)
		s.curModelSet = true
		s.pushET(mo, len(s.ets))
		copy(grow(&s.curSample, len(x)), x)
		s.curSampleSet = true
		m = mo
	case 1, 2:
		scaleInto(cur, mo, float32(1.0/3), s.curModelSet)
		s.curModelSet = true
		m = mo
	case 3:
		comb := grow(&s.combined, len(x))
		for i := range comb {
			c := float32(0)
			if s.curModelSet {
				c = cur[i]
			}
			comb[i] = c + float32(float32(1.0/6)*mo[i])
		}
		s.curModelSet = false
		m = comb
	}
	from := x
	if s.curSampleSet {
		from = s.curSample
	}
	s.prevSample(prev, from, t, prevT, m)
}

// scaleInto does cur += c*m (cur = 0 + c*m when not yet set).
func scaleInto(cur, m []float32, c float32, set bool) {
	for i := range cur {
		v := float32(c * m[i])
		if set {
			cur[i] += v
		} else {
			cur[i] = v
		}
	}
}

func (s *PNDM) stepPLMS(prev, mo, x []float32, t int) {
	N := s.cfg.NumTrainTimesteps
	prevT := t - N/s.n
	if s.counter != 1 {
		s.pushET(mo, 3)
	} else {
		prevT = t
		t += N / s.n
	}
	comb := grow(&s.combined, len(x))
	e := s.ets
	k := len(e)
	from := x
	switch {
	case k == 1 && s.counter == 0:
		copy(comb, mo)
		copy(grow(&s.curSample, len(x)), x)
		s.curSampleSet = true
	case k == 1 && s.counter == 1:
		for i := range comb {
			comb[i] = (mo[i] + e[0][i]) / 2
		}
		from = s.curSample
		s.curSampleSet = false
	case k == 2:
		for i := range comb {
			comb[i] = (float32(3*e[1][i]) - e[0][i]) / 2
		}
	case k == 3:
		for i := range comb {
			comb[i] = (float32(23*e[2][i]) - float32(16*e[1][i]) + float32(5*e[0][i])) / 12
		}
	default:
		c := float32(1.0 / 24)
		for i := range comb {
			v := float32(55*e[k-1][i]) - float32(59*e[k-2][i]) + float32(37*e[k-3][i]) - float32(9*e[k-4][i])
			comb[i] = float32(c * v)
		}
	}
	s.prevSample(prev, from, t, prevT, comb)
}

// prevSample is PNDM's transfer from t to prevT (Liu et al. 2022, eq. 11)
// with the combined model output m, in diffusers' float32 order.
func (s *PNDM) prevSample(prev, x []float32, t, prevT int, m []float32) {
	at := s.alphasCumprod[t]
	ap := s.finalAlpha
	if prevT >= 0 {
		ap = s.alphasCumprod[prevT]
	}
	bt, bp := 1-at, 1-ap
	sa, sb := sqrt32(at), sqrt32(bt)
	sampleCoeff := sqrt32(ap / at)
	denom := float32(at*sqrt32(bp)) + sqrt32(float32(float32(at*bt)*ap))
	diff := ap - at
	v := s.cfg.PredictionType == "v_prediction"
	for i := range prev {
		mi := m[i]
		if v {
			mi = float32(sa*mi) + float32(sb*x[i])
		}
		prev[i] = float32(sampleCoeff*x[i]) - float32(diff*mi)/denom
	}
}
