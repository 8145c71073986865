package imageio

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
)

// GridColumns is the number of columns Grid uses for n images when none is
// given: ceil(sqrt(n)), so the grid is as near square as whole rows allow.
func GridColumns(n int) int {
	if n <= 0 {
		return 0
	}
	c := int(math.Sqrt(float64(n)))
	for c*c < n {
		c++
	}
	for c > 1 && (c-1)*(c-1) >= n {
		c--
	}
	return c
}

// Grid tiles images of equal size row by row into cols columns
// (GridColumns(len(images)) when cols <= 0), with pad pixels of bg between
// the cells and around them. The result is an *image.Gray when every image
// is one and bg is grey, an *image.RGBA otherwise.
func Grid(images []image.Image, cols, pad int, bg color.Color) (image.Image, error) {
	if len(images) == 0 {
		return nil, fmt.Errorf("imageio: grid of no images")
	}
	if pad < 0 {
		return nil, fmt.Errorf("imageio: grid padding must be >= 0, got %d", pad)
	}
	if cols <= 0 {
		cols = GridColumns(len(images))
	}
	cols = min(cols, len(images))
	rows := (len(images) + cols - 1) / cols
	size := images[0].Bounds().Size()
	allGray := true
	for i, im := range images {
		if s := im.Bounds().Size(); s != size {
			return nil, fmt.Errorf("imageio: grid image %d is %dx%d but image 0 is %dx%d", i, s.X, s.Y, size.X, size.Y)
		}
		if _, ok := im.(*image.Gray); !ok {
			allGray = false
		}
	}
	if bg == nil {
		bg = color.Black
	}
	if r, g, b, a := bg.RGBA(); r != g || g != b || a != 0xffff {
		allGray = false
	}
	w := int64(cols)*int64(size.X) + int64(cols+1)*int64(pad)
	h := int64(rows)*int64(size.Y) + int64(rows+1)*int64(pad)
	if w*h > DefaultMaxPixels {
		return nil, fmt.Errorf("imageio: a %dx%d grid exceeds the limit of %d pixels (DefaultMaxPixels)", w, h, int64(DefaultMaxPixels))
	}
	rect := image.Rect(0, 0, int(w), int(h))
	var dst draw.Image
	if allGray {
		dst = image.NewGray(rect)
	} else {
		dst = image.NewRGBA(rect)
	}
	draw.Draw(dst, rect, image.NewUniform(bg), image.Point{}, draw.Src)
	for i, im := range images {
		x := pad + (i%cols)*(size.X+pad)
		y := pad + (i/cols)*(size.Y+pad)
		draw.Draw(dst, image.Rect(x, y, x+size.X, y+size.Y), im, im.Bounds().Min, draw.Src)
	}
	return dst, nil
}
