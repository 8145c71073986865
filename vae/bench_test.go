package vae

import (
	"testing"

	"github.com/ldm-go/ldm/internal/dataset"
	"github.com/ldm-go/ldm/internal/presets"
	"github.com/ldm-go/ldm/nn"
)

// BenchmarkTrainStep is one VAE training step (forward, backward, AdamW,
// EMA) of the MNIST preset at batch 64 on 1x32x32 images.
func BenchmarkTrainStep(b *testing.B) {
	c, err := ParseConfig([]byte(presets.VAE["mnist-kl-4x8x8"]), ClassKL)
	if err != nil {
		b.Fatal(err)
	}
	m, _ := NewAutoencoderKL(c)
	nn.InitKaiming(m.Params, nn.NewRNG(1, 1))
	d := &dataset.InMemory{C: 1, H: 32, W: 32, Images: make([]float32, 256*32*32)}
	nn.NewRNG(1, 2).FillNormal(d.Images)
	o := TrainOptions{TrainOptions: nn.DefaultTrainOptions(), BatchSize: 64, Loss: "l1", KLWeight: 1e-4}
	tr, err := NewTrainer(m, d, o)
	if err != nil {
		b.Fatal(err)
	}
	tr.Step()
	b.ResetTimer()
	for b.Loop() {
		if _, err := tr.Step(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
	b.ReportMetric(float64(64*b.N)/b.Elapsed().Seconds(), "images/s")
}
