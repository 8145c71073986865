package imageio

import (
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"io"
	"sort"

	"github.com/ldm-go/ldm/internal/atomicfile"
)

// EncodeGIF writes frames of equal size as an animated GIF that loops
// forever, showing each frame for delay hundredths of a second. Grey frames
// keep their exact levels with a 256-grey palette; colour frames share one
// palette: their exact colours when there are at most 256, otherwise a
// median-cut palette of 256, each pixel mapped to its nearest entry without
// dithering (dithering would make still regions flicker between frames).
func EncodeGIF(w io.Writer, frames []image.Image, delay int) error {
	if len(frames) == 0 {
		return fmt.Errorf("imageio: GIF of no frames")
	}
	if delay < 0 {
		return fmt.Errorf("imageio: GIF frame delay must be >= 0, got %d", delay)
	}
	size := frames[0].Bounds().Size()
	gray := true
	for i, f := range frames {
		if s := f.Bounds().Size(); s != size {
			return fmt.Errorf("imageio: GIF frame %d is %dx%d but frame 0 is %dx%d", i, s.X, s.Y, size.X, size.Y)
		}
		if !isGray(f) {
			gray = false
		}
	}
	var pal color.Palette
	if gray {
		pal = make(color.Palette, 256)
		for i := range pal {
			pal[i] = color.Gray{Y: uint8(i)}
		}
	} else {
		pal = framePalette(frames)
	}
	out := &gif.GIF{LoopCount: 0}
	index := map[color.NRGBA]uint8{}
	for _, f := range frames {
		b := f.Bounds()
		p := image.NewPaletted(image.Rect(0, 0, size.X, size.Y), pal)
		for y := 0; y < size.Y; y++ {
			for x := 0; x < size.X; x++ {
				c := opaque(f.At(b.Min.X+x, b.Min.Y+y))
				if gray {
					p.Pix[y*p.Stride+x] = c.R
					continue
				}
				k, ok := index[c]
				if !ok {
					k = uint8(pal.Index(c))
					index[c] = k
				}
				p.Pix[y*p.Stride+x] = k
			}
		}
		out.Image = append(out.Image, p)
		out.Delay = append(out.Delay, delay)
	}
	return gif.EncodeAll(w, out)
}

// SaveGIF writes EncodeGIF's output to path through a temporary file and a
// rename.
func SaveGIF(path string, frames []image.Image, delay int) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		return EncodeGIF(w, frames, delay)
	})
}

// opaque returns c's colour without alpha, as Pillow's RGB conversion does.
func opaque(c color.Color) color.NRGBA {
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	n.A = 255
	return n
}

// colorCount is one distinct colour and how many pixels have it.
type colorCount struct {
	c [3]uint8
	n int
}

// framePalette builds a palette of at most 256 colours for all frames.
func framePalette(frames []image.Image) color.Palette {
	hist := map[[3]uint8]int{}
	for _, f := range frames {
		b := f.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := opaque(f.At(x, y))
				hist[[3]uint8{c.R, c.G, c.B}]++
			}
		}
	}
	cols := make([]colorCount, 0, len(hist))
	for c, n := range hist {
		cols = append(cols, colorCount{c, n})
	}
	// Map iteration order is random: sort so the palette is deterministic.
	sort.Slice(cols, func(i, j int) bool {
		a, b := cols[i].c, cols[j].c
		return a[0] < b[0] || a[0] == b[0] && (a[1] < b[1] || a[1] == b[1] && a[2] < b[2])
	})
	boxes := [][]colorCount{cols}
	for len(boxes) < 256 {
		// Split the box with the widest channel range at its pixel median.
		best, bestCh, bestRange := -1, 0, 0
		for i, bx := range boxes {
			if len(bx) < 2 {
				continue
			}
			for ch := 0; ch < 3; ch++ {
				lo, hi := 255, 0
				for _, cc := range bx {
					lo, hi = min(lo, int(cc.c[ch])), max(hi, int(cc.c[ch]))
				}
				if hi-lo > bestRange {
					best, bestCh, bestRange = i, ch, hi-lo
				}
			}
		}
		if best < 0 {
			break
		}
		bx := boxes[best]
		sort.SliceStable(bx, func(i, j int) bool { return bx[i].c[bestCh] < bx[j].c[bestCh] })
		total := 0
		for _, cc := range bx {
			total += cc.n
		}
		cut, acc := 1, 0
		for i, cc := range bx[:len(bx)-1] {
			acc += cc.n
			cut = i + 1
			if 2*acc >= total {
				break
			}
		}
		boxes[best] = bx[:cut]
		boxes = append(boxes, bx[cut:])
	}
	pal := make(color.Palette, len(boxes))
	for i, bx := range boxes {
		var s [3]int
		n := 0
		for _, cc := range bx {
			for ch := range s {
				s[ch] += int(cc.c[ch]) * cc.n
			}
			n += cc.n
		}
		pal[i] = color.NRGBA{uint8((s[0] + n/2) / n), uint8((s[1] + n/2) / n), uint8((s[2] + n/2) / n), 255}
	}
	return pal
}
