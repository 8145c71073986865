package pipeline

import (
	"context"
	"fmt"
	"math"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/internal/safetensors"
	"github.com/ldm-go/ldm/nn"
)

// DirectionTensor is the tensor name of a latent direction in its
// safetensors file.
const DirectionTensor = "direction"

// MeanLatent encodes images [N, C, H, W] of the model's size in batches of
// batchSize (default 16) and returns their mean latent [1, c, h, w],
// accumulated in float64.
func (p *Pipeline) MeanLatent(ctx context.Context, images *tensor.Dense, batchSize int) (*tensor.Dense, error) {
	x, err := p.checkImages(images)
	if err != nil {
		return nil, err
	}
	if batchSize <= 0 {
		batchSize = 16
	}
	per := x.C * x.H * x.W
	var sum []float64
	var shape [3]int
	for first := 0; first < x.N; first += batchSize {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b := min(batchSize, x.N-first)
		z, err := p.encode(&nn.Tensor{Data: x.Data[first*per : (first+b)*per], N: b, C: x.C, H: x.H, W: x.W})
		if err != nil {
			return nil, err
		}
		lp := z.C * z.H * z.W
		if sum == nil {
			sum, shape = make([]float64, lp), [3]int{z.C, z.H, z.W}
		}
		for i, v := range z.Data {
			sum[i%lp] += float64(v)
		}
	}
	out := make([]float32, len(sum))
	for i, s := range sum {
		out[i] = float32(s / float64(x.N))
	}
	return tensor.New(tensor.WithShape(1, shape[0], shape[1], shape[2]), tensor.WithBacking(out)), nil
}

// LatentDirection is to - from for two mean latents of the same shape: the
// direction that moves the mean of one set of images to the other's.
func LatentDirection(from, to *tensor.Dense) (*tensor.Dense, error) {
	a, b, err := sameShape(from, to)
	if err != nil {
		return nil, err
	}
	d := make([]float32, len(a))
	for i := range d {
		d[i] = b[i] - a[i]
	}
	return tensor.New(tensor.WithShape(from.Shape().Clone()...), tensor.WithBacking(d)), nil
}

// SaveDirection writes a direction [1, c, h, w] to a safetensors file (F32
// tensor "direction") with string metadata, atomically.
func SaveDirection(path string, dir *tensor.Dense, meta map[string]string) error {
	d, ok := dir.Data().([]float32)
	if !ok || len(dir.Shape()) != 4 {
		return fmt.Errorf("pipeline: a direction must be a float32 [1, c, h, w] tensor, got %v %v", dir.Dtype(), dir.Shape())
	}
	return safetensors.WriteFile(path, []*safetensors.Tensor{safetensors.F32Tensor(DirectionTensor, dir.Shape(), d)}, meta)
}

// LoadDirection reads a direction written by SaveDirection and its
// metadata.
func LoadDirection(path string) (*tensor.Dense, map[string]string, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	t, ok := f.Tensors[DirectionTensor]
	if !ok {
		return nil, nil, fmt.Errorf("%s: no tensor %q in this file", path, DirectionTensor)
	}
	if len(t.Shape) != 4 || t.Shape[0] != 1 {
		return nil, nil, fmt.Errorf("%s: tensor %q has shape %v, want [1, c, h, w]", path, DirectionTensor, t.Shape)
	}
	v, err := t.Float32()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return tensor.New(tensor.WithShape(t.Shape...), tensor.WithBacking(v)), f.Metadata, nil
}

// EditOptions says how Edit moves images along a latent direction.
type EditOptions struct {
	JobOptions
	// Direction is a latent direction [1, c, h, w] (LatentDirection).
	Direction *tensor.Dense
	// Alpha scales the direction (1 moves the mean of one set onto the
	// other's; negative values go the other way).
	Alpha float64
	// Strength, if above 0, runs a short SDEdit pass (see DenoiseOptions)
	// on the edited latents, which pulls them back to images the model
	// finds likely. With ClassLabels (and GuidanceScale) the pass is
	// guided towards the class the direction leads to, which finishes an
	// edit that a mean shift leaves half-way.
	Strength float64
}

// Edit adds Alpha times Direction to the latents of images [N, C, H, W] of
// the model's size and decodes them, with an optional SDEdit pass.
func (p *Pipeline) Edit(ctx context.Context, images *tensor.Dense, o EditOptions) (*tensor.Dense, error) {
	if math.IsNaN(o.Alpha) || math.IsInf(o.Alpha, 0) {
		return nil, fmt.Errorf("pipeline: edit alpha %v is not a finite number", o.Alpha)
	}
	if err := checkUnit("strength", o.Strength); err != nil {
		return nil, err
	}
	d, err := p.checkLatents("direction", o.Direction)
	if err != nil {
		return nil, err
	}
	if d.N != 1 {
		return nil, fmt.Errorf("pipeline: a direction is one latent [1, c, h, w], got a batch of %d", d.N)
	}
	x, err := p.checkImages(images)
	if err != nil {
		return nil, err
	}
	z, err := p.encode(x)
	if err != nil {
		return nil, err
	}
	a := float32(o.Alpha)
	for i := range z.Data {
		z.Data[i] += a * d.Data[i%len(d.Data)]
	}
	if o.Strength > 0 {
		if z, err = p.sdedit(ctx, z, o.JobOptions, o.Strength); err != nil {
			return nil, err
		}
	}
	img, err := p.DecodeLatents(z)
	if err != nil {
		return nil, err
	}
	return toDense(img), nil
}
