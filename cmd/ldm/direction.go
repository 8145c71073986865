package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/internal/batchjob"
	"github.com/ldm-go/ldm/internal/imageio"
	"github.com/ldm-go/ldm/internal/mnist"
	"github.com/ldm-go/ldm/pipeline"
)

func init() {
	register(&command{name: "direction", summary: "latent direction from one set of images to another, as safetensors", run: runDirection})
}

func runDirection(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "direction", "direction [flags] (--from DIR --to DIR | --digits A,B) -o DIR.safetensors")
	model := fs.String("model", "", "diffusers pipeline folder (default: the embedded default model)")
	from := fs.String("from", "", "folder (or file) of images of the starting set")
	to := fs.String("to", "", "folder (or file) of images of the target set")
	digits := fs.String("digits", "", "instead of folders: two MNIST digits A,B; the direction goes from A to B")
	split := fs.String("split", "test", "MNIST split for --digits: test or train")
	count := fs.Int("count", 500, "with --digits: at most this many images of each digit (the first ones of the split)")
	fit := fs.String("fit", "auto", "how images of another size reach the model's size: auto, pad or resize (see ldm denoise -h)")
	batch := fs.Int("batch-size", 16, "images encoded at once")
	out := fs.String("o", "", "output safetensors file (required)")
	quiet := fs.Bool("q", false, "no log output")
	if err := parseNoArgs(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usagef("-o is required")
	}
	folders := *from != "" || *to != ""
	if folders == (*digits != "") || (folders && (*from == "" || *to == "")) {
		return usagef("give either --from and --to, or --digits")
	}
	if *count < 1 || *batch < 1 {
		return usagef("--count and --batch-size must be at least 1")
	}
	fm, err := fitMode(*fit)
	if err != nil {
		return err
	}
	var ds [2]int
	var sp mnist.Split
	if *digits != "" {
		a, b, ok := strings.Cut(*digits, ",")
		var e1, e2 error
		ds[0], e1 = strconv.Atoi(a)
		ds[1], e2 = strconv.Atoi(b)
		if !ok || e1 != nil || e2 != nil || ds[0] < 0 || ds[0] > 9 || ds[1] < 0 || ds[1] > 9 {
			return usagef("--digits must be two digits A,B in 0-9, such as 1,7; got %q", *digits)
		}
		switch *split {
		case "test":
			sp = mnist.Test
		case "train":
			sp = mnist.Train
		default:
			return usagef("--split must be test or train, got %q", *split)
		}
	}
	if err := checkWritable(*out); err != nil {
		return err
	}
	p, err := loadModel(*model)
	if err != nil {
		return err
	}
	var sets [2]*tensor.Dense
	meta := map[string]string{metaSoftware: "ldm", "ldm.job": "direction", metaModel: modelName(*model)}
	if *digits != "" {
		set, err := mnist.Load(sp)
		if err != nil {
			return err
		}
		for k, d := range ds {
			if sets[k], err = mnistDigit(p, set, d, *count, fm); err != nil {
				return err
			}
		}
		meta["ldm.from"], meta["ldm.to"] = fmt.Sprintf("mnist %s digit %d", *split, ds[0]), fmt.Sprintf("mnist %s digit %d", *split, ds[1])
	} else {
		for k, dir := range []string{*from, *to} {
			if sets[k], err = loadSet(p, dir, fm); err != nil {
				return err
			}
		}
		meta["ldm.from"], meta["ldm.to"] = *from, *to
	}
	var means [2]*tensor.Dense
	for k := range sets {
		if means[k], err = p.MeanLatent(ctx, sets[k], *batch); err != nil {
			return err
		}
		meta[[]string{"ldm.from_count", "ldm.to_count"}[k]] = strconv.Itoa(sets[k].Shape()[0])
	}
	d, err := pipeline.LatentDirection(means[0], means[1])
	if err != nil {
		return err
	}
	if err := pipeline.SaveDirection(*out, d, meta); err != nil {
		return err
	}
	logf(e, *quiet, "wrote %s (%s images -> %s images)", *out, meta["ldm.from_count"], meta["ldm.to_count"])
	return nil
}

// stack joins fitted [1, C, H, W] images into one batch.
func stack(items []*tensor.Dense) *tensor.Dense {
	s := items[0].Shape()
	per := s[1] * s[2] * s[3]
	d := make([]float32, 0, len(items)*per)
	for _, t := range items {
		d = append(d, t.Float32s()...)
	}
	return tensor.New(tensor.WithShape(len(items), s[1], s[2], s[3]), tensor.WithBacking(d))
}

// loadSet loads and fits every image under path; any bad file is an error,
// since a direction from part of a set would silently differ.
func loadSet(p *pipeline.Pipeline, path string, fm imageio.FitMode) (*tensor.Dense, error) {
	root, rels, err := batchjob.List(path)
	if err != nil {
		return nil, err
	}
	var xs []*tensor.Dense
	for _, r := range rels {
		it, err := loadItem(p, root, r, fm)
		if err != nil {
			return nil, err
		}
		xs = append(xs, it.x)
	}
	return stack(xs), nil
}

// mnistDigit returns up to count images of digit d, fitted to the model.
func mnistDigit(p *pipeline.Pipeline, set *mnist.Set, d, count int, fm imageio.FitMode) (*tensor.Dense, error) {
	var idx []int
	for i, l := range set.Labels {
		if int(l) == d && len(idx) < count {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil, fmt.Errorf("no MNIST images of digit %d", d)
	}
	if p.ImageChannels() != 1 {
		return nil, fmt.Errorf("MNIST digits are grey but the model makes %d-channel images", p.ImageChannels())
	}
	data := make([]float32, len(idx)*mnist.PaddedSide*mnist.PaddedSide)
	if err := set.PaddedBatch(data, idx); err != nil {
		return nil, err
	}
	t := tensor.New(tensor.WithShape(len(idx), 1, mnist.PaddedSide, mnist.PaddedSide), tensor.WithBacking(data))
	x, _, err := fitTo(p, t, fm)
	return x, err
}
