package main

import (
	"context"
	"image"
	"path/filepath"
	"strconv"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/internal/imageio"
	"github.com/ldm-go/ldm/pipeline"
)

func init() {
	register(&command{name: "interpolate", summary: "blend two images in frames: a PNG strip and an animated GIF", run: runInterpolate})
}

func runInterpolate(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "interpolate", "interpolate [flags] A B")
	model := fs.String("model", "", "diffusers pipeline folder (default: the embedded default model)")
	frames := fs.Int("frames", 8, "number of frames from A to B inclusive")
	mode := fs.String("mode", "linear", "linear: blend the VAE latents; slerp: blend the DDIM-inverted noises spherically and sample")
	steps := fs.Int("steps", pipeline.DefaultSteps, "DDIM steps of inversion and sampling (slerp)")
	class := fs.Int("class", -1, "class label for class-conditional models (slerp; -1: unconditional)")
	fit := fs.String("fit", "auto", "how inputs of another size reach the model's size: auto, pad or resize (see ldm denoise -h)")
	out := fs.String("o", "interpolation.png", "output PNG strip (frames side by side)")
	gif := fs.String("gif", "", "also write an animated GIF here")
	delay := fs.Int("delay", 20, "GIF frame delay in hundredths of a second")
	quiet := fs.Bool("q", false, "no log output")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usagef("want two images A and B, got %d arguments", fs.NArg())
	}
	var m pipeline.InterpolationMode
	switch *mode {
	case "linear":
		m = pipeline.LinearLatent
	case "slerp":
		m = pipeline.SphericalNoise
	default:
		return usagef("--mode must be linear or slerp, got %q", *mode)
	}
	if *frames < 2 || *frames > pipeline.MaxFrames {
		return usagef("--frames must be in [2, %d], got %d", pipeline.MaxFrames, *frames)
	}
	if *steps < 1 {
		return usagef("--steps must be at least 1, got %d", *steps)
	}
	if *delay < 1 {
		return usagef("--delay must be at least 1, got %d", *delay)
	}
	fm, err := fitMode(*fit)
	if err != nil {
		return err
	}
	if err := checkWritable(*out); err != nil {
		return err
	}
	p, err := loadModel(*model)
	if err != nil {
		return err
	}
	var ends [2]*item
	for i := range ends {
		if ends[i], err = loadItem(p, filepath.Dir(fs.Arg(i)), filepath.Base(fs.Arg(i)), fm); err != nil {
			return err
		}
	}
	o := pipeline.InterpolateOptions{Frames: *frames, Mode: m, Steps: *steps}
	if *class >= 0 {
		o.ClassLabels = []int{*class}
	}
	res, err := p.Interpolate(ctx, ends[0].x, ends[1].x, o)
	if err != nil {
		return err
	}
	// Frames come back at A's size.
	s := res.Shape()
	imgs := make([]image.Image, s[0])
	per := s[1] * s[2] * s[3]
	for k := range imgs {
		f := tensor.New(tensor.WithShape(1, s[1], s[2], s[3]), tensor.WithBacking(res.Float32s()[k*per:(k+1)*per]))
		r, err := ends[0].restore(f)
		if err != nil {
			return err
		}
		if imgs[k], err = imageio.ToImage(r); err != nil {
			return err
		}
	}
	strip, err := imageio.Grid(imgs, len(imgs), 0, nil)
	if err != nil {
		return err
	}
	meta := map[string]string{metaSoftware: "ldm", "ldm.job": "interpolate", metaModel: modelName(*model), "ldm.mode": *mode,
		"ldm.frames": strconv.Itoa(*frames), metaSteps: strconv.Itoa(*steps), "ldm.a": fs.Arg(0), "ldm.b": fs.Arg(1)}
	if err := imageio.SavePNG(*out, strip, meta); err != nil {
		return err
	}
	logf(e, *quiet, "wrote %s (%d frames)", *out, *frames)
	if *gif != "" {
		if err := imageio.SaveGIF(*gif, imgs, *delay); err != nil {
			return err
		}
		logf(e, *quiet, "wrote %s", *gif)
	}
	return nil
}
