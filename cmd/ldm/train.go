package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/ldm-go/ldm/diffusion"
	"github.com/ldm-go/ldm/internal/atomicfile"
	"github.com/ldm-go/ldm/internal/checkpoint"
	"github.com/ldm-go/ldm/internal/dataset"
	"github.com/ldm-go/ldm/internal/imageio"
	"github.com/ldm-go/ldm/internal/presets"
	"github.com/ldm-go/ldm/nn"
	"github.com/ldm-go/ldm/pipeline"
	"github.com/ldm-go/ldm/scheduler"
	"github.com/ldm-go/ldm/unet"
	"github.com/ldm-go/ldm/vae"
)

func init() {
	register(&command{name: "train", summary: "train a VAE (train vae), a denoiser (train unet) or the MNIST classifier (train classifier)", run: runTrain})
}

func runTrain(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stderr, "Usage: ldm train vae|unet|classifier [flags]\n\nRun 'ldm train vae -h' (or unet, classifier) for the flags.")
		if len(args) == 0 {
			return usagef("what to train: vae, unet or classifier")
		}
		return flag.ErrHelp
	}
	switch args[0] {
	case "vae":
		return trainVAE(ctx, e, args[1:])
	case "unet":
		return trainUNet(ctx, e, args[1:])
	case "classifier":
		return trainClassifier(ctx, e, args[1:])
	}
	return usagef("unknown model to train %q: want vae, unet or classifier", args[0])
}

// commonTrain holds the flags every trainer takes.
type commonTrain struct {
	data, out, config, preset, ckptDir string
	// defPreset is the architecture when neither --config nor --preset is given.
	defPreset                      string
	channels, size, batch, threads int
	labels, flip, resume, quiet    bool
	seed                           uint64
	ckptEvery, keep                int
	opts                           nn.TrainOptions
}

func (c *commonTrain) register(fs *flag.FlagSet, preset string, defaults nn.TrainOptions) {
	c.opts = defaults
	fs.StringVar(&c.data, "data", "mnist", "training data: mnist, mnist-test, or a folder of PNG/JPEG images")
	fs.IntVar(&c.channels, "channels", 1, "image channels for a folder: 1 (grey) or 3 (RGB)")
	fs.IntVar(&c.size, "size", 32, "image size for a folder (resized to cover, centre-cropped)")
	fs.BoolVar(&c.labels, "labels", false, "a folder's first-level subfolders are class labels")
	fs.BoolVar(&c.flip, "flip", false, "mirror training images at random")
	fs.StringVar(&c.out, "out", "", "output folder (required)")
	fs.StringVar(&c.config, "config", "", "architecture as a diffusers config.json")
	c.defPreset = preset
	fs.StringVar(&c.preset, "preset", "", fmt.Sprintf("named architecture (default %q unless --config is given; see ldm train ... -h)", preset))
	fs.IntVar(&c.opts.Steps, "steps", c.opts.Steps, "optimiser steps")
	fs.IntVar(&c.batch, "batch-size", 64, "images per micro-batch")
	fs.Float64Var(&c.opts.LearningRate, "lr", c.opts.LearningRate, "learning rate")
	fs.StringVar(&c.opts.LRScheduler, "lr-scheduler", c.opts.LRScheduler, "constant, constant_with_warmup, linear or cosine")
	fs.IntVar(&c.opts.WarmupSteps, "warmup", c.opts.WarmupSteps, "learning-rate warm-up steps")
	fs.Float64Var(&c.opts.WeightDecay, "weight-decay", c.opts.WeightDecay, "AdamW weight decay")
	fs.Float64Var(&c.opts.MaxGradNorm, "max-grad-norm", c.opts.MaxGradNorm, "clip gradients to this global norm (0: off)")
	fs.IntVar(&c.opts.Accumulation, "accum", 1, "gradient accumulation: micro-batches per optimiser step")
	fs.BoolVar(&c.opts.EMA, "ema", c.opts.EMA, "keep an EMA of the weights and save it for sampling")
	fs.Float64Var(&c.opts.EMAMaxDecay, "ema-max-decay", c.opts.EMAMaxDecay, "the EMA's maximum decay")
	fs.Float64Var(&c.opts.EMAPower, "ema-power", c.opts.EMAPower, "the EMA's warm-up power: decay 1 - (1 + step)^-power (0: 2/3)")
	fs.Uint64Var(&c.seed, "seed", 0, "random seed: the same seed gives the same weights on any thread count")
	fs.IntVar(&c.ckptEvery, "checkpoint-every", 500, "save a checkpoint every N steps (and at the end)")
	fs.IntVar(&c.keep, "keep-checkpoints", 2, "checkpoints to keep (0: all)")
	fs.StringVar(&c.ckptDir, "checkpoint-dir", "", "checkpoint folder (default: OUT.checkpoints)")
	fs.BoolVar(&c.resume, "resume", false, "continue from the newest checkpoint")
	fs.IntVar(&c.threads, "threads", 0, "threads to use (0: all cores)")
	fs.BoolVar(&c.quiet, "q", false, "no progress output")
}

func (c *commonTrain) check() error {
	if c.out == "" {
		return usagef("--out is required")
	}
	if c.batch <= 0 {
		return usagef("--batch-size must be at least 1, got %d", c.batch)
	}
	if c.opts.Steps <= 0 {
		return usagef("--steps must be at least 1, got %d", c.opts.Steps)
	}
	if c.ckptEvery <= 0 {
		return usagef("--checkpoint-every must be at least 1, got %d", c.ckptEvery)
	}
	if c.threads < 0 {
		return usagef("--threads must be 0 or more, got %d", c.threads)
	}
	if c.threads > 0 {
		runtime.GOMAXPROCS(c.threads)
	}
	if c.ckptDir == "" {
		c.ckptDir = filepath.Clean(c.out) + ".checkpoints"
	}
	return nil
}

// loop runs step until the optimiser has taken opts.Steps steps, saving
// checkpoints and reporting progress; every hook runs after the step that
// makes step%N == 0.
type trainLoop struct {
	e       *env
	c       *commonTrain
	step    func() (int, string, error)
	current func() int
	save    func() error
	every   func(step int) error
}

func (l *trainLoop) run(ctx context.Context, what string) error {
	start := l.current()
	bar := newProgress(l.e, l.c.quiet, int64(l.c.opts.Steps), what)
	bar.set(int64(start), "")
	for l.current() < l.c.opts.Steps {
		if err := ctx.Err(); err != nil {
			bar.finish()
			return err
		}
		step, detail, err := l.step()
		if err != nil {
			bar.finish()
			return stepFailed(err, l.c.ckptDir)
		}
		bar.set(int64(step), detail)
		if step%l.c.ckptEvery == 0 || step == l.c.opts.Steps {
			if err := l.save(); err != nil {
				bar.finish()
				return err
			}
		}
		if l.every != nil {
			if err := l.every(step); err != nil {
				bar.finish()
				return err
			}
		}
	}
	bar.finish()
	return nil
}

func trainVAE(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "train vae", "train vae --out DIR [flags]")
	var c commonTrain
	def := nn.DefaultTrainOptions()
	def.LearningRate, def.WarmupSteps, def.Steps = 1e-3, 200, 3000
	c.register(fs, "mnist-kl-4x8x8", def)
	loss := fs.String("loss", "l1", "reconstruction loss: l1 or mse")
	klw := fs.Float64("kl-weight", 1e-4, "weight of the KL term")
	evalEvery := fs.Int("eval-every", 500, "report reconstruction PSNR on held-out images every N steps")
	evalN := fs.Int("eval-images", 1000, "held-out images for the PSNR: the MNIST test set, or for a folder its first N images (also trained on)")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	cfgBytes, src, err := c.architecture(presets.VAE)
	if err != nil {
		return err
	}
	cfg, err := vae.ParseConfig(cfgBytes, vae.ClassKL)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	data, held, err := openData(&c, cfg.SampleSize)
	if err != nil {
		return err
	}
	m, err := vae.NewAutoencoderKL(cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	nn.InitKaiming(m.Params, nn.NewRNG(c.seed, 1<<56))
	tr, err := vae.NewTrainer(m, data, vae.TrainOptions{TrainOptions: c.opts, BatchSize: c.batch, Loss: *loss, KLWeight: *klw, Seed: c.seed, Flip: c.flip})
	if err != nil {
		return err
	}
	if c.resume {
		step, err := tr.Resume(c.ckptDir)
		if err != nil {
			return err
		}
		logf(e, c.quiet, "resuming at step %d from %s", step, c.ckptDir)
	}
	logf(e, c.quiet, "training %s (%s parameters) on %d images from %s", src, commas(m.NumParams()), data.Len(), c.data)
	var stats vae.StepStats
	loop := &trainLoop{e: e, c: &c, current: tr.Opt.Step,
		step: func() (int, string, error) {
			var err error
			stats, err = tr.Step()
			return stats.Step, fmt.Sprintf("loss %.4f (rec %.4f, kl %.1f)", stats.Loss, stats.Recon, stats.KL), err
		},
		save: func() error { _, err := tr.SaveCheckpoint(c.ckptDir, c.keep); return err },
		every: func(step int) error {
			if step%*evalEvery != 0 && step != c.opts.Steps {
				return nil
			}
			w, err := tr.Weights()
			if err != nil {
				return err
			}
			p, err := vae.PSNR(ctx, w, held, *evalN, 64)
			if err != nil {
				return err
			}
			logf(e, c.quiet, "step %d: loss %.4f, held-out PSNR %.2f dB", step, stats.Loss, p)
			return nil
		},
	}
	if err := loop.run(ctx, "train vae"); err != nil {
		return err
	}
	if err := atomicfile.WriteDir(c.out, vae.ConfigFile, tr.Export); err != nil {
		return err
	}
	logf(e, c.quiet, "wrote %s", c.out)
	return nil
}

// openData loads the training set and a held-out set.
func openData(c *commonTrain, size int) (dataset.Dataset, dataset.Dataset, error) {
	switch c.data {
	case "mnist", "mnist-train":
		tr, err := dataset.MNIST("train")
		if err != nil {
			return nil, nil, err
		}
		te, err := dataset.MNIST("test")
		return tr, te, err
	case "mnist-test":
		te, err := dataset.MNIST("test")
		return te, te, err
	}
	if size <= 0 {
		size = c.size
	}
	if st, err := os.Stat(c.data); err != nil || !st.IsDir() {
		return nil, nil, fmt.Errorf("--data %q is neither mnist, mnist-test nor a folder of images", c.data)
	}
	d, err := dataset.Folder(c.data, c.channels, size, c.labels)
	if err != nil {
		return nil, nil, err
	}
	return d, d, nil
}

func trainUNet(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "train unet", "train unet --vae DIR --out DIR [flags]")
	var c commonTrain
	def := nn.DefaultTrainOptions()
	def.LearningRate, def.WarmupSteps, def.Steps = 5e-4, 200, 5000
	c.register(fs, "mnist-latent", def)
	vaeDir := fs.String("vae", "", "frozen VAE: a model folder, or a pipeline folder with vae/ (none: pixel-space diffusion)")
	sf := fs.String("scaling-factor", "auto", "latent scaling factor: auto (1/std of the training latents) or a number")
	pred := fs.String("prediction-type", "epsilon", "what the UNet predicts: epsilon, v_prediction or sample")
	betaSchedule := fs.String("beta-schedule", "linear", "linear, scaled_linear or squaredcos_cap_v2")
	timesteps := fs.Int("num-train-timesteps", 1000, "training timesteps")
	sampler := fs.String("sampler", "dpm++2m", "the pipeline's default sampler, saved in scheduler/")
	dropout := fs.Float64("label-dropout", 0.1, "probability of training a label as the null class (class-conditional models)")
	gamma := fs.Float64("min-snr-gamma", 0, "min-SNR-gamma loss weighting (0: off; 5 is usual)")
	offset := fs.Float64("offset-noise", 0, "offset noise strength (0: off)")
	sampleEvery := fs.Int("sample-every", 1000, "write a sample grid every N steps")
	sampleSteps := fs.Int("sample-steps", 20, "denoising steps of the sample grids")
	guideFor := fs.String("guide-for", "", "train a guide for autoguidance of this pipeline folder, on its latents and noise schedule; --out gets the pipeline with the guide as guide_unet/")
	autoWeight := fs.Float64("autoguidance", 1.5, "with --guide-for: the default autoguidance weight saved in the pipeline")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	var guided *pipeline.Pipeline
	if *guideFor != "" {
		var clash []string
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "vae", "scaling-factor", "prediction-type", "beta-schedule", "num-train-timesteps", "sampler":
				clash = append(clash, "--"+f.Name)
			}
		})
		if len(clash) > 0 {
			return usagef("%s cannot be set with --guide-for: the guide takes them from the pipeline %s", strings.Join(clash, ", "), *guideFor)
		}
		if !pipeline.ValidWeight(*autoWeight) {
			return usagef("--autoguidance must be 0 or more, got %v", *autoWeight)
		}
		if c.ckptDir == "" && c.out != "" {
			c.ckptDir = filepath.Clean(c.out) + ".guide.checkpoints"
		}
	}
	if err := c.check(); err != nil {
		return err
	}
	var v *vae.AutoencoderKL
	if *guideFor != "" {
		var err error
		if guided, err = pipeline.Load(*guideFor); err != nil {
			return err
		}
		if guided.VQ != nil {
			return fmt.Errorf("--guide-for %s: a guide for a VQ pipeline is not supported", *guideFor)
		}
		v = guided.VAE
	} else if *vaeDir != "" {
		var err error
		if _, serr := os.Stat(filepath.Join(*vaeDir, "vae", vae.ConfigFile)); serr == nil {
			v, err = vae.LoadAutoencoderKL(filepath.Join(*vaeDir, "vae"))
		} else {
			v, err = vae.LoadAutoencoderKL(*vaeDir)
		}
		if err != nil {
			return err
		}
	}
	cfgBytes, src, err := c.architecture(presets.UNet)
	if err != nil {
		return err
	}
	size := 0
	if v != nil {
		size = v.Config.SampleSize
	}
	data, _, err := openData(&c, size)
	if err != nil {
		return err
	}
	cfg, err := unet.ParseConfig(cfgBytes)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if c.config == "" && cfg.NumClassEmbeds != nil {
		if data.NumClasses() == 0 {
			cfg.NumClassEmbeds = nil
		} else {
			n := data.NumClasses() + 1
			cfg.NumClassEmbeds = &n
		}
	}
	var lat *diffusion.Latents
	if v != nil {
		bar := newProgress(e, c.quiet, int64(data.Len()), "encoding")
		lat, err = diffusion.Encode(ctx, v, data, 64, func(done, total int) { bar.set(int64(done), "") })
		bar.finish()
		if err != nil {
			return err
		}
		switch {
		case guided != nil:
			// The latents the pipeline's UNet was trained on.
			lat.ScalingFactor = float32(v.Config.ScalingFactor)
		case *sf == "auto":
			std := lat.LatentStd(c.seed)
			v.Config.ScalingFactor = float64(float32(1 / std))
			lat.ScalingFactor = float32(v.Config.ScalingFactor)
			logf(e, c.quiet, "latent std %.4f: scaling_factor %.5f", std, v.Config.ScalingFactor)
		default:
			x, err := strconv.ParseFloat(*sf, 64)
			if err != nil || x <= 0 {
				return usagef("--scaling-factor must be auto or a positive number, got %q", *sf)
			}
			v.Config.ScalingFactor = x
			lat.ScalingFactor = float32(x)
		}
		cfg.SampleSize = unet.SampleSize{H: lat.H, W: lat.W}
	} else {
		lat = diffusion.FromPixels(data)
		cfg.SampleSize = unet.SampleSize{H: lat.H, W: lat.W}
	}
	u, err := unet.New(cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if guided != nil {
		// Refuse a guide that cannot guide this pipeline before training it.
		if err := guided.CheckGuide(cfg); err != nil {
			return fmt.Errorf("--guide-for %s: %s: %w", *guideFor, src, err)
		}
	}
	nn.InitKaiming(u.Params, nn.NewRNG(c.seed, 1<<56))
	var sc *scheduler.Config
	if guided != nil {
		// The guide learns the same noising process as the UNet it guides.
		if sc, err = guided.Scheduler.Convert("DDPMScheduler"); err != nil {
			return err
		}
	} else {
		if sc, err = scheduler.DefaultConfig("DDPMScheduler"); err != nil {
			return err
		}
		sc.NumTrainTimesteps, sc.BetaSchedule, sc.PredictionType = *timesteps, *betaSchedule, *pred
		if err := sc.Validate(); err != nil {
			return err
		}
	}
	noise, err := scheduler.New(sc)
	if err != nil {
		return err
	}
	tr, err := diffusion.NewTrainer(u, noise, lat, diffusion.TrainOptions{TrainOptions: c.opts, BatchSize: c.batch, Seed: c.seed,
		LabelDropout: *dropout * boolf(cfg.ClassConditional()), MinSNRGamma: *gamma, OffsetNoise: *offset, Flip: c.flip})
	if err != nil {
		return err
	}
	if c.resume {
		step, err := tr.Resume(c.ckptDir)
		if err != nil {
			return err
		}
		logf(e, c.quiet, "resuming at step %d from %s", step, c.ckptDir)
	}
	// The pipeline's scheduler: the chosen sampler on the training schedule.
	pipeSched, err := scheduler.FromName(*sampler, sc)
	if err != nil {
		return err
	}
	assemble := func() (*pipeline.Pipeline, error) {
		w, err := tr.Weights()
		if err != nil {
			return nil, err
		}
		return &pipeline.Pipeline{Name: c.out, UNet: w, VAE: v, Scheduler: pipeSched.Config()}, nil
	}
	logf(e, c.quiet, "training %s (%s parameters) on %d examples from %s", src, commas(u.NumParams()), lat.Len(), c.data)
	loop := &trainLoop{e: e, c: &c, current: tr.Opt.Step,
		step: func() (int, string, error) {
			st, err := tr.Step()
			return st.Step, fmt.Sprintf("loss %.4f", st.Loss), err
		},
		save: func() error { _, err := tr.SaveCheckpoint(c.ckptDir, c.keep); return err },
		every: func(step int) error {
			if *sampleEvery <= 0 || (step%*sampleEvery != 0 && step != c.opts.Steps) {
				return nil
			}
			p, err := assemble()
			if err != nil {
				return err
			}
			return writeSampleGrid(ctx, p, filepath.Join(c.ckptDir, fmt.Sprintf("samples-%08d.png", step)), *sampleSteps, c.seed)
		},
	}
	if err := loop.run(ctx, "train unet"); err != nil {
		return err
	}
	if guided != nil {
		w, err := tr.Weights()
		if err != nil {
			return err
		}
		if err := guided.SetGuide(w, *autoWeight); err != nil {
			return err
		}
		if err := guided.Save(c.out); err != nil {
			return err
		}
		logf(e, c.quiet, "wrote the pipeline %s with the guide in %s/", c.out, pipeline.GuideComponent)
		return nil
	}
	p, err := assemble()
	if err != nil {
		return err
	}
	if err := p.Save(c.out); err != nil {
		return err
	}
	logf(e, c.quiet, "wrote the pipeline %s", c.out)
	return nil
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// writeSampleGrid writes a grid of samples: one row per class for
// class-conditional models (guidance 3), else 16 unconditional images.
func writeSampleGrid(ctx context.Context, p *pipeline.Pipeline, path string, steps int, seed uint64) error {
	o := pipeline.Options{N: 16, Seed: seed, Steps: steps, BatchSize: 16}
	if null := p.NullClass(); null > 0 {
		o.N = null * 4
		o.ClassLabels = make([]int, o.N)
		for i := range o.ClassLabels {
			o.ClassLabels[i] = i / 4
		}
		o.GuidanceScale = 3
		o.BatchSize = min(o.N, 40)
	}
	res, err := p.Generate(ctx, o)
	if err != nil {
		return err
	}
	imgs, err := imageio.ToImages(res.Images)
	if err != nil {
		return err
	}
	cols := 4
	if o.ClassLabels == nil {
		cols = imageio.GridColumns(len(imgs))
	}
	grid, err := imageio.Grid(imgs, cols, 2, nil)
	if err != nil {
		return err
	}
	meta, _ := json.Marshal(map[string]any{"steps": steps, "seed": seed})
	return imageio.SavePNG(path, grid, map[string]string{"Software": "ldm", "ldm.training-samples": string(meta)})
}

// stepFailed explains a failed training step: which checkpoint survives
// and, for a loss or gradient gone NaN or infinite, what to change.
func stepFailed(err error, ckptDir string) error {
	kept := fmt.Sprintf("no checkpoint was written yet in %s", ckptDir)
	if dir, step, lerr := checkpoint.Latest(ckptDir); lerr == nil && dir != "" {
		kept = fmt.Sprintf("the last good checkpoint, step %d, is kept in %s; --resume continues from it", step, dir)
	}
	var nf *nn.ErrNonFinite
	if errors.As(err, &nf) {
		return fmt.Errorf("%w: training diverged (%s); lower --lr, set --max-grad-norm or check the data", err, kept)
	}
	return fmt.Errorf("%w (%s)", err, kept)
}

// architecture is the config.json bytes of --config, or of --preset (its
// default when neither is given), and where they came from.
func (c *commonTrain) architecture(presets map[string]string) ([]byte, string, error) {
	p := c.preset
	if p == "" && c.config == "" {
		p = c.defPreset
	}
	return architecture(c.config, p, presets)
}
