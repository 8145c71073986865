package main

import (
	"context"
	"strconv"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/pipeline"
)

func init() {
	register(&command{name: "edit", summary: "move images along a latent direction (see ldm direction)", run: runEdit})
}

func runEdit(ctx context.Context, e *env, args []string) error {
	f := &jobFlags{}
	fs := newFlags(e, "edit", "edit [flags] --direction DIR.safetensors -o OUT_DIR INPUT")
	f.add(fs, true)
	dirPath := fs.String("direction", "", "latent direction written by ldm direction (required)")
	alpha := fs.Float64("alpha", 1, "how far to move along the direction (1: from one set's mean to the other's; negative: backwards)")
	strength := fs.Float64("strength", 0, "optional SDEdit pass after the move, in [0, 1] (0: none); with --class and --guidance it is guided towards that class")
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
	if *dirPath == "" {
		return usagef("--direction is required")
	}
	if *strength < 0 || *strength > 1 || *strength != *strength {
		return usagef("--strength must be in [0, 1], got %v", *strength)
	}
	if f.class >= 0 && *strength == 0 {
		return usagef("--class %d guides the SDEdit pass, which --strength 0 turns off: give --strength too", f.class)
	}
	p, err := loadModel(f.model)
	if err != nil {
		return err
	}
	dir, _, err := pipeline.LoadDirection(*dirPath)
	if err != nil {
		return err
	}
	meta := jobMeta("edit", f, "ldm.direction", *dirPath, "ldm.alpha", strconv.FormatFloat(*alpha, 'g', -1, 64),
		"ldm.strength", strconv.FormatFloat(*strength, 'g', -1, 64))
	if *strength > 0 {
		// The SDEdit pass after the move samples.
		meta[metaScheduler] = jobSchedulerName(p, f.scheduler)
	}
	return imageJob(ctx, e, f, p, input, "editing", meta, func(ctx context.Context, it *item) (*tensor.Dense, error) {
		y, err := p.Edit(ctx, it.x, pipeline.EditOptions{JobOptions: f.jobOptions(it.stream), Direction: dir, Alpha: *alpha, Strength: *strength})
		if err != nil {
			return nil, err
		}
		return it.restore(y)
	})
}
