package pipeline_test

import (
	"context"
	"fmt"
	"log"
	"math"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/pipeline"
)

// exampleImages returns n smooth 1x16x16 images in [-1, 1].
func exampleImages(n int) *tensor.Dense {
	d := make([]float32, n*16*16)
	for i := range d {
		k, y, x := i/256, (i/16)%16, i%16
		d[i] = float32(0.8 * math.Sin(0.3*float64(x+k)+0.2*float64(y)))
	}
	return tensor.New(tensor.WithShape(n, 1, 16, 16), tensor.WithBacking(d))
}

// Clean two images with SDEdit: noise them 60% of the way along a 20-step
// schedule and denoise.
func ExamplePipeline_DenoiseImages() {
	p, err := pipeline.Load("../testdata/golden/ldm_ddim_e2e")
	if err != nil {
		log.Fatal(err)
	}
	out, err := p.DenoiseImages(context.Background(), exampleImages(2), pipeline.DenoiseOptions{
		JobOptions: pipeline.JobOptions{Steps: 20, Seed: 1},
		Strength:   0.6,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.Shape())
	// Output: (2, 1, 16, 16)
}

// Regenerate the centre of an image; the rest stays exactly as it was.
func ExamplePipeline_Inpaint() {
	p, err := pipeline.Load("../testdata/golden/ldm_ddim_e2e")
	if err != nil {
		log.Fatal(err)
	}
	img := exampleImages(1)
	mask := make([]float32, 16*16)
	for y := 4; y < 12; y++ {
		for x := 4; x < 12; x++ {
			mask[y*16+x] = 1
		}
	}
	out, err := p.Inpaint(context.Background(), img, pipeline.InpaintOptions{
		JobOptions: pipeline.JobOptions{Steps: 10, Seed: 1},
		Mask:       tensor.New(tensor.WithShape(1, 1, 16, 16), tensor.WithBacking(mask)),
		JumpLength: 2, Resample: 1, Feather: 1,
	})
	if err != nil {
		log.Fatal(err)
	}
	same := true
	for i, v := range out.Float32s() {
		if mask[i] == 0 && v != img.Float32s()[i] {
			same = false
		}
	}
	fmt.Println("pixels outside the mask unchanged:", same)
	// Output: pixels outside the mask unchanged: true
}

// Blend two images in five frames, in latent space and through their
// DDIM-inverted noises.
func ExamplePipeline_Interpolate() {
	p, err := pipeline.Load("../testdata/golden/ldm_ddim_e2e")
	if err != nil {
		log.Fatal(err)
	}
	x := exampleImages(2)
	a := tensor.New(tensor.WithShape(1, 1, 16, 16), tensor.WithBacking(x.Float32s()[:256]))
	b := tensor.New(tensor.WithShape(1, 1, 16, 16), tensor.WithBacking(x.Float32s()[256:]))
	for _, mode := range []pipeline.InterpolationMode{pipeline.LinearLatent, pipeline.SphericalNoise} {
		frames, err := p.Interpolate(context.Background(), a, b, pipeline.InterpolateOptions{Frames: 5, Mode: mode, Steps: 10})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(mode, frames.Shape())
	}
	// Output:
	// linear (5, 1, 16, 16)
	// slerp (5, 1, 16, 16)
}

// Find the direction from one set of images to another and move an image
// along it.
func ExamplePipeline_Edit() {
	p, err := pipeline.Load("../testdata/golden/ldm_ddim_e2e")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	x := exampleImages(4)
	setA := tensor.New(tensor.WithShape(2, 1, 16, 16), tensor.WithBacking(x.Float32s()[:512]))
	setB := tensor.New(tensor.WithShape(2, 1, 16, 16), tensor.WithBacking(x.Float32s()[512:]))
	ma, err := p.MeanLatent(ctx, setA, 0)
	if err != nil {
		log.Fatal(err)
	}
	mb, err := p.MeanLatent(ctx, setB, 0)
	if err != nil {
		log.Fatal(err)
	}
	dir, err := pipeline.LatentDirection(ma, mb)
	if err != nil {
		log.Fatal(err)
	}
	out, err := p.Edit(ctx, setA, pipeline.EditOptions{Direction: dir, Alpha: 1, Strength: 0.2, JobOptions: pipeline.JobOptions{Steps: 10}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("direction", dir.Shape(), "edited", out.Shape())
	// Output: direction (1, 4, 8, 8) edited (2, 1, 16, 16)
}

// Score images for anomalies and measure how well a score separates two
// sets with the ROC AUC.
func ExamplePipeline_AnomalyScores() {
	p, err := pipeline.Load("../testdata/golden/ldm_ddim_e2e")
	if err != nil {
		log.Fatal(err)
	}
	scores, err := p.AnomalyScores(context.Background(), exampleImages(3), pipeline.AnomalyOptions{Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(scores), "images scored")
	auc, err := pipeline.AUC([]float64{0.1, 0.2, 0.3, 0.4}, []float64{0.35, 0.5})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("AUC", auc)
	// Output:
	// 3 images scored
	// AUC 0.875
}
