package diffusion

import (
	"testing"

	"github.com/ldm-go/ldm/internal/presets"
	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/unet"
)

// BenchmarkTrainStep is one denoiser training step (forward, backward,
// AdamW, EMA) of the MNIST latent preset at batch 64 on 4x8x8 latents.
func BenchmarkTrainStep(b *testing.B) {
	c, err := unet.ParseConfig([]byte(presets.UNet["mnist-latent"]))
	if err != nil {
		b.Fatal(err)
	}
	m, _ := unet.New(c)
	nn.InitKaiming(m.Params, nn.NewRNG(1, 1))
	l := &Latents{C: 4, H: 8, W: 8, Mean: make([]float32, 512*256), Std: make([]float32, 512*256), Labels: make([]int, 512), Classes: 10, ScalingFactor: 1}
	nn.NewRNG(1, 2).FillNormal(l.Mean)
	for i := range l.Labels {
		l.Labels[i] = i % 10
	}
	o := TrainOptions{TrainOptions: nn.DefaultTrainOptions(), BatchSize: 64, LabelDropout: 0.1}
	tr, err := NewTrainer(m, noiseScheduleB(b), l, o)
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
