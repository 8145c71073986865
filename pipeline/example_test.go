package pipeline_test

import (
	"context"
	"fmt"
	"log"

	"github.com/ldm-go/ldm/pipeline"
)

// Generate four images from a diffusers pipeline folder with DPM-Solver++.
func ExamplePipeline_Generate() {
	p, err := pipeline.Load("../testdata/golden/ldm_ddim_e2e")
	if err != nil {
		log.Fatal(err)
	}
	res, err := p.Generate(context.Background(), pipeline.Options{
		N:         4,
		Seed:      42,
		Steps:     20,
		Scheduler: "dpm++2m",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("images:", res.Images.Shape(), "latents:", res.Latents.Shape())
	// Output: images: (4, 1, 16, 16) latents: (4, 4, 8, 8)
}
