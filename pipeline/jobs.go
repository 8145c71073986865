package pipeline

import (
	"context"
	"fmt"
	"math"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/scheduler"
)

// JobOptions are the settings shared by the jobs that start from existing
// images (DenoiseImages, Inpaint, Edit).
type JobOptions struct {
	// Steps is the number of inference steps of the full schedule (default
	// DefaultSteps); SDEdit runs the last Strength of them.
	Steps int
	// Scheduler is "" for the pipeline's own sampler without its noise
	// (a stochastic DPM-Solver runs as the deterministic one; see
	// scheduler.Config.WithoutNoise) or a name as in Options.Scheduler,
	// used as named.
	Scheduler string
	// Seed and Streams pick each image's noise: image i draws every random
	// number from the stream (Seed, Streams[i]), or (Seed, FirstIndex+i)
	// when Streams is nil, as Generate does. Folder jobs derive the stream
	// from the file name so results do not depend on order or sharding.
	Seed       uint64
	Streams    []uint64
	FirstIndex int
	// ClassLabels and GuidanceScale condition a class-conditional model as
	// in Options.
	ClassLabels   []int
	GuidanceScale float64
	// BatchSize is how many images run through the UNet at once (default
	// min(N, DefaultBatchSize())); it never changes the results.
	BatchSize int
	// Progress, if set, is called after every denoising step.
	Progress func(Progress)
}

// options turns o into generation Options for n images, so that validate
// checks them as it checks Generate's.
func (o JobOptions) options(n int) Options {
	return Options{N: n, Seed: o.Seed, FirstIndex: o.FirstIndex, Steps: o.Steps, Scheduler: o.Scheduler,
		BatchSize: o.BatchSize, ClassLabels: o.ClassLabels, GuidanceScale: o.GuidanceScale, Progress: o.Progress}
}

// checkJob validates o for n images.
func (p *Pipeline) checkJob(o JobOptions, n int) (*request, error) {
	if o.Streams != nil && len(o.Streams) != n {
		return nil, fmt.Errorf("pipeline: %d noise streams for %d images", len(o.Streams), n)
	}
	return p.validate(o.options(n))
}

// rngs returns the random streams of images first..first+b-1.
func (o JobOptions) rngs(first, b int) streams {
	s := make(streams, b)
	for i := range s {
		k := uint64(o.FirstIndex + first + i)
		if o.Streams != nil {
			k = o.Streams[first+i]
		}
		s[i] = nn.NewRNG(o.Seed, k)
	}
	return s
}

// cond returns the conditioning of images first..first+b-1.
func (p *Pipeline) cond(r *request, first, b int) Conditioning {
	c := Conditioning{GuidanceScale: r.GuidanceScale, NullLabel: -1}
	if r.labels != nil {
		c.Labels = r.labels[first : first+b]
		if r.guided {
			c.NullLabel = p.NullClass()
		}
	}
	return c
}

// checkImages verifies that images is a float32 [N, C, H, W] batch of the
// model's image size and returns it.
func (p *Pipeline) checkImages(images *tensor.Dense) (*nn.Tensor, error) {
	if images == nil {
		return nil, fmt.Errorf("pipeline: nil images")
	}
	x, err := fromDense(images)
	if err != nil {
		return nil, err
	}
	c := p.ImageChannels()
	h, w := p.ImageSize()
	if x.N < 1 || x.C != c || x.H != h || x.W != w {
		return nil, fmt.Errorf("pipeline: images have shape [%d, %d, %d, %d]; the model takes [N, %d, %d, %d] (fit or resize them first)", x.N, x.C, x.H, x.W, c, h, w)
	}
	return x, nil
}

// EncodeLatents maps images [N, C, H, W] in [-1, 1] of the model's size to
// the latents the UNet works on, the inverse of DecoderInput:
// (posterior mean - shift_factor) * scaling_factor for a KL VAE, the
// unquantised encoder output likewise for a VQ model, and a copy of the
// images in pixel space. The posterior mean (not a sample) keeps every job
// deterministic.
func (p *Pipeline) EncodeLatents(images *tensor.Dense) (*tensor.Dense, error) {
	x, err := p.checkImages(images)
	if err != nil {
		return nil, err
	}
	z, err := p.encode(x)
	if err != nil {
		return nil, err
	}
	return toDense(z), nil
}

func (p *Pipeline) encode(x *nn.Tensor) (*nn.Tensor, error) {
	var m *nn.Tensor
	switch {
	case p.VAE != nil:
		post, err := p.VAE.EncodeTensor(x)
		if err != nil {
			return nil, err
		}
		m = post.Mean
	case p.VQ != nil:
		h, err := p.VQ.EncodeTensor(x)
		if err != nil {
			return nil, err
		}
		m = h
	default:
		z := nn.NewTensor(x.N, x.C, x.H, x.W)
		copy(z.Data, x.Data)
		return z, nil
	}
	sf := float32(p.ScalingFactor())
	shift := float32(p.ShiftFactor())
	z := nn.NewTensor(m.N, m.C, m.H, m.W)
	for i, v := range m.Data {
		z.Data[i] = (v - shift) * sf
	}
	return z, nil
}

// DecodeImages maps latents [N, c, h, w] (as the UNet sees them) to images,
// as DecodeLatents does.
func (p *Pipeline) DecodeImages(latents *tensor.Dense) (*tensor.Dense, error) {
	z, err := p.checkLatents("latents", latents)
	if err != nil {
		return nil, err
	}
	img, err := p.DecodeLatents(z)
	if err != nil {
		return nil, err
	}
	return toDense(img), nil
}

// checkLatents verifies that t is a float32 [N, c, h, w] latent batch of the
// model's latent shape.
func (p *Pipeline) checkLatents(name string, t *tensor.Dense) (*nn.Tensor, error) {
	if t == nil {
		return nil, fmt.Errorf("pipeline: nil %s", name)
	}
	z, err := fromDense(t)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %s: %w", name, err)
	}
	lc := p.UNet.Config.InChannels
	lh, lw := p.LatentSize()
	if z.N < 1 || z.C != lc || z.H != lh || z.W != lw {
		return nil, fmt.Errorf("pipeline: %s have shape [%d, %d, %d, %d]; the model's latents are [N, %d, %d, %d]", name, z.N, z.C, z.H, z.W, lc, lh, lw)
	}
	return z, nil
}

// Reconstruct encodes and decodes images: what the autoencoder alone makes
// of them, the reference the other jobs are compared with.
func (p *Pipeline) Reconstruct(images *tensor.Dense) (*tensor.Dense, error) {
	x, err := p.checkImages(images)
	if err != nil {
		return nil, err
	}
	img, err := p.reconstruct(x)
	if err != nil {
		return nil, err
	}
	return toDense(img), nil
}

// reconstruct passes images x through the autoencoder: posterior mean (or
// quantised latents), decoded.
func (p *Pipeline) reconstruct(x *nn.Tensor) (*nn.Tensor, error) {
	z, err := p.encode(x)
	if err != nil {
		return nil, err
	}
	return p.DecodeLatents(z)
}

// tail is a scheduler whose timesteps are the last part of another's, so
// that Denoise can start midway (SDEdit). The wrapped samplers find their
// step index from the first timestep they are given, as diffusers'
// samplers do.
type tail struct {
	scheduler.Scheduler
	ts []float64
}

func (t tail) Timesteps() []float64 { return t.ts }

// startIndex is diffusers' img2img start: init_timestep =
// min(int(steps*strength), steps), and the schedule continues from
// t_start = steps - init_timestep, times the sampler's order.
func startIndex(ts []float64, steps int, strength float64) int {
	init := min(int(float64(steps)*strength), steps)
	order := 1
	if len(ts) > steps+1 { // Heun repeats every timestep but the first
		order = (len(ts) + 1) / steps
	}
	return min((steps-init)*order, len(ts))
}

func checkUnit(name string, v float64) error {
	if math.IsNaN(v) || v < 0 || v > 1 {
		return fmt.Errorf("pipeline: %s %v outside [0, 1]", name, v)
	}
	return nil
}

// noiseTo writes the forward process of x0 at timestep t with fresh noise
// from rngs to dst (all [b, c, h, w]).
func noiseTo(s scheduler.Scheduler, dst, x0 *nn.Tensor, t float64, rngs streams) error {
	eps := nn.NewTensor(x0.N, x0.C, x0.H, x0.W)
	rngs.FillNormal(eps.Data)
	ts := make([]float64, x0.N)
	for i := range ts {
		ts[i] = t
	}
	return s.AddNoise(toDense(dst), toDense(x0), toDense(eps), ts)
}

// progressFn adapts a request's Progress to Denoise's onStep.
func progressFn(r *request, first, steps int) func(StepInfo) error {
	return func(st StepInfo) error {
		if r.Progress != nil {
			r.Progress(Progress{Step: st.Index + 1, Steps: steps, Done: first, Total: r.N})
		}
		return nil
	}
}

// sdedit runs SDEdit on latents z0 [N, c, h, w] in batches and returns the
// denoised latents: noise to the timestep strength selects, then denoise
// with the rest of the schedule.
func (p *Pipeline) sdedit(ctx context.Context, z0 *nn.Tensor, o JobOptions, strength float64) (*nn.Tensor, error) {
	if err := checkUnit("strength", strength); err != nil {
		return nil, err
	}
	r, err := p.checkJob(o, z0.N)
	if err != nil {
		return nil, err
	}
	out := nn.NewTensor(z0.N, z0.C, z0.H, z0.W)
	copy(out.Data, z0.Data)
	per := z0.C * z0.H * z0.W
	for first := 0; first < r.N; first += r.BatchSize {
		b := min(r.BatchSize, r.N-first)
		s, err := p.newJobScheduler(r.Scheduler)
		if err != nil {
			return nil, err
		}
		if err := p.setup(s, r); err != nil {
			return nil, err
		}
		ts := s.Timesteps()
		start := startIndex(ts, r.Steps, strength)
		if start == len(ts) {
			continue // strength 0: the latents stay as they are
		}
		x := &nn.Tensor{Data: out.Data[first*per : (first+b)*per], N: b, C: z0.C, H: z0.H, W: z0.W}
		clean := nn.NewTensor(b, z0.C, z0.H, z0.W)
		copy(clean.Data, x.Data)
		rngs := o.rngs(first, b)
		if err := noiseTo(s, x, clean, ts[start], rngs); err != nil {
			return nil, err
		}
		tl := tail{s, ts[start:]}
		if err := p.Denoise(ctx, tl, toDense(x), p.cond(r, first, b), rngs, progressFn(r, first, len(tl.ts))); err != nil {
			return nil, err
		}
	}
	return out, nil
}
