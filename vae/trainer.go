package vae

import (
	"context"
	"fmt"
	"math"
	"path/filepath"

	"github.com/ldm-go/ldm/internal/dataset"
	"github.com/ldm-go/ldm/internal/workers"
	"github.com/ldm-go/ldm/nn"
)

// TrainOptions configures VAE training.
type TrainOptions struct {
	nn.TrainOptions
	BatchSize int
	// Loss is the reconstruction loss: "l1" or "mse".
	Loss string
	// KLWeight weighs the KL term: loss = reconstruction + KLWeight * KL,
	// with KL summed over latent elements and averaged over the batch.
	KLWeight float64
	Seed     uint64
	Flip     bool
}

// Trainer trains an AutoencoderKL on a dataset: the posterior is sampled by
// reparameterisation, the decoder reconstructs the image, and the loss is
// the reconstruction error plus the weighted KL divergence.
//
// Every random number of micro-batch m comes from the stream (Seed, m), and
// batches from a Sampler that is a function of position, so a run resumed
// from a checkpoint ends with bit-identical weights.
type Trainer struct {
	Model   *AutoencoderKL
	Opt     *nn.Optimizer
	Opts    TrainOptions
	sampler *dataset.Sampler
	micro   int // micro-batches done
	// parts are the pieces a batch is split into (nn.BatchParts), part 0
	// on Model itself; each keeps its tape (and so its memory) from step
	// to step.
	parts []*trainPart
}

// trainPart is one part of a training batch: images [lo, hi).
type trainPart struct {
	t       *Trainer
	model   *AutoencoderKL
	tape    *nn.Tape
	lo, hi  int
	x       *nn.Tensor
	eps     []float32
	rec, kl float64
	err     error
}

// stepStream offsets the per-micro-batch streams from other uses of the seed.
const stepStream = 1 << 48

// NewTrainer validates the options against the model and data.
func NewTrainer(m *AutoencoderKL, data dataset.Dataset, o TrainOptions) (*Trainer, error) {
	c, h, w := data.Shape()
	if c != m.Config.InChannels {
		return nil, fmt.Errorf("vae train: the data has %d channels, the model in_channels = %d", c, m.Config.InChannels)
	}
	if f := m.Config.DownsampleFactor(); h%f != 0 || w%f != 0 {
		return nil, fmt.Errorf("vae train: image size %dx%d is not a multiple of the downsampling factor %d", h, w, f)
	}
	if o.BatchSize <= 0 || o.BatchSize > 4096 {
		return nil, fmt.Errorf("vae train: batch size %d outside [1, 4096]", o.BatchSize)
	}
	if o.Loss != "l1" && o.Loss != "mse" {
		return nil, fmt.Errorf("vae train: loss %q, want l1 or mse", o.Loss)
	}
	if o.KLWeight < 0 || math.IsNaN(o.KLWeight) {
		return nil, fmt.Errorf("vae train: KL weight %v, want 0 or more", o.KLWeight)
	}
	opt, err := nn.NewOptimizer(m.Params, o.TrainOptions)
	if err != nil {
		return nil, fmt.Errorf("vae train: %w", err)
	}
	return &Trainer{Model: m, Opt: opt, Opts: o, sampler: &dataset.Sampler{Data: data, Seed: o.Seed, Flip: o.Flip}}, nil
}

// StepStats describes one optimiser step.
type StepStats struct {
	Step                int
	Loss, Recon, KL, LR float64
	GradNorm            float64
}

// Step runs one optimiser step (Accumulation micro-batches).
func (t *Trainer) Step() (StepStats, error) {
	c, h, w := t.sampler.Data.Shape()
	b := t.Opts.BatchSize
	var st StepStats
	f := t.Model.Config.DownsampleFactor()
	lper := t.Model.Config.LatentChannels * (h / f) * (w / f)
	for {
		rng := nn.NewRNG(t.Opts.Seed, stepStream+uint64(t.micro))
		x := nn.NewTensor(b, c, h, w)
		t.sampler.Batch(x.Data, nil, t.micro*b, b, rng)
		eps := make([]float32, b*lper)
		rng.FillNormal(eps)
		rec, kl, err := t.backward(x, eps, lper)
		if err != nil {
			return st, err
		}
		t.micro++
		scale := t.Opt.LossScale()
		loss := rec + t.Opts.KLWeight*kl
		if err := t.Opt.CheckLoss(loss); err != nil {
			return st, err
		}
		st.Loss += loss * float64(scale)
		st.Recon += rec * float64(scale)
		st.KL += kl * float64(scale)
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

// backward runs the forward and backward passes of one micro-batch x with
// the reparameterisation noise eps, split into parts, leaving the
// gradients in the model's parameters; it returns the batch's
// reconstruction loss and mean KL.
func (t *Trainer) backward(x *nn.Tensor, eps []float32, lper int) (rec, kl float64, err error) {
	b := x.N
	n := nn.BatchParts(b)
	for len(t.parts) < n {
		m := t.Model
		if len(t.parts) > 0 {
			if m, err = NewAutoencoderKL(t.Model.Config); err != nil {
				return 0, 0, err
			}
			m.Params.ShareData(t.Model.Params)
		}
		t.parts = append(t.parts, &trainPart{t: t, model: m})
	}
	var run [8]workers.Part
	per := x.C * x.H * x.W
	for k, p := range t.parts[:n] {
		p.lo, p.hi = nn.PartBounds(b, n, k)
		p.x = &nn.Tensor{Data: x.Data[p.lo*per : p.hi*per], N: p.hi - p.lo, C: x.C, H: x.H, W: x.W}
		p.eps = eps[p.lo*lper : p.hi*lper]
		run[k] = p
	}
	nn.RunParts(run[:n])
	for _, p := range t.parts[:n] {
		if p.err != nil {
			return 0, 0, p.err
		}
		rec += p.rec
		kl += p.kl
	}
	for _, p := range t.parts[1:n] {
		t.Model.Params.AddGradsFrom(p.model.Params)
	}
	return rec, kl, nil
}

// RunPart runs the part's forward and backward passes (workers.Part). Its
// losses, and their gradients, are those of the whole batch restricted to
// the part's images: the part's means weighted by its share of the batch.
func (p *trainPart) RunPart() {
	t := p.t
	share := float64(p.hi-p.lo) / float64(t.Opts.BatchSize)
	p.tape = nn.ReuseTape(p.tape)
	tp := p.tape
	tp.Constant(p.x)
	post, err := p.model.EncodeTape(tp, p.x)
	if err != nil {
		p.err = err
		return
	}
	z := post.SampleTape(tp, p.eps)
	recon, err := p.model.DecodeTape(tp, z)
	if err != nil {
		p.err = err
		return
	}
	var rec float64
	var g []float32
	if t.Opts.Loss == "l1" {
		rec, g = nn.L1Loss(recon, p.x)
	} else {
		rec, g = nn.MSELoss(recon, p.x)
	}
	scale := t.Opt.LossScale()
	gs := scale
	if share != 1 {
		gs = float32(float64(scale) * share)
	}
	for i := range g {
		g[i] *= gs
	}
	tp.AddGrad(recon, g)
	kl := post.KLLoss(tp, t.Opts.KLWeight*float64(scale)*share)
	tp.Backward()
	p.rec, p.kl, p.err = rec*share, kl*share, nil
}

// Weights returns the model to sample with: the EMA weights when EMA is on.
func (t *Trainer) Weights() (*AutoencoderKL, error) {
	if t.Opt.EMA == nil {
		return t.Model, nil
	}
	m, err := NewAutoencoderKL(t.Model.Config)
	if err != nil {
		return nil, err
	}
	t.Opt.EMA.CopyTo(m.Params)
	return m, nil
}

// PSNR is the mean per-image peak signal-to-noise ratio, in dB, of
// reconstructions (decode of the posterior mean) of the first n images of
// data, with pixels mapped to [0, 1] and clamped.
func PSNR(ctx context.Context, m *AutoencoderKL, data dataset.Dataset, n, batch int) (float64, error) {
	c, h, w := data.Shape()
	n = min(n, data.Len())
	per := c * h * w
	var total float64
	for first := 0; first < n; first += batch {
		b := min(batch, n-first)
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		x := nn.NewTensor(b, c, h, w)
		for j := 0; j < b; j++ {
			data.Get(x.Data[j*per:(j+1)*per], first+j)
		}
		post, err := m.EncodeTensor(x)
		if err != nil {
			return 0, err
		}
		y, err := m.DecodeTensor(post.Mean)
		if err != nil {
			return 0, err
		}
		for j := 0; j < b; j++ {
			total += psnr(x.Data[j*per:(j+1)*per], y.Data[j*per:(j+1)*per])
		}
	}
	return total / float64(n), nil
}

func unit(v float32) float64 { return math.Min(1, math.Max(0, float64(v)/2+0.5)) }

func psnr(a, b []float32) float64 {
	var se float64
	for i := range a {
		d := unit(a[i]) - unit(b[i])
		se += d * d
	}
	mse := se / float64(len(a))
	if mse == 0 {
		return 100
	}
	return -10 * math.Log10(mse)
}

// SaveCheckpoint writes the weights (as a diffusers model folder under
// "vae"), the optimiser and EMA state and the step into a checkpoint
// folder under root, keeping the newest keep checkpoints.
func (t *Trainer) SaveCheckpoint(root string, keep int) (string, error) {
	st := nn.TrainerState{Kind: "vae", Micro: t.micro, Seed: t.Opts.Seed}
	return t.Opt.SaveCheckpoint(root, keep, st, func(dir string) error { return t.Model.Save(filepath.Join(dir, "vae")) })
}

// Resume restores the newest checkpoint under root, if any, and returns
// its step (-1 when there was none).
func (t *Trainer) Resume(root string) (int, error) {
	st, found, err := t.Opt.Resume(root, "vae", t.Opts.Seed, func(dir string) (*nn.Params, error) {
		m, err := LoadAutoencoderKL(filepath.Join(dir, "vae"))
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

// Export writes the model to sample with (EMA weights when on) as a
// diffusers model folder.
func (t *Trainer) Export(dir string) error {
	m, err := t.Weights()
	if err != nil {
		return err
	}
	return m.Save(dir)
}
