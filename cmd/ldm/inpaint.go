package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/internal/imageio"
	"github.com/ldm-go/ldm/pipeline"
)

func init() {
	register(&command{name: "inpaint", summary: "regenerate the masked region of images, keeping the rest exactly", run: runInpaint})
}

func runInpaint(ctx context.Context, e *env, args []string) error {
	f := &jobFlags{}
	fs := newFlags(e, "inpaint", "inpaint [flags] --mask MASK.png|--mask-dir DIR -o OUT_DIR INPUT")
	f.add(fs, true)
	mask := fs.String("mask", "", "mask PNG for every input: white (>= 50% grey) marks the region to regenerate; it must have the input's size")
	maskDir := fs.String("mask-dir", "", "folder of masks, one per input under the same relative path (as PNG)")
	jump := fs.Int("jump", 0, "RePaint jump length: after this many steps, noise back up and denoise again (0: off; needs --resample and the ddim or ddpm sampler)")
	resample := fs.Int("resample", 0, "RePaint: how many times to go back at each jump")
	feather := fs.Float64("feather", 0, "soften the seam of the final paste with a Gaussian of this many pixels, inside the mask only")
	reEncode := fs.Bool("re-encode", false, "keep sampling consistent with the known pixels: decode, paste and re-encode the predicted latents at every step (slower; ddim/ddpm/dpm++2m/unipc/pndm)")
	candidates := fs.Int("candidates", 1, "complete each image this many times (seeds --seed, --seed+1, ...) and keep the completion that agrees best with the known pixels")
	everyClass := fs.Bool("every-class", false, "class-conditional models: complete once per class, guided with --guidance, and keep the class whose completion agrees best with the known pixels (instead of --class)")
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
	if (*mask == "") == (*maskDir == "") {
		return usagef("give exactly one of --mask and --mask-dir")
	}
	if *jump < 0 || *resample < 0 || (*jump > 0) != (*resample > 0) {
		return usagef("--jump and --resample must both be positive or both 0, got %d and %d", *jump, *resample)
	}
	if *candidates < 1 {
		return usagef("--candidates must be at least 1, got %d", *candidates)
	}
	if *everyClass && f.class >= 0 {
		return usagef("--every-class picks the class itself: drop --class %d", f.class)
	}
	if !(*feather >= 0) {
		return usagef("--feather must be 0 or more, got %v", *feather)
	}
	p, err := loadModel(f.model)
	if err != nil {
		return err
	}
	meta := jobMeta("inpaint", f, metaScheduler, jobSchedulerName(p, f.scheduler), "ldm.jump", strconv.Itoa(*jump),
		"ldm.resample", strconv.Itoa(*resample), "ldm.feather", strconv.FormatFloat(*feather, 'g', -1, 64), "ldm.re-encode", strconv.FormatBool(*reEncode),
		"ldm.candidates", strconv.Itoa(*candidates), "ldm.every-class", strconv.FormatBool(*everyClass))
	return imageJob(ctx, e, f, p, input, "inpainting", meta, func(ctx context.Context, it *item) (*tensor.Dense, error) {
		s := it.orig.Shape()
		mp := *mask
		if mp == "" {
			mp = filepath.Join(*maskDir, filepath.FromSlash(it.rel))
			mp = mp[:len(mp)-len(filepath.Ext(mp))] + ".png"
		}
		m, err := imageio.LoadMask(mp, s[3], s[2])
		if err != nil {
			return nil, err
		}
		m4 := tensor.New(tensor.WithShape(1, 1, s[2], s[3]), tensor.WithBacking(m.Data()))
		// Fit the mask as the image; padding is known (0), resizing is
		// binarised again by the pipeline's >= 0.5 test.
		fm := m4
		if it.fit.Mode == imageio.FitPad {
			h, w := p.ImageSize()
			fm, err = imageio.Pad(m4, h, w, it.fit.Box.Min.Y, it.fit.Box.Min.X, imageio.Padding{})
		} else {
			fm, err = imageio.Resize(m4, it.x.Shape()[2], it.x.Shape()[3])
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", mp, err)
		}
		o := pipeline.InpaintOptions{JobOptions: f.jobOptions(it.stream), Mask: fm,
			JumpLength: *jump, Resample: *resample, Feather: *feather, ReEncode: *reEncode, Candidates: *candidates, EveryClass: *everyClass}
		if *everyClass {
			o.GuidanceScale = f.guidance
		}
		y, err := p.Inpaint(ctx, it.x, o)
		if err != nil {
			return nil, err
		}
		if y, err = it.restore(y); err != nil {
			return nil, err
		}
		// Paste again at the input's own size, so that resizing there and
		// back cannot touch the known pixels.
		if err := pipeline.PasteKnown(y, it.orig, m4, *feather); err != nil {
			return nil, err
		}
		return y, nil
	})
}
