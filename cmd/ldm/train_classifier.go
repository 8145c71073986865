package main

import (
	"context"
	"fmt"

	"github.com/ldm-go/ldm/internal/atomicfile"
	"github.com/ldm-go/ldm/internal/classifier"
	"github.com/ldm-go/ldm/nn"
)

func trainClassifier(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "train classifier", "train classifier --out DIR [flags]")
	var c commonTrain
	def := nn.DefaultTrainOptions()
	def.LearningRate, def.WarmupSteps, def.Steps, def.EMA = 3e-3, 100, 1500, false
	c.register(fs, "", def)
	evalEvery := fs.Int("eval-every", 500, "report test accuracy every N steps")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	if c.config != "" || c.preset != "" {
		return usagef("the classifier has one architecture: --config and --preset do not apply")
	}
	cfg := classifier.DefaultConfig()
	data, held, err := openData(&c, cfg.SampleSize)
	if err != nil {
		return err
	}
	ch, _, _ := data.Shape()
	cfg.InChannels, cfg.Classes = ch, data.NumClasses()
	m, err := classifier.New(cfg)
	if err != nil {
		return fmt.Errorf("--data %s: %w", c.data, err)
	}
	nn.InitKaiming(m.Params, nn.NewRNG(c.seed, 1<<56))
	tr, err := classifier.NewTrainer(m, data, classifier.TrainOptions{TrainOptions: c.opts, BatchSize: c.batch, Seed: c.seed})
	if err != nil {
		return err
	}
	logf(e, c.quiet, "training the classifier (%s parameters) on %d images from %s", commas(m.Params.Count()), data.Len(), c.data)
	var loss float64
	loop := &trainLoop{e: e, c: &c, current: tr.Opt.Step,
		step: func() (int, string, error) {
			var err error
			loss, err = tr.Step()
			return tr.Opt.Step(), fmt.Sprintf("loss %.4f", loss), err
		},
		save: func() error { return nil }, // short runs: the result is saved at the end
		every: func(step int) error {
			if step%*evalEvery != 0 && step != c.opts.Steps {
				return nil
			}
			w, err := tr.Weights()
			if err != nil {
				return err
			}
			acc, err := classifier.Accuracy(ctx, w, held, 256)
			if err != nil {
				return err
			}
			logf(e, c.quiet, "step %d: loss %.4f, held-out accuracy %.2f%%", step, loss, 100*acc)
			return nil
		},
	}
	if err := loop.run(ctx, "train classifier"); err != nil {
		return err
	}
	w, err := tr.Weights()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteDir(c.out, classifier.ConfigFile, w.Save); err != nil {
		return err
	}
	logf(e, c.quiet, "wrote %s", c.out)
	return nil
}
