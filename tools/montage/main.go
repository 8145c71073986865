// Command montage tiles PNG files into one grid image, in the order given:
// the documentation's before-and-after pictures.
//
//	go run ./tools/montage -o out.png -cols 4 a.png b.png ...
package main

import (
	"flag"
	"fmt"
	"image"
	"os"

	"github.com/ldm-go/ldm/internal/imageio"
)

func main() {
	out := flag.String("o", "montage.png", "output PNG")
	cols := flag.Int("cols", 0, "columns (0: all in one row)")
	pad := flag.Int("pad", 2, "padding between tiles, in pixels")
	flag.Parse()
	if err := run(*out, *cols, *pad, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "montage:", err)
		os.Exit(1)
	}
}

func run(out string, cols, pad int, files []string) error {
	if len(files) == 0 {
		return fmt.Errorf("no input files")
	}
	imgs := make([]image.Image, len(files))
	for i, f := range files {
		img, err := imageio.LoadImage(f, 0)
		if err != nil {
			return err
		}
		imgs[i] = img
	}
	if cols <= 0 {
		cols = len(imgs)
	}
	grid, err := imageio.Grid(imgs, cols, pad, nil)
	if err != nil {
		return err
	}
	return imageio.SavePNG(out, grid, nil)
}
