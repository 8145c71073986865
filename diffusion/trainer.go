package diffusion

import (
	"context"
	"fmt"
	"math"
	"path/filepath"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/internal/dataset"
	"github.com/ldm-go/ldm/internal/workers"
	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/scheduler"
	"github.com/ldm-go/ldm/unet"
	"github.com/ldm-go/ldm/vae"
)

// TrainOptions configures denoiser training.
type TrainOptions struct {
	nn.TrainOptions
	BatchSize int
	Seed      uint64
	// LabelDropout is the probability of replacing a label by the null
	// class, so that one model predicts both conditionally and
	// unconditionally (classifier-free guidance).
	LabelDropout float64
	// MinSNRGamma turns on min-SNR-gamma loss weighting (Hang et al. 2023)
	// when positive; diffusers' scripts use 5.
	MinSNRGamma float64
	// OffsetNoise adds OffsetNoise * N(0, 1) per image and channel to the
	// noise, constant over the pixels.
	OffsetNoise float64
	// Flip mirrors pixel-space training images at random.
	Flip bool
}

// Trainer trains a UNet2DModel to denoise latents (or pixels).
type Trainer struct {
	UNet    *unet.Model
	Noise   scheduler.Scheduler // the training noise schedule (forward process)
	Opt     *nn.Optimizer
	Opts    TrainOptions
	Data    *Latents
	sampler *dataset.Sampler
	micro   int
	// parts are the pieces a batch is split into (nn.BatchParts), part 0
	// on t.UNet itself; each keeps its tape (and so its memory) from step
	// to step.
	parts []*trainPart
}

// trainPart is one part of a training batch: images [lo, hi).
type trainPart struct {
	t      *Trainer
	model  *unet.Model
	tape   *nn.Tape
	lo, hi int
	// The batch, filled by Step.
	xt, target *nn.Tensor
	ts         []float64
	ts32       []float32
	labels     []int
	loss       float64
	err        error
}

// Latents is the training set in the UNet's input space: either pixel
// images, or the posterior of each image under a frozen VAE (encoded once),
// from which a fresh latent is sampled at every use and scaled by
// ScalingFactor after subtracting ShiftFactor.
type Latents struct {
	C, H, W int
	// Mean and Std are the posterior parameters, one latent after another;
	// Std is nil for pixel data (Mean holds the images).
	Mean, Std     []float32
	Labels        []int // nil when unlabelled
	ScalingFactor float32
	ShiftFactor   float32
	Classes       int
}

// Len is the number of examples.
func (l *Latents) Len() int { return len(l.Mean) / (l.C * l.H * l.W) }

// Shape is the latent shape.
func (l *Latents) Shape() (int, int, int) { return l.C, l.H, l.W }

// NumClasses is the number of labels.
func (l *Latents) NumClasses() int { return l.Classes }

// Get writes the posterior mean (scaled) of example i: what sampling would
// use with zero noise. Training samples around it with Sample.
func (l *Latents) Get(dst []float32, i int) int {
	per := l.C * l.H * l.W
	for j, m := range l.Mean[i*per : (i+1)*per] {
		dst[j] = (m - l.ShiftFactor) * l.ScalingFactor
	}
	if l.Labels == nil {
		return -1
	}
	return l.Labels[i]
}

// FromPixels wraps pixel images as training data (no VAE).
func FromPixels(data dataset.Dataset) *Latents {
	c, h, w := data.Shape()
	per := c * h * w
	l := &Latents{C: c, H: h, W: w, Mean: make([]float32, data.Len()*per), ScalingFactor: 1, Classes: data.NumClasses()}
	if data.NumClasses() > 0 {
		l.Labels = make([]int, data.Len())
	}
	for i := 0; i < data.Len(); i++ {
		lab := data.Get(l.Mean[i*per:(i+1)*per], i)
		if l.Labels != nil {
			l.Labels[i] = lab
		}
	}
	return l
}

// Encode runs every image of data through the frozen VAE's encoder once,
// keeping each posterior's mean and standard deviation. progress, if set,
// is called with the number of images done.
func Encode(ctx context.Context, v *vae.AutoencoderKL, data dataset.Dataset, batch int, progress func(done, total int)) (*Latents, error) {
	c, h, w := data.Shape()
	if c != v.Config.InChannels {
		return nil, fmt.Errorf("diffusion: the data has %d channels, the VAE in_channels = %d", c, v.Config.InChannels)
	}
	f := v.Config.DownsampleFactor()
	if h%f != 0 || w%f != 0 {
		return nil, fmt.Errorf("diffusion: image size %dx%d is not a multiple of the VAE's factor %d", h, w, f)
	}
	lc, lh, lw := v.Config.LatentChannels, h/f, w/f
	n := data.Len()
	l := &Latents{C: lc, H: lh, W: lw, Mean: make([]float32, n*lc*lh*lw), Std: make([]float32, n*lc*lh*lw),
		ScalingFactor: float32(v.Config.ScalingFactor), ShiftFactor: float32(v.Config.Shift()), Classes: data.NumClasses()}
	if l.Classes > 0 {
		l.Labels = make([]int, n)
	}
	per, lper := c*h*w, lc*lh*lw
	for first := 0; first < n; first += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b := min(batch, n-first)
		x := nn.NewTensor(b, c, h, w)
		for j := 0; j < b; j++ {
			lab := data.Get(x.Data[j*per:(j+1)*per], first+j)
			if l.Labels != nil {
				l.Labels[first+j] = lab
			}
		}
		post, err := v.EncodeTensor(x)
		if err != nil {
			return nil, err
		}
		copy(l.Mean[first*lper:], post.Mean.Data)
		copy(l.Std[first*lper:], post.Std().Data)
		if progress != nil {
			progress(first+b, n)
		}
	}
	return l, nil
}

// LatentStd is the standard deviation of latents sampled from every
// posterior (with the fixed stream (seed, 0)), before scaling: diffusers'
// recipe sets scaling_factor to its inverse so the diffusion model sees
// unit-variance latents.
func (l *Latents) LatentStd(seed uint64) float64 {
	rng := nn.NewRNG(seed, 0)
	var s, ss float64
	for i, m := range l.Mean {
		z := float64(m)
		if l.Std != nil {
			z += float64(l.Std[i]) * rng.Normal()
		}
		z -= float64(l.ShiftFactor)
		s += z
		ss += z * z
	}
	n := float64(len(l.Mean))
	mean := s / n
	return math.Sqrt(math.Max(ss/n-mean*mean, 0))
}

// stepStream offsets the per-micro-batch streams from other uses of the seed.
const stepStream = 1 << 48

// NewTrainer validates the options against the model, schedule and data.
func NewTrainer(u *unet.Model, noise scheduler.Scheduler, data *Latents, o TrainOptions) (*Trainer, error) {
	c := u.Config
	if data.C != c.InChannels {
		return nil, fmt.Errorf("diffusion: the latents have %d channels, the UNet in_channels = %d", data.C, c.InChannels)
	}
	if err := u.CheckInput(1, data.C, data.H, data.W, []float32{0}, labelsFor(u)); err != nil {
		return nil, fmt.Errorf("diffusion: %w", err)
	}
	if c.OutChannels != c.InChannels {
		return nil, fmt.Errorf("diffusion: training a UNet with out_channels = %d != in_channels = %d (learned variance) is not supported", c.OutChannels, c.InChannels)
	}
	if o.BatchSize <= 0 || o.BatchSize > 4096 {
		return nil, fmt.Errorf("diffusion: batch size %d outside [1, 4096]", o.BatchSize)
	}
	if o.LabelDropout < 0 || o.LabelDropout > 1 || math.IsNaN(o.LabelDropout) {
		return nil, fmt.Errorf("diffusion: label dropout %v outside [0, 1]", o.LabelDropout)
	}
	if o.MinSNRGamma < 0 || o.OffsetNoise < 0 {
		return nil, fmt.Errorf("diffusion: min-SNR gamma %v and offset noise %v must be 0 (off) or more", o.MinSNRGamma, o.OffsetNoise)
	}
	if c.ClassConditional() {
		if u.ClassEmbedding == nil {
			return nil, fmt.Errorf("diffusion: only class_embed_type null (a label table) is supported for training")
		}
		if data.Labels == nil {
			return nil, fmt.Errorf("diffusion: the UNet is class-conditional but the data has no labels")
		}
		if data.Classes+1 != u.ClassEmbedding.Num {
			return nil, fmt.Errorf("diffusion: num_class_embeds = %d, want the data's %d classes plus the null class = %d", u.ClassEmbedding.Num, data.Classes, data.Classes+1)
		}
	} else if o.LabelDropout > 0 {
		return nil, fmt.Errorf("diffusion: label dropout needs a class-conditional UNet (num_class_embeds)")
	}
	opt, err := nn.NewOptimizer(u.Params, o.TrainOptions)
	if err != nil {
		return nil, fmt.Errorf("diffusion: %w", err)
	}
	return &Trainer{UNet: u, Noise: noise, Opt: opt, Opts: o, Data: data, sampler: &dataset.Sampler{Data: data, Seed: o.Seed}}, nil
}

func labelsFor(u *unet.Model) []int {
	if u.Config.ClassConditional() {
		return []int{0}
	}
	return nil
}

// StepStats describes one optimiser step.
type StepStats struct {
	Step               int
	Loss, LR, GradNorm float64
}

// Step runs one optimiser step (Accumulation micro-batches).
func (t *Trainer) Step() (StepStats, error) {
	var st StepStats
	d := t.Data
	b := t.Opts.BatchSize
	per := d.C * d.H * d.W
	T := t.Noise.Config().NumTrainTimesteps
	pred := t.Noise.Config().PredictionType
	for {
		rng := nn.NewRNG(t.Opts.Seed, stepStream+uint64(t.micro))
		// The batch: positions micro*b ... of a per-epoch permutation.
		x0 := nn.NewTensor(b, d.C, d.H, d.W)
		idx := make([]int, b)
		t.sampler.Indices(idx, t.micro*b)
		var labels []int
		if t.UNet.Config.ClassConditional() {
			labels = make([]int, b)
		}
		for j, i := range idx {
			dst := x0.Data[j*per : (j+1)*per]
			lab := d.Get(dst, i)
			if d.Std != nil {
				std := d.Std[i*per : (i+1)*per]
				for k := range dst {
					dst[k] += float32(rng.Normal()) * std[k] * d.ScalingFactor
				}
			} else if t.Opts.Flip && rng.Uint64()&1 == 1 {
				dataset.FlipRows(dst, d.C*d.H, d.W)
			}
			if labels != nil {
				labels[j] = lab
				if t.Opts.LabelDropout > 0 && rng.Float64() < t.Opts.LabelDropout {
					labels[j] = t.UNet.ClassEmbedding.Num - 1
				}
			}
		}
		ts := make([]float64, b)
		ts32 := make([]float32, b)
		for j := range ts {
			k := rng.Intn(T)
			ts[j], ts32[j] = float64(k), float32(k)
		}
		noise := nn.NewTensor(b, d.C, d.H, d.W)
		rng.FillNormal(noise.Data)
		if t.Opts.OffsetNoise > 0 {
			hw := d.H * d.W
			for j := 0; j < b*d.C; j++ {
				off := float32(t.Opts.OffsetNoise * rng.Normal())
				for k := j * hw; k < (j+1)*hw; k++ {
					noise.Data[k] += off
				}
			}
		}
		xt := nn.NewTensor(b, d.C, d.H, d.W)
		if err := t.Noise.AddNoise(dense(xt), dense(x0), dense(noise), ts); err != nil {
			return st, err
		}
		var target *nn.Tensor
		switch pred {
		case "epsilon":
			target = noise
		case "sample":
			target = x0
		case "v_prediction":
			target = nn.NewTensor(b, d.C, d.H, d.W)
			if err := t.Noise.GetVelocity(dense(target), dense(x0), dense(noise), ts); err != nil {
				return st, err
			}
		default:
			return st, fmt.Errorf("diffusion: prediction_type %q is not supported", pred)
		}
		loss, err := t.backward(xt, target, ts, ts32, labels)
		if err != nil {
			return st, err
		}
		t.micro++
		if err := t.Opt.CheckLoss(loss); err != nil {
			return st, err
		}
		st.Loss += loss * float64(t.Opt.LossScale())
		stepped, norm, lr, err := t.Opt.MicroStep()
		if err != nil {
			return st, err
		}
		if stepped {
			st.Step, st.GradNorm, st.LR = t.Opt.Step(), norm, lr
			return st, nil
		}
	}
}

// backward runs the forward and backward passes of one micro-batch, split
// into parts, leaving the gradients in the UNet's parameters, and returns
// the loss.
func (t *Trainer) backward(xt, target *nn.Tensor, ts []float64, ts32 []float32, labels []int) (float64, error) {
	b := xt.N
	n := nn.BatchParts(b)
	if err := t.setParts(n, b); err != nil {
		return 0, err
	}
	per := xt.C * xt.H * xt.W
	for _, p := range t.parts {
		p.xt = &nn.Tensor{Data: xt.Data[p.lo*per : p.hi*per], N: p.hi - p.lo, C: xt.C, H: xt.H, W: xt.W}
		p.target = &nn.Tensor{Data: target.Data[p.lo*per : p.hi*per], N: p.hi - p.lo, C: xt.C, H: xt.H, W: xt.W}
		p.ts, p.ts32 = ts[p.lo:p.hi], ts32[p.lo:p.hi]
		p.labels = nil
		if labels != nil {
			p.labels = labels[p.lo:p.hi]
		}
	}
	var run [8]workers.Part
	for k, p := range t.parts {
		run[k] = p
	}
	nn.RunParts(run[:n])
	var loss float64
	for _, p := range t.parts {
		if p.err != nil {
			return 0, p.err
		}
		loss += p.loss
	}
	// The other parts' gradients join part 0's, in part order.
	for _, p := range t.parts[1:] {
		t.UNet.Params.AddGradsFrom(p.model.Params)
	}
	return loss, nil
}

// setParts lays out n parts of a batch of b images, making the model
// copies the first time: they share the UNet's weights and have their own
// gradients.
func (t *Trainer) setParts(n, b int) error {
	for len(t.parts) < n {
		m := t.UNet
		if len(t.parts) > 0 {
			var err error
			if m, err = unet.New(t.UNet.Config); err != nil {
				return err
			}
			m.Params.ShareData(t.UNet.Params)
		}
		t.parts = append(t.parts, &trainPart{t: t, model: m})
	}
	for k, p := range t.parts[:n] {
		p.lo, p.hi = nn.PartBounds(b, n, k)
	}
	t.parts = t.parts[:n:n]
	return nil
}

// RunPart runs the part's forward and backward passes (workers.Part): the
// loss and its gradient are those of the whole batch's mean, restricted to
// the part's images.
func (p *trainPart) RunPart() {
	t := p.t
	p.tape = nn.ReuseTape(p.tape)
	tp := p.tape
	tp.Constant(p.xt)
	out, err := p.model.ForwardTape(tp, p.xt, p.ts32, p.labels)
	if err != nil {
		p.err = err
		return
	}
	loss, g := weightedMSE(out, p.target, p.ts, t.Noise.AlphasCumprod(), t.Noise.Config().PredictionType, t.Opts.MinSNRGamma, t.Opt.LossScale(), t.Opts.BatchSize)
	tp.AddGrad(out, g)
	tp.Backward()
	p.loss, p.err = loss, nil
}

// weightedMSE is the sum over images of w_i * mean((out_i - target_i)^2),
// divided by the batch size b (out may be part of the batch), and its
// gradient times scale, where w_i is 1, or the min-SNR-gamma weight of
// image i's timestep: min(snr, gamma) divided by snr (epsilon), by snr + 1
// (v_prediction), or by 1 (sample).
func weightedMSE(out, target *nn.Tensor, ts []float64, ac []float32, pred string, gamma float64, scale float32, b int) (float64, []float32) {
	per := len(out.Data) / out.N
	g := make([]float32, len(out.Data))
	var loss float64
	for i := 0; i < out.N; i++ {
		w := 1.0
		if gamma > 0 {
			a := float64(ac[int(ts[i])])
			snr := a / (1 - a)
			w = math.Min(snr, gamma)
			switch pred {
			case "epsilon":
				w /= snr
			case "v_prediction":
				w /= snr + 1
			}
		}
		var s float64
		k := float32(2*w/float64(per*b)) * scale
		for j := i * per; j < (i+1)*per; j++ {
			d := out.Data[j] - target.Data[j]
			s += float64(d) * float64(d)
			g[j] = k * d
		}
		loss += w * s / float64(per)
	}
	return loss / float64(b), g
}

func dense(t *nn.Tensor) *tensor.Dense {
	return tensor.New(tensor.WithShape(t.N, t.C, t.H, t.W), tensor.WithBacking(t.Data))
}

// Weights returns the UNet to sample with: the EMA weights when EMA is on.
func (t *Trainer) Weights() (*unet.Model, error) {
	if t.Opt.EMA == nil {
		return t.UNet, nil
	}
	m, err := unet.New(t.UNet.Config)
	if err != nil {
		return nil, err
	}
	t.Opt.EMA.CopyTo(m.Params)
	return m, nil
}

// SaveCheckpoint writes the weights (as a diffusers model folder under
// "unet"), the optimiser and EMA state and the step into a checkpoint
// folder under root, keeping the newest keep checkpoints.
func (t *Trainer) SaveCheckpoint(root string, keep int) (string, error) {
	st := nn.TrainerState{Kind: "unet", Micro: t.micro, Seed: t.Opts.Seed}
	return t.Opt.SaveCheckpoint(root, keep, st, func(dir string) error { return t.UNet.Save(filepath.Join(dir, "unet")) })
}

// Resume restores the newest checkpoint under root, if any, and returns
// its step (-1 when there was none).
func (t *Trainer) Resume(root string) (int, error) {
	st, found, err := t.Opt.Resume(root, "unet", t.Opts.Seed, func(dir string) (*nn.Params, error) {
		m, err := unet.Load(filepath.Join(dir, "unet"))
		if err != nil {
			return nil, err
		}
		return m.Params, nil
	})
	if err != nil || !found {
		return -1, err
	}
	t.micro = st.Micro
	return st.Step, nil
}

// ExportUNet writes the UNet to sample with as a diffusers model folder.
func (t *Trainer) ExportUNet(dir string) error {
	m, err := t.Weights()
	if err != nil {
		return err
	}
	return m.Save(dir)
}
