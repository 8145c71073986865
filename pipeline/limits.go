package pipeline

import "fmt"

// Memory limits on one request, checked before anything is allocated, so
// that a request needing absurd memory (millions of images held at once, a
// batch of huge images) is refused with the limit named instead of
// exhausting the machine.
const (
	// MaxResultValues bounds N x channels x height x width of the images
	// Generate returns together (1 GiB of float32). GenerateBatches, which
	// hands over one batch at a time, is not bound by it.
	MaxResultValues = 1 << 28
	// MaxBatchValues bounds batch size x the widest UNet feature map
	// (channels x latent height x width), which sizes each activation of a
	// batch (1 GiB of float32).
	MaxBatchValues = 1 << 28
	// MaxEvalSamples bounds the samples of one Evaluate call, whose
	// classifier features are all held for the statistics.
	MaxEvalSamples = 1 << 18

	// defaultBatchValues is what DefaultBatchSize allows for batch size x
	// the widest feature map: 16 MiB of float32 per activation, which lets
	// a small latent model (the default MNIST one: 8,192 values an image)
	// take whole batches of 64, where its GEMMs run at speed, while a
	// pixel-space UNet such as ddpm-cifar10-32 (262,144) takes 16.
	defaultBatchValues = 1 << 22
	// maxDefaultBatch caps the default so that progress is still reported
	// every few dozen images.
	maxDefaultBatch = 64
)

// DefaultBatchSize is the batch a request runs with when it names none:
// as many images as fit defaultBatchValues, between 1 and 64.
func (p *Pipeline) DefaultBatchSize() int {
	h, w, widest := p.widestActivation()
	per := max(int64(widest)*int64(h)*int64(w), 1)
	return int(max(min(defaultBatchValues/per, maxDefaultBatch), 1))
}

// widestActivation is the latent size and the widest UNet feature map's
// channels, whose product sizes each activation of one image.
func (p *Pipeline) widestActivation() (h, w, widest int) {
	h, w = p.LatentSize()
	for _, c := range p.UNet.Config.BlockOutChannels {
		widest = max(widest, c)
	}
	return h, w, widest
}

// checkBatch refuses a batch whose UNet activations would exceed
// MaxBatchValues.
func (p *Pipeline) checkBatch(batch int) error {
	h, w, widest := p.widestActivation()
	if v := int64(batch) * int64(widest) * int64(h) * int64(w); v > MaxBatchValues {
		return fmt.Errorf("pipeline: a batch of %d at %dx%d latents with %d channels needs %d values per activation, over the limit of %d (MaxBatchValues); lower the batch size",
			batch, h, w, widest, v, int64(MaxBatchValues))
	}
	return nil
}

// checkResult refuses n images that together would exceed MaxResultValues.
func (p *Pipeline) checkResult(n int) error {
	h, w := p.ImageSize()
	c := p.ImageChannels()
	if v := int64(n) * int64(c) * int64(h) * int64(w); v > MaxResultValues {
		return fmt.Errorf("pipeline: %d images of %dx%dx%d are %d values, over the limit of %d (MaxResultValues) for results held in memory; generate them in batches (GenerateBatches, or ldm sample --out-dir)",
			n, c, h, w, v, int64(MaxResultValues))
	}
	return nil
}
