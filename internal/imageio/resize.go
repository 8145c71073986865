package imageio

import (
	"fmt"
	"image"
	"math"

	"gorgonia.org/tensor"
)

// bilinearSupport is the half-width of the triangle filter at scale 1.
const bilinearSupport = 1.0

// resampleWeights returns, for each output index, the first input index
// and the normalised weights of Pillow's BILINEAR resampling from in to out
// samples: output sample i is centred at input coordinate (i+0.5)*in/out,
// and when shrinking the triangle is widened by in/out so that every input
// sample contributes (antialiasing).
func resampleWeights(in, out int) (first []int, weights [][]float64) {
	scale := float64(in) / float64(out)
	fscale := math.Max(scale, 1)
	support := bilinearSupport * fscale
	first = make([]int, out)
	weights = make([][]float64, out)
	for i := 0; i < out; i++ {
		center := (float64(i) + 0.5) * scale
		lo := int(center - support + 0.5)
		if lo < 0 {
			lo = 0
		}
		hi := int(center + support + 0.5)
		if hi > in {
			hi = in
		}
		ws := make([]float64, 0, hi-lo)
		sum := 0.0
		for x := lo; x < hi; x++ {
			d := math.Abs((float64(x) - center + 0.5) / fscale)
			w := 0.0
			if d < 1 {
				w = 1 - d
			}
			ws = append(ws, w)
			sum += w
		}
		if sum != 0 {
			for k := range ws {
				ws[k] /= sum
			}
		}
		first[i], weights[i] = lo, ws
	}
	return first, weights
}

// Resize resamples every channel of a CHW or NCHW tensor to height x width
// with Pillow's BILINEAR filter (see the package documentation), first along
// rows then along columns, accumulating in float64. The result has the same
// rank as src.
func Resize(src *tensor.Dense, height, width int) (*tensor.Dense, error) {
	b, err := batchOf(src)
	if err != nil {
		return nil, err
	}
	if height < 1 || width < 1 {
		return nil, fmt.Errorf("imageio: resize target must be positive, got %dx%d", width, height)
	}
	if err := checkPixels(int64(b.n)*int64(b.c), height, width); err != nil {
		return nil, err
	}
	out := resize(b, height, width)
	return out.dense(len(src.Shape()) == 4), nil
}

func resize(b chw, height, width int) chw {
	if height == b.h && width == b.w {
		return chw{data: append([]float32(nil), b.data...), n: b.n, c: b.c, h: b.h, w: b.w}
	}
	xf, xw := resampleWeights(b.w, width)
	yf, yw := resampleWeights(b.h, height)
	planes := b.n * b.c
	tmp := make([]float32, b.h*width)
	out := chw{data: make([]float32, planes*height*width), n: b.n, c: b.c, h: height, w: width}
	for p := 0; p < planes; p++ {
		src := b.data[p*b.h*b.w : (p+1)*b.h*b.w]
		for y := 0; y < b.h; y++ {
			row := src[y*b.w : (y+1)*b.w]
			for x := 0; x < width; x++ {
				s := 0.0
				for k, w := range xw[x] {
					s += w * float64(row[xf[x]+k])
				}
				tmp[y*width+x] = float32(s)
			}
		}
		dst := out.data[p*height*width : (p+1)*height*width]
		for y := 0; y < height; y++ {
			for x := 0; x < width; x++ {
				s := 0.0
				for k, w := range yw[y] {
					s += w * float64(tmp[(yf[y]+k)*width+x])
				}
				dst[y*width+x] = float32(s)
			}
		}
	}
	return out
}

// Crop returns the part r of every image of a CHW or NCHW tensor, in
// coordinates where the image spans (0,0)-(W,H). r must lie inside it.
func Crop(src *tensor.Dense, r image.Rectangle) (*tensor.Dense, error) {
	b, err := batchOf(src)
	if err != nil {
		return nil, err
	}
	if r.Empty() || !r.In(image.Rect(0, 0, b.w, b.h)) {
		return nil, fmt.Errorf("imageio: crop %v is empty or outside the %dx%d image", r, b.w, b.h)
	}
	return crop(b, r).dense(len(src.Shape()) == 4), nil
}

func crop(b chw, r image.Rectangle) chw {
	h, w := r.Dy(), r.Dx()
	out := chw{data: make([]float32, b.n*b.c*h*w), n: b.n, c: b.c, h: h, w: w}
	for p := 0; p < b.n*b.c; p++ {
		for y := 0; y < h; y++ {
			srow := b.data[p*b.h*b.w+(r.Min.Y+y)*b.w+r.Min.X:]
			copy(out.data[p*h*w+y*w:p*h*w+(y+1)*w], srow[:w])
		}
	}
	return out
}

// centerOffset is torchvision's CenterCrop offset int(round(d / 2.0)),
// with Python's round-half-to-even.
func centerOffset(d int) int {
	q := d / 2
	if d%2 == 1 && q%2 == 1 {
		q++
	}
	return q
}

// CenterCrop crops height x width out of the centre of every image, placing
// the window as torchvision's CenterCrop does. The target must not exceed
// the image.
func CenterCrop(src *tensor.Dense, height, width int) (*tensor.Dense, error) {
	b, err := batchOf(src)
	if err != nil {
		return nil, err
	}
	if height < 1 || width < 1 || height > b.h || width > b.w {
		return nil, fmt.Errorf("imageio: cannot centre-crop %dx%d out of a %dx%d image", width, height, b.w, b.h)
	}
	top, left := centerOffset(b.h-height), centerOffset(b.w-width)
	return crop(b, image.Rect(left, top, left+width, top+height)).dense(len(src.Shape()) == 4), nil
}

// coverSize is the size to which an h x w image is scaled, preserving its
// aspect ratio, so that it just covers th x tw; for a square target it is
// torchvision's Resize(size): shorter side = size, longer side truncated.
func coverSize(h, w, th, tw int) (int, int) {
	if int64(th)*int64(w) >= int64(tw)*int64(h) {
		return th, max(tw, int(int64(th)*int64(w)/int64(h)))
	}
	return max(th, int(int64(tw)*int64(h)/int64(w))), tw
}

// ResizeCover scales every image, preserving the aspect ratio, so that it
// covers height x width, then centre-crops it to exactly that size: the
// usual Resize + CenterCrop of diffusers' training scripts.
func ResizeCover(src *tensor.Dense, height, width int) (*tensor.Dense, error) {
	b, err := batchOf(src)
	if err != nil {
		return nil, err
	}
	if height < 1 || width < 1 {
		return nil, fmt.Errorf("imageio: resize target must be positive, got %dx%d", width, height)
	}
	rh, rw := coverSize(b.h, b.w, height, width)
	if err := checkPixels(int64(b.n)*int64(b.c), rh, rw); err != nil {
		return nil, err
	}
	r := resize(b, rh, rw)
	top, left := centerOffset(rh-height), centerOffset(rw-width)
	return crop(r, image.Rect(left, top, left+width, top+height)).dense(len(src.Shape()) == 4), nil
}

// Padding says how Pad fills the new border.
type Padding struct {
	// Edge repeats the nearest image pixel; otherwise the border is Value.
	Edge bool
	// Value is the constant fill, in tensor units (-1 is black, 1 white).
	Value float32
}

// Pad places every image of src at offset (left, top) in a height x width
// canvas filled as pad says. The image must fit in the canvas.
func Pad(src *tensor.Dense, height, width, top, left int, pad Padding) (*tensor.Dense, error) {
	b, err := batchOf(src)
	if err != nil {
		return nil, err
	}
	if top < 0 || left < 0 || top+b.h > height || left+b.w > width {
		return nil, fmt.Errorf("imageio: a %dx%d image at (%d,%d) does not fit in %dx%d", b.w, b.h, left, top, width, height)
	}
	if err := checkPixels(int64(b.n)*int64(b.c), height, width); err != nil {
		return nil, err
	}
	out := chw{data: make([]float32, b.n*b.c*height*width), n: b.n, c: b.c, h: height, w: width}
	for p := 0; p < b.n*b.c; p++ {
		src := b.data[p*b.h*b.w : (p+1)*b.h*b.w]
		dst := out.data[p*height*width : (p+1)*height*width]
		for y := 0; y < height; y++ {
			sy := min(max(y-top, 0), b.h-1)
			inY := y-top == sy
			for x := 0; x < width; x++ {
				sx := min(max(x-left, 0), b.w-1)
				if pad.Edge || (inY && x-left == sx) {
					dst[y*width+x] = src[sy*b.w+sx]
				} else {
					dst[y*width+x] = pad.Value
				}
			}
		}
	}
	return out.dense(len(src.Shape()) == 4), nil
}

// FitMode says how Fit brings an image to a model's size.
type FitMode int

const (
	// FitPad centres the image in the model's canvas and pads the border
	// (the image must not be larger than the model's size); Restore crops
	// the image's region back out, so its pixels keep their positions.
	FitPad FitMode = iota
	// FitResize stretches the image to the model's size with Resize;
	// Restore resizes back to the original size.
	FitResize
)

// String names the mode as flags spell it.
func (m FitMode) String() string {
	switch m {
	case FitPad:
		return "pad"
	case FitResize:
		return "resize"
	}
	return fmt.Sprintf("FitMode(%d)", int(m))
}

// Fitted records how Fit changed an image so that Restore can undo it.
type Fitted struct {
	Mode FitMode
	// Height and Width are the original image's size.
	Height, Width int
	// Box is where the original image lies in the fitted one (FitPad).
	Box image.Rectangle
}

// Fit brings every image of src to height x width as mode says, padding
// with pad in FitPad mode, and returns how to undo it.
func Fit(src *tensor.Dense, height, width int, mode FitMode, pad Padding) (*tensor.Dense, Fitted, error) {
	b, err := batchOf(src)
	if err != nil {
		return nil, Fitted{}, err
	}
	f := Fitted{Mode: mode, Height: b.h, Width: b.w, Box: image.Rect(0, 0, width, height)}
	switch mode {
	case FitPad:
		if b.h > height || b.w > width {
			return nil, Fitted{}, fmt.Errorf("imageio: a %dx%d image is larger than the model's %dx%d: resize it instead of padding", b.w, b.h, width, height)
		}
		top, left := (height-b.h)/2, (width-b.w)/2
		f.Box = image.Rect(left, top, left+b.w, top+b.h)
		out, err := Pad(src, height, width, top, left, pad)
		return out, f, err
	case FitResize:
		out, err := Resize(src, height, width)
		return out, f, err
	}
	return nil, Fitted{}, fmt.Errorf("imageio: unknown fit mode %d", int(mode))
}

// Restore undoes Fit on a tensor of the fitted size (for example the model's
// output for the fitted input), returning the original size.
func (f Fitted) Restore(src *tensor.Dense) (*tensor.Dense, error) {
	b, err := batchOf(src)
	if err != nil {
		return nil, err
	}
	switch f.Mode {
	case FitPad:
		if !f.Box.In(image.Rect(0, 0, b.w, b.h)) {
			return nil, fmt.Errorf("imageio: a %dx%d image does not hold the fitted region %v", b.w, b.h, f.Box)
		}
		return crop(b, f.Box).dense(len(src.Shape()) == 4), nil
	case FitResize:
		return Resize(src, f.Height, f.Width)
	}
	return nil, fmt.Errorf("imageio: unknown fit mode %d", int(f.Mode))
}
