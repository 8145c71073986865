package imageio

import (
	"fmt"
	"image"
	"image/color"
	"math"

	"gorgonia.org/tensor"
)

// Channel counts of the image tensors this package handles.
const (
	Gray = 1
	RGB  = 3
)

// PixelToFloat maps an 8-bit pixel to [-1, 1] as diffusers' VaeImageProcessor
// does: p/255 then 2*v - 1, both in float32.
func PixelToFloat(p uint8) float32 {
	v := float32(p) / 255
	return float32(2*v) - 1
}

// FloatToPixel maps a value in [-1, 1] to an 8-bit pixel as diffusers'
// postprocessing and numpy_to_pil do: clamp(x/2 + 0.5, 0, 1) * 255 in
// float32, then rounded half to even. NaN maps to 0, which numpy leaves
// undefined.
func FloatToPixel(x float32) uint8 {
	v := float32(x*0.5) + 0.5
	if !(v > 0) { // also catches NaN
		return 0
	}
	if v > 1 {
		v = 1
	}
	return uint8(math.RoundToEven(float64(float32(v * 255))))
}

// PixelsToFloats sets dst[i] = PixelToFloat(src[i]). It panics if the
// lengths differ.
func PixelsToFloats(dst []float32, src []uint8) {
	if len(dst) != len(src) {
		panic("imageio: PixelsToFloats length mismatch")
	}
	for i, p := range src {
		dst[i] = PixelToFloat(p)
	}
}

// FloatsToPixels sets dst[i] = FloatToPixel(src[i]). It panics if the
// lengths differ.
func FloatsToPixels(dst []uint8, src []float32) {
	if len(dst) != len(src) {
		panic("imageio: FloatsToPixels length mismatch")
	}
	for i, x := range src {
		dst[i] = FloatToPixel(x)
	}
}

// Luma is Pillow's RGB to "L" conversion: the ITU-R 601 weights
// 0.299, 0.587, 0.114 in 16-bit fixed point, rounded.
func Luma(r, g, b uint8) uint8 {
	return uint8((uint32(r)*19595 + uint32(g)*38470 + uint32(b)*7471 + 0x8000) >> 16)
}

// FromImage converts img to a [channels, H, W] float32 tensor in [-1, 1].
// channels must be Gray or RGB; colour is reduced with Luma and alpha is
// dropped.
func FromImage(img image.Image, channels int) (*tensor.Dense, error) {
	if channels != Gray && channels != RGB {
		return nil, fmt.Errorf("imageio: channels must be 1 or 3, got %d", channels)
	}
	b := img.Bounds()
	h, w := b.Dy(), b.Dx()
	pix := planarBytes(img, channels)
	data := make([]float32, len(pix))
	PixelsToFloats(data, pix)
	return tensor.New(tensor.WithShape(channels, h, w), tensor.WithBacking(data)), nil
}

// planarBytes returns img's pixels as channel planes (CHW) of 8-bit values.
func planarBytes(img image.Image, channels int) []uint8 {
	b := img.Bounds()
	h, w := b.Dy(), b.Dx()
	n := h * w
	out := make([]uint8, channels*n)
	set := func(i int, r, g, bl uint8) {
		if channels == Gray {
			out[i] = Luma(r, g, bl)
			return
		}
		out[i], out[n+i], out[2*n+i] = r, g, bl
	}
	switch src := img.(type) {
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := src.Pix[(y+b.Min.Y-src.Rect.Min.Y)*src.Stride+(b.Min.X-src.Rect.Min.X):]
			for x := 0; x < w; x++ {
				v := row[x]
				out[y*w+x] = v
				if channels == RGB {
					out[n+y*w+x], out[2*n+y*w+x] = v, v
				}
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := src.Pix[(y+b.Min.Y-src.Rect.Min.Y)*src.Stride+(b.Min.X-src.Rect.Min.X)*4:]
			for x := 0; x < w; x++ {
				set(y*w+x, row[4*x], row[4*x+1], row[4*x+2])
			}
		}
	case *image.YCbCr:
		// YCbCrToRGB rounds once from the 8-bit components; going through
		// the generic 16-bit Color path would round differently.
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c := src.YCbCrAt(b.Min.X+x, b.Min.Y+y)
				r, g, bl := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
				set(y*w+x, r, g, bl)
			}
		}
	default:
		// Grey sources (Gray16, grey palettes) come through with R = G = B,
		// and Luma(v, v, v) == v because the weights sum to 65536.
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
				set(y*w+x, c.R, c.G, c.B)
			}
		}
	}
	return out
}

// chw describes a contiguous float32 image batch.
type chw struct {
	data       []float32
	n, c, h, w int
}

// batchOf checks that t is a contiguous float32 CHW or NCHW tensor with 1 or
// 3 channels and returns its layout (n = 1 for CHW).
func batchOf(t *tensor.Dense) (chw, error) {
	if t == nil {
		return chw{}, fmt.Errorf("imageio: nil tensor")
	}
	if t.Dtype() != tensor.Float32 {
		return chw{}, fmt.Errorf("imageio: image tensor must be float32, got %v", t.Dtype())
	}
	if t.RequiresIterator() {
		return chw{}, fmt.Errorf("imageio: image tensor must be contiguous (materialise views first)")
	}
	shape := t.Shape()
	var b chw
	switch len(shape) {
	case 3:
		b = chw{n: 1, c: shape[0], h: shape[1], w: shape[2]}
	case 4:
		b = chw{n: shape[0], c: shape[1], h: shape[2], w: shape[3]}
	default:
		return chw{}, fmt.Errorf("imageio: image tensor must be CHW or NCHW, got shape %v", shape)
	}
	if b.c != Gray && b.c != RGB {
		return chw{}, fmt.Errorf("imageio: image tensor must have 1 or 3 channels, got shape %v", shape)
	}
	if b.n < 1 || b.h < 1 || b.w < 1 {
		return chw{}, fmt.Errorf("imageio: empty image tensor of shape %v", shape)
	}
	data, ok := t.Data().([]float32)
	if !ok || len(data) != b.n*b.c*b.h*b.w {
		return chw{}, fmt.Errorf("imageio: image tensor of shape %v has %d values", shape, len(data))
	}
	b.data = data
	return b, nil
}

// dense wraps b as a tensor, CHW when n is 1 and keepN is false.
func (b chw) dense(keepN bool) *tensor.Dense {
	if b.n == 1 && !keepN {
		return tensor.New(tensor.WithShape(b.c, b.h, b.w), tensor.WithBacking(b.data))
	}
	return tensor.New(tensor.WithShape(b.n, b.c, b.h, b.w), tensor.WithBacking(b.data))
}

// image converts image i of the batch to *image.Gray (1 channel) or an
// opaque *image.RGBA (3 channels).
func (b chw) image(i int) image.Image {
	plane := b.h * b.w
	src := b.data[i*b.c*plane : (i+1)*b.c*plane]
	if b.c == Gray {
		g := image.NewGray(image.Rect(0, 0, b.w, b.h))
		FloatsToPixels(g.Pix, src)
		return g
	}
	m := image.NewRGBA(image.Rect(0, 0, b.w, b.h))
	for j := 0; j < plane; j++ {
		m.Pix[4*j] = FloatToPixel(src[j])
		m.Pix[4*j+1] = FloatToPixel(src[plane+j])
		m.Pix[4*j+2] = FloatToPixel(src[2*plane+j])
		m.Pix[4*j+3] = 255
	}
	return m
}

// ToImage converts a CHW tensor, or an NCHW tensor holding one image, to an
// *image.Gray (1 channel) or an opaque *image.RGBA (3 channels).
func ToImage(t *tensor.Dense) (image.Image, error) {
	b, err := batchOf(t)
	if err != nil {
		return nil, err
	}
	if b.n != 1 {
		return nil, fmt.Errorf("imageio: ToImage needs one image, got a batch of %d (use ToImages)", b.n)
	}
	return b.image(0), nil
}

// ToImages converts every image of a CHW or NCHW tensor, in batch order.
func ToImages(t *tensor.Dense) ([]image.Image, error) {
	b, err := batchOf(t)
	if err != nil {
		return nil, err
	}
	out := make([]image.Image, b.n)
	for i := range out {
		out[i] = b.image(i)
	}
	return out, nil
}
