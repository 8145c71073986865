// Command mnistpng writes MNIST digits as 32x32 PNG files (padded as the
// models see them), optionally with Gaussian pixel noise, and a centre
// mask, or turned into outliers (rotated a quarter turn, or inverted): the
// inputs of the documentation's pictures and of quick experiments with the
// image jobs.
//
//	go run ./tools/mnistpng -o digits/ -n 8 [-split test] [-first 0] [-digit 7] [-noise 0.25] [-mask mask.png -mask-size 12] [-outlier rot90|invert]
package main

import (
	"flag"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"

	"github.com/ldm-go/ldm/internal/dataset"
	"github.com/ldm-go/ldm/internal/imageio"
	"github.com/ldm-go/ldm/nn"
)

func main() {
	out := flag.String("o", "digits", "output folder")
	n := flag.Int("n", 8, "number of digits")
	split := flag.String("split", "test", "MNIST split: train or test")
	first := flag.Int("first", 0, "index of the first digit")
	digit := flag.Int("digit", -1, "only digits with this label (-1: any)")
	noise := flag.Float64("noise", 0, "standard deviation of Gaussian pixel noise, pixels in [0, 1]")
	seed := flag.Uint64("seed", 0, "seed of the noise")
	mask := flag.String("mask", "", "also write a mask PNG here: white centre square")
	maskSize := flag.Int("mask-size", 12, "side of the mask's square")
	outlier := flag.String("outlier", "", "rot90 (a quarter turn clockwise) or invert (white background); the name gets it as a suffix")
	flag.Parse()
	if *outlier != "" && *outlier != "rot90" && *outlier != "invert" {
		fmt.Fprintf(os.Stderr, "mnistpng: -outlier must be rot90 or invert, got %q\n", *outlier)
		os.Exit(2)
	}
	if err := run(*out, *split, *n, *first, *digit, *noise, *seed, *mask, *maskSize, *outlier); err != nil {
		fmt.Fprintln(os.Stderr, "mnistpng:", err)
		os.Exit(1)
	}
}

func run(out, split string, n, first, digit int, noise float64, seed uint64, mask string, maskSize int, outlier string) error {
	d, err := dataset.MNIST(split)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	rng := nn.NewRNG(seed, 0)
	img := make([]float32, 32*32)
	written := 0
	for i := first; i < d.Len() && written < n; i++ {
		label := d.Get(img, i)
		if digit >= 0 && label != digit {
			continue
		}
		g := image.NewGray(image.Rect(0, 0, 32, 32))
		for p, v := range img {
			x := float64(v)/2 + 0.5 + noise*rng.Normal()
			g.Pix[p] = uint8(math.Round(255 * math.Min(1, math.Max(0, x))))
		}
		suffix := ""
		switch outlier {
		case "rot90":
			r := image.NewGray(g.Rect)
			for y := 0; y < 32; y++ {
				for x := 0; x < 32; x++ {
					r.Pix[y*32+x] = g.Pix[(31-x)*32+y]
				}
			}
			g, suffix = r, "-rot90"
		case "invert":
			for p := range g.Pix {
				g.Pix[p] = 255 - g.Pix[p]
			}
			suffix = "-invert"
		}
		name := filepath.Join(out, fmt.Sprintf("%05d-%d%s.png", i, label, suffix))
		if err := imageio.SavePNG(name, g, nil); err != nil {
			return err
		}
		written++
	}
	if mask != "" {
		m := image.NewGray(image.Rect(0, 0, 32, 32))
		lo := (32 - maskSize) / 2
		for y := lo; y < lo+maskSize; y++ {
			for x := lo; x < lo+maskSize; x++ {
				m.SetGray(x, y, color.Gray{255})
			}
		}
		return imageio.SavePNG(mask, m, nil)
	}
	return nil
}
