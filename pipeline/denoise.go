package pipeline

import (
	"context"

	"gorgonia.org/tensor"
)

// DenoiseOptions says how DenoiseImages cleans images.
type DenoiseOptions struct {
	JobOptions
	// Strength in [0, 1] is how far along the schedule the images are
	// noised before denoising, as diffusers' img2img strength: the last
	// int(Steps*Strength) steps run. 0 returns the autoencoder's
	// reconstruction; 1 starts from the first timestep of the schedule.
	Strength float64
}

// DenoiseImages cleans images [N, C, H, W] in [-1, 1] of the model's size
// with SDEdit (Meng et al. 2022): it encodes them, adds noise with the
// scheduler to the timestep Strength selects, denoises with the rest of the
// schedule (optionally guided towards ClassLabels) and decodes. Noise the
// model has not seen is drowned by the added noise and then removed with
// it. Image i draws its noise from its own stream, so batch size and other
// images never change it.
func (p *Pipeline) DenoiseImages(ctx context.Context, images *tensor.Dense, o DenoiseOptions) (*tensor.Dense, error) {
	if err := checkUnit("strength", o.Strength); err != nil {
		return nil, err
	}
	x, err := p.checkImages(images)
	if err != nil {
		return nil, err
	}
	z, err := p.encode(x)
	if err != nil {
		return nil, err
	}
	z, err = p.sdedit(ctx, z, o.JobOptions, o.Strength)
	if err != nil {
		return nil, err
	}
	img, err := p.DecodeLatents(z)
	if err != nil {
		return nil, err
	}
	return toDense(img), nil
}
