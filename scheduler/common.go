package scheduler

import (
	"fmt"
	"math"
	"slices"

	"gorgonia.org/tensor"
)

// f32 returns the float32 backing of a contiguous tensor, or an error naming
// the argument.
func f32(name string, t *tensor.Dense) ([]float32, error) {
	if t == nil {
		return nil, fmt.Errorf("scheduler: %s: tensor is nil", name)
	}
	if t.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("scheduler: %s: expected a float32 tensor, found %v", name, t.Dtype())
	}
	if t.IsView() || t.RequiresIterator() {
		return nil, fmt.Errorf("scheduler: %s: expected a contiguous tensor, found a view", name)
	}
	// Float32s reads the backing without the allocation Data() makes.
	d := t.Float32s()
	if len(d) != t.Shape().TotalSize() {
		return nil, fmt.Errorf("scheduler: %s: tensor of shape %v has no contiguous float32 data", name, t.Shape())
	}
	return d, nil
}

func sameShape(a, b tensor.Shape) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkShapes returns an error unless every tensor has the shape of the first.
func checkShapes(names []string, ts ...*tensor.Dense) error {
	for i, t := range ts {
		if t == nil {
			return fmt.Errorf("scheduler: %s: tensor is nil", names[i])
		}
	}
	for i := 1; i < len(ts); i++ {
		if !sameShape(ts[0].Shape(), ts[i].Shape()) {
			return fmt.Errorf("scheduler: %s has shape %v but %s has shape %v; they must match", names[i], ts[i].Shape(), names[0], ts[0].Shape())
		}
	}
	return nil
}

// buffer returns *buf if it has the given shape, else a new float32 tensor
// of that shape stored in *buf: steps reuse their outputs from one call to
// the next and allocate only when the shape changes.
func buffer(buf **tensor.Dense, shape tensor.Shape) *tensor.Dense {
	if *buf == nil || !sameShape((*buf).Shape(), shape) {
		*buf = tensor.New(tensor.WithShape(shape.Clone()...), tensor.Of(tensor.Float32))
	}
	return *buf
}

// sqrt32 is a correctly rounded float32 square root, as torch's x ** 0.5.
func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }

// predictX0Alpha writes to dst the model's estimate of x0 from the
// cumulative alpha at t, in float32 and in diffusers' (DDPM/DDIM) order of
// operations. dst may alias modelOutput or sample.
func predictX0Alpha(dst, modelOutput, sample []float32, predictionType string, alphaProd float32) {
	betaProd := 1 - alphaProd
	sa, sb := sqrt32(alphaProd), sqrt32(betaProd)
	switch predictionType {
	case "epsilon":
		for i := range dst {
			dst[i] = (sample[i] - float32(sb*modelOutput[i])) / sa
		}
	case "sample":
		copy(dst, modelOutput)
	case "v_prediction":
		for i := range dst {
			dst[i] = float32(sa*sample[i]) - float32(sb*modelOutput[i])
		}
	default:
		panic("scheduler: unvalidated prediction_type " + predictionType)
	}
}

// clip32 clamps x to [-r, r] in place.
func clip32(x []float32, r float32) {
	for i, v := range x {
		if v > r {
			x[i] = r
		} else if v < -r {
			x[i] = -r
		}
	}
}

// thresholder applies dynamic thresholding (Saharia et al. 2022, Imagen) as
// diffusers' _threshold_sample does: per batch element, s = the ratio
// quantile of |x| (torch.quantile's linear interpolation), clamped to
// [1, sample_max_value]; x is clamped to [-s, s] and divided by s.
type thresholder struct {
	scratch []float32
}

func (th *thresholder) apply(x []float32, batch int, ratio, maxValue float64) {
	n := len(x) / batch
	if cap(th.scratch) < n {
		th.scratch = make([]float32, n)
	}
	sorted := th.scratch[:n]
	for b := 0; b < batch; b++ {
		row := x[b*n : (b+1)*n]
		for i, v := range row {
			sorted[i] = float32(math.Abs(float64(v)))
		}
		slices.Sort(sorted)
		s := quantileSorted32(sorted, float32(ratio))
		if s < 1 {
			s = 1
		}
		if mv := float32(maxValue); s > mv {
			s = mv
		}
		for i, v := range row {
			if v > s {
				v = s
			} else if v < -s {
				v = -s
			}
			row[i] = v / s
		}
	}
}

// quantileSorted32 is torch.quantile(x, q) of ascending float32 values with
// linear interpolation, in float32 like torch.
func quantileSorted32(sorted []float32, q float32) float32 {
	rank := q * float32(len(sorted)-1)
	lo := int(rank)
	hi := int(math.Ceil(float64(rank)))
	if hi >= len(sorted) {
		hi = len(sorted) - 1
	}
	w := rank - float32(lo)
	a, b := sorted[lo], sorted[hi]
	// torch.lerp's two-sided formula.
	if w < 0.5 {
		return a + float32(w*(b-a))
	}
	return b - float32((b-a)*(1-w))
}

// postprocessX0 applies a class's clip_sample or thresholding to x0.
func postprocessX0(c *Config, th *thresholder, x0 []float32, batch int) {
	switch {
	case c.HasKey("thresholding") && c.Thresholding:
		th.apply(x0, batch, c.DynamicThresholdingRatio, c.SampleMaxValue)
	case c.HasKey("clip_sample") && c.ClipSample:
		clip32(x0, float32(c.ClipSampleRange))
	}
}

// base holds what every scheduler shares: its configuration and float32
// training tables, and the alpha-based forward process.
type base struct {
	cfg *Config
	tables
	// out is returned by every Step, so that steps do not allocate.
	out StepOutput
}

// output fills and returns the scheduler's StepOutput.
func (b *base) output(prev, x0 *tensor.Dense) *StepOutput {
	b.out = StepOutput{PrevSample: prev, PredOriginalSample: x0}
	return &b.out
}

func newBase(c *Config, class string) (base, error) {
	if c == nil {
		return base{}, fmt.Errorf("scheduler: nil config")
	}
	if c.ClassName != class {
		return base{}, fmt.Errorf("scheduler: config is for %s, not %s", c.ClassName, class)
	}
	if err := c.Validate(); err != nil {
		return base{}, err
	}
	c = c.clone()
	return base{cfg: c, tables: newTables(c)}, nil
}

// Config returns the configuration the scheduler was built from.
func (b *base) Config() *Config { return b.cfg }

// AlphasCumprod returns the float32 table of cumulative alphas, indexed by
// training timestep. The slice belongs to the scheduler.
func (b *base) AlphasCumprod() []float32 { return b.alphasCumprod }

// Betas returns the float32 training betas. The slice belongs to the
// scheduler.
func (b *base) Betas() []float32 { return b.betas }

// trainIndex converts a training timestep to a table index, refusing values
// that are not integers in range.
func (b *base) trainIndex(t float64) (int, error) {
	n := len(b.alphasCumprod)
	if t != math.Trunc(t) || t < 0 || t >= float64(n) {
		return 0, fmt.Errorf("scheduler: timestep %v: expected an integer in [0, %d)", t, n)
	}
	return int(t), nil
}

// perBatch checks x against timesteps (one per batch element, the first
// dimension) and returns the elements per batch element.
func perBatch(name string, x *tensor.Dense, timesteps []float64) (int, error) {
	sh := x.Shape()
	if len(sh) == 0 || sh[0] != len(timesteps) {
		return 0, fmt.Errorf("scheduler: %s has shape %v: expected its first dimension to equal the %d timesteps", name, sh, len(timesteps))
	}
	return sh.TotalSize() / sh[0], nil
}

// alphaMix writes dst = sqrt(ac[t]) * a + sign * sqrt(1-ac[t]) * b per batch
// element, the shared arithmetic of add_noise (sign +1) and get_velocity.
func (b *base) alphaMix(dst, x, y *tensor.Dense, timesteps []float64, names [3]string, velocity bool) error {
	if err := checkShapes(names[:], x, y, dst); err != nil {
		return err
	}
	per, err := perBatch(names[0], x, timesteps)
	if err != nil {
		return err
	}
	xd, err := f32(names[0], x)
	if err != nil {
		return err
	}
	yd, err := f32(names[1], y)
	if err != nil {
		return err
	}
	dd, err := f32(names[2], dst)
	if err != nil {
		return err
	}
	for i, t := range timesteps {
		k, err := b.trainIndex(t)
		if err != nil {
			return err
		}
		a := b.alphasCumprod[k]
		sa, sb := sqrt32(a), sqrt32(1-a)
		lo, hi := i*per, (i+1)*per
		if velocity {
			// sqrt(ac)*noise - sqrt(1-ac)*sample, with x the sample.
			for j := lo; j < hi; j++ {
				dd[j] = float32(sa*yd[j]) - float32(sb*xd[j])
			}
		} else {
			for j := lo; j < hi; j++ {
				dd[j] = float32(sa*xd[j]) + float32(sb*yd[j])
			}
		}
	}
	return nil
}

// addNoiseAlpha is the forward process of the alpha-based schedulers:
// dst = sqrt(ac[t]) * original + sqrt(1 - ac[t]) * noise.
func (b *base) addNoiseAlpha(dst, original, noise *tensor.Dense, timesteps []float64) error {
	return b.alphaMix(dst, original, noise, timesteps, [3]string{"original", "noise", "dst"}, false)
}

// GetVelocity writes the v-prediction target (Salimans and Ho 2022) to dst:
// sqrt(ac[t]) * noise - sqrt(1 - ac[t]) * sample, timesteps[i] applying to
// batch element i, as diffusers' get_velocity.
func (b *base) GetVelocity(dst, sample, noise *tensor.Dense, timesteps []float64) error {
	return b.alphaMix(dst, sample, noise, timesteps, [3]string{"sample", "noise", "dst"}, true)
}

// checkSteps validates a number of inference steps against the config.
func checkSteps(c *Config, n int) error {
	if n <= 0 {
		return fmt.Errorf("scheduler: number of inference steps: expected a positive number, found %d", n)
	}
	if n > c.NumTrainTimesteps {
		return fmt.Errorf("scheduler: number of inference steps: %d is more than num_train_timesteps = %d", n, c.NumTrainTimesteps)
	}
	return nil
}

// npLinspace is numpy.linspace(start, stop, num) in float64: i*step+start,
// with the last value exactly stop.
func npLinspace(start, stop float64, num int) []float64 {
	out := make([]float64, num)
	if num == 1 {
		out[0] = start
		return out
	}
	div := float64(num - 1)
	step := (stop - start) / div
	for i := range out {
		if step == 0 {
			out[i] = float64(i)/div*(stop-start) + start
		} else {
			out[i] = float64(i)*step + start
		}
	}
	out[num-1] = stop
	return out
}

// npArange is numpy.arange(start, stop, step) in float64. numpy fills
// start + i*delta with delta = (start+step) - start, which can differ from
// step in the last bit.
func npArange(start, stop, step float64) []float64 {
	n := int(math.Ceil((stop - start) / step))
	if n <= 0 {
		return nil
	}
	out := make([]float64, n)
	delta := (start + step) - start
	for i := range out {
		out[i] = start + float64(i)*delta
	}
	if n > 1 {
		out[1] = start + step
	}
	return out
}

// alphaTimesteps is the integer schedule of DDPM and DDIM for n steps
// (numpy float64 arithmetic, round half to even, then int64), descending.
func alphaTimesteps(c *Config, n int) []float64 {
	N := c.NumTrainTimesteps
	out := make([]float64, n)
	switch c.TimestepSpacing {
	case "linspace":
		ls := npLinspace(0, float64(N-1), n)
		for i := range out {
			out[i] = math.RoundToEven(ls[n-1-i])
		}
	case "leading":
		ratio := N / n
		for i := range out {
			out[i] = float64((n-1-i)*ratio + c.StepsOffset)
		}
	case "trailing":
		ar := npArange(float64(N), 0, -float64(N)/float64(n))
		out = out[:0]
		for _, v := range ar {
			out = append(out, math.RoundToEven(v)-1)
		}
	}
	return out
}

// indexOf returns the index of t in ts, or an error listing the schedule.
func indexOf(ts []float64, t float64) (int, error) {
	for i, v := range ts {
		if v == t {
			return i, nil
		}
	}
	return 0, fmt.Errorf("scheduler: timestep %v is not in the schedule (set by SetTimesteps: %v)", t, ts)
}

var (
	errNoTimesteps = fmt.Errorf("scheduler: Step called before SetTimesteps")
	errNoNoise     = fmt.Errorf("scheduler: this step draws noise but no Noise was passed")
)

// denseData is the backing of a tensor made by buffer.
func denseData(t *tensor.Dense) []float32 { return t.Float32s() }

// copyInput is the ScaleModelInput of methods that do not scale.
func copyInput(dst, sample *tensor.Dense) error {
	if err := checkShapes([]string{"sample", "dst"}, sample, dst); err != nil {
		return err
	}
	x, err := f32("sample", sample)
	if err != nil {
		return err
	}
	d, err := f32("dst", dst)
	if err != nil {
		return err
	}
	copy(d, x)
	return nil
}

// scaleInput writes dst = sample / sqrt(sigma^2 + 1) in float32, the
// ScaleModelInput of the sigma-based methods.
func scaleInput(dst, sample *tensor.Dense, sigma float32) error {
	if err := checkShapes([]string{"sample", "dst"}, sample, dst); err != nil {
		return err
	}
	x, err := f32("sample", sample)
	if err != nil {
		return err
	}
	d, err := f32("dst", dst)
	if err != nil {
		return err
	}
	den := sqrt32(float32(sigma*sigma) + 1)
	for i, v := range x {
		d[i] = v / den
	}
	return nil
}

// stepArgs validates the tensors of a Step whose model output has the
// sample's shape and returns their data.
func stepArgs(modelOutput, sample *tensor.Dense) (mo, x []float32, err error) {
	if err := checkShapes([]string{"sample", "model output"}, sample, modelOutput); err != nil {
		return nil, nil, err
	}
	if mo, err = f32("model output", modelOutput); err != nil {
		return nil, nil, err
	}
	if x, err = f32("sample", sample); err != nil {
		return nil, nil, err
	}
	return mo, x, nil
}
