package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/scheduler"
	"github.com/ldm-go/ldm/unet"
)

// Limits on one request, so that a typo cannot ask for absurd memory.
const (
	MaxImages    = 1 << 20
	MaxBatchSize = 1024
	MaxSteps     = 10000
)

// DefaultSteps is the number of inference steps when Options.Steps is 0.
const DefaultSteps = 20

// Options says what to generate.
type Options struct {
	// N is the number of images (default 1).
	N int
	// Seed and the image's index pick its noise: image i draws every random
	// number it needs from the stream (Seed, FirstIndex+i), so it is the same
	// whatever the batch size, the thread count or the other images.
	Seed       uint64
	FirstIndex int
	// Steps is the number of inference steps (default DefaultSteps).
	Steps int
	// Scheduler is "" for the pipeline's own scheduler, a short sampler
	// name ("ddim", "dpm++2m", ...; see scheduler.Names) or a diffusers class
	// name; other samplers inherit the pipeline's training schedule.
	Scheduler string
	// Eta weighs the fresh noise of each DDIM step (0: deterministic).
	Eta float64
	// BatchSize is how many images run through the UNet at once (default
	// min(N, DefaultBatchSize())). It changes speed and memory, never the
	// images.
	BatchSize int
	// ClassLabels conditions a class-conditional model: one label for
	// every image, or one per image. Empty means unconditional sampling,
	// which uses the null class (see NullClass).
	ClassLabels []int
	// GuidanceScale is the classifier-free guidance weight used with
	// ClassLabels: prediction = uncond + scale*(cond - uncond). 0 or 1
	// means no guidance (the conditional prediction alone).
	GuidanceScale float64
	// AutoGuidance is the weight of autoguidance for samples without
	// classifier-free guidance, when the pipeline has a GuideUNet:
	// prediction = guide + w*(unet - guide). 0 means the pipeline's
	// default (Pipeline.AutoGuidance), 1 turns it off.
	AutoGuidance float64
	// Progress, if set, is called after every denoising step.
	Progress func(Progress)
}

// Progress reports how far a request has come.
type Progress struct {
	Step, Steps int // denoising steps done in the current batch, of Steps
	Done, Total int // images finished before the current batch, of Total
}

// Result holds generated images and their final latents.
type Result struct {
	// Images is [N, C, H, W], the raw decoder (or UNet, in pixel space)
	// output, nominally in [-1, 1].
	Images *tensor.Dense
	// Latents is [N, C, h, w], the denoised latents before scaling.
	Latents *tensor.Dense
}

// NullClass is the label for unconditional prediction of a class-conditional
// model: the last row of the class embedding, which label dropout trains
// (num_class_embeds = classes + 1). It is -1 for other models.
func (p *Pipeline) NullClass() int {
	if m := p.UNet.ClassEmbedding; m != nil {
		return m.Num - 1
	}
	return -1
}

// NewScheduler builds the named sampler ("" for the pipeline's own).
func (p *Pipeline) NewScheduler(name string) (scheduler.Scheduler, error) {
	if name == "" {
		return scheduler.New(p.Scheduler)
	}
	if _, ok := scheduler.ClassFor(name); ok {
		return scheduler.FromName(name, p.Scheduler)
	}
	if scheduler.Registered(name) {
		c, err := p.Scheduler.Convert(name)
		if err != nil {
			return nil, err
		}
		return scheduler.New(c)
	}
	return scheduler.FromName(name, p.Scheduler) // reports the unknown name
}

// newJobScheduler is NewScheduler for the jobs that start from an image:
// "" gives the pipeline's own sampler without its noise
// (scheduler.Config.WithoutNoise), so that a stochastic default for
// sampling does not cost the jobs fidelity to their images.
func (p *Pipeline) newJobScheduler(name string) (scheduler.Scheduler, error) {
	if name == "" {
		return scheduler.New(p.Scheduler.WithoutNoise())
	}
	return p.NewScheduler(name)
}

// guides reports whether a guidance weight changes the prediction: 0 and
// 1 both mean none.
func guides(w float64) bool { return w != 0 && w != 1 }

// ValidWeight reports whether w can be a guidance scale or an autoguidance
// weight: a finite number, 0 or more.
func ValidWeight(w float64) bool { return !math.IsNaN(w) && w >= 0 && !math.IsInf(w, 0) }

// classifierFree reports whether o asks for classifier-free guidance.
func (o Options) classifierFree() bool { return len(o.ClassLabels) > 0 && guides(o.GuidanceScale) }

// AutoGuidanceWeight is the autoguidance weight that generating with o
// uses: 1 (none) without a guide UNet or with classifier-free guidance.
func (p *Pipeline) AutoGuidanceWeight(o Options) float64 {
	switch {
	case p.GuideUNet == nil || o.classifierFree():
		return 1
	case o.AutoGuidance != 0:
		return o.AutoGuidance
	case p.AutoGuidance != 0:
		return p.AutoGuidance
	}
	return 1
}

// request is a validated Options.
type request struct {
	Options
	labels []int // per image, or nil
	guided bool
	auto   float64 // autoguidance weight; 0 when off
}

func (p *Pipeline) validate(o Options) (*request, error) {
	r := &request{Options: o}
	if r.N == 0 {
		r.N = 1
	}
	if r.Steps == 0 {
		r.Steps = DefaultSteps
	}
	if r.BatchSize == 0 {
		r.BatchSize = min(r.N, p.DefaultBatchSize())
	}
	switch {
	case r.N < 0 || r.N > MaxImages:
		return nil, fmt.Errorf("pipeline: number of images %d outside [1, %d]", r.N, MaxImages)
	case r.Steps < 0 || r.Steps > MaxSteps:
		return nil, fmt.Errorf("pipeline: steps %d outside [1, %d]", r.Steps, MaxSteps)
	case r.BatchSize < 0 || r.BatchSize > MaxBatchSize:
		return nil, fmt.Errorf("pipeline: batch size %d outside [1, %d]", r.BatchSize, MaxBatchSize)
	case r.FirstIndex < 0:
		return nil, fmt.Errorf("pipeline: first index %d is negative", r.FirstIndex)
	case !ValidWeight(r.GuidanceScale):
		return nil, fmt.Errorf("pipeline: guidance scale %v must be 0 or more", r.GuidanceScale)
	case !ValidWeight(r.AutoGuidance):
		return nil, fmt.Errorf("pipeline: autoguidance weight %v must be 0 or more", r.AutoGuidance)
	case math.IsNaN(r.Eta) || r.Eta < 0 || r.Eta > 1:
		return nil, fmt.Errorf("pipeline: eta %v outside [0, 1]", r.Eta)
	}
	cond := p.UNet.Config.ClassConditional()
	switch {
	case len(r.ClassLabels) > 0 && !cond:
		return nil, fmt.Errorf("pipeline: class labels given but the model is not class-conditional")
	case len(r.ClassLabels) > 1 && len(r.ClassLabels) != r.N:
		return nil, fmt.Errorf("pipeline: %d class labels for %d images (want 1 or %d)", len(r.ClassLabels), r.N, r.N)
	case len(r.ClassLabels) == 0 && guides(r.GuidanceScale):
		return nil, fmt.Errorf("pipeline: guidance scale %v needs class labels", r.GuidanceScale)
	}
	if cond {
		null := p.NullClass()
		if len(r.ClassLabels) == 0 && null < 0 {
			return nil, fmt.Errorf("pipeline: the model has no null class: class labels are required")
		}
		r.labels = make([]int, r.N)
		for i := range r.labels {
			switch {
			case len(r.ClassLabels) == 0:
				r.labels[i] = null
			case len(r.ClassLabels) == 1:
				r.labels[i] = r.ClassLabels[0]
			default:
				r.labels[i] = r.ClassLabels[i]
			}
			if m := p.UNet.ClassEmbedding; m != nil && (r.labels[i] < 0 || r.labels[i] >= m.Num) {
				return nil, fmt.Errorf("pipeline: class label %d outside [0, %d)", r.labels[i], m.Num)
			}
		}
		r.guided = r.classifierFree()
		if r.guided && null < 0 {
			return nil, fmt.Errorf("pipeline: guidance needs a null class, which this model has not")
		}
	}
	switch explicit := guides(r.AutoGuidance); {
	case explicit && p.GuideUNet == nil:
		return nil, fmt.Errorf("pipeline: autoguidance weight %v needs a guide UNet (%s/), which this pipeline has not", r.AutoGuidance, GuideComponent)
	case explicit && r.guided:
		return nil, fmt.Errorf("pipeline: autoguidance applies to samples without classifier-free guidance; guidance scale %v was given", r.GuidanceScale)
	}
	if w := p.AutoGuidanceWeight(o); w != 1 {
		r.auto = w
	}
	if err := p.checkBatch(r.BatchSize); err != nil {
		return nil, err
	}
	// Build one scheduler now so a bad name or step count fails early.
	s, err := p.NewScheduler(r.Scheduler)
	if err != nil {
		return nil, err
	}
	if err := p.setup(s, r); err != nil {
		return nil, err
	}
	return r, nil
}

// etaSetter is met by samplers whose steps take diffusers' eta.
type etaSetter interface{ SetEta(float64) error }

func (p *Pipeline) setup(s scheduler.Scheduler, r *request) error {
	if r.Eta != 0 {
		es, ok := s.(etaSetter)
		if !ok {
			return fmt.Errorf("pipeline: eta applies to DDIM only, not to %s", s.Config().ClassName)
		}
		if err := es.SetEta(r.Eta); err != nil {
			return err
		}
	}
	return s.SetTimesteps(r.Steps)
}

// Generate runs the whole request and returns every image.
func (p *Pipeline) Generate(ctx context.Context, o Options) (*Result, error) {
	r, err := p.validate(o)
	if err == nil {
		err = p.checkResult(r.N)
	}
	if err != nil {
		return nil, err
	}
	c := p.ImageChannels()
	h, w := p.ImageSize()
	lc := p.UNet.Config.InChannels
	lh, lw := p.LatentSize()
	images := make([]float32, r.N*c*h*w)
	latents := make([]float32, r.N*lc*lh*lw)
	err = p.generate(ctx, r, func(first int, img, lat *nn.Tensor) error {
		copy(images[first*c*h*w:], img.Data)
		copy(latents[first*lc*lh*lw:], lat.Data)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Result{
		Images:  tensor.New(tensor.WithShape(r.N, c, h, w), tensor.WithBacking(images)),
		Latents: tensor.New(tensor.WithShape(r.N, lc, lh, lw), tensor.WithBacking(latents)),
	}, nil
}

// GenerateBatches runs the request and hands each finished batch to fn:
// first is the index (within the request) of the batch's first image, and
// images and latents hold its images. fn must not keep the tensors. An
// error from fn stops the run and is returned.
func (p *Pipeline) GenerateBatches(ctx context.Context, o Options, fn func(first int, images, latents *tensor.Dense) error) error {
	r, err := p.validate(o)
	if err != nil {
		return err
	}
	return p.generate(ctx, r, func(first int, img, lat *nn.Tensor) error {
		return fn(first, toDense(img), toDense(lat))
	})
}

func (p *Pipeline) generate(ctx context.Context, r *request, fn func(first int, img, lat *nn.Tensor) error) error {
	lc := p.UNet.Config.InChannels
	lh, lw := p.LatentSize()
	for first := 0; first < r.N; first += r.BatchSize {
		b := min(r.BatchSize, r.N-first)
		s, err := p.NewScheduler(r.Scheduler)
		if err != nil {
			return err
		}
		if err := p.setup(s, r); err != nil {
			return err
		}
		x := nn.NewTensor(b, lc, lh, lw)
		rngs := make(streams, b)
		per := lc * lh * lw
		sigma := float32(s.InitNoiseSigma())
		for i := range rngs {
			rngs[i] = nn.NewRNG(r.Seed, uint64(r.FirstIndex+first+i))
			xi := x.Data[i*per : (i+1)*per]
			rngs[i].FillNormal(xi)
			for j := range xi {
				xi[j] *= sigma
			}
		}
		// Only sampling is autoguided: the jobs on images, and DDIM
		// inversion, run the UNet alone.
		cond := p.cond(r, first, b)
		if r.auto != 0 {
			cond.Guide, cond.AutoGuidance = p.GuideUNet, r.auto
		}
		steps := len(s.Timesteps())
		onStep := func(st StepInfo) error {
			if r.Progress != nil {
				r.Progress(Progress{Step: st.Index + 1, Steps: steps, Done: first, Total: r.N})
			}
			return nil
		}
		xd := toDense(x)
		if err := p.Denoise(ctx, s, xd, cond, rngs, onStep); err != nil {
			return err
		}
		img, err := p.DecodeLatents(x)
		if err != nil {
			return err
		}
		if err := fn(first, img, x); err != nil {
			return err
		}
	}
	return nil
}

// Conditioning is what the UNet is conditioned on besides the timestep.
type Conditioning struct {
	// Labels holds one class label per image (nil for unconditional models).
	Labels []int
	// GuidanceScale and NullLabel turn on classifier-free guidance when
	// NullLabel >= 0 and the scale is neither 0 nor 1.
	GuidanceScale float64
	NullLabel     int
	// Guide and AutoGuidance turn on autoguidance when there is no
	// classifier-free guidance, Guide is set and the weight is neither 0
	// nor 1: prediction = guide + w*(unet - guide), both conditioned on
	// Labels. Guide is a weaker model of the same data (smaller and
	// trained less); the difference points away from its errors, which the
	// stronger model shares in kind but less in size (Karras et al. 2024,
	// "Guiding a Diffusion Model with a Bad Version of Itself").
	Guide        *unet.Model
	AutoGuidance float64
}

func (c Conditioning) guided() bool {
	return c.Labels != nil && c.NullLabel >= 0 && guides(c.GuidanceScale)
}

func (c Conditioning) autoguided() bool {
	return !c.guided() && c.Guide != nil && guides(c.AutoGuidance)
}

// StepInfo describes one finished denoising step.
type StepInfo struct {
	Index       int
	Timestep    float64
	ModelOutput *tensor.Dense // what the scheduler was given
	Latents     *tensor.Dense // the sample after the step
}

// Denoise runs the reverse process on x in place with scheduler s, whose
// timesteps are already set. noise feeds stochastic samplers. onStep, if
// set, is called after each step; an error from it stops the loop. The
// tensors in StepInfo are reused by the next step.
func (p *Pipeline) Denoise(ctx context.Context, s scheduler.Scheduler, x *tensor.Dense, cond Conditioning, noise scheduler.Noise, onStep func(StepInfo) error) error {
	d, err := p.newDenoiser(s, x, cond, noise)
	if err != nil {
		return err
	}
	for i, t := range s.Timesteps() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := d.step(t); err != nil {
			return err
		}
		if onStep != nil {
			if err := onStep(StepInfo{Index: i, Timestep: t, ModelOutput: d.pred, Latents: x}); err != nil {
				return err
			}
		}
	}
	return nil
}

// denoiser holds what the steps of one Denoise call reuse, so that after
// the first step a step allocates nothing: the UNet's workspace, the model
// input and the prediction handed to the scheduler.
type denoiser struct {
	p      *Pipeline
	s      scheduler.Scheduler
	x      *tensor.Dense
	cond   Conditioning
	noise  scheduler.Noise
	ws     *nn.Workspace
	in     *tensor.Dense
	inT    *nn.Tensor // in's data as the UNet takes it
	pred   *tensor.Dense
	ts     [1]float32
	labels []int // [labels; null] for guidance
}

func (p *Pipeline) newDenoiser(s scheduler.Scheduler, x *tensor.Dense, cond Conditioning, noise scheduler.Noise) (*denoiser, error) {
	if _, err := fromDense(x); err != nil {
		return nil, err
	}
	d := &denoiser{p: p, s: s, x: x, cond: cond, noise: noise, ws: nn.NewWorkspace()}
	d.in = tensor.New(tensor.WithShape(x.Shape().Clone()...), tensor.Of(tensor.Float32))
	var err error
	if d.inT, err = fromDense(d.in); err != nil {
		return nil, err
	}
	d.labels = cond.guidedLabels()
	return d, nil
}

// guidedLabels is [labels; null labels], the batch of one guided UNet call,
// or nil without guidance.
func (c Conditioning) guidedLabels() []int {
	if !c.guided() {
		return nil
	}
	b := len(c.Labels)
	labels := make([]int, 2*b)
	copy(labels, c.Labels)
	for i := b; i < 2*b; i++ {
		labels[i] = c.NullLabel
	}
	return labels
}

// step takes one denoising step at timestep t.
func (d *denoiser) step(t float64) error {
	if err := d.s.ScaleModelInput(d.in, d.x, t); err != nil {
		return err
	}
	out, err := d.p.predict(d.ws, d.inT, t, d.cond, d.s, d.labels, &d.ts)
	if err != nil {
		return err
	}
	if d.pred == nil || d.pred.Shape()[1] != out.C || d.pred.Shape()[0] != out.N {
		d.pred = tensor.New(tensor.WithShape(out.N, out.C, out.H, out.W), tensor.Of(tensor.Float32))
	}
	copy(d.pred.Float32s(), out.Data)
	d.ws.ReleaseTensor(out)
	res, err := d.s.Step(d.pred, t, d.x, d.noise)
	if err != nil {
		return err
	}
	copy(d.x.Float32s(), res.PrevSample.Float32s())
	return nil
}

// PredictNoise runs the UNet on the scaled input at timestep t, with
// classifier-free guidance when cond asks for it, and returns the output the
// scheduler s takes (a learned-variance UNet's extra channels are dropped
// unless s uses them).
func (p *Pipeline) PredictNoise(in *tensor.Dense, t float64, cond Conditioning, s scheduler.Scheduler) (*tensor.Dense, error) {
	x, err := fromDense(in)
	if err != nil {
		return nil, err
	}
	var ts [1]float32
	out, err := p.predict(nil, x, t, cond, s, cond.guidedLabels(), &ts)
	if err != nil {
		return nil, err
	}
	return toDense(out), nil
}

// predict is PredictNoise on the internal tensors with buffers from ws;
// guidedLabels is [labels; null] when cond is guided. The result comes from
// ws.
func (p *Pipeline) predict(ws *nn.Workspace, x *nn.Tensor, t float64, cond Conditioning, s scheduler.Scheduler, guidedLabels []int, ts *[1]float32) (*nn.Tensor, error) {
	ts[0] = float32(t)
	var out *nn.Tensor
	var err error
	switch {
	case cond.autoguided():
		if out, err = p.UNet.ForwardWS(ws, x, ts[:], cond.Labels); err != nil {
			return nil, err
		}
		g, err := cond.Guide.ForwardWS(ws, x, ts[:], cond.Labels)
		if err != nil {
			return nil, err
		}
		if g.C != out.C {
			return nil, fmt.Errorf("pipeline: the guide UNet has %d output channels, the UNet %d", g.C, out.C)
		}
		extrapolate(out.Data, g.Data, float32(cond.AutoGuidance), x.N, x.C*x.H*x.W)
		ws.ReleaseTensor(g)
	case !cond.guided():
		if out, err = p.UNet.ForwardWS(ws, x, ts[:], cond.Labels); err != nil {
			return nil, err
		}
	default:
		// One UNet call on [x; x] with [labels; null]: each image's output
		// does not depend on the others in the batch.
		b := x.N
		both := ws.Tensor(2*b, x.C, x.H, x.W)
		copy(both.Data, x.Data)
		copy(both.Data[len(x.Data):], x.Data)
		y, err := p.UNet.ForwardWS(ws, both, ts[:], guidedLabels)
		ws.ReleaseTensor(both)
		if err != nil {
			return nil, err
		}
		half := len(y.Data) / 2
		out = ws.Tensor(b, y.C, y.H, y.W)
		copy(out.Data, y.Data[:half])
		extrapolate(out.Data, y.Data[half:], float32(cond.GuidanceScale), b, x.C*x.H*x.W)
		ws.ReleaseTensor(y)
	}
	if out.C != x.C && !usesLearnedVariance(s) {
		first := firstChannels(ws, out, x.C)
		ws.ReleaseTensor(out)
		out = first
	}
	return out, nil
}

// extrapolate sets dst = base + w*(dst - base), the guided prediction of
// both classifier-free guidance and autoguidance, over the first pc values
// of each of the n images: the prediction channels. Learned variance
// channels after them keep dst's values.
func extrapolate(dst, base []float32, w float32, n, pc int) {
	per := len(dst) / n
	for i := 0; i < n; i++ {
		d, b := dst[i*per:i*per+pc], base[i*per:i*per+pc]
		for j := range d {
			d[j] = b[j] + w*(d[j]-b[j])
		}
	}
}

func usesLearnedVariance(s scheduler.Scheduler) bool {
	v := s.Config().VarianceType
	return s.Config().ClassName == "DDPMScheduler" && (v == "learned" || v == "learned_range")
}

func firstChannels(ws *nn.Workspace, t *nn.Tensor, c int) *nn.Tensor {
	y := ws.Tensor(t.N, c, t.H, t.W)
	hw := t.HW()
	for i := 0; i < t.N; i++ {
		copy(y.Data[i*c*hw:(i+1)*c*hw], t.Data[i*t.C*hw:])
	}
	return y
}

// DecoderInput maps denoised latents to what the decoder takes:
// latents / scaling_factor + shift_factor.
func (p *Pipeline) DecoderInput(latents *nn.Tensor) *nn.Tensor {
	z := nn.NewTensor(latents.N, latents.C, latents.H, latents.W)
	sf := float32(p.ScalingFactor())
	shift := float32(p.ShiftFactor())
	for i, v := range latents.Data {
		z.Data[i] = v/sf + shift
	}
	return z
}

// DecodeLatents turns denoised latents into images (in pixel space it
// returns a copy of them).
func (p *Pipeline) DecodeLatents(latents *nn.Tensor) (*nn.Tensor, error) {
	switch {
	case p.VAE != nil:
		return p.VAE.DecodeTensor(p.DecoderInput(latents))
	case p.VQ != nil:
		img, _, err := p.VQ.DecodeTensor(p.DecoderInput(latents), false)
		return img, err
	}
	y := nn.NewTensor(latents.N, latents.C, latents.H, latents.W)
	copy(y.Data, latents.Data)
	return y, nil
}

// streams gives each image of a batch its own random stream: FillNormal
// splits dst into equal per-image parts.
type streams []*nn.RNG

func (s streams) FillNormal(dst []float32) {
	per := len(dst) / len(s)
	for i, r := range s {
		r.FillNormal(dst[i*per : (i+1)*per])
	}
}

func toDense(t *nn.Tensor) *tensor.Dense {
	return tensor.New(tensor.WithShape(t.N, t.C, t.H, t.W), tensor.WithBacking(t.Data))
}

func fromDense(d *tensor.Dense) (*nn.Tensor, error) {
	s := d.Shape()
	if len(s) != 4 || d.Dtype() != tensor.Float32 {
		return nil, errors.New("pipeline: want a float32 [N, C, H, W] tensor")
	}
	// Float32s, unlike Data, does not allocate.
	data := d.Float32s()
	if len(data) != s.TotalSize() {
		return nil, errors.New("pipeline: want a float32 [N, C, H, W] tensor")
	}
	return &nn.Tensor{Data: data, N: s[0], C: s[1], H: s[2], W: s[3]}, nil
}
