package main

import (
	"context"
	"strconv"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/pipeline"
)

func init() {
	register(&command{name: "denoise", summary: "clean images with SDEdit: noise them part way and denoise", run: runDenoise})
}

func runDenoise(ctx context.Context, e *env, args []string) error {
	f := &jobFlags{}
	fs := newFlags(e, "denoise", "denoise [flags] -o OUT_DIR INPUT (a PNG/JPEG file or a folder)")
	f.add(fs, true)
	strength := fs.Float64("strength", 0.5, "how far to noise before denoising, in [0, 1] (the last steps*strength steps run)")
	if err := parse(fs, args); err != nil {
		return err
	}
	input, err := oneInput(fs)
	if err != nil {
		return err
	}
	if err := f.check(true); err != nil {
		return err
	}
	if *strength < 0 || *strength > 1 || *strength != *strength {
		return usagef("--strength must be in [0, 1], got %v", *strength)
	}
	p, err := loadModel(f.model)
	if err != nil {
		return err
	}
	meta := jobMeta("denoise", f, "ldm.strength", strconv.FormatFloat(*strength, 'g', -1, 64), metaScheduler, jobSchedulerName(p, f.scheduler))
	return imageJob(ctx, e, f, p, input, "denoising", meta, func(ctx context.Context, it *item) (*tensor.Dense, error) {
		y, err := p.DenoiseImages(ctx, it.x, pipeline.DenoiseOptions{JobOptions: f.jobOptions(it.stream), Strength: *strength})
		if err != nil {
			return nil, err
		}
		return it.restore(y)
	})
}
