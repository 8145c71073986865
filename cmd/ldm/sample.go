package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strconv"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/internal/imageio"
	"github.com/ldm-go/ldm/pipeline"
)

func init() {
	register(&command{name: "sample", summary: "generate images: a grid PNG or one PNG per image", run: runSample})
}

// Metadata keys written into every PNG ldm generates.
const (
	metaSoftware  = "Software"
	metaModel     = "ldm.model"
	metaSeed      = "ldm.seed"
	metaIndex     = "ldm.index"
	metaCount     = "ldm.count"
	metaScheduler = "ldm.scheduler"
	metaSteps     = "ldm.steps"
	metaGuidance  = "ldm.guidance"
	metaClass     = "ldm.class"
	metaEta       = "ldm.eta"
	metaAuto      = "ldm.autoguidance"
)

type sampleFlags struct {
	n, steps, batch, class int
	seed                   int64
	scheduler, model       string
	eta, guidance, auto    float64
	out, outDir, from      string
	quiet, skipExisting    bool
}

func runSample(ctx context.Context, e *env, args []string) error {
	f := &sampleFlags{}
	fs := newFlags(e, "sample", "sample [flags]")
	fs.IntVar(&f.n, "n", 16, "number of images")
	fs.Int64Var(&f.seed, "seed", -1, "random seed (-1: pick one and report it); image i uses the stream (seed, i)")
	fs.IntVar(&f.steps, "steps", pipeline.DefaultSteps, "number of denoising steps")
	fs.StringVar(&f.scheduler, "scheduler", "", "sampler: ddim, dpm++2m, euler, euler_a, heun, lms, pndm, unipc, ddpm, sde-dpm++2m (default: the model's own)")
	fs.Float64Var(&f.eta, "eta", 0, "DDIM eta: the weight of fresh noise in each step")
	fs.IntVar(&f.batch, "batch-size", 0, "images per UNet batch, 0 for the model's default (changes speed and memory, never the images)")
	fs.IntVar(&f.class, "class", -1, "class label for class-conditional models (-1: unconditional)")
	fs.Float64Var(&f.guidance, "guidance", 3, "classifier-free guidance scale with --class (1: none)")
	fs.Float64Var(&f.auto, "autoguidance", 0, "autoguidance weight without classifier-free guidance, for a model with a guide UNet (0: the model's default, 1: off)")
	fs.StringVar(&f.out, "o", "samples.png", "output grid PNG")
	fs.StringVar(&f.outDir, "out-dir", "", "write one PNG per image into this folder instead of a grid")
	fs.BoolVar(&f.skipExisting, "skip-existing", false, "with --out-dir: keep images already there and generate only the missing ones")
	fs.StringVar(&f.from, "from", "", "regenerate the image(s) described by the metadata of this PNG")
	fs.StringVar(&f.model, "model", "", "diffusers pipeline folder (default: the embedded default model)")
	fs.BoolVar(&f.quiet, "q", false, "no progress output")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flagT) { set[fl.Name] = true })
	first := 0
	if f.from != "" {
		var err error
		if first, err = f.applyMetadata(set); err != nil {
			return err
		}
	}
	if f.n <= 0 {
		return usagef("-n must be at least 1, got %d", f.n)
	}
	if f.steps <= 0 {
		return usagef("--steps must be at least 1, got %d", f.steps)
	}
	if f.batch < 0 {
		return usagef("--batch-size must be 0 (the model's default) or more, got %d", f.batch)
	}
	if f.guidance < 0 {
		return usagef("--guidance must be 0 or more, got %v", f.guidance)
	}
	if f.auto < 0 {
		return usagef("--autoguidance must be 0 or more, got %v", f.auto)
	}
	if f.auto != 0 && f.auto != 1 && f.class >= 0 && f.guidance != 0 && f.guidance != 1 {
		return usagef("--autoguidance applies to samples without classifier-free guidance: with --class, give --guidance 1")
	}
	if f.eta < 0 || f.eta > 1 {
		return usagef("--eta must be in [0, 1], got %v", f.eta)
	}
	if f.skipExisting && f.outDir == "" {
		return usagef("--skip-existing needs --out-dir")
	}
	p, err := loadModel(f.model)
	if err != nil {
		return err
	}
	if f.seed < 0 {
		var b [8]byte
		rand.Read(b[:])
		f.seed = int64(binary.LittleEndian.Uint64(b[:]) >> 1)
		logf(e, f.quiet, "seed %d", f.seed)
	}
	opts := pipeline.Options{
		N: f.n, Seed: uint64(f.seed), FirstIndex: first, Steps: f.steps, Scheduler: f.scheduler,
		Eta: f.eta, BatchSize: min(f.batch, f.n), AutoGuidance: f.auto,
	}
	if f.class >= 0 {
		opts.ClassLabels = []int{f.class}
		opts.GuidanceScale = f.guidance
	}
	meta := map[string]string{
		metaSoftware: "ldm", metaModel: modelName(f.model), metaSeed: strconv.FormatInt(f.seed, 10),
		metaScheduler: schedulerName(p, f.scheduler), metaSteps: strconv.Itoa(f.steps),
		metaClass: strconv.Itoa(f.class), metaEta: strconv.FormatFloat(f.eta, 'g', -1, 64),
		metaGuidance: strconv.FormatFloat(opts.GuidanceScale, 'g', -1, 64),
		metaAuto:     strconv.FormatFloat(p.AutoGuidanceWeight(opts), 'g', -1, 64),
	}
	if f.outDir != "" {
		return sampleToDir(ctx, e, f, p, opts, meta)
	}
	return sampleGrid(ctx, e, f, p, opts, meta)
}

// flagT is flag.Flag, named here to keep the Visit callback short.
type flagT = flag.Flag

func modelName(dir string) string {
	if dir == "" {
		return "default"
	}
	return dir
}

// schedulerName is the sampler the metadata records for --scheduler name:
// for the pipeline's own, the short name of its method where it has one
// (so that --from runs the same method should the model's default
// change), else its class.
func schedulerName(p *pipeline.Pipeline, name string) string {
	if name != "" {
		return name
	}
	return p.Scheduler.Name()
}

// jobSchedulerName is schedulerName for the jobs on images, which run the
// pipeline's own sampler without its noise.
func jobSchedulerName(p *pipeline.Pipeline, name string) string {
	if name != "" {
		return name
	}
	return p.Scheduler.WithoutNoise().Name()
}

// applyMetadata takes the generation settings recorded in f.from, except
// those given on the command line, and returns the first image index.
func (f *sampleFlags) applyMetadata(set map[string]bool) (int, error) {
	meta, err := imageio.ReadMetadata(f.from)
	if err != nil {
		return 0, err
	}
	if meta[metaSoftware] != "ldm" || meta[metaSeed] == "" {
		return 0, fmt.Errorf("%s: no ldm generation metadata in this PNG", f.from)
	}
	get := func(key string) string { return meta[key] }
	num := func(key string, dst any) error {
		v := get(key)
		var err error
		switch d := dst.(type) {
		case *int:
			*d, err = strconv.Atoi(v)
		case *int64:
			*d, err = strconv.ParseInt(v, 10, 64)
		case *float64:
			*d, err = strconv.ParseFloat(v, 64)
		}
		if err != nil {
			return fmt.Errorf("%s: metadata %s = %q is not a number", f.from, key, v)
		}
		return nil
	}
	if !set["model"] && get(metaModel) != "default" {
		f.model = get(metaModel)
	}
	if !set["seed"] {
		if err := num(metaSeed, &f.seed); err != nil {
			return 0, err
		}
	}
	if !set["scheduler"] {
		f.scheduler = get(metaScheduler)
	}
	for key, dst := range map[string]any{metaSteps: &f.steps, metaClass: &f.class, metaGuidance: &f.guidance, metaEta: &f.eta} {
		if err := num(key, dst); err != nil {
			return 0, err
		}
	}
	// Images from before autoguidance, or from a model without a guide,
	// were not autoguided.
	if !set["autoguidance"] {
		f.auto = 1
		if get(metaAuto) != "" {
			if err := num(metaAuto, &f.auto); err != nil {
				return 0, err
			}
		}
	}
	first := 0
	if err := num(metaIndex, &first); err != nil {
		return 0, err
	}
	if !set["n"] {
		f.n = 1
		if get(metaCount) != "" {
			if err := num(metaCount, &f.n); err != nil {
				return 0, err
			}
		}
	}
	return first, nil
}

func withMeta(meta map[string]string, kv ...string) map[string]string {
	m := make(map[string]string, len(meta)+len(kv)/2)
	for k, v := range meta {
		m[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func sampleGrid(ctx context.Context, e *env, f *sampleFlags, p *pipeline.Pipeline, opts pipeline.Options, meta map[string]string) error {
	if err := checkWritable(f.out); err != nil {
		return err
	}
	bar := newProgress(e, f.quiet, int64(f.n*opts.Steps), "sampling")
	opts.Progress = func(pr pipeline.Progress) {
		bar.resize(int64(pr.Total * pr.Steps)) // Heun and PNDM take more calls than steps
		bar.set(int64(pr.Done*pr.Steps+min(pr.Total-pr.Done, opts.BatchSize)*pr.Step), "")
	}
	res, err := p.Generate(ctx, opts)
	bar.finish()
	if err != nil {
		return err
	}
	imgs, err := imageio.ToImages(res.Images)
	if err != nil {
		return err
	}
	grid := imgs[0] // one image is saved as itself, so --from reproduces it exactly
	if len(imgs) > 1 {
		if grid, err = imageio.Grid(imgs, imageio.GridColumns(len(imgs)), 2, nil); err != nil {
			return err
		}
	}
	m := withMeta(meta, metaIndex, strconv.Itoa(opts.FirstIndex), metaCount, strconv.Itoa(f.n))
	if err := imageio.SavePNG(f.out, grid, m); err != nil {
		return err
	}
	logf(e, f.quiet, "wrote %s (%d images, seed %d)", f.out, f.n, f.seed)
	return nil
}

// checkWritable fails early when the output folder does not exist, so a
// long run does not end in an error.
func checkWritable(path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("output %s: %w", path, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("output %s: %s is not a folder", path, dir)
	}
	return nil
}

// imageFile is the name of image i in an output folder.
func imageFile(dir string, i int) string {
	return filepath.Join(dir, fmt.Sprintf("sample-%06d.png", i))
}

func sampleToDir(ctx context.Context, e *env, f *sampleFlags, p *pipeline.Pipeline, opts pipeline.Options, meta map[string]string) error {
	if err := os.MkdirAll(f.outDir, 0o755); err != nil {
		return err
	}
	// The images still to make, as runs of consecutive indices.
	type run struct{ first, n int }
	var runs []run
	todo := 0
	for i := opts.FirstIndex; i < opts.FirstIndex+f.n; i++ {
		if f.skipExisting {
			if _, err := os.Stat(imageFile(f.outDir, i)); err == nil {
				continue
			}
		}
		todo++
		if k := len(runs); k > 0 && runs[k-1].first+runs[k-1].n == i {
			runs[k-1].n++
		} else {
			runs = append(runs, run{i, 1})
		}
	}
	if todo < f.n {
		logf(e, f.quiet, "%d of %d images already in %s", f.n-todo, f.n, f.outDir)
	}
	bar := newProgress(e, f.quiet, int64(todo), "sampling")
	done := 0
	for _, r := range runs {
		o := opts
		o.N, o.FirstIndex, o.BatchSize = r.n, r.first, min(opts.BatchSize, r.n)
		err := p.GenerateBatches(ctx, o, func(first int, images, _ *tensor.Dense) error {
			imgs, err := imageio.ToImages(images)
			if err != nil {
				return err
			}
			for j, img := range imgs {
				if err := saveSample(f.outDir, r.first+first+j, img, meta); err != nil {
					return err
				}
				done++
				bar.set(int64(done), "")
			}
			return nil
		})
		if err != nil {
			bar.finish()
			return err
		}
	}
	bar.finish()
	logf(e, f.quiet, "wrote %d images to %s (seed %d)", todo, f.outDir, f.seed)
	return nil
}

func saveSample(dir string, index int, img image.Image, meta map[string]string) error {
	return imageio.SavePNG(imageFile(dir, index), img, withMeta(meta, metaIndex, strconv.Itoa(index), metaCount, "1"))
}
