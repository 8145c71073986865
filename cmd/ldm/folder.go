package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/internal/batchjob"
	"github.com/ldm-go/ldm/internal/imageio"
	"github.com/ldm-go/ldm/pipeline"
)

// jobFlags are the flags every job on a file or folder of images takes.
type jobFlags struct {
	model, out, shard, fit string
	workers                int
	seed                   int64
	skipExisting, quiet    bool
	// Sampling flags, for the jobs that denoise.
	steps     int
	scheduler string
	class     int
	guidance  float64
}

func (f *jobFlags) add(fs *flag.FlagSet, sampling bool) {
	fs.StringVar(&f.model, "model", "", "diffusers pipeline folder (default: the embedded default model)")
	fs.StringVar(&f.out, "o", "", "output folder: each input's result is written under its relative path, as PNG (required)")
	fs.IntVar(&f.workers, "workers", 2, "images processed at once")
	fs.StringVar(&f.shard, "shard", "", "process only shard i/n of the inputs (by a hash of each file's relative path); all n shards together give exactly one unsharded run")
	fs.BoolVar(&f.skipExisting, "skip-existing", false, "skip inputs whose output already exists (resume an interrupted run)")
	fs.StringVar(&f.fit, "fit", "auto", "how inputs of another size reach the model's size: pad (centre, repeating edge pixels; the output is cropped back), resize (bilinear there and back), auto (pad if the image fits, else resize)")
	fs.Int64Var(&f.seed, "seed", 0, "random seed; each file's noise comes from the stream (seed, FNV hash of its relative path), so results do not depend on sharding, order or --workers")
	fs.BoolVar(&f.quiet, "q", false, "no progress output")
	if sampling {
		fs.IntVar(&f.steps, "steps", pipeline.DefaultSteps, "number of steps of the full denoising schedule")
		fs.StringVar(&f.scheduler, "scheduler", "", "sampler (default: the model's own, without its noise if it is sde-dpm++2m); see ldm sample -h")
		fs.IntVar(&f.class, "class", -1, "class label for class-conditional models (-1: unconditional)")
		fs.Float64Var(&f.guidance, "guidance", 1, "classifier-free guidance scale with --class (1: none)")
	}
}

// check validates the flags shared by every job.
func (f *jobFlags) check(sampling bool) error {
	if f.out == "" {
		return usagef("-o OUTPUT_FOLDER is required")
	}
	if f.workers < 1 {
		return usagef("--workers must be at least 1, got %d", f.workers)
	}
	if _, err := batchjob.ParseShard(f.shard); err != nil {
		return usagef("%v", err)
	}
	if _, err := fitMode(f.fit); err != nil {
		return err
	}
	if f.seed < 0 {
		return usagef("--seed must be 0 or more, got %d", f.seed)
	}
	if sampling {
		if f.steps < 1 {
			return usagef("--steps must be at least 1, got %d", f.steps)
		}
		if f.guidance < 0 {
			return usagef("--guidance must be 0 or more, got %v", f.guidance)
		}
	}
	return nil
}

// jobOptions are the library options for one file.
func (f *jobFlags) jobOptions(stream uint64) pipeline.JobOptions {
	o := pipeline.JobOptions{Steps: f.steps, Scheduler: f.scheduler, Seed: uint64(f.seed), Streams: []uint64{stream}}
	if f.class >= 0 {
		o.ClassLabels = []int{f.class}
		o.GuidanceScale = f.guidance
	}
	return o
}

// fitMode reads --fit; auto is -1.
func fitMode(s string) (imageio.FitMode, error) {
	switch s {
	case "pad":
		return imageio.FitPad, nil
	case "resize":
		return imageio.FitResize, nil
	case "auto":
		return -1, nil
	}
	return 0, usagef("--fit must be auto, pad or resize, got %q", s)
}

// item is one input image, loaded and fitted to the model.
type item struct {
	rel    string
	stream uint64
	orig   *tensor.Dense // [1, C, h, w] as loaded
	x      *tensor.Dense // [1, C, H, W], the model's size
	fit    imageio.Fitted
}

// fitTo brings t [1, C, h, w] to the model's size as mode says (-1: auto).
func fitTo(p *pipeline.Pipeline, t *tensor.Dense, mode imageio.FitMode) (*tensor.Dense, imageio.Fitted, error) {
	h, w := p.ImageSize()
	if mode < 0 {
		mode = imageio.FitPad
		if s := t.Shape(); s[2] > h || s[3] > w {
			mode = imageio.FitResize
		}
	}
	return imageio.Fit(t, h, w, mode, imageio.Padding{Edge: true})
}

// loadItem reads and fits one input.
func loadItem(p *pipeline.Pipeline, root, rel string, mode imageio.FitMode) (*item, error) {
	t, err := imageio.Load(filepath.Join(root, filepath.FromSlash(rel)), imageio.LoadOptions{Channels: p.ImageChannels()})
	if err != nil {
		return nil, err
	}
	s := t.Shape()
	orig := tensor.New(tensor.WithShape(1, s[0], s[1], s[2]), tensor.WithBacking(t.Data()))
	x, fit, err := fitTo(p, orig, mode)
	if err != nil {
		return nil, err
	}
	return &item{rel: rel, stream: batchjob.Stream(rel), orig: orig, x: x, fit: fit}, nil
}

// jobMeta is the metadata every job writes into its PNGs.
func jobMeta(job string, f *jobFlags, kv ...string) map[string]string {
	m := map[string]string{metaSoftware: "ldm", "ldm.job": job, metaModel: modelName(f.model), metaSeed: strconv.FormatInt(f.seed, 10)}
	if f.steps > 0 {
		m[metaSteps] = strconv.Itoa(f.steps)
		m[metaClass] = strconv.Itoa(f.class)
		m[metaGuidance] = strconv.FormatFloat(f.guidance, 'g', -1, 64)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// imageJob runs proc on every input under input and writes each result (of
// the input's size) as a PNG in the output folder.
func imageJob(ctx context.Context, e *env, f *jobFlags, p *pipeline.Pipeline, input, what string, meta map[string]string,
	proc func(ctx context.Context, it *item) (*tensor.Dense, error)) error {
	root, rels, err := batchjob.List(input)
	if err != nil {
		return err
	}
	shard, _ := batchjob.ParseShard(f.shard)
	rels = shard.Select(rels)
	mode, _ := fitMode(f.fit)
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return err
	}
	var todo []string
	for _, r := range rels {
		if f.skipExisting {
			if _, err := os.Stat(filepath.Join(f.out, filepath.FromSlash(batchjob.OutputName(r)))); err == nil {
				continue
			}
		}
		todo = append(todo, r)
	}
	if len(todo) < len(rels) {
		logf(e, f.quiet, "%d of %d outputs already in %s", len(rels)-len(todo), len(rels), f.out)
	}
	bar := newProgress(e, f.quiet, int64(len(todo)), what)
	done := 0
	err = batchjob.Run(ctx, todo, f.workers, func(ctx context.Context, rel string) error {
		it, err := loadItem(p, root, rel, mode)
		if err != nil {
			return err
		}
		y, err := proc(ctx, it)
		if err != nil {
			return err
		}
		img, err := imageio.ToImage(y)
		if err != nil {
			return err
		}
		out := filepath.Join(f.out, filepath.FromSlash(batchjob.OutputName(rel)))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		m := withMeta(meta, "ldm.source", rel)
		return imageio.SavePNG(out, img, m)
	}, func(string, error) {
		done++
		bar.set(int64(done), "")
	})
	bar.finish()
	var be *batchjob.Error
	if errors.As(err, &be) {
		logf(e, f.quiet, "processed %d of %d files into %s", len(todo)-len(be.Failures), len(todo), f.out)
		return err
	}
	if err != nil {
		return err
	}
	logf(e, f.quiet, "wrote %d files to %s", len(todo), f.out)
	return nil
}

// oneInput returns the single positional argument.
func oneInput(fs *flag.FlagSet) (string, error) {
	if fs.NArg() != 1 {
		return "", usagef("want one input file or folder, got %d arguments", fs.NArg())
	}
	return fs.Arg(0), nil
}

// restore undoes the fit of an item on a model-size result.
func (it *item) restore(y *tensor.Dense) (*tensor.Dense, error) {
	out, err := it.fit.Restore(y)
	if err != nil {
		return nil, fmt.Errorf("restoring the input's size: %w", err)
	}
	return out, nil
}
