package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ldm-go/ldm/internal/classifier"
	"github.com/ldm-go/ldm/internal/dataset"
	"github.com/ldm-go/ldm/pipeline"
	"github.com/ldm-go/ldm/unet"
	"github.com/ldm-go/ldm/weights"
)

func init() {
	register(&command{name: "eval", summary: "score samples: Frechet distance, Inception Score, digit shares, guided accuracy, the VAE's PSNR and reconstructions", run: runEval})
}

func loadClassifier(dir string) (*classifier.Model, error) {
	if dir != "" {
		return classifier.Load(dir)
	}
	m, err := weights.LoadClassifier()
	if errors.Is(err, weights.ErrNotInstalled) {
		return nil, fmt.Errorf("no classifier is installed yet in this build (weights/%s); pass --classifier DIR (train one with ldm train classifier)", weights.ClassifierDir)
	}
	return m, err
}

func runEval(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "eval", "eval [flags]")
	model := fs.String("model", "", "diffusers pipeline folder (default: the embedded default model)")
	clsDir := fs.String("classifier", "", "classifier folder (default: the embedded MNIST classifier)")
	n := fs.Int("n", 10000, "samples to generate")
	realN := fs.Int("real", 10000, "real training images for the floor")
	testN := fs.Int("test", 10000, "test images as the reference (and for the VAE's PSNR)")
	seed := fs.Uint64("seed", 0, "random seed")
	steps := fs.Int("steps", pipeline.DefaultSteps, "denoising steps")
	sched := fs.String("scheduler", "", "sampler (default: the model's own)")
	cond := fs.Bool("conditional", false, "generate n/10 samples of each digit with --guidance and report how often each is recognised")
	guidance := fs.Float64("guidance", 3, "classifier-free guidance scale with --conditional")
	auto := fs.Float64("autoguidance", 0, "autoguidance weight for unconditional samples (0: the model's default, 1: off)")
	guide := fs.String("guide-unet", "", "UNet folder of a weaker model to autoguide with (default: the pipeline's guide_unet)")
	batch := fs.Int("batch-size", 64, "images per UNet batch")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	quiet := fs.Bool("q", false, "no progress output")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	switch {
	case *n < 2 || *realN < 2 || *testN < 2:
		return usagef("-n, --real and --test must be at least 2")
	case *steps < 1:
		return usagef("--steps must be at least 1, got %d", *steps)
	case *guidance < 0:
		return usagef("--guidance must be 0 or more, got %v", *guidance)
	case *auto < 0:
		return usagef("--autoguidance must be 0 or more, got %v", *auto)
	case *batch < 1:
		return usagef("--batch-size must be at least 1")
	case *n > pipeline.MaxEvalSamples:
		return usagef("-n must be at most %d (pipeline.MaxEvalSamples), got %d", pipeline.MaxEvalSamples, *n)
	}
	p, err := loadModel(*model)
	if err != nil {
		return err
	}
	if *guide != "" {
		g, err := unet.Load(*guide)
		if err != nil {
			return err
		}
		if err := p.SetGuide(g, p.AutoGuidance); err != nil {
			return fmt.Errorf("--guide-unet %s: %w", *guide, err)
		}
	}
	cls, err := loadClassifier(*clsDir)
	if err != nil {
		return err
	}
	train, err := dataset.MNIST("train")
	if err != nil {
		return err
	}
	test, err := dataset.MNIST("test")
	if err != nil {
		return err
	}
	bar := newProgress(e, *quiet, int64(*n), "sampling")
	rep, err := p.Evaluate(ctx, cls, train, test, pipeline.EvalOptions{
		N: *n, Seed: *seed, Steps: *steps, Scheduler: *sched, BatchSize: *batch, Conditional: *cond,
		GuidanceScale: *guidance, AutoGuidance: *auto, RealImages: *realN, TestImages: *testN, Progress: func(done, total int) { bar.set(int64(done), "") },
	})
	bar.finish()
	if err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Fprintln(e.stdout, string(b))
		return nil
	}
	printReport(e.stdout, rep, *cond)
	return nil
}

func printReport(w io.Writer, r *pipeline.EvalReport, cond bool) {
	mode := "unconditional"
	if cond {
		mode = fmt.Sprintf("class-conditional, guidance %g", r.Guidance)
	}
	if r.AutoGuidance != 0 {
		mode += fmt.Sprintf(", autoguidance %g", r.AutoGuidance)
	}
	fmt.Fprintf(w, "sampler %s, %d steps, %s\n\n", r.Scheduler, r.Steps, mode)
	fmt.Fprintf(w, "%-22s %10s %12s %12s\n", "", "n", "Frechet", "Incept.")
	fmt.Fprintf(w, "%-22s %10d %12.3f %12.3f\n", "samples", r.Samples.N, r.Samples.FrechetDistance, r.Samples.InceptionScore)
	fmt.Fprintf(w, "%-22s %10d %12.3f %12.3f\n", "real (training images)", r.Real.N, r.Real.FrechetDistance, r.Real.InceptionScore)
	if rc := r.Reconstructions; rc != nil {
		fmt.Fprintf(w, "%-22s %10d %12.3f %12.3f\n", "real through the VAE", rc.N, rc.FrechetDistance, rc.InceptionScore)
	}
	fmt.Fprintf(w, "\nratio to real: Frechet %.2fx, Inception Score %.1f%%\n", r.Samples.FrechetDistance/r.Real.FrechetDistance, 100*r.Samples.InceptionScore/r.Real.InceptionScore)
	if rc := r.Reconstructions; rc != nil {
		fmt.Fprintf(w, "the VAE alone (its reconstructions of the real images): Frechet %.2fx, Inception Score %.1f%%\n",
			rc.FrechetDistance/r.Real.FrechetDistance, 100*rc.InceptionScore/r.Real.InceptionScore)
	}
	row := func(name string, v []float64) {
		s := make([]string, len(v))
		for i, x := range v {
			s[i] = fmt.Sprintf("%5.1f", 100*x)
		}
		fmt.Fprintf(w, "%-16s %s\n", name, strings.Join(s, " "))
	}
	head := make([]string, len(r.Samples.Shares))
	for i := range head {
		head[i] = fmt.Sprintf("%5d", i)
	}
	fmt.Fprintf(w, "\n%-16s %s\n", "class", strings.Join(head, " "))
	row("samples %", r.Samples.Shares)
	row("real %", r.Real.Shares)
	if cond {
		row("recognised %", r.ClassAccuracy)
		fmt.Fprintf(w, "\nrecognised as the requested class: %.2f%%\n", 100*r.Accuracy)
	}
	if r.VAEPSNR > 0 {
		fmt.Fprintf(w, "\nVAE reconstruction PSNR on the test set: %.2f dB\n", r.VAEPSNR)
	}
}
