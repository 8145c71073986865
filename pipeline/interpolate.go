package pipeline

import (
	"context"
	"fmt"
	"math"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/scheduler"
)

// sameShape checks that a and b are float32 tensors of one shape and
// returns their data.
func sameShape(a, b *tensor.Dense) ([]float32, []float32, error) {
	if a == nil || b == nil {
		return nil, nil, fmt.Errorf("pipeline: interpolating a nil tensor")
	}
	ad, ok1 := a.Data().([]float32)
	bd, ok2 := b.Data().([]float32)
	if !ok1 || !ok2 {
		return nil, nil, fmt.Errorf("pipeline: interpolation needs float32 tensors")
	}
	if !a.Shape().Eq(b.Shape()) {
		return nil, nil, fmt.Errorf("pipeline: cannot interpolate between latents of shapes %v and %v", a.Shape(), b.Shape())
	}
	return ad, bd, nil
}

// Lerp returns (1-alpha)*a + alpha*b for latents of the same shape, alpha in
// [0, 1]. Alpha 0 and 1 give a and b bit for bit.
func Lerp(a, b *tensor.Dense, alpha float64) (*tensor.Dense, error) {
	if err := checkUnit("alpha", alpha); err != nil {
		return nil, err
	}
	ad, bd, err := sameShape(a, b)
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(ad))
	wa, wb := float32(1-alpha), float32(alpha)
	for i := range out {
		out[i] = wa*ad[i] + wb*bd[i]
	}
	return tensor.New(tensor.WithShape(a.Shape().Clone()...), tensor.WithBacking(out)), nil
}

// Slerp is spherical linear interpolation between a and b, image by image
// (along the first dimension, each image a vector): the path keeps the norm
// Gaussian noise has, where a straight line between two noises passes
// through improbably small ones. Nearly parallel vectors fall back to Lerp.
// Alpha must be in [0, 1]; 0 and 1 give a and b bit for bit.
func Slerp(a, b *tensor.Dense, alpha float64) (*tensor.Dense, error) {
	if err := checkUnit("alpha", alpha); err != nil {
		return nil, err
	}
	ad, bd, err := sameShape(a, b)
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(ad))
	n := 1
	if s := a.Shape(); len(s) > 1 {
		n = s[0]
	}
	per := len(ad) / n
	for i := 0; i < n; i++ {
		x, y, o := ad[i*per:(i+1)*per], bd[i*per:(i+1)*per], out[i*per:(i+1)*per]
		switch alpha {
		case 0:
			copy(o, x)
			continue
		case 1:
			copy(o, y)
			continue
		}
		var dot, nx, ny float64
		for j := range x {
			dot += float64(x[j]) * float64(y[j])
			nx += float64(x[j]) * float64(x[j])
			ny += float64(y[j]) * float64(y[j])
		}
		cos := dot / math.Sqrt(nx*ny)
		if !(math.Abs(cos) < 0.9995) { // also NaN for zero vectors
			for j := range o {
				o[j] = float32((1-alpha)*float64(x[j]) + alpha*float64(y[j]))
			}
			continue
		}
		th := math.Acos(cos)
		wa, wb := math.Sin((1-alpha)*th)/math.Sin(th), math.Sin(alpha*th)/math.Sin(th)
		for j := range o {
			o[j] = float32(wa*float64(x[j]) + wb*float64(y[j]))
		}
	}
	return tensor.New(tensor.WithShape(a.Shape().Clone()...), tensor.WithBacking(out)), nil
}

// InvertDDIM runs deterministic DDIM inversion (scheduler.DDIMInverse, with
// the pipeline's training schedule) on latents [N, c, h, w] for steps
// steps, conditioned on labels (one per image, one for all, or none), and
// returns the noise from which SampleDDIM with the same steps and labels
// returns approximately the latents.
func (p *Pipeline) InvertDDIM(ctx context.Context, latents *tensor.Dense, steps int, labels []int) (*tensor.Dense, error) {
	z, err := p.checkLatents("latents", latents)
	if err != nil {
		return nil, err
	}
	r, err := p.validate(Options{N: z.N, Steps: steps, Scheduler: "ddim", ClassLabels: labels})
	if err != nil {
		return nil, err
	}
	inv, err := scheduler.NewDDIMInverse(p.Scheduler)
	if err != nil {
		return nil, err
	}
	if err := inv.SetTimesteps(r.Steps); err != nil {
		return nil, err
	}
	x := nn.NewTensor(z.N, z.C, z.H, z.W)
	copy(x.Data, z.Data)
	if err := p.Denoise(ctx, inv, toDense(x), p.cond(r, 0, z.N), nil, nil); err != nil {
		return nil, err
	}
	return toDense(x), nil
}

// SampleDDIM denoises noise [N, c, h, w] with deterministic DDIM (eta 0) in
// steps steps, conditioned on labels, and returns the latents.
func (p *Pipeline) SampleDDIM(ctx context.Context, noise *tensor.Dense, steps int, labels []int) (*tensor.Dense, error) {
	z, err := p.checkLatents("noise", noise)
	if err != nil {
		return nil, err
	}
	r, err := p.validate(Options{N: z.N, Steps: steps, Scheduler: "ddim", ClassLabels: labels})
	if err != nil {
		return nil, err
	}
	s, err := p.NewScheduler("ddim")
	if err != nil {
		return nil, err
	}
	if err := p.setup(s, r); err != nil {
		return nil, err
	}
	x := nn.NewTensor(z.N, z.C, z.H, z.W)
	copy(x.Data, z.Data)
	if err := p.Denoise(ctx, s, toDense(x), p.cond(r, 0, z.N), nil, nil); err != nil {
		return nil, err
	}
	return toDense(x), nil
}

// InterpolationMode says where Interpolate blends two images.
type InterpolationMode int

const (
	// LinearLatent blends the two VAE latents linearly and decodes.
	LinearLatent InterpolationMode = iota
	// SphericalNoise DDIM-inverts both latents to noise, blends the noises
	// spherically (Slerp) and samples each blend with DDIM.
	SphericalNoise
)

// String names the mode as the CLI spells it.
func (m InterpolationMode) String() string {
	switch m {
	case LinearLatent:
		return "linear"
	case SphericalNoise:
		return "slerp"
	}
	return fmt.Sprintf("InterpolationMode(%d)", int(m))
}

// InterpolateOptions says how Interpolate blends two images.
type InterpolateOptions struct {
	// Frames is the number of images from a to b inclusive (at least 2):
	// frame k has alpha k/(Frames-1).
	Frames int
	Mode   InterpolationMode
	// Steps is the number of DDIM steps of inversion and sampling in
	// SphericalNoise mode (default DefaultSteps).
	Steps int
	// ClassLabels optionally conditions inversion and sampling of a
	// class-conditional model (one label, or one per endpoint: then frame k
	// takes a's label while alpha < 0.5, b's after).
	ClassLabels []int
}

// MaxFrames bounds InterpolateOptions.Frames.
const MaxFrames = 1000

// Interpolate returns Frames images [Frames, C, H, W] going from image a to
// image b (each [1, C, H, W] or [C, H, W] of the model's size). Frame 0 is
// a's reconstruction and the last b's, bit for bit: Reconstruct in
// LinearLatent mode, SampleDDIM(InvertDDIM(...)) in SphericalNoise mode.
func (p *Pipeline) Interpolate(ctx context.Context, a, b *tensor.Dense, o InterpolateOptions) (*tensor.Dense, error) {
	if o.Frames < 2 || o.Frames > MaxFrames {
		return nil, fmt.Errorf("pipeline: frames %d outside [2, %d]", o.Frames, MaxFrames)
	}
	if len(o.ClassLabels) > 2 {
		return nil, fmt.Errorf("pipeline: %d class labels for interpolation (want 0, 1 or 2)", len(o.ClassLabels))
	}
	var z [2]*tensor.Dense
	for i, img := range []*tensor.Dense{a, b} {
		if img != nil && len(img.Shape()) == 3 {
			s := img.Shape()
			img = tensor.New(tensor.WithShape(1, s[0], s[1], s[2]), tensor.WithBacking(img.Data()))
		}
		x, err := p.checkImages(img)
		if err != nil {
			return nil, err
		}
		if x.N != 1 {
			return nil, fmt.Errorf("pipeline: interpolation endpoints must be single images, got a batch of %d", x.N)
		}
		if z[i], err = p.EncodeLatents(img); err != nil {
			return nil, err
		}
	}
	label := func(alpha float64) []int {
		switch {
		case len(o.ClassLabels) == 0:
			return nil
		case len(o.ClassLabels) == 1 || alpha < 0.5:
			return o.ClassLabels[:1]
		}
		return o.ClassLabels[1:]
	}
	steps := o.Steps
	if steps == 0 {
		steps = DefaultSteps
	}
	var ends [2]*tensor.Dense
	switch o.Mode {
	case LinearLatent:
		ends = z
	case SphericalNoise:
		for i := range z {
			var err error
			if ends[i], err = p.InvertDDIM(ctx, z[i], steps, label(float64(i))); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("pipeline: unknown interpolation mode %d", int(o.Mode))
	}
	c := p.ImageChannels()
	h, w := p.ImageSize()
	out := make([]float32, o.Frames*c*h*w)
	// One frame at a time, so frame k does not depend on the others.
	for k := 0; k < o.Frames; k++ {
		alpha := float64(k) / float64(o.Frames-1)
		var lat *tensor.Dense
		var err error
		if o.Mode == LinearLatent {
			lat, err = Lerp(ends[0], ends[1], alpha)
		} else if lat, err = Slerp(ends[0], ends[1], alpha); err == nil {
			lat, err = p.SampleDDIM(ctx, lat, steps, label(alpha))
		}
		if err != nil {
			return nil, err
		}
		img, err := p.DecodeImages(lat)
		if err != nil {
			return nil, err
		}
		copy(out[k*c*h*w:], img.Data().([]float32))
	}
	return tensor.New(tensor.WithShape(o.Frames, c, h, w), tensor.WithBacking(out)), nil
}
