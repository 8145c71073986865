package pipeline

import (
	"os"
	"testing"

	"github.com/ldm-go/ldm/unet"
)

// The default batch follows the size of the UNet's activations: whole
// batches of 64 for the shipped latent model, 16 for a pixel-space UNet of
// ddpm-cifar10-32's widths, and never less than one image.
func TestDefaultBatchSize(t *testing.T) {
	shipped, err := os.ReadFile("../weights/mnist-ldm/unet/config.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		config string
		want   int
	}{
		{"shipped MNIST latent UNet", string(shipped), 64},
		{"ddpm-cifar10-32 widths", `{"in_channels":3,"out_channels":3,"sample_size":32,"block_out_channels":[128,256,256,256],
			"down_block_types":["DownBlock2D","AttnDownBlock2D","DownBlock2D","DownBlock2D"],
			"up_block_types":["UpBlock2D","UpBlock2D","AttnUpBlock2D","UpBlock2D"]}`, 16},
		{"one image's activation over the budget", `{"in_channels":3,"out_channels":3,"sample_size":256,"block_out_channels":[128,512],
			"down_block_types":["DownBlock2D","DownBlock2D"],"up_block_types":["UpBlock2D","UpBlock2D"]}`, 1},
	} {
		uc, err := unet.ParseConfig([]byte(c.config))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		p := &Pipeline{UNet: &unet.Model{Config: uc}}
		if got := p.DefaultBatchSize(); got != c.want {
			t.Errorf("%s: DefaultBatchSize() = %d, want %d", c.name, got, c.want)
		}
	}
}
