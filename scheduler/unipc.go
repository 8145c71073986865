package scheduler

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

// UniPCMultistep is diffusers' UniPCMultistepScheduler: the unified
// predictor-corrector of Zhao et al. (2023) with B(h) = h ("bh1") or
// B(h) = e^h - 1 ("bh2"). Each step first corrects the sample it is given
// with the new model output (UniC), then predicts the next one (UniP).
//
// Its scalar coefficients are float32 and formed in diffusers' order of
// operations, since that rounding is what diffusers' samples carry.
type UniPCMultistep struct {
	base
	sched sigmaSchedule
	hist  history

	lowerOrderNums int
	// thisOrder is the order of the last predictor, which the next
	// corrector uses.
	thisOrder int
	// last is the (corrected) sample the last predictor started from;
	// hasLast tells whether it belongs to the current run.
	last    []float32
	hasLast bool
	// conv holds the converted model output until the corrector is done.
	disabled map[int]bool
}

// NewUniPCMultistep builds the scheduler from a configuration of class
// UniPCMultistepScheduler, refusing the values diffusers refuses and the
// ones we do not support.
func NewUniPCMultistep(c *Config) (*UniPCMultistep, error) {
	b, err := newBase(c, "UniPCMultistepScheduler")
	if err != nil {
		return nil, err
	}
	cfg := b.cfg
	// diffusers renames these values in place when it builds the class.
	switch cfg.SolverType {
	case "midpoint", "heun", "logrho":
		cfg.SolverType = "bh2"
	}
	if err := oneOf("solver_type", cfg.SolverType, "bh1", "bh2"); err != nil {
		return nil, err
	}
	if cfg.FinalSigmasType == "zero" && !cfg.LowerOrderFinal && cfg.SolverOrder > 1 {
		// The last predictor would then difference against a zero sigma
		// (infinite log-SNR), which gives diffusers non-finite samples.
		return nil, fmt.Errorf("scheduler config: lower_order_final: false is not supported with final_sigmas_type \"zero\" and solver_order %d (the final step would be non-finite); set lower_order_final to true or final_sigmas_type to \"sigma_min\"", cfg.SolverOrder)
	}
	if cfg.FinalSigmasType == "zero" && !cfg.PredictX0 {
		// The noise-prediction update multiplies sigma_t = 0 by e^h - 1 =
		// infinity at the last step: diffusers returns NaN there.
		return nil, fmt.Errorf("scheduler config: predict_x0: false is not supported with final_sigmas_type \"zero\" (the final step would be NaN); set final_sigmas_type to \"sigma_min\"")
	}
	s := &UniPCMultistep{base: b, disabled: map[int]bool{}}
	for _, d := range cfg.DisableCorrector {
		s.disabled[d] = true
	}
	s.sched.init(&s.base)
	return s, nil
}

func init() {
	register("UniPCMultistepScheduler", func(c *Config) (Scheduler, error) { return NewUniPCMultistep(c) })
}

// Timesteps lists the timesteps of the current schedule.
func (s *UniPCMultistep) Timesteps() []float64 { return s.sched.timesteps }

// Sigmas lists the schedule's noise levels, ending at the final sigma.
func (s *UniPCMultistep) Sigmas() []float32 { return s.sched.sigmas }

// InitNoiseSigma is 1: the method works in the variance-preserving space.
func (s *UniPCMultistep) InitNoiseSigma() float64 { return 1 }

// ScaleModelInput copies sample: the model takes it unscaled.
func (s *UniPCMultistep) ScaleModelInput(dst, sample *tensor.Dense, t float64) error {
	return copyDense(dst, sample)
}

// SetTimesteps prepares n inference steps and clears the solver history.
func (s *UniPCMultistep) SetTimesteps(n int) error {
	c := s.cfg
	if err := checkSteps(c, n); err != nil {
		return err
	}
	T := c.NumTrainTimesteps
	ts := spacedTimesteps(c.TimestepSpacing, n, T, T, c.StepsOffset)
	var sigmas []float64
	final := 0.0
	if c.UseKarrasSigmas {
		sigmas, ts = s.sched.karras(n)
		if c.FinalSigmasType == "sigma_min" {
			final = sigmas[len(sigmas)-1]
		}
	} else {
		sigmas = s.sched.atTimesteps(ts)
		if c.FinalSigmasType == "sigma_min" {
			final = float64(s.sched.trainSigmas[0])
		}
	}
	if err := s.sched.set(ts, sigmas, final); err != nil {
		return err
	}
	// One slot more than the order: the corrector still reads every
	// stored output when the new one arrives.
	s.hist.reset(c.SolverOrder + 1)
	s.lowerOrderNums = 0
	s.thisOrder = 0
	s.hasLast = false
	return nil
}

// Step corrects sample with the model output at timestep t (except at the
// first step and where disable_corrector says so), then predicts the sample
// at the next timestep. PredOriginalSample is the model's x0 estimate when
// predict_x0 is true, and nil otherwise.
func (s *UniPCMultistep) Step(modelOutput *tensor.Dense, t float64, sample *tensor.Dense, noise Noise) (*StepOutput, error) {
	c := s.cfg
	mo, x, err := s.hist.begin(&s.sched, "UniPCMultistepScheduler", modelOutput, t, sample, c.SolverOrder+1)
	if err != nil {
		return nil, err
	}
	n := len(x)
	if len(s.last) != n {
		s.last = make([]float32, n)
		s.hasLast = false
	}
	i := s.hist.stepIndex
	useCorrector := i > 0 && !s.disabled[i-1] && s.hasLast

	// The newest slot is free: the corrector reads only the older ones.
	slots := s.hist.outputs
	conv := slots[0]
	at, st := alphaSigma(s.sched.sigmas[i])
	if c.PredictX0 {
		predictX0(conv, mo, x, at, st, c.PredictionType)
		if c.Thresholding {
			s.hist.threshold(conv, c)
		}
	} else {
		switch c.PredictionType {
		case "epsilon":
			copy(conv, mo)
		case "sample":
			for k := range conv {
				conv[k] = (x[k] - float32(at*mo[k])) / st
			}
		case "v_prediction":
			for k := range conv {
				conv[k] = float32(at*mo[k]) + float32(st*x[k])
			}
		}
	}

	if useCorrector {
		s.correct(s.last, conv, s.thisOrder)
	} else {
		copy(s.last, x)
	}
	// conv, in the oldest slot, becomes the newest output.
	s.hist.rotate()

	order := c.SolverOrder
	if c.LowerOrderFinal {
		order = min(order, len(s.sched.timesteps)-i)
	}
	s.thisOrder = min(order, s.lowerOrderNums+1)
	s.hasLast = true

	out := s.hist.nextOut()
	s.predict(data32(out), s.last, s.thisOrder)

	if s.lowerOrderNums < c.SolverOrder {
		s.lowerOrderNums++
	}
	s.hist.stepIndex++
	s.hist.taken++
	s.hist.res = StepOutput{PrevSample: out}
	if c.PredictX0 {
		s.hist.res.PredOriginalSample = s.hist.tensors[len(s.hist.tensors)-1]
	}
	return &s.hist.res, nil
}

// bhCoefficients forms UniPC's linear system R rho = b for an update of
// the given order from log-SNR step h and the ratios rks (ending with 1),
// with the phi_1 term h_phi_1 and B(h), in float32 as diffusers forms them.
func (s *UniPCMultistep) bhCoefficients(rks *[3]float32, h float32, order int) (R mat3, b [3]float32, hPhi1, Bh float32) {
	hh := h
	if s.cfg.PredictX0 {
		hh = -h
	}
	hPhi1 = expm132(hh)
	hPhiK := hPhi1/hh - 1
	factorial := 1
	if s.cfg.SolverType == "bh1" {
		Bh = hh
	} else {
		Bh = expm132(hh)
	}
	for k := 1; k <= order; k++ {
		for j := 0; j < order; j++ {
			R[k-1][j] = pow32(rks[j], k-1)
		}
		b[k-1] = float32(hPhiK*float32(factorial)) / Bh
		factorial *= k + 1
		hPhiK = hPhiK/hh - float32(1/float64(factorial))
	}
	return R, b, hPhi1, Bh
}

// pow32 is torch.pow(x, e) for the small integer exponents used here.
func pow32(x float32, e int) float32 {
	switch e {
	case 0:
		return 1
	case 1:
		return x
	case 2:
		return x * x
	}
	return float32(x*x) * x
}

// predict is UniP (diffusers' multistep_uni_p_bh_update): from sample x at
// the current step to the next step, into dst.
func (s *UniPCMultistep) predict(dst, x []float32, order int) {
	i := s.hist.stepIndex
	sig := s.sched.sigmas
	at, st := alphaSigma(sig[i+1])
	as0, ss0 := alphaSigma(sig[i])
	lt, ls0 := lambda(at, st), lambda(as0, ss0)
	h := lt - ls0
	outs := s.hist.outputs
	n := len(outs)
	m0 := outs[n-1]

	var rks [3]float32
	var ms [3][]float32
	for k := 1; k < order; k++ {
		a, sg := alphaSigma(sig[i-k])
		rks[k-1] = (lambda(a, sg) - ls0) / h
		ms[k-1] = outs[n-1-k]
	}
	rks[order-1] = 1
	R, b, hPhi1, Bh := s.bhCoefficients(&rks, h, order)
	// rhos[:order-1] weigh the differences to the earlier outputs.
	var rhos [3]float32
	switch {
	case order == 2:
		rhos[0] = 0.5
	case order > 2:
		rhos = solve32(&R, b, order-1)
	}

	var cx, cm, cb float32
	if s.cfg.PredictX0 {
		cx, cm, cb = st/ss0, at*hPhi1, at*Bh
	} else {
		cx, cm, cb = at/as0, st*hPhi1, st*Bh
	}
	for k := range dst {
		v := float32(cx*x[k]) - float32(cm*m0[k])
		// With no earlier outputs diffusers subtracts B(h)*0, which adds
		// nothing (or NaN where B(h) is infinite); we skip it.
		if order > 1 {
			var res float32
			for j := 0; j < order-1; j++ {
				d := (ms[j][k] - m0[k]) / rks[j]
				res += float32(rhos[j] * d)
			}
			v -= float32(cb * res)
		}
		dst[k] = v
	}
}

// correct is UniC (diffusers' multistep_uni_c_bh_update): it improves the
// sample xt of the current step with this step's converted model output
// modelT, from the previous step's sample last, in place in last.
func (s *UniPCMultistep) correct(last, modelT []float32, order int) {
	i := s.hist.stepIndex
	sig := s.sched.sigmas
	at, st := alphaSigma(sig[i])
	as0, ss0 := alphaSigma(sig[i-1])
	lt, ls0 := lambda(at, st), lambda(as0, ss0)
	h := lt - ls0
	// The outputs are not rotated yet: the newest stored one is at n-1,
	// and slot 0 holds modelT.
	outs := s.hist.outputs
	n := len(outs)
	m0 := outs[n-1]

	var rks [3]float32
	var ms [3][]float32
	for k := 1; k < order; k++ {
		a, sg := alphaSigma(sig[i-(k+1)])
		rks[k-1] = (lambda(a, sg) - ls0) / h
		ms[k-1] = outs[n-1-k]
	}
	rks[order-1] = 1
	R, b, hPhi1, Bh := s.bhCoefficients(&rks, h, order)
	var rhos [3]float32
	if order == 1 {
		rhos[0] = 0.5
	} else {
		rhos = solve32(&R, b, order)
	}
	rLast := rhos[order-1]

	var cx, cm, cb float32
	if s.cfg.PredictX0 {
		cx, cm, cb = st/ss0, at*hPhi1, at*Bh
	} else {
		cx, cm, cb = at/as0, st*hPhi1, st*Bh
	}
	for k := range last {
		v := float32(cx*last[k]) - float32(cm*m0[k])
		d1t := modelT[k] - m0[k]
		var res float32
		for j := 0; j < order-1; j++ {
			d := (ms[j][k] - m0[k]) / rks[j]
			res += float32(rhos[j] * d)
		}
		if order > 1 {
			res += float32(rLast * d1t)
		} else {
			res = float32(rLast * d1t)
		}
		last[k] = v - float32(cb*res)
	}
}

// mat3 holds a linear system of at most three unknowns.
type mat3 [3][3]float32

// solve32 solves the leading n-by-n system A x = b in float32 by LU
// factorisation with partial pivoting, as LAPACK's sgesv (behind
// torch.linalg.solve) does.
func solve32(A *mat3, b [3]float32, n int) [3]float32 {
	a := *A
	x := b
	for j := 0; j < n; j++ {
		p := j
		for i := j + 1; i < n; i++ {
			if abs32(a[i][j]) > abs32(a[p][j]) {
				p = i
			}
		}
		a[j], a[p] = a[p], a[j]
		x[j], x[p] = x[p], x[j]
		if a[j][j] == 0 {
			continue
		}
		inv := 1 / a[j][j]
		for i := j + 1; i < n; i++ {
			l := a[i][j] * inv
			for k := j + 1; k < n; k++ {
				a[i][k] -= float32(l * a[j][k])
			}
			x[i] -= float32(l * x[j])
		}
	}
	for j := n - 1; j >= 0; j-- {
		x[j] /= a[j][j]
		for i := 0; i < j; i++ {
			x[i] -= float32(x[j] * a[i][j])
		}
	}
	return x
}

func abs32(x float32) float32 { return float32(math.Abs(float64(x))) }

// AddNoise is forward diffusion at the schedule's noise levels:
// dst = alpha_t*x0 + sigma_t*noise, with timesteps[b] taken from the
// current schedule for batch element b.
func (s *UniPCMultistep) AddNoise(dst, original, noise *tensor.Dense, timesteps []float64) error {
	return s.sched.addNoise("UniPCMultistepScheduler", dst, original, noise, timesteps)
}
