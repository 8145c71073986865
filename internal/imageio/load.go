package imageio

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"os"

	"gorgonia.org/tensor"
)

// DefaultMaxPixels is the largest image (width x height) loaded or produced
// when no other limit is given: 8192 x 8192. Decoding it takes 256 MiB as
// RGBA and its float32 tensor 768 MiB, which is as far as a default should
// go on an ordinary machine.
const DefaultMaxPixels = 1 << 26

// checkPixels refuses an output of count planes of h x w before it is
// allocated.
func checkPixels(count int64, h, w int) error {
	px := int64(h) * int64(w)
	if px > DefaultMaxPixels {
		return fmt.Errorf("imageio: a %dx%d image has %d pixels, over the limit of %d (DefaultMaxPixels)", w, h, px, int64(DefaultMaxPixels))
	}
	if count*px > 1<<31 {
		return fmt.Errorf("imageio: %d planes of %dx%d exceed the limit of 2^31 values", count, w, h)
	}
	return nil
}

// SizeMode says how Load brings an image to the requested size.
type SizeMode int

const (
	// Cover scales the image, keeping its aspect ratio, to just cover the
	// target and centre-crops it (ResizeCover).
	Cover SizeMode = iota
	// Stretch resizes to exactly the target, ignoring the aspect ratio.
	Stretch
	// CropOnly centre-crops without scaling; smaller images are refused.
	CropOnly
)

// LoadOptions controls Load and Decode.
type LoadOptions struct {
	// Channels is Gray or RGB; 0 keeps grey images grey and makes every
	// other image RGB.
	Channels int
	// Height and Width are the target size; 0 for both keeps the image's.
	Height, Width int
	// Size says how to reach the target size.
	Size SizeMode
	// MaxPixels refuses images with more pixels (width x height), checked
	// from the header before decoding; 0 means DefaultMaxPixels.
	MaxPixels int64
}

var (
	pngMagic  = []byte("\x89PNG\r\n\x1a\n")
	jpegMagic = []byte{0xff, 0xd8}
)

// DecodeImage decodes a PNG or JPEG image read from r after checking from
// its header that it has at most maxPixels pixels (DefaultMaxPixels if
// maxPixels <= 0). name identifies the source in errors.
func DecodeImage(r io.Reader, name string, maxPixels int64) (image.Image, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	br := bufio.NewReader(r)
	head, _ := br.Peek(len(pngMagic))
	var (
		decodeConfig func(io.Reader) (image.Config, error)
		decode       func(io.Reader) (image.Image, error)
		format       string
	)
	switch {
	case bytes.HasPrefix(head, pngMagic):
		decodeConfig, decode, format = png.DecodeConfig, png.Decode, "PNG"
	case bytes.HasPrefix(head, jpegMagic):
		decodeConfig, decode, format = jpeg.DecodeConfig, jpeg.Decode, "JPEG"
	default:
		return nil, fmt.Errorf("%s: not a PNG or JPEG file", name)
	}
	// Keep the header bytes DecodeConfig consumes so that decoding can
	// start again from the beginning without seeking.
	var header bytes.Buffer
	cfg, err := decodeConfig(io.TeeReader(br, &header))
	if err != nil {
		return nil, fmt.Errorf("%s: reading %s header: %w", name, format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("%s: %s image has no pixels (%dx%d)", name, format, cfg.Width, cfg.Height)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > maxPixels {
		return nil, fmt.Errorf("%s: image is %dx%d = %d pixels, over the limit of %d pixels", name, cfg.Width, cfg.Height, px, maxPixels)
	}
	img, err := decode(io.MultiReader(&header, br))
	if err != nil {
		return nil, fmt.Errorf("%s: decoding %s: %w", name, format, err)
	}
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		return nil, fmt.Errorf("%s: decoded %dx%d but the header says %dx%d", name, b.Dx(), b.Dy(), cfg.Width, cfg.Height)
	}
	return img, nil
}

// LoadImage opens and decodes a PNG or JPEG file as DecodeImage does.
func LoadImage(path string, maxPixels int64) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return DecodeImage(f, path, maxPixels)
}

// isGray reports whether img stores grey levels only.
func isGray(img image.Image) bool {
	switch img.ColorModel() {
	case color.GrayModel, color.Gray16Model:
		return true
	}
	return false
}

// Decode decodes a PNG or JPEG image read from r to a [C, H, W] tensor in
// [-1, 1] as opt says. name identifies the source in errors.
func Decode(r io.Reader, name string, opt LoadOptions) (*tensor.Dense, error) {
	if opt.Channels != 0 && opt.Channels != Gray && opt.Channels != RGB {
		return nil, fmt.Errorf("%s: channels must be 1 or 3, got %d", name, opt.Channels)
	}
	if opt.Height < 0 || opt.Width < 0 || (opt.Height == 0) != (opt.Width == 0) {
		return nil, fmt.Errorf("%s: target size must be both positive or both 0, got %dx%d", name, opt.Width, opt.Height)
	}
	img, err := DecodeImage(r, name, opt.MaxPixels)
	if err != nil {
		return nil, err
	}
	c := opt.Channels
	if c == 0 {
		c = RGB
		if isGray(img) {
			c = Gray
		}
	}
	t, err := FromImage(img, c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if opt.Height == 0 {
		return t, nil
	}
	switch opt.Size {
	case Cover:
		t, err = ResizeCover(t, opt.Height, opt.Width)
	case Stretch:
		t, err = Resize(t, opt.Height, opt.Width)
	case CropOnly:
		t, err = CenterCrop(t, opt.Height, opt.Width)
	default:
		err = fmt.Errorf("unknown size mode %d", int(opt.Size))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

// Load reads a PNG or JPEG file into a [C, H, W] tensor in [-1, 1] as opt
// says.
func Load(path string, opt LoadOptions) (*tensor.Dense, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Decode(f, path, opt)
}

// ErrMaskSize is wrapped by the error for a mask whose size differs from
// its image's.
var ErrMaskSize = errors.New("mask size does not match the image")

// DecodeMask decodes a mask image read from r to a [1, H, W] tensor in
// [0, 1]: the grey level (Luma of colour masks, alpha ignored) divided by
// 255, so white (1) marks the region to regenerate. If width and height are
// positive the mask must have exactly that size. name identifies the source
// in errors.
func DecodeMask(r io.Reader, name string, width, height int) (*tensor.Dense, error) {
	img, err := DecodeImage(r, name, 0)
	if err != nil {
		return nil, err
	}
	b := img.Bounds()
	if width > 0 && height > 0 && (b.Dx() != width || b.Dy() != height) {
		return nil, fmt.Errorf("%s: %w: the mask is %dx%d but the image is %dx%d", name, ErrMaskSize, b.Dx(), b.Dy(), width, height)
	}
	pix := planarBytes(img, Gray)
	data := make([]float32, len(pix))
	for i, p := range pix {
		data[i] = float32(p) / 255
	}
	return tensor.New(tensor.WithShape(1, b.Dy(), b.Dx()), tensor.WithBacking(data)), nil
}

// LoadMask reads a mask file as DecodeMask does.
func LoadMask(path string, width, height int) (*tensor.Dense, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return DecodeMask(f, path, width, height)
}

// BinarizeMask sets each value of m to 1 if it is at least 0.5 and to 0
// otherwise, as diffusers' mask processor does.
func BinarizeMask(m []float32) {
	for i, v := range m {
		if v >= 0.5 {
			m[i] = 1
		} else {
			m[i] = 0
		}
	}
}
