package scheduler

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"gorgonia.org/tensor"
)

// DPMSolverMultistep is diffusers' DPMSolverMultistepScheduler: the
// multistep DPM-Solver (Lu et al. 2022) in its data-prediction form
// DPM-Solver++ (algorithm_type "dpmsolver++"), its stochastic variant
// ("sde-dpmsolver++") and the deprecated noise-prediction forms
// ("dpmsolver", "sde-dpmsolver"), of order 1 to 3.
//
// Its scalar coefficients are float32 and formed in diffusers' order of
// operations, since that rounding is what diffusers' samples carry.
type DPMSolverMultistep struct {
	base
	sched sigmaSchedule
	hist  history

	// lambdas is log(alpha_t) - log(sigma_t) of the training timesteps,
	// which lambda_min_clipped cuts.
	lambdas []float32
	// lowerOrderNums counts the steps taken, up to the solver order: the
	// warm-up of the multistep method.
	lowerOrderNums int
	noise          []float32
}

// NewDPMSolverMultistep builds the scheduler from a configuration of class
// DPMSolverMultistepScheduler, refusing the values diffusers refuses and the
// ones we do not support.
func NewDPMSolverMultistep(c *Config) (*DPMSolverMultistep, error) {
	b, err := newBase(c, "DPMSolverMultistepScheduler")
	if err != nil {
		return nil, err
	}
	cfg := b.cfg
	// diffusers renames these values in place when it builds the class.
	if cfg.AlgorithmType == "deis" {
		cfg.AlgorithmType = "dpmsolver++"
	}
	switch cfg.SolverType {
	case "logrho", "bh1", "bh2":
		cfg.SolverType = "midpoint"
	}
	if err := oneOf("algorithm_type", cfg.AlgorithmType, "dpmsolver++", "sde-dpmsolver++", "dpmsolver", "sde-dpmsolver"); err != nil {
		return nil, err
	}
	if err := oneOf("solver_type", cfg.SolverType, "midpoint", "heun"); err != nil {
		return nil, err
	}
	if !isPlusPlus(cfg.AlgorithmType) && cfg.FinalSigmasType == "zero" {
		return nil, fmt.Errorf("scheduler config: final_sigmas_type: %q is not supported with algorithm_type %q (diffusers refuses it); use \"sigma_min\"", cfg.FinalSigmasType, cfg.AlgorithmType)
	}
	if isSDE(cfg.AlgorithmType) && cfg.SolverOrder == 3 {
		// diffusers has no third-order update for the SDE variants and
		// fails at the third step.
		return nil, fmt.Errorf("scheduler config: solver_order: 3 is not supported with algorithm_type %q (diffusers has no third-order SDE update); use 1 or 2", cfg.AlgorithmType)
	}
	if cfg.VarianceType != "" {
		return nil, fmt.Errorf("scheduler config: variance_type: only null is supported for DPMSolverMultistepScheduler, found %q", cfg.VarianceType)
	}
	if math.IsNaN(cfg.LambdaMinClipped) {
		return nil, fmt.Errorf("scheduler config: lambda_min_clipped: expected a number or -Infinity, found NaN")
	}
	if cfg.UseKarrasSigmas && cfg.UseLuLambdas {
		return nil, fmt.Errorf("scheduler config: use_karras_sigmas, use_lu_lambdas: expected at most one to be true, found both")
	}
	s := &DPMSolverMultistep{base: b}
	s.sched.init(&s.base)
	s.lambdas = make([]float32, len(s.sched.alphasCumprod))
	for i, a := range s.sched.alphasCumprod {
		alpha := float32(math.Sqrt(float64(a)))
		sigma := float32(math.Sqrt(float64(1 - a)))
		s.lambdas[i] = log32(alpha) - log32(sigma)
	}
	return s, nil
}

func init() {
	register("DPMSolverMultistepScheduler", func(c *Config) (Scheduler, error) { return NewDPMSolverMultistep(c) })
}

func isPlusPlus(alg string) bool { return alg == "dpmsolver++" || alg == "sde-dpmsolver++" }
func isSDE(alg string) bool      { return alg == "sde-dpmsolver++" || alg == "sde-dpmsolver" }

// Timesteps lists the timesteps of the current schedule.
func (s *DPMSolverMultistep) Timesteps() []float64 { return s.sched.timesteps }

// Sigmas lists the schedule's noise levels, ending at the final sigma.
func (s *DPMSolverMultistep) Sigmas() []float32 { return s.sched.sigmas }

// InitNoiseSigma is 1: the method works in the variance-preserving space.
func (s *DPMSolverMultistep) InitNoiseSigma() float64 { return 1 }

// ScaleModelInput copies sample: the model takes it unscaled.
func (s *DPMSolverMultistep) ScaleModelInput(dst, sample *tensor.Dense, t float64) error {
	return copyDense(dst, sample)
}

// SetTimesteps prepares n inference steps and clears the solver history.
func (s *DPMSolverMultistep) SetTimesteps(n int) error {
	c := s.cfg
	if err := checkSteps(c, n); err != nil {
		return err
	}
	// The largest timestep whose lambda is not below lambda_min_clipped,
	// found as torch.searchsorted on the flipped (ascending) lambdas.
	T := c.NumTrainTimesteps
	clipped := sort.Search(T, func(i int) bool { return !(float64(s.lambdas[T-1-i]) < c.LambdaMinClipped) })
	last := T - clipped
	ts := spacedTimesteps(c.TimestepSpacing, n, last, T, c.StepsOffset)
	var sigmas []float64
	switch {
	case c.UseKarrasSigmas:
		sigmas, ts = s.sched.karras(n)
	case c.UseLuLambdas:
		sigmas, ts = s.sched.lu(n)
	default:
		sigmas = s.sched.atTimesteps(ts)
	}
	final := 0.0
	if c.FinalSigmasType == "sigma_min" {
		final = float64(s.sched.trainSigmas[0])
	}
	if err := s.sched.set(ts, sigmas, final); err != nil {
		return err
	}
	s.hist.reset(c.SolverOrder)
	s.lowerOrderNums = 0
	return nil
}

// Step takes one DPM-Solver step from the model output at timestep t. The
// SDE variants draw one standard normal value per element from noise at
// every step. PredOriginalSample is the model's x0 estimate for the
// DPM-Solver++ variants and nil for the noise-prediction ones.
func (s *DPMSolverMultistep) Step(modelOutput *tensor.Dense, t float64, sample *tensor.Dense, noise Noise) (*StepOutput, error) {
	c := s.cfg
	mo, x, err := s.hist.begin(&s.sched, "DPMSolverMultistepScheduler", modelOutput, t, sample, c.SolverOrder)
	if err != nil {
		return nil, err
	}
	sde := isSDE(c.AlgorithmType)
	if sde && noise == nil {
		return nil, fmt.Errorf("DPMSolverMultistepScheduler.Step: algorithm_type %q draws noise at every step, but no noise source was given", c.AlgorithmType)
	}
	i := s.hist.stepIndex
	N := len(s.sched.timesteps)
	lowerFinal := i == N-1 && (c.EulerAtFinal || (c.LowerOrderFinal && N < 15) || c.FinalSigmasType == "zero")
	lowerSecond := i == N-2 && c.LowerOrderFinal && N < 15

	// The converted output goes into the oldest history slot, which then
	// becomes the newest.
	s.hist.rotate()
	m0 := s.hist.outputs[len(s.hist.outputs)-1]
	s.convert(m0, mo, x, s.sched.sigmas[i])

	if sde {
		if len(s.noise) != len(x) {
			s.noise = make([]float32, len(x))
		}
		noise.FillNormal(s.noise)
	}

	order := 3
	switch {
	case c.SolverOrder == 1 || s.lowerOrderNums < 1 || lowerFinal:
		order = 1
	case c.SolverOrder == 2 || s.lowerOrderNums < 2 || lowerSecond:
		order = 2
	}
	out := s.hist.nextOut()
	s.update(data32(out), x, order)

	if s.lowerOrderNums < c.SolverOrder {
		s.lowerOrderNums++
	}
	s.hist.stepIndex++
	s.hist.taken++
	s.hist.res = StepOutput{PrevSample: out}
	if isPlusPlus(c.AlgorithmType) {
		s.hist.res.PredOriginalSample = s.hist.tensors[len(s.hist.tensors)-1]
	}
	return &s.hist.res, nil
}

// convert turns the model output into what the algorithm integrates: x0
// for DPM-Solver++, the noise for DPM-Solver (diffusers'
// convert_model_output).
func (s *DPMSolverMultistep) convert(dst, mo, x []float32, sigma float32) {
	c := s.cfg
	at, st := alphaSigma(sigma)
	if isPlusPlus(c.AlgorithmType) {
		predictX0(dst, mo, x, at, st, c.PredictionType)
		if c.Thresholding {
			s.hist.threshold(dst, c)
		}
		return
	}
	switch c.PredictionType {
	case "epsilon":
		copy(dst, mo)
	case "sample":
		for k := range dst {
			dst[k] = (x[k] - float32(at*mo[k])) / st
		}
	case "v_prediction":
		for k := range dst {
			dst[k] = float32(at*mo[k]) + float32(st*x[k])
		}
	}
	if c.Thresholding {
		// Threshold the x0 the noise implies, then turn it back into noise.
		x0 := s.hist.scratch(len(dst))
		for k := range dst {
			x0[k] = (x[k] - float32(st*dst[k])) / at
		}
		s.hist.threshold(x0, c)
		for k := range dst {
			dst[k] = (x[k] - float32(at*x0[k])) / st
		}
	}
}

// update writes the step's result of the given order to dst. Each scalar
// coefficient is formed as diffusers forms it; the sample is then the
// left-to-right sum of coefficient-times-tensor products, each rounded.
func (s *DPMSolverMultistep) update(dst, x []float32, order int) {
	c := s.cfg
	i := s.hist.stepIndex
	sig := s.sched.sigmas
	at, st := alphaSigma(sig[i+1])
	as0, ss0 := alphaSigma(sig[i])
	lt, ls0 := lambda(at, st), lambda(as0, ss0)
	h := lt - ls0
	expNeg := exp32(-h) - 1 // exp(-h) - 1
	expPos := exp32(h) - 1  // exp(h) - 1
	oneMinusE2 := 1 - exp32(-2*h)

	// x_t = cx*x + k0*D0 + k1*D1 + k2*D2 + kn*noise
	var cx, k0, k1, k2, kn float32
	plus := isPlusPlus(c.AlgorithmType)
	switch c.AlgorithmType {
	case "dpmsolver++":
		cx, k0 = st/ss0, -(at * expNeg)
	case "dpmsolver":
		cx, k0 = at/as0, -(st * expPos)
	case "sde-dpmsolver++":
		cx = st / ss0 * exp32(-h)
		k0 = at * oneMinusE2
		kn = st * sqrt32(1-exp32(-2*h))
	case "sde-dpmsolver":
		cx = at / as0
		k0 = -(2 * (st * expPos))
		kn = st * sqrt32(exp32(2*h)-1)
	}
	outs := s.hist.outputs
	n := len(outs)
	m0 := outs[n-1]
	var noise []float32
	if isSDE(c.AlgorithmType) {
		noise = s.noise
	}

	if order == 1 {
		for k := range dst {
			v := float32(cx*x[k]) + float32(k0*m0[k])
			if noise != nil {
				v += float32(kn * noise[k])
			}
			dst[k] = v
		}
		return
	}

	as1, ss1 := alphaSigma(sig[i-1])
	ls1 := lambda(as1, ss1)
	h0 := ls0 - ls1
	r0 := h0 / h
	m1 := outs[n-2]
	if order == 2 {
		invR0 := 1 / r0
		switch {
		case c.AlgorithmType == "dpmsolver++" && c.SolverType == "midpoint":
			k1 = -(0.5 * (at * expNeg))
		case c.AlgorithmType == "dpmsolver++":
			k1 = at * (expNeg/h + 1)
		case c.AlgorithmType == "dpmsolver" && c.SolverType == "midpoint":
			k1 = -(0.5 * (st * expPos))
		case c.AlgorithmType == "dpmsolver":
			k1 = -(st * (expPos/h - 1))
		case c.AlgorithmType == "sde-dpmsolver++" && c.SolverType == "midpoint":
			k1 = 0.5 * (at * oneMinusE2)
		case c.AlgorithmType == "sde-dpmsolver++":
			k1 = at * (oneMinusE2/(-2*h) + 1)
		case c.AlgorithmType == "sde-dpmsolver" && c.SolverType == "midpoint":
			k1 = -(st * expPos)
		default: // sde-dpmsolver, heun
			k1 = -(2 * (st * (expPos/h - 1)))
		}
		for k := range dst {
			d1 := float32(invR0 * (m0[k] - m1[k]))
			v := float32(cx*x[k]) + float32(k0*m0[k]) + float32(k1*d1)
			if noise != nil {
				v += float32(kn * noise[k])
			}
			dst[k] = v
		}
		return
	}

	as2, ss2 := alphaSigma(sig[i-2])
	ls2 := lambda(as2, ss2)
	h1 := ls1 - ls2
	r1 := h1 / h
	m2 := outs[n-3]
	invR0, invR1 := 1/r0, 1/r1
	q := r0 / (r0 + r1)
	p := 1 / (r0 + r1)
	if plus {
		k1 = at * (expNeg/h + 1)
		k2 = -(at * ((expNeg+h)/(h*h) - 0.5))
	} else {
		k1 = -(st * (expPos/h - 1))
		k2 = -(st * ((expPos-h)/(h*h) - 0.5))
	}
	for k := range dst {
		d10 := float32(invR0 * (m0[k] - m1[k]))
		d11 := float32(invR1 * (m1[k] - m2[k]))
		diff := d10 - d11
		d1 := d10 + float32(q*diff)
		d2 := float32(p * diff)
		dst[k] = float32(cx*x[k]) + float32(k0*m0[k]) + float32(k1*d1) + float32(k2*d2)
	}
}

// AddNoise is forward diffusion at the schedule's noise levels:
// dst = alpha_t*x0 + sigma_t*noise, with timesteps[b] taken from the
// current schedule for batch element b.
func (s *DPMSolverMultistep) AddNoise(dst, original, noise *tensor.Dense, timesteps []float64) error {
	return s.sched.addNoise("DPMSolverMultistepScheduler", dst, original, noise, timesteps)
}

// ---- shared by the multistep schedulers (DPM-Solver, UniPC) ----

// sigmaSchedule holds the training tables and the inference schedule of a
// scheduler that steps between the sigmas of its timesteps.
type sigmaSchedule struct {
	alphasCumprod []float32
	// trainSigmas is ((1-alphas_cumprod)/alphas_cumprod)^0.5, and
	// logSigmas its float32 log, as diffusers' numpy copies hold them.
	trainSigmas, logSigmas []float32
	timesteps              []float64
	sigmas                 []float32
	ready                  bool
}

func (q *sigmaSchedule) init(b *base) {
	if b.cfg.RescaleBetasZeroSNR {
		// As diffusers does, so that the last sigma stays finite.
		b.alphasCumprod = slices.Clone(b.alphasCumprod)
		b.alphasCumprod[len(b.alphasCumprod)-1] = 1.0 / (1 << 24)
	}
	q.alphasCumprod = b.alphasCumprod
	q.trainSigmas = trainSigmas(q.alphasCumprod)
	q.logSigmas = make([]float32, len(q.trainSigmas))
	for i, v := range q.trainSigmas {
		q.logSigmas[i] = log32(v)
	}
}

// spacedTimesteps is the multistep schedulers' timestep spacing over the
// first last training timesteps (all T unless lambda_min_clipped cuts
// some). Unlike DDIM's, "linspace" and "leading" space n+1 points and drop
// the final one.
func spacedTimesteps(spacing string, n, last, T, offset int) []float64 {
	var ts []float64
	switch spacing {
	case "linspace":
		// np.linspace(0, last-1, n+1).round()[::-1][:-1]
		y := npLinspace(0, float64(last-1), n+1)
		for i := n; i >= 1; i-- {
			ts = append(ts, math.RoundToEven(y[i]))
		}
	case "leading":
		ratio := last / (n + 1)
		for i := n; i >= 1; i-- {
			ts = append(ts, float64(i*ratio+offset))
		}
	case "trailing":
		// np.arange(last, 0, -T/n).round() - 1; numpy fills an arange from
		// its first value and the difference of its first two.
		for _, v := range npArange(float64(last), 0, -float64(T)/float64(n)) {
			ts = append(ts, math.RoundToEven(v)-1)
		}
	}
	return ts
}

// atTimesteps is np.interp of the training sigmas at integer timesteps,
// which clamps outside the table.
func (q *sigmaSchedule) atTimesteps(ts []float64) []float64 {
	out := make([]float64, len(ts))
	last := len(q.trainSigmas) - 1
	for i, t := range ts {
		j := int(t)
		j = max(0, min(j, last))
		out[i] = float64(q.trainSigmas[j])
	}
	return out
}

// karras is the noise schedule of Karras et al. (2022) between the table's
// smallest and largest sigma, with each timestep the rounded interpolated
// position of its sigma in the table. (Neither multistep class has
// sigma_min or sigma_max keys.)
func (q *sigmaSchedule) karras(n int) ([]float64, []float64) {
	ends := []float64{float64(q.trainSigmas[len(q.trainSigmas)-1]), float64(q.trainSigmas[0])}
	sig := karrasSigmas(ends, n, nil, nil)
	ts := make([]float64, n)
	for i, v := range sig {
		ts[i] = math.RoundToEven(sigmaToT(v, q.logSigmas))
	}
	return sig, ts
}

// lu is DPM-Solver's schedule uniform in log-SNR (diffusers'
// use_lu_lambdas): uniform steps from the largest to the smallest log
// sigma of the table.
func (q *sigmaSchedule) lu(n int) ([]float64, []float64) {
	lmin := float64(q.logSigmas[0])
	lmax := float64(q.logSigmas[len(q.logSigmas)-1])
	ramp := npLinspace(0, 1, n)
	sig := make([]float64, n)
	ts := make([]float64, n)
	for i, r := range ramp {
		sig[i] = math.Exp(lmax + float64(r*(lmin-lmax)))
		ts[i] = math.RoundToEven(sigmaToT(sig[i], q.logSigmas))
	}
	return sig, ts
}

// set installs a schedule: sigmas of the timesteps plus the final one,
// rounded to float32 as diffusers stores them.
func (q *sigmaSchedule) set(ts, sigmas []float64, final float64) error {
	if len(ts) == 0 {
		return fmt.Errorf("SetTimesteps: the configuration leaves no timesteps to step through (check lambda_min_clipped)")
	}
	q.timesteps = ts
	q.sigmas = make([]float32, 0, len(sigmas)+1)
	for _, v := range sigmas {
		q.sigmas = append(q.sigmas, float32(v))
	}
	q.sigmas = append(q.sigmas, float32(final))
	q.ready = true
	return nil
}

// index is diffusers' index_for_timestep: the position of t in the
// schedule, the second one where t occurs twice.
func (q *sigmaSchedule) index(t float64) (int, bool) {
	first := -1
	for i, v := range q.timesteps {
		if v == t {
			if first >= 0 {
				return i, true
			}
			first = i
		}
	}
	return first, first >= 0
}

func (q *sigmaSchedule) addNoise(class string, dst, original, noise *tensor.Dense, timesteps []float64) error {
	if !q.ready {
		return fmt.Errorf("%s.AddNoise: SetTimesteps must be called first (the noise levels come from the schedule)", class)
	}
	if err := checkShapes([]string{"original", "noise", "dst"}, original, noise, dst); err != nil {
		return fmt.Errorf("%s.AddNoise: %w", class, err)
	}
	if _, err := perBatch("original", original, timesteps); err != nil {
		return fmt.Errorf("%s.AddNoise: %w", class, err)
	}
	x, err := f32("original", original)
	if err != nil {
		return err
	}
	e, err := f32("noise", noise)
	if err != nil {
		return err
	}
	d, err := f32("dst", dst)
	if err != nil {
		return err
	}
	per := len(x) / len(timesteps)
	for b, t := range timesteps {
		i, ok := q.index(t)
		if !ok {
			return fmt.Errorf("%s.AddNoise: timestep %v (batch element %d) is not in the schedule", class, t, b)
		}
		at, st := alphaSigma(q.sigmas[i])
		for k := b * per; k < (b+1)*per; k++ {
			d[k] = float32(at*x[k]) + float32(st*e[k])
		}
	}
	return nil
}

// history is the run state of a multistep scheduler: the step index, the
// converted model outputs of recent steps and the output buffers, reused
// from step to step.
type history struct {
	stepIndex int // -1 before the first step
	taken     int // steps taken since SetTimesteps
	shape     tensor.Shape
	// outputs are the converted model outputs, oldest first; tensors wrap
	// the same buffers.
	outputs [][]float32
	tensors []*tensor.Dense
	// out is a pair of buffers used in turn for the returned sample, so the
	// sample a caller passes back in is never the one being written.
	out    [2]*tensor.Dense
	outIdx int
	tmp    []float32
	sorted []float32
	// res is what Step returns, held here so that steps do not allocate.
	res StepOutput
}

func (h *history) reset(slots int) {
	h.stepIndex = -1
	h.taken = 0
	if len(h.outputs) != slots {
		h.outputs, h.tensors, h.shape = nil, nil, nil
	}
}

// begin checks a Step's arguments, settles the step index and makes sure
// the buffers fit the sample's shape.
func (h *history) begin(q *sigmaSchedule, class string, modelOutput *tensor.Dense, t float64, sample *tensor.Dense, slots int) (mo, x []float32, err error) {
	if !q.ready {
		return nil, nil, fmt.Errorf("%s.Step: SetTimesteps must be called before Step", class)
	}
	if mo, err = floats("model output", modelOutput); err != nil {
		return nil, nil, fmt.Errorf("%s.Step: %w", class, err)
	}
	if x, err = floats("sample", sample); err != nil {
		return nil, nil, fmt.Errorf("%s.Step: %w", class, err)
	}
	if !sameShape(sample.Shape(), modelOutput.Shape()) {
		return nil, nil, fmt.Errorf("%s.Step: model output has shape %v but sample has shape %v; they must match", class, modelOutput.Shape(), sample.Shape())
	}
	if len(sample.Shape()) < 2 {
		return nil, nil, fmt.Errorf("%s.Step: expected a batch of samples [batch, channels, ...], found shape %v", class, sample.Shape())
	}
	if h.stepIndex < 0 {
		i, ok := q.index(t)
		if !ok {
			return nil, nil, fmt.Errorf("%s.Step: timestep %v is not in the schedule %v", class, t, q.timesteps)
		}
		h.stepIndex = i
	} else if h.stepIndex >= len(q.timesteps) {
		return nil, nil, fmt.Errorf("%s.Step: all %d steps of the schedule were taken; call SetTimesteps to start again", class, len(q.timesteps))
	} else if q.timesteps[h.stepIndex] != t {
		return nil, nil, fmt.Errorf("%s.Step: timestep %v is not the next one of the schedule (expected %v, step %d)", class, t, q.timesteps[h.stepIndex], h.stepIndex)
	}
	if h.shape == nil || len(h.outputs) != slots || !h.shape.Eq(sample.Shape()) {
		if h.taken > 0 {
			return nil, nil, fmt.Errorf("%s.Step: sample shape %v differs from the shape %v of the earlier steps of this run", class, sample.Shape(), h.shape)
		}
		h.alloc(sample.Shape(), slots)
	}
	return mo, x, nil
}

func (h *history) alloc(shape tensor.Shape, slots int) {
	h.shape = shape.Clone()
	n := shape.TotalSize()
	h.outputs = make([][]float32, slots)
	h.tensors = make([]*tensor.Dense, slots)
	for i := range h.outputs {
		h.outputs[i] = make([]float32, n)
		h.tensors[i] = tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(h.outputs[i]))
	}
	for i := range h.out {
		h.out[i] = tensor.New(tensor.WithShape(shape.Clone()...), tensor.WithBacking(make([]float32, n)))
	}
}

// rotate makes the oldest output slot the newest, to be overwritten.
func (h *history) rotate() {
	o, t := h.outputs[0], h.tensors[0]
	copy(h.outputs, h.outputs[1:])
	copy(h.tensors, h.tensors[1:])
	h.outputs[len(h.outputs)-1], h.tensors[len(h.tensors)-1] = o, t
}

func (h *history) nextOut() *tensor.Dense {
	h.outIdx ^= 1
	return h.out[h.outIdx]
}

func (h *history) scratch(n int) []float32 {
	if len(h.tmp) != n {
		h.tmp = make([]float32, n)
	}
	return h.tmp
}

// threshold applies dynamic thresholding (Imagen) to x0 in place, per
// batch element, as diffusers' _threshold_sample does. It sorts in a buffer
// of its own (slices.Sort), so that steps do not allocate.
func (h *history) threshold(x0 []float32, c *Config) {
	batch := h.shape[0]
	per := len(x0) / batch
	if len(h.sorted) != per {
		h.sorted = make([]float32, per)
	}
	for b := 0; b < batch; b++ {
		row := x0[b*per : (b+1)*per]
		for k, v := range row {
			h.sorted[k] = float32(math.Abs(float64(v)))
		}
		slices.Sort(h.sorted)
		s := quantileSorted32(h.sorted, float32(c.DynamicThresholdingRatio))
		s = min(max(s, 1), float32(c.SampleMaxValue))
		for k, v := range row {
			row[k] = max(-s, min(v, s)) / s
		}
	}
}

// predictX0 is the data prediction x0 from the model output.
func predictX0(dst, mo, x []float32, at, st float32, prediction string) {
	switch prediction {
	case "epsilon":
		for k := range dst {
			dst[k] = (x[k] - float32(st*mo[k])) / at
		}
	case "sample":
		copy(dst, mo)
	case "v_prediction":
		for k := range dst {
			dst[k] = float32(at*x[k]) - float32(st*mo[k])
		}
	}
}

// alphaSigma is diffusers' _sigma_to_alpha_sigma_t in float32:
// alpha_t = 1/sqrt(sigma^2+1), sigma_t = sigma*alpha_t.
func alphaSigma(sigma float32) (alpha, sigmaT float32) {
	alpha = 1 / sqrt32(float32(sigma*sigma)+1)
	return alpha, sigma * alpha
}

// lambda is the half log-SNR log(alpha_t) - log(sigma_t) in float32.
func lambda(alpha, sigma float32) float32 { return log32(alpha) - log32(sigma) }

func log32(x float32) float32   { return float32(math.Log(float64(x))) }
func exp32(x float32) float32   { return float32(math.Exp(float64(x))) }
func expm132(x float32) float32 { return float32(math.Expm1(float64(x))) }

// data32 is the float32 backing of a tensor the scheduler made. It reads it
// through Float32s, which unlike Data does not allocate.
func data32(d *tensor.Dense) []float32 { return d.Float32s() }

// floats is f32 without allocating: the checked float32 backing of an
// argument tensor.
func floats(name string, d *tensor.Dense) ([]float32, error) {
	if d == nil {
		return nil, fmt.Errorf("scheduler: %s: tensor is nil", name)
	}
	if d.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("scheduler: %s: expected a float32 tensor, found %v", name, d.Dtype())
	}
	if d.IsView() || d.RequiresIterator() {
		return nil, fmt.Errorf("scheduler: %s: expected a contiguous tensor, found a view", name)
	}
	v := d.Float32s()
	if len(v) != d.Shape().TotalSize() {
		return nil, fmt.Errorf("scheduler: %s: tensor of shape %v has no contiguous float32 data", name, d.Shape())
	}
	return v, nil
}

func copyDense(dst, src *tensor.Dense) error {
	if dst == nil || src == nil {
		return fmt.Errorf("ScaleModelInput: dst and sample are required")
	}
	if !dst.Shape().Eq(src.Shape()) {
		return fmt.Errorf("ScaleModelInput: dst shape %v differs from sample shape %v", dst.Shape(), src.Shape())
	}
	if dst != src {
		copy(data32(dst), data32(src))
	}
	return nil
}
